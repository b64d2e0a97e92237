"""Exogenous input signals u(t): linear, zero-order-hold and natural cubic spline interpolation.

Outside ``[times[0], times[-1]]`` every kind holds the end value constant.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ...spec._model import Input


class InputData(eqx.Module):
    """Knot data of one input; ``m`` are the spline's second derivatives (cubic only)."""

    times: Float[Array, " n"]
    values: Float[Array, " n"]
    m: Float[Array, " n"]
    kind: str = eqx.field(static=True)


def _natural_spline_second_derivatives(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    n = t.size
    m = np.zeros(n)
    if n < 3:
        return m
    h = np.diff(t)
    A = np.zeros((n - 2, n - 2))
    rhs = 6.0 * (np.diff(y[1:]) / h[1:] - np.diff(y[:-1]) / h[:-1])
    for i in range(n - 2):
        A[i, i] = 2.0 * (h[i] + h[i + 1])
        if i > 0:
            A[i, i - 1] = h[i]
        if i < n - 3:
            A[i, i + 1] = h[i + 1]
    m[1:-1] = np.linalg.solve(A, rhs)
    return m


def input_data(u: Input) -> InputData:
    m = _natural_spline_second_derivatives(u.times, u.values) if u.interpolation == "cubic" else np.zeros_like(u.times)
    return InputData(jnp.asarray(u.times), jnp.asarray(u.values), jnp.asarray(m), u.interpolation)


def evaluate_input(d: InputData, t):
    n = d.times.shape[0]
    if n == 1:
        return d.values[0]
    if d.kind == "linear":
        return jnp.interp(t, d.times, d.values)
    if d.kind == "zoh":
        i = jnp.clip(jnp.searchsorted(d.times, t, side="right") - 1, 0, n - 1)
        return d.values[i]
    tc = jnp.clip(t, d.times[0], d.times[-1])
    i = jnp.clip(jnp.searchsorted(d.times, tc, side="right") - 1, 0, n - 2)
    h = d.times[i + 1] - d.times[i]
    a = (d.times[i + 1] - tc) / h
    b = 1.0 - a
    return a * d.values[i] + b * d.values[i + 1] + ((a**3 - a) * d.m[i] + (b**3 - b) * d.m[i + 1]) * h**2 / 6.0
