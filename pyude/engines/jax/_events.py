r"""Events in the JAX engine: the solve is cut into segments at event times, and the
event's assignments are applied between them, all in one compiled scan.

Each event $j$ has a trigger function $g_j(t, y, p, u)$, true where positive (see
:class:`pyude.spec.Event`); it fires where $g_j$ crosses zero upwards and sets
$y^+ = A_j(t, y^-, p, u)$ (simultaneous events: all evaluated at $y^-$, applied in
spec order).

* **Time-triggered** events ($g_j$ affine in $t$, otherwise of parameters only) fire
  at $\tau_j(p) = $ the root of $g_j$ (where $g_j$ increases): a segment ends exactly at
  $\tau_j$, as diffrax's ``t1``, so no step crosses it.
* **State-triggered** events are found by diffrax's ``Event`` (upward zero crossings of
  $g_j$ between steps, located by Newton's method on the step's interpolant).

``checkpoint`` and ``forward`` differentiate through the solver's own computation: the
segment end is a function of $p$ ($\tau_j(p)$, or the root find's implicit derivative
$d\tau/dp = -(\partial g/\partial p)/(\mathrm{d}g/\mathrm{d}t)$), so they give
$dy(t)/dp$ including the event-time term
$\Phi(t, \tau)\,[(\partial A/\partial y) f^- + \partial A/\partial t - f^+]\,d\tau/dp$.
The continuous adjoint takes each segment's end from :class:`Firings` and applies the
same terms as a jump of $\lambda$ (:mod:`._adjoint`).

A time $t_i$ equal to an event time reports the state after the event. At $t_0$, an
event whose trigger holds fires only if its ``initial_value`` is false. Assignments do
not re-trigger other events at the same instant (no cascades).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from ...spec import _expr
from ._integrate import MAX_STATE_EVENTS, TOO_MANY_EVENTS, Settings
from ._solvers import make_controller, make_solver


@dataclass(frozen=True)
class CompiledEvents:
    """The events of a model as JAX functions (``u`` the inputs' knot data)."""

    n: int
    timed: np.ndarray  # indices of the time-triggered events
    state: np.ndarray  # indices of the state-triggered events
    strict: np.ndarray  # (n,) gt/lt: false where g == 0
    fires_initially: np.ndarray  # (n,) initial_value false: fires at t0 if the trigger holds there
    times: Callable  # p -> (n_timed,) firing times (inf: never, after t0)
    g: Callable  # (t, y, p, u) -> (n,) trigger functions
    assign: Callable  # (t, y, p, u, fire (n,) bool) -> y after the firing events

    def holds(self, t, y, p, u):
        """Every trigger's truth value."""
        g = self.g(t, y, p, u)
        return jnp.where(jnp.asarray(self.strict), g > 0, g >= 0)


def time_triggered(g: _expr.Expr, params: set[str]) -> bool:
    """True if the trigger function ``g`` is affine in ``t`` and otherwise depends on parameters
    only (no states, inputs or network calls): its firing time is the root of ``g`` in ``t``.
    The Julia engine's spec JSON carries this classification (``pyude.engines.julia.julia_spec``)."""
    from ._compile import _affine_in_t

    names = _expr.symbols(g)
    return _expr.TIME in names and names <= params | {_expr.TIME} and not _expr.net_calls(g) and _affine_in_t(g)


def compile_events(model, env_of: Callable, bound_nets: Callable, evaluator) -> CompiledEvents:
    """``env_of(t, y, p, u)`` the expression environment, ``bound_nets(p)`` the networks,
    ``evaluator`` the expression evaluator class."""
    events = model.events
    params = set(model.parameters)
    state_index = {s: i for i, s in enumerate(model.states)}
    gs = [e.g for e in events]
    timed = [j for j, g in enumerate(gs) if time_triggered(g, params)]
    state = [j for j in range(len(events)) if j not in timed]
    param_index = {name: off for name, _, off in model.parameter_layout if name in params}

    def times(p):
        # g(t) = d0 + slope t: it crosses zero upwards at -d0 / slope if the slope is positive
        at = [evaluator({**{n: p[i] for n, i in param_index.items()}, _expr.TIME: jnp.asarray(v, p.dtype)}, {})
              for v in (0.0, 1.0)]
        d0 = jnp.stack([at[0](gs[j]) for j in timed])
        slope = jnp.stack([at[1](gs[j]) for j in timed]) - d0
        tau = -d0 / jnp.where(slope > 0, slope, 1.0)
        return jnp.where(slope > 0, tau, jnp.inf).astype(p.dtype)

    def g(t, y, p, u):
        ev = evaluator(env_of(t, y, p, u), bound_nets(p))
        return jnp.stack([ev(x) for x in gs]).astype(y.dtype)

    def assign(t, y, p, u, fire):
        ev = evaluator(env_of(t, y, p, u), bound_nets(p))  # the values before the event
        out = y
        for j, e in enumerate(events):
            for target, expr in e.assignments:
                i = state_index[target]
                out = out.at[i].set(jnp.where(fire[j], ev(expr).astype(y.dtype), out[i]))
        return out

    return CompiledEvents(
        len(events),
        np.asarray(timed, dtype=int),
        np.asarray(state, dtype=int),
        np.asarray([e.strict for e in events]),
        np.asarray([e.fires_initially for e in events]),
        times,
        g,
        assign,
    )


class Firings(NamedTuple):
    """Where each segment of :func:`solve_with_events` ended (one row per segment; a row
    whose ``fire`` is all false is no event: the last segment, or one never reached)."""

    t: jax.Array  # (segments,) the segment's end
    y_minus: jax.Array  # (segments, states) the state just before its events
    y_plus: jax.Array  # (segments, states) the state just after them
    fire: jax.Array  # (segments, events) which events fired there


def initial_firings(ev: CompiledEvents, t0, y0, p, u):
    """``(fire0, y_start)``: the events that fire at ``t0`` (trigger true, ``initial_value``
    false) and the state after them."""
    fire0 = ev.holds(t0, y0, p, u) & jnp.asarray(ev.fires_initially)
    return fire0, jnp.where(jnp.any(fire0), ev.assign(t0, y0, p, u, fire0), y0)


def solve_with_events(
    cm, s: Settings, ts, t0, y0, p, u, *, adjoint: diffrax.AbstractAdjoint | None = None, record: bool = False
):
    """``(ys, code, t_reached, stats)``: the solve saved at ``ts`` with every event applied.

    ``code`` (a float) is 0 on success, else the first failing segment's diffrax code or
    :data:`TOO_MANY_EVENTS` (more than :data:`MAX_STATE_EVENTS` state-triggered firings and
    re-armings: an event whose trigger held at a segment start is re-armed where it goes false).
    With ``record``, a fifth item :class:`Firings` holds every segment's end (what the
    continuous adjoint needs to jump across the events).
    """
    ev: CompiledEvents = cm.events
    n_timed, n_state = len(ev.timed), len(ev.state)
    n_segments = n_timed + (MAX_STATE_EVENTS if n_state else 0) + 1
    t_end = ts[-1]
    dtype = y0.dtype
    term = diffrax.ODETerm(lambda t, y, a: cm.rhs(t, y, (a[0], a[1])))
    solver = make_solver(s.solver, s.rtol, s.atol, forward_mode=isinstance(adjoint, diffrax.ForwardMode), n_states=y0.shape[0])
    controller = make_controller(s.solver, s.rtol, s.atol, cm.jumps(p))
    kwargs = {} if adjoint is None else {"adjoint": adjoint}
    state_idx = jnp.asarray(ev.state)
    timed_idx = jnp.asarray(ev.timed)

    strict_state = jnp.asarray(ev.strict[ev.state]) if n_state else jnp.zeros((0,), bool)

    def armed_at(g, force):
        # an event can fire only after its trigger was false; one that just fired and stays
        # true (force) must go false first
        return ~jnp.where(strict_state, g > 0, g >= 0) & ~force

    def parts(t, y, p_, u_, armed):
        # an armed event fires where its g crosses zero upwards; an unarmed one is re-armed
        # where its g crosses zero downwards: where -g does
        g = ev.g(t, y, p_, u_)[state_idx]
        return jnp.where(armed, g, -g)

    def combined(t, y, args, **_):
        # ONE trigger function for all state events, max of the parts: it crosses zero
        # upwards at the earliest firing or re-arming. (diffrax locates only the first
        # listed of several conditions that change sign in one step, so an earlier
        # crossing of a later-listed event in that step would be stepped over.)
        p_, u_, t_start, force, armed = args
        part = parts(t, y, p_, u_, armed)
        # a just-fired event's g may be a rounding error off zero at its segment's start
        return jnp.max(jnp.where((t == t_start) & force, -jnp.ones_like(part), part))

    event = None
    if n_state:
        newton = optx.Newton(rtol=1e-12, atol=1e-12)
        event = diffrax.Event(combined, newton, direction=True)

    _, y_start = initial_firings(ev, t0, y0, p, u)
    taus = ev.times(p) if n_timed else jnp.zeros((0,), dtype)
    strict_timed = jnp.asarray(ev.strict[ev.timed]) if n_timed else jnp.zeros((0,), bool)
    # a time event at t0 fires in the loop only if its trigger is still false at t0 (gt/lt)
    pending0 = (taus > t0) | ((taus == t0) & strict_timed)

    def segment(carry, _):
        t, y, pending, force, armed, ys, code, steps = carry
        failed = code != 0
        next_tau = jnp.min(jnp.where(pending, taus, jnp.inf), initial=jnp.inf)
        stop = jnp.where(failed, t, jnp.minimum(next_tau, t_end))
        sol = diffrax.diffeqsolve(
            term,
            solver,
            t0=t,
            t1=stop,
            dt0=None,
            y0=y,
            args=(p, u, t, force, armed),
            saveat=diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=jnp.clip(ts, t, stop)), diffrax.SubSaveAt(t1=True)]),
            stepsize_controller=controller,
            event=event,
            max_steps=s.max_steps,
            throw=False,
            **kwargs,
        )
        t_new, y_new = sol.ts[1][0], sol.ys[1][0]
        # every save time from this segment's start on takes its value (later segments overwrite)
        ys = jnp.where(((ts >= t) & ~failed)[:, None], sol.ys[0], ys)
        state_hit = sol.result == diffrax.RESULTS.event_occurred
        ok = (sol.result == diffrax.RESULTS.successful) | state_hit
        code = jnp.where(failed | ok, code, jnp.asarray(sol.result._value, dtype))
        fire = jnp.zeros((ev.n,), bool)
        rearm = jnp.zeros((n_state,), bool)
        if n_state:
            part = parts(t_new, y_new, p, u, armed)
            first = jnp.arange(n_state) == jnp.argmax(part)  # the part whose root ended the segment
            stopped = state_hit & ok & ~failed
            # it, and every armed event whose trigger got to zero by then (simultaneous), fire
            fire = fire.at[state_idx].set(stopped & armed & (first | (part >= 0)))
            rearm = stopped & ~armed & first
        time_hit = ~state_hit & ok & ~failed & (t_new == next_tau)
        fired_timed = pending & (taus == next_tau) & time_hit
        if n_timed:
            fire = fire.at[timed_idx].set(fired_timed)
        y_plus = jnp.where(jnp.any(fire), ev.assign(t_new, y_new, p, u, fire), y_new)
        if n_state:
            g_minus, g_plus = ev.g(t_new, y_new, p, u)[state_idx], ev.g(t_new, y_plus, p, u)[state_idx]
            # unless its own assignment made it false, a fired trigger stays true after the event
            force = fire[state_idx] & ~((g_plus < g_minus) & (g_plus <= 0))
            # a re-armed trigger counts as false from here on even if its g is a rounding error above 0
            armed = armed_at(g_plus, force) | rearm
        steps = steps + jnp.stack([sol.stats["num_steps"], sol.stats["num_accepted_steps"], sol.stats["num_rejected_steps"]])
        return (t_new, y_plus, pending & ~fired_timed, force, armed, ys, code, steps), (t_new, y_new, y_plus, fire)

    force0 = jnp.zeros((n_state,), bool)
    armed0 = armed_at(ev.g(t0, y_start, p, u)[state_idx], force0) if n_state else force0
    init = (
        jnp.asarray(t0, dtype),
        y_start,
        pending0,
        force0,
        armed0,
        jnp.zeros((ts.shape[0],) + y0.shape, dtype),
        jnp.zeros((), dtype),
        jnp.zeros((3,), int),
    )
    (t, _, _, _, _, ys, code, steps), ends = jax.lax.scan(segment, init, None, length=n_segments)
    code = jnp.where((code == 0) & (t < t_end), float(TOO_MANY_EVENTS), code)
    stats = {"num_steps": steps[0], "num_accepted_steps": steps[1], "num_rejected_steps": steps[2]}
    if record:
        return ys, code, t, stats, Firings(*ends)
    return ys, code, t, stats
