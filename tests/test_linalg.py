"""The unrolled dense LU of the Rosenbrock solvers: solves and reverse-mode gradients with pivoting."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pyude.engines.jax._solvers._linalg import UNROLL_LIMIT, lu_factor, lu_solve


@pytest.mark.parametrize("n", [1, 3, 8, UNROLL_LIMIT, UNROLL_LIMIT + 1])
def test_lu_solve_and_gradient(n):
    rng = np.random.default_rng(n)
    for _ in range(3):
        a = rng.normal(size=(n, n))
        a[0] *= 1e-3  # a tiny first pivot: row swaps must happen
        b = rng.normal(size=n)
        x = np.asarray(lu_solve(lu_factor(jnp.asarray(a)), jnp.asarray(b)))
        np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-9, atol=1e-9)
    # d ||A^{-1} b||^2 / dA = -A^{-T} (2x) x^T, x = A^{-1} b
    g = jax.grad(lambda m: jnp.sum(lu_solve(lu_factor(m), jnp.asarray(b)) ** 2))(jnp.asarray(a))
    a_inv = np.linalg.inv(a)
    x = a_inv @ b
    np.testing.assert_allclose(np.asarray(g), -a_inv.T @ np.outer(2 * x, x), rtol=1e-7, atol=1e-8)
    # forward mode: the directional derivative along a random dA
    da = rng.normal(size=(n, n))
    _, jvp = jax.jvp(lambda m: jnp.sum(lu_solve(lu_factor(m), jnp.asarray(b)) ** 2), (jnp.asarray(a),), (jnp.asarray(da),))
    np.testing.assert_allclose(float(jvp), np.sum(-a_inv.T @ np.outer(2 * x, x) * da), rtol=1e-7)
