"""One integration of a compiled model with diffrax: the building block of solve and gradients."""

from __future__ import annotations

from dataclasses import dataclass

import diffrax
import jax
import jax.numpy as jnp

from ..._errors import SolverError, SpecError
from ._compile import CompiledModel
from ._solvers import STIFF, make_controller, make_solver


@dataclass(frozen=True)
class Settings:
    """Solver settings of a solve or a problem: every compiled function is keyed by them.

    ``batching`` is how a problem's conditions are solved (:func:`resolve_batching`):
    ``"vectorized"`` (one vmapped solve) or ``"sequential"`` (one after another, inside
    the same compiled call)."""

    solver: str
    rtol: float
    atol: float
    max_steps: int
    batching: str = "vectorized"


BATCHING = ("auto", "vectorized", "sequential")


def resolve_batching(batching: str, solver: str) -> str:
    """``"auto"``: sequential for a stiff solver on CPU, else vectorized.

    A vmapped adaptive solve is one loop that runs until its slowest member is done, every
    member stepping (masked) all the way. Conditions of a stiff model tend to differ in
    their step counts by many times (a stimulus or dose changes the dynamics: 7 to 304
    steps across Brannmark_JBC2010's eight), and a stiff step is expensive (a Jacobian and
    a factorisation), so solving them one after another is faster there: measured on 2 CPU
    cores, Brannmark's checkpoint gradient 158 -> 49 ms, Lucarelli_CellSystems2018's
    7.9 -> 6.7 s (docs/benchmarks.md). Alike conditions with cheap steps (a neural ODE from
    several initial states) and accelerators gain from vectorizing.
    """
    if batching not in BATCHING:
        raise SpecError(f"unknown batching {batching!r}; choose one of: {', '.join(BATCHING)}")
    if batching != "auto":
        return batching
    on_cpu = jax.default_backend() == "cpu"
    return "sequential" if solver in STIFF and on_cpu else "vectorized"


def integrate(
    cm: CompiledModel,
    s: Settings,
    ts,
    t0,
    y0,
    p,
    u,
    *,
    dense: bool = False,
    adjoint: diffrax.AbstractAdjoint | None = None,
) -> diffrax.Solution:
    """Solve from ``t0`` and save at ``ts`` (and ``t1`` = where the solve stopped).

    Never raises for a failed solve: the result code is in the solution, and
    :func:`raise_for_result` turns it into a :class:`~pyude.SolverError`.
    """
    term = diffrax.ODETerm(cm.rhs)
    forward = isinstance(adjoint, diffrax.ForwardMode)
    solver = make_solver(s.solver, s.rtol, s.atol, forward_mode=forward, n_states=y0.shape[0])
    controller = make_controller(s.solver, s.rtol, s.atol, cm.jumps(p))
    saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts), diffrax.SubSaveAt(t1=True)], dense=dense)
    kwargs = {} if adjoint is None else {"adjoint": adjoint}
    return diffrax.diffeqsolve(
        term,
        solver,
        t0=t0,
        t1=ts[-1],
        dt0=None,
        y0=y0,
        args=(p, u),
        saveat=saveat,
        stepsize_controller=controller,
        max_steps=s.max_steps,
        throw=False,
        **kwargs,
    )


# a preequilibration that ended without reaching a steady state (not a diffrax code)
NO_STEADY_STATE = 101
_CODE_NAMES = {int(item._value): name for name, item in diffrax.RESULTS._name_to_item.items()}
_CODE_NAMES[NO_STEADY_STATE] = "no_steady_state"
MAX_STEPS_CODE = diffrax.RESULTS.max_steps_reached._value
# state-triggered events fired more often than a solve has segments for (see _events.py)
TOO_MANY_EVENTS = 102
MAX_STATE_EVENTS = 128  # state-triggered firings and re-armings (64 firings of a trigger that must go false in between) a solve may have: its segments are a fixed-length scan
_CODE_NAMES[TOO_MANY_EVENTS] = "too_many_events"
# how long a preequilibration may run (in the model's time unit) before it is a failure
STEADY_STATE_HORIZON = 1e9


def steady_state(cm: CompiledModel, s: Settings, t0, y0, p, u, active):
    """``(y, code, t)``: the state where ``||f(t, y)|| < atol + rtol ||y||`` (rms norms, the
    solver's tolerances), run from ``y0`` at ``t0``, and the time ``t`` it was reached;
    ``code`` is 0 on success, else :data:`NO_STEADY_STATE` or the solver's failure. Where
    ``active`` is false nothing is integrated and ``(y0, 0, t0)`` comes back. Not meant to
    be differentiated: :mod:`._steady_state` gives the derivative of the steady state."""
    term = diffrax.ODETerm(cm.rhs)
    t1 = jnp.where(active, t0 + STEADY_STATE_HORIZON, t0)
    sol = diffrax.diffeqsolve(
        term,
        make_solver(s.solver, s.rtol, s.atol),
        t0=t0,
        t1=t1,
        dt0=None,
        y0=y0,
        args=(p, u),
        saveat=diffrax.SaveAt(t1=True),
        stepsize_controller=make_controller(s.solver, s.rtol, s.atol, cm.jumps(p)),
        event=diffrax.Event(diffrax.steady_state_event()),
        max_steps=s.max_steps,
        throw=False,
    )
    reached = sol.result == diffrax.RESULTS.event_occurred
    code = jnp.where(
        reached | ~active,
        0.0,
        jnp.where(sol.result == diffrax.RESULTS.successful, float(NO_STEADY_STATE), jnp.asarray(sol.result._value, float)),
    )
    return jnp.where(active, sol.ys[0], y0), code, jnp.where(active, sol.ts[0], t0)


def result_name(code) -> str:
    return _CODE_NAMES.get(int(code), f"code {int(code)}")


def raise_for_result(code, t_reached: float, t_end: float, solver: str, max_steps: int, y_last=None) -> None:
    """Raise :class:`SolverError` unless ``code`` is success."""
    if int(code) == 0:
        return
    name = result_name(code)
    if name == "no_steady_state":
        hint = "the preequilibration did not settle within {:g} time units; check its condition".format(STEADY_STATE_HORIZON)
    elif name == "too_many_events":
        hint = f"state-triggered events fired or re-armed more than {MAX_STATE_EVENTS} times (MAX_STATE_EVENTS) before the last time"
    elif name == "max_steps_reached":
        if solver in STIFF:
            hint = f"increase max_steps (now {max_steps}) or loosen rtol/atol"
        else:
            hint = f"the problem looks stiff: try solver='Rodas5P' (or 'Kvaerno5'), or increase max_steps (now {max_steps})"
    elif name in ("dt_min_reached", "nonfinite"):
        hint = (
            "the solution may blow up or become non-finite here (check parameters and initial values); "
            + ("try solver='Rodas5P' if the problem is stiff" if solver not in STIFF else "try tighter tolerances")
        )
    else:
        hint = "try another solver or tighter tolerances"
    raise SolverError(
        f"solver {solver} failed ({name}) at t={t_reached:.6g} of {t_end:.6g}",
        code=name,
        t_reached=float(t_reached),
        hint=hint,
    )


def final_time(sol: diffrax.Solution):
    return sol.ts[1][0]


def trajectory_outputs(sol: diffrax.Solution):
    """``(ys, code, t_reached)`` of a solve by :func:`integrate`: the states at the save
    times, the result code (as a float) and the time where the solve stopped."""
    return sol.ys[0], jnp.asarray(sol.result._value, float), final_time(sol)
