"""The unrolled dense LU of the Rosenbrock solvers: solves and reverse-mode gradients with pivoting."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pyude.engines.jax._solvers._linalg import (
    ELIMINATION_LIMIT,
    UNROLL_LIMIT,
    lu_factor,
    lu_solve,
)


# the unrolled elimination, LAPACK's inverse (both with the closed-form derivative), LAPACK's LU
@pytest.mark.parametrize("n", [1, 3, 8, ELIMINATION_LIMIT, ELIMINATION_LIMIT + 1, UNROLL_LIMIT, UNROLL_LIMIT + 1])
def test_lu_solve_and_gradient(n):
    rng = np.random.default_rng(n)
    # jitted: op by op, the unrolled factorisation of a 24 x 24 matrix dispatches thousands of kernels
    solve = jax.jit(lambda m, v: lu_solve(lu_factor(m), v))
    for _ in range(3):
        a = rng.normal(size=(n, n))
        a[0] *= 1e-3  # a tiny first pivot: row swaps must happen
        b = rng.normal(size=n)
        x = np.asarray(solve(jnp.asarray(a), jnp.asarray(b)))
        np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-9, atol=1e-9)
    # d ||A^{-1} b||^2 / dA = -A^{-T} (2x) x^T, x = A^{-1} b
    g = jax.jit(jax.grad(lambda m: jnp.sum(solve(m, jnp.asarray(b)) ** 2)))(jnp.asarray(a))
    a_inv = np.linalg.inv(a)
    x = a_inv @ b
    np.testing.assert_allclose(np.asarray(g), -a_inv.T @ np.outer(2 * x, x), rtol=1e-7, atol=1e-8)
    # forward mode: the directional derivative along a random dA
    da = rng.normal(size=(n, n))
    _, jvp = jax.jit(lambda m, dm: jax.jvp(lambda m: jnp.sum(solve(m, jnp.asarray(b)) ** 2), (m,), (dm,)))(jnp.asarray(a), jnp.asarray(da))
    np.testing.assert_allclose(float(jvp), np.sum(-a_inv.T @ np.outer(2 * x, x) * da), rtol=1e-7)


def test_second_derivatives_of_a_solve():
    """The solve's custom derivative rule differentiates again: the Hessian of ||A(s)^{-1} b||^2
    in a scalar s against central differences of the analytic first derivative."""
    rng = np.random.default_rng(0)
    a0, a1, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5)), rng.normal(size=5)
    a0[0] *= 1e-3

    def value(s):
        return jnp.sum(lu_solve(lu_factor(jnp.asarray(a0) + s * jnp.asarray(a1)), jnp.asarray(b)) ** 2)

    def first(s):  # d/ds ||x||^2 = -2 x^T A^{-1} A1 x
        m = a0 + s * a1
        x = np.linalg.solve(m, b)
        return -2.0 * x @ np.linalg.solve(m, a1 @ x)

    s, h = 0.3, 1e-5
    np.testing.assert_allclose(float(jax.jit(jax.grad(value))(s)), first(s), rtol=1e-9)
    hess = (first(s + h) - first(s - h)) / (2 * h)
    np.testing.assert_allclose(float(jax.jit(jax.grad(jax.grad(value)))(s)), hess, rtol=1e-6)
    np.testing.assert_allclose(float(jax.jit(jax.jacfwd(jax.grad(value)))(s)), hess, rtol=1e-6)
