"""Dense LU with partial pivoting for the small matrices of a Rosenbrock step.

For the few-state systems of biochemistry a LAPACK call costs about a
microsecond of dispatch, more than the arithmetic; unrolled XLA ops let the
compiler fuse the whole factorisation into the step. Above
``UNROLL_LIMIT`` rows the LAPACK-backed ``jax.lax.linalg.lu`` is used.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

UNROLL_LIMIT = 24


def lu_factor(a: Float[Array, "n n"]) -> tuple[Float[Array, "n n"], Int[Array, " n"]]:
    """``P A = L U`` with unit-lower ``L`` and ``U`` packed in one matrix, and ``P`` as a row permutation."""
    n = a.shape[0]
    if n > UNROLL_LIMIT:
        lu, _, perm = jax.lax.linalg.lu(a)
        return lu, perm
    perm = jnp.arange(n)
    for k in range(n - 1):
        p = k + jnp.argmax(jnp.abs(a[k:, k]))
        row_k, row_p = a[k], a[p]
        a = a.at[k].set(row_p).at[p].set(row_k)
        pk, pp = perm[k], perm[p]
        perm = perm.at[k].set(pp).at[p].set(pk)
        l = a[k + 1 :, k] / a[k, k]
        a = a.at[k + 1 :, k + 1 :].add(-l[:, None] * a[k, k + 1 :][None, :])
        a = a.at[k + 1 :, k].set(l)
    return a, perm


def lu_solve(lu_and_perm: tuple[Float[Array, "n n"], Int[Array, " n"]], b: Float[Array, " n"]) -> Float[Array, " n"]:
    """Solve ``A x = b`` given :func:`lu_factor` of ``A``."""
    lu, perm = lu_and_perm
    n = lu.shape[0]
    y = b[perm]
    if n > UNROLL_LIMIT:
        y = jax.scipy.linalg.solve_triangular(lu, y, lower=True, unit_diagonal=True)
        return jax.scipy.linalg.solve_triangular(lu, y, lower=False)
    for i in range(1, n):
        y = y.at[i].add(-(lu[i, :i] @ y[:i]))
    for i in range(n - 1, -1, -1):
        y = y.at[i].set((y[i] - lu[i, i + 1 :] @ y[i + 1 :]) / lu[i, i])
    return y
