"""Objective value and gradient through a solve, by each sensitivity method."""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import jax
import jax.numpy as jnp

from ..._sensitivity import AbstractSensitivity, Adjoint, Checkpoint, Forward
from ._adjoint import adjoint_trajectory
from ._compile import CompiledModel
from ._integrate import Settings, final_time, integrate


def _trajectory(cm: CompiledModel, s: Settings, sens: AbstractSensitivity):
    """``(ts, t0, y0, p, u) -> (ys, code, t_reached)``, differentiable by ``sens``."""
    if isinstance(sens, Adjoint):
        return adjoint_trajectory(cm, s, sens)
    if isinstance(sens, Forward):
        adjoint = diffrax.ForwardMode()
    elif isinstance(sens, Checkpoint):
        adjoint = diffrax.RecursiveCheckpointAdjoint(checkpoints=sens.checkpoints)
    else:
        raise TypeError(f"unsupported sensitivity {sens!r}")

    def trajectory(ts, t0, y0, p, u):
        sol = integrate(cm, s, ts, t0, y0, p, u, adjoint=adjoint)
        return sol.ys[0], jnp.asarray(sol.result._value, float), final_time(sol)

    return trajectory


def loss_fn(cm: CompiledModel, s: Settings, objective: Callable, key) -> Callable:
    """Jitted ``(ts, t0, y0_mask, y0_values, p, u, data) -> (loss, code, t_reached)``: no gradient."""
    cache_key = ("loss", s, key)
    fn = cm.cache.get(cache_key)
    if fn is None:

        @jax.jit
        def fn(ts, t0, y0_mask, y0_values, p, u, data):
            y0 = jnp.where(y0_mask, y0_values, cm.initial(p))
            sol = integrate(cm, s, ts, t0, y0, p, u)
            return objective(sol.ys[0], data), sol.result._value, final_time(sol)

        cm.cache[cache_key] = fn
    return fn


def value_and_grad_fn(
    cm: CompiledModel, s: Settings, sens: AbstractSensitivity, objective: Callable, key
) -> Callable:
    """Jitted ``(ts, t0, y0_mask, y0_values, p, u, data) -> (loss, dL/dp, dL/dy0, code, t_reached)``.

    The initial state is ``where(y0_mask, y0_values, initial(p))``, so initial values
    given as expressions of parameters pass their gradient on to the parameters.
    ``objective(ys, data)`` is a JAX function of the trajectory at ``ts``.
    """
    cache_key = ("value_and_grad", s, sens, key)
    fn = cm.cache.get(cache_key)
    if fn is not None:
        return fn
    trajectory = _trajectory(cm, s, sens)

    def loss(p, y0_values, ts, t0, y0_mask, u, data):
        y0 = jnp.where(y0_mask, y0_values, cm.initial(p))
        ys, code, t_reached = trajectory(ts, t0, y0, p, u)
        value = objective(ys, data)
        return value, (value, code, t_reached)

    if isinstance(sens, Forward):
        grad = jax.jacfwd(loss, argnums=(0, 1), has_aux=True)
    else:
        grad = jax.grad(loss, argnums=(0, 1), has_aux=True)

    @jax.jit
    def fn(ts, t0, y0_mask, y0_values, p, u, data):
        (gp, gy0), (value, code, t_reached) = grad(p, y0_values, ts, t0, y0_mask, u, data)
        return value, gp, gy0, code, t_reached

    cm.cache[cache_key] = fn
    return fn
