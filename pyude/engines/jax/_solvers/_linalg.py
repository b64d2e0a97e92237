"""Dense LU with partial pivoting for the small matrices of a Rosenbrock step.

For the few-state systems of biochemistry a LAPACK call costs about a
microsecond of dispatch, more than the arithmetic; unrolled XLA ops let the
compiler fuse the whole factorisation into the step. Above
``UNROLL_LIMIT`` rows the LAPACK-backed ``jax.lax.linalg.lu`` is used.

Written for both directions of differentiation: no scatter or gather at a traced index
is ever transposed. Reverse mode turns those into scatter-adds, which made a
Rosenbrock checkpoint gradient ~10x slower (Boehm: 59 ms against 6 ms); the
pivot swaps are selects with a one-hot mask, and the permutation of a right-hand side is a
gather whose transpose is the inverse permutation's gather.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

UNROLL_LIMIT = 24


def lu_factor(a: Float[Array, "n n"]) -> tuple[Float[Array, "n n"], Int[Array, " n"]]:
    """``P A = L U`` with unit-lower ``L`` and ``U`` packed in one matrix, and ``P`` as a row
    permutation: ``(P b)[i] = b[perm[i]]``."""
    n = a.shape[0]
    if n > UNROLL_LIMIT:
        lu, _, perm = jax.lax.linalg.lu(a)
        return lu, perm
    perm = jnp.arange(n)
    rows = jnp.arange(n)
    for k in range(n - 1):
        p = k + jnp.argmax(jnp.abs(a[k:, k]))
        at_p = rows == p  # rows k (static) and p (traced) swap through selects
        row_k, row_p = a[k], jnp.where(at_p[:, None], a, 0.0).sum(axis=0)
        a = jnp.where(at_p[:, None], row_k[None, :], a).at[k].set(row_p)
        pk, pp = perm[k], jnp.where(at_p, perm, 0).sum()
        perm = jnp.where(at_p, pk, perm).at[k].set(pp)
        l = a[k + 1 :, k] / a[k, k]
        a = a.at[k + 1 :, k + 1 :].add(-l[:, None] * a[k, k + 1 :][None, :])
        a = a.at[k + 1 :, k].set(l)
    return a, perm


def _permute(b: Float[Array, " n"], perm: Int[Array, " n"]) -> Float[Array, " n"]:
    """``b[perm]`` as a masked sum: elementwise work that XLA fuses into the step in every
    direction of differentiation (a gather's transpose is a scatter-add, a one-hot matrix
    product is a separate dot kernel per solve: each made one mode ~5-10x slower)."""
    n = b.shape[0]
    return jnp.where(perm[:, None] == jnp.arange(n)[None, :], b[None, :], 0.0).sum(axis=1)


def lu_solve(lu_and_perm: tuple[Float[Array, "n n"], Int[Array, " n"]], b: Float[Array, " n"]) -> Float[Array, " n"]:
    """Solve ``A x = b`` given :func:`lu_factor` of ``A``."""
    lu, perm = lu_and_perm
    n = lu.shape[0]
    if n > UNROLL_LIMIT:
        y = jax.scipy.linalg.solve_triangular(lu, b[perm], lower=True, unit_diagonal=True)
        return jax.scipy.linalg.solve_triangular(lu, y, lower=False)
    y = _permute(b, perm)
    # sums of products, not `@`: a dot is its own kernel, while these fuse with the step
    for i in range(1, n):
        y = y.at[i].add(-jnp.sum(lu[i, :i] * y[:i]))
    for i in range(n - 1, -1, -1):
        y = y.at[i].set((y[i] - jnp.sum(lu[i, i + 1 :] * y[i + 1 :])) / lu[i, i])
    return y
