"""Explicit Runge-Kutta solvers with the stages unrolled at trace time.

diffrax runs the stages of a Runge-Kutta step in a checkpointed while loop (one
implementation for every tableau kind). Under reverse-mode differentiation that loop
stores only its carries and evaluates every stage's right-hand side again in the
backward pass, on top of the recomputation of the step by the outer checkpointed
integration loop: each stage costs about four evaluations of ``f`` plus its VJP. Written
out stage by stage, reverse mode keeps each stage's residuals instead, and a stage
costs one evaluation in the forward pass, one in the recomputed step and one VJP. On the
torchdiffeq neural-ODE benchmark (an MLP right-hand side) this is most of a training
step's time.

Dopri8 stays diffrax's own: unrolled, its solutions differed from diffrax's by 1e-9
at rtol 1e-7 (not traced down), and it is rarely the solver of a training loop.

The step computes exactly diffrax's update (same tableau, same first-same-as-last
reuse, same dense output), so solutions agree with diffrax's solvers to round-off.
"""

from __future__ import annotations

import diffrax
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np


def _combine(y0, coeffs, ks):
    """``y0 + sum_j coeffs[j] * ks[j]``, skipping the tableau's zeros (known at trace time)."""
    out = y0
    for c, k in zip(coeffs, ks):
        if c != 0.0:
            out = jax.tree_util.tree_map(lambda o, kk, c=float(c): o + c * kk, out, k)
    return out


def _dot(coeffs, ks):
    terms = [(float(c), k) for c, k in zip(coeffs, ks) if c != 0.0]
    out = jax.tree_util.tree_map(lambda k: terms[0][0] * k, terms[0][1])
    for c, k in terms[1:]:
        out = jax.tree_util.tree_map(lambda o, kk, c=c: o + c * kk, out, k)
    return out


def unrolled_erk_step(solver, terms, t0, t1, y0, args, solver_state, made_jump):
    r"""One step of the explicit Runge-Kutta method with Butcher tableau ``solver.tableau``:

    $$k_i = h\,f\Big(t_0 + c_i h,\; y_0 + \sum_{j<i} a_{ij} k_j\Big),\qquad
    y_1 = y_0 + \sum_i b_i k_i,\qquad \hat e = \sum_i (b_i - \hat b_i) k_i,$$

    with ``h = t1 - t0``; for first-same-as-last tableaus ``f`` at the last stage is
    kept for the next step's first stage (recomputed on the first step and after a jump).
    Returns diffrax's ``(y1, y_error, dense_info, solver_state, result)``.
    """
    tab = solver.tableau
    control = terms.contr(t0, t1)
    dt = t1 - t0
    fsal = solver_state is not None
    if fsal:
        first_step, f_prev = solver_state
        # unvmapped, as diffrax does: the branch is shared by a batch, never a select
        evaluate_first = eqxi.unvmap_any(first_step | made_jump)
        f0 = jax.lax.cond(evaluate_first, lambda: terms.vf(t0, y0, args), lambda: f_prev)
    else:
        f0 = terms.vf(t0, y0, args)
    ks = [terms.prod(f0, control)]
    yi, fi = y0, f0
    for a_row, c in zip(tab.a_lower, tab.c):
        yi = _combine(y0, np.asarray(a_row), ks)
        fi = terms.vf(t0 + float(c) * dt, yi, args)
        ks.append(terms.prod(fi, control))
    # "same stage as last": the last stage's input is the solution
    y1 = yi if tab.ssal else _combine(y0, np.asarray(tab.b_sol), ks)
    y_error = _dot(np.asarray(tab.b_error), ks)
    k = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *ks)
    dense_info = dict(y0=y0, y1=y1, k=k)
    new_state = (False, fi) if fsal else None
    return y1, y_error, dense_info, new_state, diffrax.RESULTS.successful


class Tsit5(diffrax.Tsit5):
    """diffrax's Tsit5 (Tsitouras 2011, order 5(4), FSAL) with the stages unrolled
    (:func:`unrolled_erk_step`)."""

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        return unrolled_erk_step(self, terms, t0, t1, y0, args, solver_state, made_jump)


class Dopri5(diffrax.Dopri5):
    """diffrax's Dopri5 (Dormand-Prince 5(4), FSAL) with the stages unrolled."""

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        return unrolled_erk_step(self, terms, t0, t1, y0, args, solver_state, made_jump)
