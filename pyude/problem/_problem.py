"""``pyude.Problem``: a model, data and solver settings -> loss and gradient."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from .._errors import DataError
from .._sensitivity import AbstractSensitivity, as_sensitivity
from .._solve import DEFAULT_MAX_STEPS, check_params, initial_state, parse_inputs, resolve_model
from ..engines import get_engine
from ..engines.jax import Settings
from ..spec._function import FunctionModel
from ..spec._model import INITIAL_PREFIX
from ._data import measurements


def weighted_sum_of_squares(ys, data):
    r"""$\sum_k w_k\,(y(t_k)_{s_k} - v_k)^2$ with $w_k = 1/\sigma_k^2$ (or 1)."""
    time_index, state_index, values, weights = data
    residuals = ys[time_index, state_index] - values
    return jnp.sum(weights * residuals**2)


class Problem:
    """A model and its data: ``loss(params)`` and ``value_and_grad(params, sensitivity=...)``.

    ``data`` is a tidy DataFrame (or CSV path) with columns ``time, observable, value``
    and optional ``sigma``; here an observable is a state name. The loss is the sum of
    squared residuals, weighted by ``1/sigma**2`` where sigma is given. The solver
    settings belong to the problem and are used by every evaluation; ``solver="auto"``
    is resolved once, here, from a stiffness estimate at the nominal parameters
    (see :attr:`solver`).
    """

    def __init__(
        self,
        model,
        data,
        *,
        solver: str = "auto",
        rtol: float = 1e-6,
        atol: float = 1e-8,
        max_steps: int = DEFAULT_MAX_STEPS,
        t0: float = 0.0,
        y0=None,
        params=None,
        inputs: Mapping[str, Any] | None = None,
        engine: str = "jax",
    ):
        self.model = resolve_model(model, y0, params)
        self.engine = get_engine(engine)
        self._cm = self.engine.compiled(self.model)
        self.t0 = float(t0)
        self.data = measurements(data, self.model.states, self.t0)
        self._y0 = y0
        if rtol <= 0 or atol <= 0:
            raise DataError(f"rtol and atol must be positive, got rtol={rtol}, atol={atol}")
        self._u = self._cm.input_args(parse_inputs(self.model, inputs))
        p = check_params(self.model, params)
        y = initial_state(self.model, self._cm, p, y0, params)
        name, self.stiffness = self.engine.resolve_solver(self._cm, solver, self.t0, self.data.ts[-1], y, p, self._u)
        self.settings = Settings(name, float(rtol), float(atol), int(max_steps))
        d = self.data
        self._data_arrays = (
            jnp.asarray(d.time_index),
            jnp.asarray(d.state_index),
            jnp.asarray(d.values),
            jnp.asarray(d.weights),
        )
        self.stats: dict[str, Any] = {}

    @property
    def solver(self) -> str:
        return self.settings.solver

    def _initial(self, params, p: np.ndarray, all_states: bool) -> tuple[np.ndarray, np.ndarray]:
        """Mask of states whose initial value is fixed (not a function of p) and the values."""
        n = self.model.n_states
        overrides = self.model.initial_overrides(params)
        if self._y0 is not None or isinstance(self.model, FunctionModel) or all_states:
            y = initial_state(self.model, self._cm, p, self._y0, params)
            return np.ones(n, bool), y
        mask = np.zeros(n, bool)
        values = np.zeros(n)
        for s, v in overrides.items():
            i = self.model.states.index(s)
            mask[i], values[i] = True, v
        return mask, values

    def value_and_grad(
        self, params=None, sensitivity: str | AbstractSensitivity = "checkpoint", *, initial_states: bool = False
    ):
        """``(loss, grad)``; ``grad`` is a dict like ``params``: each mechanistic parameter
        and each network array in its shape (``model.flatten(grad)`` gives the flat vector).

        With ``initial_states=True`` the initial state is an independent variable and
        ``grad`` also holds ``initial.<state>`` for every state (the parameter gradient
        then excludes the path through initial-value expressions). For a model given as
        a function, ``grad`` has the structure of ``params`` (and is a pair
        ``(grad_params, grad_y0)`` with ``initial_states=True``).

        ``sensitivity``: ``"checkpoint"`` (default), ``"adjoint"``, ``"forward"`` or a
        :class:`~pyude.Checkpoint` / :class:`~pyude.Adjoint` / :class:`~pyude.Forward`.
        """
        sens = as_sensitivity(sensitivity)
        p = check_params(self.model, params)
        mask, values = self._initial(params, p, initial_states)
        value, gp, gy0, compile_time = self.engine.value_and_grad(
            self._cm, self.settings, sens, weighted_sum_of_squares, "wss",
            self.data.ts, self.t0, mask, values, p, self._u, self._data_arrays,
        )
        self.stats[f"compile_time_{sens.name}"] = self.stats.get(f"compile_time_{sens.name}", 0.0) + compile_time
        grad = self.model.unflatten(gp)
        if initial_states:
            if isinstance(self.model, FunctionModel):
                return value, (grad, gy0)
            for i, s in enumerate(self.model.states):
                grad[INITIAL_PREFIX + s] = float(gy0[i])
        return value, grad

    def loss(self, params=None) -> float:
        """The weighted sum of squared residuals at ``params``."""
        p = check_params(self.model, params)
        mask, values = self._initial(params, p, False)
        value, compile_time = self.engine.loss(
            self._cm, self.settings, weighted_sum_of_squares, "wss",
            self.data.ts, self.t0, mask, values, p, self._u, self._data_arrays,
        )
        self.stats["compile_time_loss"] = self.stats.get("compile_time_loss", 0.0) + compile_time
        return value

    def __repr__(self) -> str:
        return f"Problem({self.model.name!r}, {len(self.data.values)} data points, solver={self.solver})"
