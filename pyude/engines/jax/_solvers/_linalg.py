"""Dense LU with partial pivoting for the small matrices of a Rosenbrock step.

For the few-state systems of biochemistry a LAPACK call costs about a
microsecond of dispatch, more than the arithmetic; unrolled XLA ops let the
compiler fuse the whole factorisation into the step. Up to ``UNROLL_LIMIT`` rows
the factorisation yields the inverse (unrolled up to ``ELIMINATION_LIMIT`` rows, LAPACK's
above) and each stage's solve is one product; above, the LAPACK-backed
``jax.lax.linalg.lu`` and two triangular solves per stage.

Written for both directions of differentiation: no scatter or gather at a traced index
is ever transposed (reverse mode turns those into scatter-adds, which made a
Rosenbrock checkpoint gradient ~10x slower: Boehm 59 ms against 6 ms), and the
inverse's derivative is the closed form, not the unrolled elimination's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

UNROLL_LIMIT = 24
# Up to this many rows the elimination of :func:`inverse` is unrolled XLA ops; above, the inverse
# is LAPACK's. XLA fuses the unrolled elimination less well as it grows: one inverse inside a
# compiled loop took 3.0 us at 15 rows, 8.0 at 16, 15.5 at 20 and 44 at 24 (LAPACK's: 5.6, 5.1,
# 7.8, 10.2 us); whole gradients cross over earlier. Rodas5P at rtol 1e-8, best gradient (forward
# or checkpoint) unrolled -> LAPACK: Michaelis-Menten chains of 12 states 24 -> 48 ms, 13: 59 -> 42,
# 14: 73 -> 55, 20: 158 -> 105; Zheng_PNAS2012 (15) 10.3 -> 8.4 ms; Boehm (8) 1.7 -> 8.1 ms and
# Brannmark (9) 17 -> 64 ms stay unrolled.
ELIMINATION_LIMIT = 12


def factor_kind(n: int) -> str:
    """The first item of :func:`lu_factor`'s factors for an ``n x n`` matrix."""
    return "lapack" if n > UNROLL_LIMIT else "inverse"


def lu_factor(a: Float[Array, "n n"]) -> tuple:
    """Factors of ``A`` for :func:`lu_solve`: up to ``UNROLL_LIMIT`` rows ``(A, A^{-1})``; above,
    LAPACK's packed ``L U`` and the row permutation ``perm``, ``(P b)[i] = b[perm[i]]``."""
    if factor_kind(a.shape[0]) == "lapack":
        lu, _, perm = jax.lax.linalg.lu(a)
        return "lapack", lu, perm
    return "inverse", a, inverse(a)


def lu_solve(factors: tuple, b: Float[Array, " n"]) -> Float[Array, " n"]:
    """Solve ``A x = b`` given :func:`lu_factor` of ``A``."""
    kind, a, f = factors
    if kind == "inverse":
        return _solve(a, f, b)
    y = jax.scipy.linalg.solve_triangular(a, b[f], lower=True, unit_diagonal=True)
    return jax.scipy.linalg.solve_triangular(a, y, lower=False)


@jax.custom_jvp
def inverse(a: Float[Array, "n n"]) -> Float[Array, "n n"]:
    """``A^{-1}`` from ``P A = L U`` with partial pivoting, in unrolled XLA ops (LAPACK's past
    ``ELIMINATION_LIMIT`` rows, where the unrolled ops no longer fuse well).

    One inverse per step and a product per stage, instead of two substitutions per stage,
    makes a Rosenbrock step's program several times smaller. Its derivative is the closed
    form ``-A^{-1} dA A^{-1}``, never the elimination's; first derivatives of a solve do not
    even need it (:func:`_solve`), the transpose of a solve differentiated again does."""
    n = a.shape[0]
    if n > ELIMINATION_LIMIT:
        return jnp.linalg.inv(a)
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
    # U^{-1} L^{-1} by substitution on whole rows of the identity
    x = jnp.eye(n, dtype=a.dtype)
    for i in range(1, n):
        x = x.at[i].add(-jnp.sum(a[i, :i, None] * x[:i], axis=0))
    for i in range(n - 1, -1, -1):
        x = x.at[i].set((x[i] - jnp.sum(a[i, i + 1 :, None] * x[i + 1 :], axis=0)) / a[i, i])
    # A^{-1} = (P A)^{-1} P: column perm[i] of A^{-1} is column i of x (a one-hot masked sum)
    onehot = perm[:, None] == jnp.arange(n)[None, :]
    return jnp.sum(jnp.where(onehot[None, :, :], x[:, :, None], 0.0), axis=1)


@inverse.defjvp
def _inverse_jvp(primals, tangents):
    (a,), (da,) = primals, tangents
    a_inv = inverse(a)
    return a_inv, -_matmul(_matmul(a_inv, da), a_inv)


def _matmul(a, b):
    return jnp.sum(a[:, :, None] * b[None, :, :], axis=1)


def _matvec(m, v):
    # a sum of products, not `@`: for these sizes a dot kernel costs more than the arithmetic,
    # while this fuses with the step
    return jnp.sum(m * v[None, :], axis=1)


@jax.custom_jvp
def _solve(a: Float[Array, "n n"], a_inv: Float[Array, "n n"], b: Float[Array, " n"]) -> Float[Array, " n"]:
    """``x = A^{-1} b``; its derivative ``dx = A^{-1} (db - dA x)``, which needs no derivative of
    the inverse (reverse mode transposes it)."""
    return _matvec(a_inv, b)


@_solve.defjvp
def _solve_jvp(primals, tangents):
    a, a_inv, b = primals
    da, _, db = tangents
    # through _solve again, not _matvec, so that this rule differentiates too
    x = _solve(a, a_inv, b)
    return x, _solve(a, a_inv, db - _matvec(da, x))
