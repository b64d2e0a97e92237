"""Reverse mode by replaying the stored stages of an explicit Runge-Kutta solve.

The engine's form of ``Checkpoint(checkpoints="all")`` for the unrolled first-same-as-last
solvers (Tsit5, Dopri5). diffrax's checkpointed loop, even with every step's state stored,
recomputes each step in the backward pass before taking its VJP: the stages one after
another, each waiting for the last, then the controller and the save loop. The forward
solve here keeps every accepted step's stages instead (diffrax's dense output, which
holds them), so the backward pass knows every stage's input at once: the stages'
linearisations are independent of each other and of the reverse sweep, which is left
with only the transposed products. On the torchdiffeq neural-ODE benchmark this took the
gradient from ~14.5 to ~12.5 ms (docs/benchmarks.md section 1). With a cheap right-hand
side the replay's per-step bookkeeping costs more than it saves (``REPLAY_MIN_COST``).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..._sensitivity import AbstractSensitivity
from ._compile import CompiledModel
from ._integrate import Settings, integrate, trajectory_outputs
from ._solvers import make_solver
from ._solvers._explicit import Dopri5, Tsit5, _combine

# save times mapped onto a step's dense output per iteration of the reverse sweep's inner loop
_SAVE_WINDOW = 8
# XLA's count of one right-hand-side evaluation (all conditions of a vmapped solve; a
# transcendental counted as 10 flops) from which the replay is used. Measured 2026-12-04
# (2 cores), every step stored, replay against diffrax's loop: an MLP 2-32-2 over a batch of
# 1,000 (576k) 7.8 against 8.6 ms, of 100 (58k) 1.82 against 1.92 ms, of 10 (5.8k) 0.84
# against 0.80 ms; 1,000 linear oscillators (~3k) 6.1 against 5.7 ms; one oscillator at rtol
# 1e-8, ~2,000 steps, 8.9 against 2.3 ms. Cheap evaluations leave the per-step bookkeeping,
# which the replay's loop has more of, in charge.
REPLAY_MIN_COST = 20_000.0


@dataclass(frozen=True)
class StoredStages(AbstractSensitivity):
    r"""Reverse mode through a solve whose accepted steps' stages are stored.

    For the step from $t_n$ to $t_{n+1} = t_n + h$ with stages
    $k_i = h\,f(t_n + c_i h,\, y_{n,i})$, $y_{n,i} = y_n + \sum_{j<i} a_{ij} k_j$,
    $y_{n+1} = y_n + \sum_i b_i k_i$, and the save times inside it read off the dense
    output $y(t) = \mathrm{interp}(\theta; y_n, y_{n+1}, k)$, the backward pass sweeps the
    steps in reverse, stages last to first:

    $$\bar k_i \mathrel{+}= b_i\,\bar y_{n+1},\qquad
    (\bar y_{n,i}, \bar p_i) = h\,\big(\partial_{y,p} f(t_n + c_i h, y_{n,i})\big)^{\!\top} \bar k_i,\qquad
    \bar k_j \mathrel{+}= a_{ij}\,\bar y_{n,i}\ (j < i),\qquad \bar y_n = \bar y_{n+1} + \sum_i \bar y_{n,i},$$

    plus the save times' cotangents through the dense output. First-same-as-last: the first
    stage of step $n+1$ is the last stage of step $n$, so its cotangent is carried to that
    one VJP. The step sizes are constants, as in diffrax (its controller stops gradients).

    Exact gradient of the computed solution, the same as diffrax's checkpointed loop to
    round-off. Only for the JaxEngine's internal use: models without events, inputs or
    jump times, solved with Tsit5 or Dopri5 (:func:`replays`), whose right-hand side is
    costly enough for it to gain (:func:`replay_pays`).
    """

    name: str = "checkpoint"


def replays(cm: CompiledModel, s: Settings) -> bool:
    """Whether :class:`StoredStages` applies: an unrolled explicit solver and a model whose
    steps chain without restarts (no events, inputs or jump times), so that every step
    after the first starts from the last stage of the step before."""
    return (
        s.solver in ("Tsit5", "Dopri5")
        and cm.events is None
        and not cm.inputs
        and cm.jump_ts.size == 0
        and cm.breakpoints is None
    )


def rhs_cost(cm: CompiledModel, n_states: int) -> float:
    """XLA's count of one evaluation of ``cm.rhs`` on ``n_states`` states: flops plus 10 per
    transcendental function (NaN where XLA gives no count: the replay is then not used)."""
    key = ("rhs_cost", n_states)
    if key not in cm.cache:
        y = jax.ShapeDtypeStruct((n_states,), jnp.float64)
        p = jax.ShapeDtypeStruct((cm.model.n_params,), jnp.float64)
        rhs = jax.jit(lambda t, y, p: cm.rhs(t, y, (cm.assign(p), ())))
        try:
            cost = rhs.lower(jax.ShapeDtypeStruct((), jnp.float64), y, p).cost_analysis()
            cost = float(cost.get("flops", 0.0)) + 10.0 * float(cost.get("transcendentals", 0.0))
        except Exception:  # noqa: BLE001 - a backend without cost analysis
            cost = float("nan")
        cm.cache[key] = cost
    return cm.cache[key]


def replay_pays(cm: CompiledModel, n_states: int, batch: int) -> bool:
    """Whether one step's evaluations (``batch`` conditions solved as one) are costly enough
    for the replay to gain (:data:`REPLAY_MIN_COST`)."""
    cost = rhs_cost(cm, n_states)
    return bool(np.isfinite(cost)) and cost * batch >= REPLAY_MIN_COST


def replay_trajectory(cm: CompiledModel, s: Settings):
    """``(ts, t0, y0, p, u) -> (ys, code, t_reached)`` whose VJP replays the stored stages.

    ``ts`` and ``t0`` are data: their cotangents are zero."""
    solver = make_solver(s.solver, s.rtol, s.atol)
    if not isinstance(solver, (Tsit5, Dopri5)):
        raise TypeError(f"StoredStages needs an unrolled explicit solver, got {s.solver}")
    tab = solver.tableau
    a_rows = [np.asarray(r, float) for r in tab.a_lower]
    c = np.concatenate([[0.0], np.asarray(tab.c, float)])
    b = np.asarray(tab.b_sol, float)
    n_stages = b.size
    # the last stage is f(t1, y1): the next step's first (first-same-as-last)
    if not (tab.fsal and c[-1] == 1.0 and b[-1] == 0.0 and np.array_equal(a_rows[-1], b[:-1])):
        raise TypeError(f"StoredStages needs a first-same-as-last tableau, {s.solver}'s is not")
    interpolation = solver.interpolation_cls

    def run(ts, t0, y0, p, u, dense):
        sol = integrate(cm, s, ts, t0, y0, p, u, dense=dense)
        return sol, trajectory_outputs(sol)

    @jax.custom_vjp
    def trajectory(ts, t0, y0, p, u):
        return run(ts, t0, y0, p, u, dense=False)[1]

    def trajectory_fwd(ts, t0, y0, p, u):
        sol, out = run(ts, t0, y0, p, u, dense=True)
        it = sol.interpolation
        return out, (ts, t0, y0, p, u, it.ts, it.ts_size - 1, it.infos)

    def trajectory_bwd(res, cts):
        ts, t0, y0, p, u, T, n_steps, infos = res
        ys_bar = cts[0]
        args = (p, u)
        rhs = cm.rhs
        K = T.shape[0] - 1  # the bound on the steps
        n_ts = ts.shape[0]
        # save time j lies in step m_j, the first whose end reaches it (diffrax's save loop)
        ends = jnp.where(jnp.arange(K) < n_steps, T[1:], jnp.inf)
        step_of = jnp.clip(jnp.searchsorted(ends, ts, side="left"), 0, jnp.maximum(n_steps - 1, 0))
        first = jnp.searchsorted(step_of, jnp.arange(K + 1), side="left")  # step m's save times: first[m]:first[m+1]
        padded = jnp.concatenate([ys_bar, jnp.zeros((_SAVE_WINDOW,) + ys_bar.shape[1:], ys_bar.dtype)])

        def save_cotangents(m, info, t_a, t_b):
            """The cotangents on step m's dense-output coefficients from its save times."""
            start, count = first[m], first[m + 1] - first[m]
            window = jnp.arange(_SAVE_WINDOW)

            def body(carry):
                offset, acc = carry
                at = ts[jnp.clip(start + offset + window, 0, n_ts - 1)]
                live = (offset + window) < count
                ct = jax.lax.dynamic_slice_in_dim(padded, start + offset, _SAVE_WINDOW) * live[:, None]
                _, vjp = jax.vjp(lambda i: jax.vmap(interpolation(t0=t_a, t1=t_b, **i).evaluate)(at), info)
                (d,) = vjp(ct)
                return offset + _SAVE_WINDOW, jax.tree.map(jnp.add, acc, d)

            zero = jax.tree.map(jnp.zeros_like, info)
            return jax.lax.while_loop(lambda c: c[0] < count, body, (0, zero))[1]

        def step_back(carry):
            m, y_bar, f_bar_next, args_bar = carry
            m = m - 1
            t_a, t_b = T[m], T[m + 1]
            h = t_b - t_a
            info = jax.tree.map(lambda x: x[m], infos)
            d = save_cotangents(m, info, t_a, t_b)
            y_end_bar = y_bar + d["y1"]
            ks = [info["k"][i] for i in range(n_stages)]
            k_bar = [d["k"][i] + b[i] * y_end_bar if b[i] != 0.0 else d["k"][i] for i in range(n_stages)]
            y0_bar = y_end_bar + d["y0"]
            y_n = info["y0"]
            for i in range(n_stages - 1, 0, -1):
                y_i = _combine(y_n, a_rows[i - 1], ks)  # the stage's input, as in the forward step
                f_bar = h * k_bar[i]
                if i == n_stages - 1:
                    f_bar = f_bar + f_bar_next
                _, vjp = jax.vjp(lambda y, a_: rhs(t_a + c[i] * h, y, a_), y_i, args)
                y_i_bar, a_bar = vjp(f_bar)
                args_bar = jax.tree.map(jnp.add, args_bar, a_bar)
                y0_bar = y0_bar + y_i_bar
                for j, a in enumerate(a_rows[i - 1]):
                    if a != 0.0:
                        k_bar[j] = k_bar[j] + a * y_i_bar
            return m, y0_bar, h * k_bar[0], args_bar

        zero_args = jax.tree.map(jnp.zeros_like, args)
        init = (n_steps, jnp.zeros_like(y0), jnp.zeros_like(y0), zero_args)
        _, y_bar, f_bar, args_bar = jax.lax.while_loop(lambda c: c[0] > 0, step_back, init)
        # the first step's first stage, f(t0, y0)
        _, vjp = jax.vjp(lambda y, a_: rhs(T[0], y, a_), y0, args)
        y0_stage_bar, a_bar = vjp(f_bar)
        args_bar = jax.tree.map(jnp.add, args_bar, a_bar)
        # no step taken (every save time at t0): each saved state is y0
        y_bar = jnp.where(n_steps > 0, y_bar + y0_stage_bar, jnp.sum(ys_bar, axis=0))
        p_bar, u_bar = args_bar
        return jnp.zeros_like(ts), jnp.zeros_like(t0), y_bar, p_bar, u_bar

    trajectory.defvjp(trajectory_fwd, trajectory_bwd)
    return trajectory
