"""The continuous adjoint with checkpoints and interpolation (see :class:`pyude.Adjoint`).

diffrax's ``BacksolveAdjoint`` re-integrates the state backwards in time along
with the adjoint; on stiff kinetics that backward state solve is unstable and
the gradients come out wrong. Here, as in SciMLSensitivity's
``InterpolatingAdjoint(checkpointing=true)``, the forward pass keeps only the
states at the data times; backwards, each data interval is re-solved forwards
from its checkpoint in chunks of at most ``Adjoint.interval_steps`` steps with
dense output, and the adjoint is integrated backwards over each chunk with the
problem's solver, reading the state from that chunk's interpolation. The
parameter integral is accumulated inside the adjoint's own steps
(:class:`_WithQuadrature`), so nothing grows with the number of steps. On a model with
events the event times join the data times as interval ends and lambda jumps across
each event (``event_jump``), as in AMICI's adjoint.
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float

from ..._sensitivity import Adjoint
from ._compile import CompiledModel
from ._events import initial_firings, solve_with_events
from ._integrate import Settings, integrate, trajectory_outputs
from ._solvers import make_controller, make_solver

_OK = diffrax.RESULTS.successful
_MAX_STEPS = diffrax.RESULTS.max_steps_reached


class _LambdaBlock(diffrax.AbstractTerm):
    """The lambda block of the augmented adjoint term: dlambda/dt does not depend on mu,
    so the inner solver (and a Rosenbrock method's Jacobian) sees lambda alone."""

    term: diffrax.AbstractTerm
    mu: Array

    def vf(self, t, y, args):
        return self.term.vf(t, (y, self.mu), args)[0]

    def contr(self, t0, t1, **kwargs):
        return self.term.contr(t0, t1, **kwargs)

    def prod(self, vf, control):
        return jtu.tree_map(lambda v: control * v, vf)


class _QuadratureInterpolation(diffrax.AbstractLocalInterpolation):
    """Dense output of a :class:`_WithQuadrature` step: the inner solver's for lambda,
    linear in mu (only used if a caller asks for dense output)."""

    t0: Float[Array, ""]
    t1: Float[Array, ""]
    lam: diffrax.AbstractLocalInterpolation
    mu0: Array
    mu1: Array

    def evaluate(self, t0, t1=None, left: bool = True):
        if t1 is not None:
            a, b = self.evaluate(t0, left=left), self.evaluate(t1, left=left)
            return b[0] - a[0], b[1] - a[1]
        theta = (t0 - self.t0) / (self.t1 - self.t0)
        return self.lam.evaluate(t0, left=left), self.mu0 + theta * (self.mu1 - self.mu0)


def _dense_state(interp: diffrax.DenseInterpolation, t):
    """The forward state at ``t`` from a chunk's dense output, the first or last step's
    polynomial continued a little beyond the chunk's ends.

    A chunk re-solved for the backward pass need not take the first solve's steps to the
    bit (two compiled copies of one solve may round differently, and the step-size control
    carries a difference on), so it can stop short of the chunk end that the backward
    solve runs to; ``DenseInterpolation.evaluate`` is NaN outside its steps."""
    ts = interp.ts
    index = jnp.clip(jnp.searchsorted(ts, t, side="left") - 1, 0, jnp.maximum(interp.ts_size - 2, 0))
    infos = jax.tree.map(lambda a: a[index], interp.infos)
    y = interp.interpolation_cls(t0=ts[index], t1=ts[index + 1], **infos).evaluate(t)
    # an empty chunk (a condition with fewer chunks than others, under vmap) has no steps
    return jax.tree.map(lambda a, b: jnp.where(interp.ts_size <= 1, a, b), interp.y0_if_trivial, y)


class _WithQuadrature(diffrax.AbstractAdaptiveSolver):
    r"""Integrates $y = (\lambda, \mu)$ with $\dot\mu$ independent of $\mu$: $\lambda$ by
    ``solver``; on each step $[t_0, t_1]$

    $$\mu_1 = \mu_0 + \tfrac{1}{2}\sum_k w_k\, f_\mu\big(\tau_k, \lambda(\tau_k)\big)\,(t_1 - t_0),
    \qquad \tau_k = \tfrac{t_0 + t_1}{2} + \tfrac{t_1 - t_0}{2} x_k,$$

    Gauss-Legendre nodes $x_k$ and weights $w_k$ on the step's own dense output of
    $\lambda$. The error estimate is the inner solver's (zero for $\mu$), so $\mu$
    never shrinks the steps, and a rejected step discards its quadrature with it.
    """

    solver: diffrax.AbstractSolver
    nodes: Array
    weights: Array

    @property
    def term_structure(self):
        return diffrax.AbstractTerm

    @property
    def interpolation_cls(self) -> Callable[..., diffrax.AbstractLocalInterpolation]:
        inner = self.solver.interpolation_cls

        def make(*, t0, t1, lam, mu0, mu1):
            return _QuadratureInterpolation(t0, t1, inner(t0=t0, t1=t1, **lam), mu0, mu1)

        return make

    def order(self, terms):
        return self.solver.order(terms)

    def error_order(self, terms):
        return self.solver.error_order(terms)

    def init(self, terms, t0, t1, y0, args):
        lam, mu = y0
        return self.solver.init(_LambdaBlock(terms, jnp.zeros_like(mu)), t0, t1, lam, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        lam0, mu0 = y0
        block = _LambdaBlock(terms, jnp.zeros_like(mu0))
        lam1, lam_err, info, solver_state, result = self.solver.step(
            block, t0, t1, lam0, args, solver_state, made_jump
        )
        interp = self.solver.interpolation_cls(t0=t0, t1=t1, **info)
        control = terms.contr(t0, t1)
        mid, half = 0.5 * (t0 + t1), 0.5 * (t1 - t0)

        def at(x):
            tau = mid + half * x
            return terms.vf_prod(tau, (interp.evaluate(tau), mu0), args, control)[1]

        mu1 = mu0 + 0.5 * jnp.tensordot(self.weights, jax.vmap(at)(self.nodes), axes=1)
        err = None if lam_err is None else (lam_err, jnp.zeros_like(mu0))
        dense = {"lam": info, "mu0": mu0, "mu1": mu1}
        return (lam1, mu1), err, dense, solver_state, result

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


def _lambda_norm(y) -> Array:
    return optx.rms_norm(y[0])


def adjoint_trajectory(cm: CompiledModel, s: Settings, sens: Adjoint):
    """``(ts, t0, y0, p, u) -> (ys, code, t_reached)``, reverse-differentiable by the continuous adjoint.

    ``code`` and ``t_reached`` are returned as floats (their cotangents are ignored).
    A failed re-solve or backward solve makes the gradients NaN.
    """
    x, w = np.polynomial.legendre.leggauss(sens.quadrature_nodes)
    nodes, weights = jnp.asarray(x), jnp.asarray(w)
    solver = make_solver(s.solver, s.rtol, s.atol)
    adjoint_solver = _WithQuadrature(solver, nodes, weights)
    chunk = int(sens.interval_steps)
    # restarts add a few steps per chunk; this bound is only reached by a solve that fails anyway
    max_chunks = -(-s.max_steps // chunk) + 2
    term = diffrax.ODETerm(cm.rhs)

    def adjoint_vf(t, y, args):
        lam, _ = y
        interp, p, u = args
        _, vjp = jax.vjp(lambda y_, p_: cm.rhs(t, y_, (p_, u)), _dense_state(interp, t), p)
        dy, dp = vjp(lam)
        return -dy, -dp

    adjoint_term = diffrax.ODETerm(adjoint_vf)

    def resolve(ta, tb, ya, dt0, p, u) -> diffrax.Solution:
        """Forwards from a checkpoint towards ``tb``: at most ``chunk`` steps, dense output."""
        return diffrax.diffeqsolve(
            term,
            solver,
            t0=ta,
            t1=tb,
            dt0=dt0,
            y0=ya,
            args=(p, u),
            saveat=diffrax.SaveAt(t1=True, dense=True),
            stepsize_controller=make_controller(s.solver, s.rtol, s.atol, cm.jumps(p)),
            max_steps=chunk,
            throw=False,
        )

    def last_step(sol: diffrax.Solution):
        n = sol.stats["num_accepted_steps"]
        ts = sol.interpolation.ts
        return ts[n] - ts[jnp.maximum(n - 1, 0)]

    def first_step(ta, tb, ya, p, u):
        """The step the controller would choose at ``ta`` (``dt0=None``): given explicitly, every
        chunk starts the same way, so one re-solve (one compiled solve) serves every chunk."""
        controller = make_controller(s.solver, s.rtol, s.atol, cm.jumps(p))
        t_next, _ = controller.init(term, ta, tb, ya, None, (p, u), solver.func, solver.error_order(term))
        return t_next - ta

    def checkpoints(ta, tb, ya, p, u):
        """Chunk the interval: each chunk's start (t, y, dt0); the last chunk's dense output."""
        t_cp = jnp.full((max_chunks,), tb)
        y_cp = jnp.zeros((max_chunks,) + ya.shape, ya.dtype)
        dt_cp = jnp.zeros((max_chunks,), ta.dtype)
        dt_first = first_step(ta, tb, ya, p, u)
        # the loop carries the latest chunk's dense output: zeros of its structure to start
        shape = jax.eval_shape(lambda t, y, dt: resolve(t, tb, y, dt, p, u).interpolation, ta, ya, dt_first)
        no_dense = jtu.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shape)

        def cond(carry):
            return (carry[-1] == 0) & (carry[0] < max_chunks)

        def body(carry):
            c, t, y, dt0, t_cp, y_cp, dt_cp, _, _ = carry
            sol = resolve(t, tb, y, dt0, p, u)
            t_cp, y_cp, dt_cp = t_cp.at[c].set(t), y_cp.at[c].set(y), dt_cp.at[c].set(dt0)
            t_new = sol.ts[0]
            status = jnp.where(sol.result == _OK, 1, jnp.where((sol.result == _MAX_STEPS) & (t_new > t), 0, -1))
            return (c + 1, t_new, sol.ys[0], last_step(sol), t_cp, y_cp, dt_cp, sol.interpolation, status)

        init = (jnp.asarray(0), ta, ya, dt_first, t_cp, y_cp, dt_cp, no_dense, jnp.asarray(0))
        c, _, _, _, t_cp, y_cp, dt_cp, dense, status = jax.lax.while_loop(cond, body, init)
        return c, t_cp, y_cp, dt_cp, dense, status == 1

    def backwards(lam, mu, tb, ta, dense, p, u):
        """lambda from tb back to ta over one chunk's dense state; mu += its integral."""
        sol = diffrax.diffeqsolve(
            adjoint_term,
            adjoint_solver,
            t0=tb,
            t1=ta,
            dt0=None,
            y0=(lam, mu),
            args=(dense, p, u),
            saveat=diffrax.SaveAt(t1=True),
            # adjoint steps land on the forward steps, where the state's interpolant has kinks
            stepsize_controller=make_controller(s.solver, s.rtol, s.atol, cm.jumps(p), step_ts=dense.ts, norm=_lambda_norm),
            max_steps=s.max_steps,
            throw=False,
        )
        return sol.ys[0][0], sol.ys[1][0], sol.result == _OK

    def interval(lam, mu, ok, ta, tb, ya, p, u):
        n_chunks, t_cp, y_cp, dt_cp, last_dense, ok_fwd = checkpoints(ta, tb, ya, p, u)

        def body(k, carry):
            lam, mu, ok = carry
            # vmapped over conditions, the loop runs as often as the condition with the most
            # chunks needs: one with none left solves over an empty interval (its result is
            # discarded), not from a garbage state (which ran to max_steps, rejecting steps)
            active = k < n_chunks
            c = jnp.maximum(n_chunks - 1 - k, 0)
            start = t_cp[c]
            last = c == n_chunks - 1
            end = jnp.where(active, jnp.where(last, tb, t_cp[jnp.minimum(c + 1, max_chunks - 1)]), start)
            # the last chunk's dense output is kept; an earlier chunk is re-solved by the same
            # call as in `checkpoints` (so the same steps). Under vmap over conditions a select
            # would run the re-solve for every condition in every chunk: it runs only when some
            # condition needs it.
            resolved = jax.lax.cond(
                eqxi.unvmap_any(active & ~last),
                # to the chunk's end, not towards tb: its last step then lands on that end
                lambda: resolve(start, end, y_cp[c], dt_cp[c], p, u).interpolation,
                lambda: last_dense,
            )
            dense = jtu.tree_map(lambda a, b: jnp.where(last, a, b), last_dense, resolved)
            lam, mu, ok_c = backwards(lam, mu, end, start, dense, p, u)
            return lam, mu, ok & ok_c

        lam, mu, ok_b = jax.lax.fori_loop(0, n_chunks, body, (lam, mu, jnp.asarray(True)))
        return lam, mu, ok & ok_fwd & ok_b

    ev = cm.events

    def event_jump(lam, mu, tau, y_minus, y_plus, fire, p, u):
        r"""lambda and mu from just after the events ``fire`` at ``tau`` to just before them.

        With $y^+ = A(\tau, y^-, p)$ and $\tau$ where the trigger $g(\tau, y^-, p)$ reaches zero,
        $dL/d\tau = \lambda^+\cdot(\dot A - f^+)$ with $\dot A = \partial_t A + \partial_y A\, f^-$, and
        $d\tau = -(\partial_y g\, dy^- + \partial_p g\, dp)/\dot g$, $\dot g = \partial_t g + \partial_y g\, f^-$:

        $$\lambda^- = \partial_y A^\top \lambda^+ - a\, \partial_y g^\top, \qquad
        \mu \mathrel{+}= \partial_p A^\top \lambda^+ - a\, \partial_p g^\top, \qquad a = \frac{dL/d\tau}{\dot g}.$$

        A time-triggered event has $\partial_y g = 0$: its time moves with $p$ alone.
        """
        f_minus = cm.rhs(eqxi.prevbefore(tau), y_minus, (p, u))
        f_plus = cm.rhs(eqxi.nextafter(tau), y_plus, (p, u))
        j = jnp.argmax(fire)  # simultaneous events share one time: the first one's trigger defines it
        one = jnp.ones_like(tau)
        _, a_dot = jax.jvp(lambda t, y: ev.assign(t, y, p, u, fire), (tau, y_minus), (one, f_minus))
        _, g_dot = jax.jvp(lambda t, y: ev.g(t, y, p, u)[j], (tau, y_minus), (one, f_minus))
        # under vmap both branches of the caller's cond run: keep the discarded one finite
        a = jnp.dot(lam, a_dot - f_plus) / jnp.where(jnp.any(fire), g_dot, one)
        _, vjp_a = jax.vjp(lambda y, q: ev.assign(tau, y, q, u, fire), y_minus, p)
        _, vjp_g = jax.vjp(lambda y, q: ev.g(tau, y, q, u)[j], y_minus, p)
        a_y, a_p = vjp_a(lam)
        g_y, g_p = vjp_g(a)
        return a_y - g_y, mu + a_p - g_p

    def forward(ts, t0, y0, p, u):
        if ev is None:
            sol = integrate(cm, s, ts, t0, y0, p, u)
            return trajectory_outputs(sol), None
        ys, code, t_reached, _, firings = solve_with_events(cm, s, ts, t0, y0, p, u, record=True)
        return (ys, code, t_reached), firings

    @jax.custom_vjp
    def trajectory(ts, t0, y0, p, u, switch):
        return forward(ts, t0, y0, p, u)[0]

    def fwd(ts, t0, y0, p, u, switch):
        out, firings = forward(ts, t0, y0, p, u)
        return out, (ts, t0, y0, out[0], p, u, switch, firings)

    def knots_with_events(ts, t0, y_start, ys, firings):
        """The save times and the event times in one increasing sequence, each with the state
        just after it: ``(times, states, save index (-1: an event), state before, firing)``,
        and per save time whether an event fired there."""
        n = ts.shape[0]
        fired = jnp.any(firings.fire, axis=1)
        times = jnp.concatenate([jnp.where(fired, firings.t, t0), ts])
        states = jnp.concatenate([jnp.where(fired[:, None], firings.y_plus, y_start), ys])
        save = jnp.concatenate([jnp.full(fired.shape, -1), jnp.arange(n)])
        before = jnp.concatenate([firings.y_minus, jnp.zeros_like(ys)])
        fire = jnp.concatenate([firings.fire & fired[:, None], jnp.zeros((n, ev.n), bool)])
        # at equal times: segments without an event first (they stand at t0 with the start
        # state), then events, then save times, so that backwards a save time's cotangent
        # (on the state after the event) is added before the jump across the event
        rank = jnp.concatenate([jnp.where(fired, 1, 0), jnp.full((n,), 2)])
        order = jnp.lexsort((rank, times))
        at_event = jnp.any(fired[None, :] & (firings.t[None, :] == ts[:, None]), axis=1)
        return times[order], states[order], save[order], before[order], fire[order], at_event

    def bwd(res, cts):
        ts, t0, y0, ys, p, u, switch, firings = res
        ys_bar = cts[0]
        if firings is None:
            y_start, times, states, save = y0, ts, ys, jnp.arange(ts.shape[0])
            at_event = jnp.zeros(ts.shape, bool)
        else:
            fire0, y_start = initial_firings(ev, t0, y0, p, u)
            times, states, save, before, fire, at_event = knots_with_events(ts, t0, y_start, ys, firings)
        knots = jnp.concatenate([jnp.reshape(t0, (1,)), times])
        starts = jnp.concatenate([y_start[None], states[:-1]])

        def step(carry, i):
            lam, mu, ok, ts_bar = carry
            k = i - 1
            at_save = save[k] >= 0
            j = jnp.maximum(save[k], 0)
            lam = lam + jnp.where(at_save, ys_bar[j], 0.0)
            # at a switch time tau of the right-hand side: dL/dtau = lambda . (f(tau-) - f(tau+)),
            # unless an event fires there: its own term has f(tau-) and f(tau+) already
            tau = times[k]
            jump = cm.rhs(eqxi.prevbefore(tau), states[k], (p, u)) - cm.rhs(eqxi.nextafter(tau), states[k], (p, u))
            ts_bar = ts_bar.at[j].add(jnp.where(at_save & (switch[j] > 0) & ~at_event[j], jnp.dot(lam, jump), 0.0))
            if firings is not None:
                lam, mu = jax.lax.cond(
                    jnp.any(fire[k]),
                    lambda c: event_jump(*c, tau, before[k], states[k], fire[k], p, u),
                    lambda c: c,
                    (lam, mu),
                )
            ta, tb = knots[k], knots[i]
            lam, mu, ok = jax.lax.cond(
                tb > ta,
                lambda c: interval(*c, ta, tb, starts[k], p, u),
                lambda c: c,
                (lam, mu, ok),
            )
            return (lam, mu, ok, ts_bar), None

        init = (jnp.zeros_like(ys_bar[0]), jnp.zeros_like(p), jnp.asarray(True), jnp.zeros_like(ts))
        (lam, mu, ok, ts_bar), _ = jax.lax.scan(step, init, jnp.arange(times.shape[0], 0, -1))
        if firings is not None:
            # events that fire at t0 map y0 to the start state
            _, vjp0 = jax.vjp(lambda y, q: ev.assign(t0, y, q, u, fire0), y0, p)
            lam0, mu0 = vjp0(lam)
            lam, mu = jnp.where(jnp.any(fire0), lam0, lam), jnp.where(jnp.any(fire0), mu + mu0, mu)
        nan = jnp.asarray(jnp.nan, p.dtype)
        dy0 = jnp.where(ok, lam, nan)
        dp = jnp.where(ok, mu, nan)
        ts_bar = jnp.where(ok, ts_bar, nan)
        zeros = jtu.tree_map(jnp.zeros_like, u)
        return ts_bar, jnp.zeros_like(t0), dy0, dp, zeros, jnp.zeros_like(switch)

    trajectory.defvjp(fwd, bwd)

    def plain(ts, t0, y0, p, u):
        return trajectory(ts, t0, y0, p, u, jnp.zeros_like(ts))

    if cm.breakpoints is None:
        return plain

    def with_switches(ts, t0, y0, p, u):
        """The switch times of the right-hand side inside (t0, ts[-1]) join the save times, so
        that the backward pass has lambda and y there; the cotangent of such a save time is
        the jump term, and it flows on to the parameters through ``cm.breakpoints(p)``.
        (Switch times that coincide would each be given the whole jump: not handled.)"""
        taus = cm.breakpoints(p)
        active = (taus > t0) & (taus < ts[-1])
        knots = jnp.concatenate([ts, jnp.where(active, taus, t0)])
        order = jnp.argsort(knots, stable=True)
        switch = jnp.concatenate([jnp.zeros_like(ts), jnp.where(active, 1.0, 0.0)])[order]
        ys, code, reached = trajectory(knots[order], t0, y0, p, u, switch)
        position = jnp.argsort(order)[: ts.shape[0]]
        return ys[position], code, reached

    return with_switches

