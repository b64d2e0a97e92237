"""The continuous adjoint on a stored forward solution (see :class:`pyude.Adjoint`).

diffrax's ``BacksolveAdjoint`` re-integrates the state backwards in time along
with the adjoint; on stiff kinetics that backward state solve is unstable and
the gradients come out wrong. Here the state is read from the forward pass's
dense output instead, as SciMLSensitivity's InterpolatingAdjoint and
QuadratureAdjoint do, and the adjoint is integrated with the problem's solver.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from ..._sensitivity import Adjoint
from ._compile import CompiledModel
from ._integrate import Settings, final_time, integrate
from ._solvers import make_controller, make_solver


def adjoint_trajectory(cm: CompiledModel, s: Settings, sens: Adjoint):
    """``(ts, t0, y0, p, u) -> (ys, code, t_reached)``, reverse-differentiable by the continuous adjoint.

    ``code`` and ``t_reached`` are returned as floats (their cotangents are ignored).
    A failed backward solve makes the gradients NaN.
    """
    x, w = np.polynomial.legendre.leggauss(sens.quadrature_nodes)
    nodes, weights = jnp.asarray(x), jnp.asarray(w)
    solver = make_solver(s.solver, s.rtol, s.atol)
    back_steps = 2 * s.max_steps

    def rhs_vjp(t, y, lam, p, u):
        _, vjp = jax.vjp(lambda y_, p_: cm.rhs(t, y_, (p_, u)), y, p)
        return vjp(lam)

    def adjoint_vf(t, lam, args):
        ysol, p, u = args
        return -rhs_vjp(t, ysol.evaluate(t), lam, p, u)[0]

    def quadrature(lsol: diffrax.DenseInterpolation, ysol, p, u):
        """Sum over the backward steps of Gauss-Legendre sums of lambda^T df/dp."""

        def on_step(i, acc):
            a = lsol.ts[i] * lsol.direction
            b = lsol.ts[i + 1] * lsol.direction
            mid, half = 0.5 * (a + b), 0.5 * jnp.abs(b - a)

            def at(xk):
                t = mid + half * xk
                return rhs_vjp(t, ysol.evaluate(t), lsol.evaluate(t), p, u)[1]

            g = jax.vmap(at)(nodes)
            return acc + half * jnp.tensordot(weights, g, axes=1)

        def body(carry):
            i, acc = carry
            return i + 1, on_step(i, acc)

        _, acc = jax.lax.while_loop(lambda c: c[0] < lsol.ts_size - 1, body, (0, jnp.zeros_like(p)))
        return acc

    def segment(lam, mu, ok, ta, tb, ysol, p, u):
        """Integrate lambda from tb back to ta and add the segment's parameter integral."""
        controller = make_controller(s.solver, s.rtol, s.atol, cm.jump_ts if cm.jump_ts.size else None, step_ts=ysol.ts)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(adjoint_vf),
            solver,
            t0=tb,
            t1=ta,
            dt0=None,
            y0=lam,
            args=(ysol, p, u),
            saveat=diffrax.SaveAt(t1=True, dense=True),
            stepsize_controller=controller,
            max_steps=back_steps,
            throw=False,
        )
        mu = mu + quadrature(sol.interpolation, ysol, p, u)
        return sol.ys[0], mu, ok & (sol.result == diffrax.RESULTS.successful)

    @jax.custom_vjp
    def trajectory(ts, t0, y0, p, u):
        sol = integrate(cm, s, ts, t0, y0, p, u)
        return sol.ys[0], jnp.asarray(sol.result._value, float), final_time(sol)

    def fwd(ts, t0, y0, p, u):
        sol = integrate(cm, s, ts, t0, y0, p, u, dense=True)
        out = (sol.ys[0], jnp.asarray(sol.result._value, float), final_time(sol))
        return out, (ts, t0, p, u, sol.interpolation)

    def bwd(res, cts):
        ts, t0, p, u, ysol = res
        ys_bar = cts[0]
        knots = jnp.concatenate([jnp.reshape(t0, (1,)), ts])

        def step(carry, i):
            lam, mu, ok = carry
            lam = lam + ys_bar[i - 1]
            ta, tb = knots[i - 1], knots[i]
            lam, mu, ok = jax.lax.cond(
                tb > ta,
                lambda c: segment(*c, ta, tb, ysol, p, u),
                lambda c: c,
                (lam, mu, ok),
            )
            return (lam, mu, ok), None

        init = (jnp.zeros_like(ys_bar[0]), jnp.zeros_like(p), jnp.asarray(True))
        (lam, mu, ok), _ = jax.lax.scan(step, init, jnp.arange(ts.shape[0], 0, -1))
        nan = jnp.asarray(jnp.nan, p.dtype)
        dy0 = jnp.where(ok, lam, nan)
        dp = jnp.where(ok, mu, nan)
        zeros = jax.tree.map(jnp.zeros_like, u)
        return jnp.zeros_like(ts), jnp.zeros_like(t0), dy0, dp, zeros

    trajectory.defvjp(fwd, bwd)
    return trajectory
