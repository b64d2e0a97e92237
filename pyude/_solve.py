"""``pyude.solve``: spec (or callable) in, :class:`Solution` out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ._errors import DataError
from ._solution import Solution
from .engines import get_engine
from .spec._function import FunctionModel
from .spec._model import Input, Model, _parse_input, as_model

DEFAULT_MAX_STEPS = 10_000


def resolve_model(model, y0=None, params=None) -> Model | FunctionModel:
    """A :class:`Model` from a Model/spec dict, or a :class:`FunctionModel` from a callable."""
    if callable(model) and not isinstance(model, (Model, Mapping)):
        if y0 is None:
            raise DataError("a model given as a function f(t, y, p) needs y0")
        return FunctionModel(model, int(np.size(y0)), params)
    return as_model(model)


def check_times(t, t0: float, what: str = "t") -> np.ndarray:
    ts = np.asarray(t, dtype=float)
    if ts.ndim == 0:
        ts = ts.reshape(1)
    if ts.ndim != 1 or ts.size == 0:
        raise DataError(f"{what} must be a non-empty 1-D array of times")
    if not np.all(np.isfinite(ts)):
        i = int(np.argmax(~np.isfinite(ts)))
        raise DataError(f"{what}[{i}] = {ts[i]} is not finite")
    if ts[0] < t0:
        raise DataError(f"{what}[0] = {ts[0]:g} is before the initial time t0 = {t0:g}")
    if np.any(np.diff(ts) <= 0):
        i = int(np.argmax(np.diff(ts) <= 0))
        raise DataError(f"{what} must be strictly increasing: {what}[{i}] = {ts[i]:g}, {what}[{i + 1}] = {ts[i + 1]:g}")
    if ts[-1] == t0:
        raise DataError(f"the last time {ts[-1]:g} equals t0: nothing to solve")
    return ts


def initial_state(model, cm, p: np.ndarray, y0, params) -> np.ndarray:
    """``y0`` if given (array or mapping state -> value), else the model's initial values at ``p``
    with any ``initial.<state>`` overrides from ``params``."""
    n = model.n_states
    p = np.asarray(cm.assign(p))  # initial values may use assigned parameters
    if y0 is None:
        base = np.array(cm.initial(p))
        for s, v in model.initial_overrides(params).items():
            base[model.states.index(s)] = v
        return base
    if isinstance(y0, Mapping):
        base = np.array(cm.initial(p))
        for s, v in y0.items():
            if s not in model.states:
                raise DataError(f"y0: {s!r} is not a state; states are {model.states}")
            base[model.states.index(s)] = float(v)
        y = base
    else:
        y = np.asarray(y0, dtype=float).reshape(-1)
        if y.shape != (n,):
            raise DataError(f"y0 has {y.size} entries, the model has {n} states {model.states}")
    if not np.all(np.isfinite(y)):
        raise DataError("y0 contains NaN or inf")
    return y


def parse_inputs(model, inputs) -> dict[str, Input] | None:
    if not inputs:
        return None
    out = {}
    for name, spec in inputs.items():
        if name not in getattr(model, "inputs", {}):
            raise DataError(f"inputs: {name!r} is not an input of the model; inputs are {list(model.inputs)}")
        if isinstance(spec, tuple) and len(spec) == 2:
            spec = {"times": spec[0], "values": spec[1], "interpolation": model.inputs[name].interpolation}
        out[name] = _parse_input(name, spec, f"inputs.{name}")
    return out


def check_params(model, params) -> np.ndarray:
    p = model.flatten(params)
    if not np.all(np.isfinite(p)):
        raise DataError("parameters contain NaN or inf")
    return p


def solve(
    model: Model | Mapping[str, Any] | Callable,
    t,
    y0=None,
    params=None,
    *,
    t0: float = 0.0,
    solver: str = "auto",
    rtol: float = 1e-6,
    atol: float = 1e-8,
    max_steps: int = DEFAULT_MAX_STEPS,
    inputs: Mapping[str, Any] | None = None,
    engine: str = "jax",
) -> Solution:
    """Solve the model's initial value problem from ``t0`` and save at the times ``t``.

    Args:
        model: a :class:`Model`, a spec dict, or a callable ``f(t, y, p)`` (JAX engine only).
        t: strictly increasing save times, ``t[0] >= t0``.
        y0: initial state (array in state order, or mapping state -> value); default: the spec's ``initial``.
        params: dict name -> value (missing names take nominal values) or the flat vector.
        solver: ``"auto"`` (stiffness estimate), ``"Tsit5"``, ``"Dopri5"``, ``"Dopri8"``,
            ``"Rodas5P"``, ``"Rosenbrock23"``, ``"Kvaerno5"``.
        rtol, atol: local error tolerances of the step-size controller.
        max_steps: the most steps the solver may take before a :class:`SolverError`.
        inputs: overrides of the spec's input signals: name -> ``{times, values[, interpolation]}``
            or ``(times, values)``.
    """
    m = resolve_model(model, y0, params)
    eng = get_engine(engine)
    cm = eng.compiled(m)
    t0 = float(t0)
    ts = check_times(t, t0)
    p = np.asarray(cm.assign(check_params(m, params)))  # the spec's assignments, once, before the solve
    y = initial_state(m, cm, p, y0, params)
    u = cm.input_args(parse_inputs(m, inputs))
    if rtol <= 0 or atol <= 0:
        raise DataError(f"rtol and atol must be positive, got rtol={rtol}, atol={atol}")
    ys, stats, dense = eng.solve(cm, ts, t0, y, p, u, solver, rtol, atol, max_steps)
    return Solution(ts, ys, m.states, stats, t0, dense)
