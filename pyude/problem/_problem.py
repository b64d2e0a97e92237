"""``pyude.Problem``: a model, data from one or more conditions, what to estimate -> objective and gradient."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .._errors import DataError, SolverError
from .._sensitivity import AbstractSensitivity, as_sensitivity
from .._solve import DEFAULT_MAX_STEPS, check_params, check_times, initial_state, parse_inputs, resolve_model
from ..engines import get_engine
from ..engines.jax import Settings, resolve_batching
from ..engines.jax._objective import NOISE_CODES, POSITIVE_CODES
from ..spec._expr import Sym
from ..spec._function import FunctionModel
from ..spec._model import INITIAL_PREFIX
from ._conditions import Conditions, build_conditions
from ._data import Measurements, measurements, row_overrides
from ._estimate import Estimation, build_estimation


def _grid_arrays(grid) -> dict[str, Any]:
    """The data's block of the prediction table (:meth:`Measurements.grid`): its start, and
    its shape as the shapes of three empty arrays (static in the compiled objective)."""
    start, shape = grid
    return {"start": jnp.asarray(start), **{k: jnp.zeros((n, 0)) for k, n in zip("cto", shape)}}


def _distinct_arrays(cond: dict[str, Any]) -> dict[str, Any] | None:
    """``{"first", "of"}`` where conditions repeat: ``first`` (U,) the first of each distinct
    condition, ``of`` (C,) each condition's position among them. Conditions whose every
    override (parameters, initial states, inputs, preequilibration, steady-state flag) is
    equal have the same trajectory for any parameters, so the JAX objective solves each
    distinct one once (PEtab tables repeat conditions for replicate experiments:
    Lucarelli_CellSystems2018 has 12 distinct of 16). None where all differ."""
    fields = [np.asarray(v).reshape(np.shape(v)[0], -1) for _, v in sorted(cond.items())]
    n = fields[0].shape[0]
    position: dict[bytes, int] = {}
    first, of = [], []
    for i in range(n):
        key = b"".join(f[i].tobytes() for f in fields)
        if key not in position:
            position[key] = len(first)
            first.append(i)
        of.append(position[key])
    if len(first) == n:
        return None
    return {"first": jnp.asarray(np.array(first, dtype=np.int64)), "of": jnp.asarray(np.array(of, dtype=np.int64))}


class Problem:
    r"""A model and its data: the objective, its gradient, and what a fit estimates.

    ``data``: a tidy DataFrame (or CSV path) with columns ``time, observable, value``
    and optional ``sigma`` and ``condition``. An observable is one of the model's
    ``observables`` or a state name. ``conditions``: a table (DataFrame or CSV) of
    per-condition overrides (see :mod:`pyude.problem._conditions`); all conditions are
    solved in one compiled call, ``batching="vectorized"`` (vmapped: every condition
    takes as many steps as the slowest) or ``"sequential"`` (one after another, each with
    its own steps); ``"auto"`` is sequential for a stiff solver on CPU, else vectorized
    (the engines' docs/engines.md; the JAX engine only).

    The objective is the negative log-likelihood of the data under the observables'
    noise models, plus priors and ``l2`` on network weights; when no observable
    declares a noise model it is the weighted sum of squares
    $\sum_k ((y_k - h_k)/\sigma_k)^2$ ($\sigma_k$ from the data's ``sigma`` or 1).

    ``row_parameters``: parameters that the data set per measurement, in data columns of
    the same name (a number or another parameter's name; empty: the condition's value),
    e.g. scaling factors and noise scales that differ between data sets. They may be
    used only in observables and sigmas, not in the dynamics.

    ``estimate`` names what a fit estimates: mechanistic parameters, networks (all
    their arrays), network arrays (``nn.0.weight``) and initial states
    (``initial.<state>``); by default every mechanistic parameter and network array.
    Parameters are estimated on their declared scale (log/log10) within their bounds.
    ``params`` are the starting values (missing: nominal values; networks:
    ``model.init_params(seed=0)``). The solver settings belong to the problem;
    ``solver="auto"`` is resolved once, here (see :attr:`stiffness`).
    """

    def __init__(
        self,
        model,
        data,
        conditions=None,
        *,
        estimate: Sequence[str] | None = None,
        priors: Mapping[str, Any] | None = None,
        l2: float = 0.0,
        solver: str = "auto",
        rtol: float = 1e-6,
        atol: float = 1e-8,
        max_steps: int = DEFAULT_MAX_STEPS,
        t0: float = 0.0,
        y0=None,
        params=None,
        inputs: Mapping[str, Any] | None = None,
        engine: str = "jax",
        row_parameters: Sequence[str] | None = None,
        batching: str = "auto",
    ):
        self.model = resolve_model(model, y0, params)
        self.engine = get_engine(engine)
        self._cm = self.engine.compiled(self.model)
        self.t0 = float(t0)
        if not (rtol > 0 and atol > 0):
            raise DataError(f"rtol and atol must be positive, got rtol={rtol}, atol={atol}")
        declared = list(self.model.observables)
        self.observables: list[str] = declared + list(self.model.states)
        hint = (f"observables {declared} or " if declared else "") + f"states {self.model.states}"
        self.data: Measurements = measurements(data, self.observables, self.t0, hint)
        self._offsets = {name: off for name, shape, off in getattr(self.model, "parameter_layout", []) if shape == ()}
        self.conditions: Conditions = build_conditions(self.model, conditions, self.data.conditions, self._offsets)
        # the solved conditions are the table's, in its order: data rows point into that list
        position = {c: i for i, c in enumerate(self.conditions.ids)}
        self.data = dataclasses.replace(
            self.data,
            conditions=list(self.conditions.ids),
            cond_index=np.array([position[c] for c in self.data.conditions], dtype=np.int64)[self.data.cond_index],
        )
        self.estimation: Estimation = build_estimation(self.model, estimate, priors, l2)
        self._rows = row_overrides(self.model, self.data.frame, row_parameters, self._offsets)
        noises = [o.noise for o in self.model.observables.values()]
        self.mode = "nll" if any(n is not None for n in noises) else "wss"
        self._noise = np.array([NOISE_CODES[n] for n in noises] + [0] * self.model.n_states, dtype=np.int64)
        self._check_noise_data()
        self._u = self._cm.input_args(parse_inputs(self.model, inputs))
        self._y0_arg = y0
        self._params_arg = params
        p = check_params(self.model, params)
        y = initial_state(self.model, self._cm, p, y0, params)
        name, self.stiffness = self.engine.resolve_solver(self._cm, solver, self.t0, self.data.ts[-1], y, p, self._u)
        self.settings = Settings(name, float(rtol), float(atol), int(max_steps), resolve_batching(batching, name))
        self.stats: dict[str, Any] = {}
        self._theta_arrays: dict[str, Any] | None = None
        self._data_device: dict[str, Any] | None = None
        self._linear_est: dict[bool, Estimation] = {}
        self._est_device: dict[int, tuple[Estimation, dict[str, Any]]] = {}
        self._layouts: dict[int, dict[str, np.ndarray]] = {}
        # what rebuilds this problem elsewhere (pickling for multi-start workers)
        self._recipe = {
            "model": self.model.to_dict() if hasattr(self.model, "to_dict") else model,
            "data": self.data.frame,
            "conditions": self.conditions.frame,
            "estimate": estimate,
            "priors": priors,
            "l2": l2,
            "solver": name,
            "rtol": rtol,
            "atol": atol,
            "max_steps": max_steps,
            "t0": t0,
            "y0": y0,
            "params": params,
            "inputs": inputs,
            "engine": engine,
            "row_parameters": row_parameters,
            "batching": batching,
        }

    def __getstate__(self) -> dict[str, Any]:
        return self._recipe

    def __setstate__(self, recipe: dict[str, Any]) -> None:
        recipe = dict(recipe)
        self.__init__(recipe.pop("model"), recipe.pop("data"), recipe.pop("conditions"), **recipe)

    # ------------------------------------------------------------------ set-up
    def _check_noise_data(self) -> None:
        codes = self._noise[self.data.obs_index]
        v = self.data.values
        names = {c: n for n, c in NOISE_CODES.items()}
        checks = [(c, v > 0, f"a {names[c]} observable needs positive values") for c in POSITIVE_CODES]
        for code, ok, what in checks + [(NOISE_CODES["poisson"], v >= 0, "a poisson observable needs non-negative counts")]:
            bad = (codes == code) & ~ok
            if bad.any():
                row = int(np.argmax(bad))
                raise DataError(f"data row {row}: {what}, got {v[row]:g} ({self.observables[self.data.obs_index[row]]!r})")

    @property
    def solver(self) -> str:
        return self.settings.solver

    @property
    def n_conditions(self) -> int:
        return self.conditions.n

    def _fixed_initial(self, params, p: np.ndarray, all_states: bool) -> tuple[np.ndarray, np.ndarray]:
        """States whose initial value is a given number (not an expression of p), and the values."""
        n = self.model.n_states
        if self._y0_arg is not None or isinstance(self.model, FunctionModel) or all_states:
            merged = params if isinstance(params, Mapping) else self._params_arg
            return np.ones(n, bool), initial_state(self.model, self._cm, p, self._y0_arg, merged)
        mask, values = np.zeros(n, bool), np.zeros(n)
        sources = [self._params_arg, params] if isinstance(params, Mapping) else [self._params_arg]
        for src in sources:
            for s, v in self.model.initial_overrides(src).items():
                i = self.model.states.index(s)
                mask[i], values[i] = True, v
        return mask, values

    def _z(self, params) -> np.ndarray:
        """``[p, y0]`` at ``params`` (y0: the initial values the estimated entries start from)."""
        merged = params if params is not None else self._params_arg
        p = check_params(self.model, merged)
        y0 = initial_state(self.model, self._cm, p, self._y0_arg, merged if isinstance(merged, Mapping) else None)
        return np.concatenate([p, y0])

    def _arrays(self, z: np.ndarray, est: Estimation, y0_fixed, y0_value, ts=None) -> dict[str, Any]:
        # a training loop calls this every step: the estimation's arrays go to the device
        # once; the per-call ones stay numpy, which the compiled call's C++ dispatch
        # transfers faster than a separate device_put (~0.3 ms a call)
        cached = self._est_device.get(id(est))
        if cached is None or cached[0] is not est:
            cached = (
                est,
                jax.device_put(
                    {
                        "index": np.asarray(est.index),
                        "scale": np.asarray(est.scale),
                        "is_network": np.asarray(est.is_network),
                        "l2": np.asarray(est.l2),
                        "y0_estimated": np.asarray(est.y0_estimated),
                    }
                ),
            )
            self._est_device[id(est)] = cached
        per_call = {
            "base_z": np.asarray(z, dtype=np.float64),
            "y0_fixed": np.asarray(y0_fixed & ~est.y0_estimated),
            "y0_value": np.asarray(y0_value, dtype=np.float64),
        }
        return {**cached[1], **per_call, **self._data_arrays(ts)}

    def _data_arrays(self, ts=None) -> dict[str, Any]:
        """The objective's arrays that do not depend on the parameters (conditions, data,
        priors, inputs), on the device; built once for the data's own times, because a
        training loop would otherwise copy every data row to the device on every step."""
        if ts is None and self._data_device is not None:
            return self._data_device
        c, d, est = self.conditions, self.data, self.estimation
        out = {
            "ts": jnp.asarray(d.ts if ts is None else ts),
            "t0": jnp.asarray(self.t0),
            "u": self._u,
            "cond": {
                "p_fixed": jnp.asarray(c.p_fixed),
                "p_value": jnp.asarray(c.p_value),
                "p_source": jnp.asarray(c.p_source),
                "y_fixed": jnp.asarray(c.y_fixed),
                "y_value": jnp.asarray(c.y_value),
                "y_source": jnp.asarray(c.y_source),
                "u_fixed": jnp.asarray(c.u_fixed),
                "u_value": jnp.asarray(c.u_value),
                # preequilibration: only where a condition has one (the objective is unchanged otherwise)
                **(
                    {"pre": jnp.asarray(c.pre), **{f"pre_{k}": jnp.asarray(v) for k, v in c.pre_overrides.items()}}
                    if c.pre is not None
                    else {}
                ),
                # steady-state measurements (time inf): only on the data's own time grid
                **({"post": jnp.asarray(d.steady)} if ts is None and d.steady.any() else {}),
            },
            "data": {
                "cond": jnp.asarray(d.cond_index),
                "time": jnp.asarray(d.time_index),
                "obs": jnp.asarray(d.obs_index),
                "value": jnp.asarray(d.values),
                "sigma": jnp.asarray(d.sigma),
                "noise": jnp.asarray(self._noise[d.obs_index]),
                "weight": jnp.ones(d.values.shape),
                **({"row": {k: jnp.asarray(v) for k, v in self._rows.items()}} if self._rows is not None else {}),
                **({"grid": _grid_arrays(grid)} if self._rows is None and (grid := d.grid()) is not None else {}),
            },
            # priors are on z (positions in [p, y0]), the same for every estimation layout
            "priors": {
                "index": jnp.asarray(est.prior_index),
                "kind": jnp.asarray(est.prior_kind),
                "mean": jnp.asarray(est.prior_mean),
                "sd": jnp.asarray(est.prior_sd),
                "on": jnp.asarray(est.prior_on),
            },
        }
        distinct = _distinct_arrays(out["cond"])
        if distinct is not None:
            out["distinct"] = distinct
        if ts is None:
            self._data_device = out
        return out

    def _arrays_at(self, params, ts=None) -> tuple[dict[str, Any], Any]:
        """The objective's arrays with every entry taken from ``params``, and theta there."""
        z = self._z(params)
        mask, values = self._fixed_initial(params, z[: self.model.n_params], False)
        return self._arrays(z, self.estimation, mask, values, ts), jnp.asarray(self.estimation.theta_of(z))

    def _check(self, value, grad, codes, t_reached, sens: AbstractSensitivity | None) -> None:
        """Raise :class:`SolverError` for a failed solve or a non-finite value or gradient."""
        self._raise_for(codes, t_reached)
        if not np.isfinite(value) or (grad is not None and not np.all(np.isfinite(grad))):
            adjoint = sens is not None and sens.name == "adjoint"
            raise SolverError(
                "the objective or its gradient is not finite",
                code="nonfinite",
                t_reached=float(np.min(t_reached)),
                hint="the adjoint's backward solve failed: try sensitivity='checkpoint'"
                if adjoint
                else "check parameters, data and tolerances",
            )

    def _raise_for(self, codes, t_reached) -> None:
        codes = np.asarray(codes).astype(int).reshape(-1)
        if np.any(codes != 0):
            k = int(np.argmax(codes != 0))
            where = f" in condition {self.conditions.ids[k]!r}" if self.n_conditions > 1 else ""
            try:
                self.engine.raise_for_result(
                    int(codes[k]), float(np.asarray(t_reached).reshape(-1)[k]), float(self.data.ts[-1]), self.settings
                )
            except SolverError as e:
                e.args = (str(e.args[0]) + where,) + e.args[1:]
                raise

    def _record(self, key: str, compile_time: float) -> None:
        self.stats[key] = self.stats.get(key, 0.0) + compile_time

    # --------------------------------------------------------- theta interface
    def theta0(self, params=None) -> np.ndarray:
        """The estimated entries of ``params`` (default: the problem's starting values), on their scales."""
        return self.estimation.theta_of(self._z(params))

    def params_of(self, theta) -> dict[str, Any]:
        """The full params dict (like ``model.init_params()``) at ``theta``; estimated
        initial states as ``initial.<state>`` entries."""
        z = self.estimation.z_of(np.asarray(theta, dtype=float), self._z(None))
        out = self.model.unflatten(z[: self.model.n_params])
        for i in np.flatnonzero(self.estimation.y0_estimated):
            out[INITIAL_PREFIX + self.model.states[i]] = float(z[self.model.n_params + i])
        return out

    def evaluate(
        self,
        theta,
        sensitivity: str | AbstractSensitivity | None = None,
        batch: np.ndarray | None = None,
        shooting=None,
    ) -> dict[str, Any]:
        """Objective (and gradient in theta if ``sensitivity`` is given) without raising on solver
        failure: ``{"value", "grad", "data_term", "ok", "message"}``. The building block of fitting.

        ``batch``: indices of the conditions to use (a mini-batch); their data term is
        scaled by ``n_conditions / len(batch)``. ``shooting``: a
        :class:`~pyude.MultipleShooting`; ``theta`` then carries the segment start states
        after the estimated entries (see :meth:`shooting_start`).
        """
        if self._theta_arrays is None:  # the same for every theta: built once, not per fit step
            self._theta_arrays = self._arrays_at(None)[0]
        arrays = self._theta_arrays
        conditions = np.arange(self.n_conditions)
        if batch is not None:
            batch = conditions = np.asarray(batch, dtype=np.int64)
            position = np.full(self.n_conditions, -1)
            position[batch] = np.arange(batch.size)
            rows = position[self.data.cond_index]
            arrays = {
                **{k: v for k, v in arrays.items() if k != "distinct"},  # positions in the whole table
                "cond": {k: v[batch] for k, v in arrays["cond"].items()},
                "data": {
                    # rows are gathered by their remapped conditions, never sliced as a grid
                    **{k: v for k, v in arrays["data"].items() if k != "grid"},
                    "cond": jnp.asarray(np.maximum(rows, 0)),
                    "weight": jnp.asarray(np.where(rows >= 0, self.n_conditions / batch.size, 0.0)),
                },
            }
        if shooting is not None:
            layout = {k: jnp.asarray(v) for k, v in self._shooting_layout(shooting.segments).items()}
            layout.update(conditions=jnp.asarray(conditions), continuity=jnp.asarray(float(shooting.continuity)))
            arrays = {**arrays, "shooting": layout}
        theta = jnp.asarray(np.asarray(theta, dtype=float))
        sens = None if sensitivity is None else as_sensitivity(sensitivity)
        out, ct = self.engine.objective(self._cm, self.settings, sens, self.mode, theta, arrays)
        self._record("compile_time_objective" if sens is None else f"compile_time_{sens.name}", ct)
        value, grad, data_term, codes, t_reached = out
        result = {"value": value, "grad": grad, "data_term": data_term, "ok": True, "message": ""}
        try:
            self._check(value, grad, codes, t_reached, sens)
        except SolverError as e:
            result["ok"], result["message"] = False, str(e)
        return result

    # ------------------------------------------------------- multiple shooting
    def _shooting_layout(self, segments: int) -> dict[str, np.ndarray]:
        """Segments cut at data times with about equal numbers of time points each:
        start/end times, the segment owning each time, and where each inner segment ends."""
        if not getattr(self.engine, "supports_shooting", False):
            raise DataError(f"multiple shooting runs on the JAX engine only, not on engine {self.engine.name!r}")
        if getattr(self.model, "events", None):
            # a segment's start would lose the trigger states of the events before it
            raise DataError("multiple shooting of a model with events is not supported")
        if self.data.steady.any():
            raise DataError("multiple shooting with steady-state measurements (time inf) is not supported")
        layout = self._layouts.get(segments)
        if layout is None:
            ts = self.data.ts
            cuts = np.unique(np.round(np.linspace(0, ts.size - 1, segments + 1)).astype(np.int64))
            if cuts.size < segments + 1:
                raise DataError(
                    f"multiple shooting with {segments} segments needs at least {segments + 1} distinct data times; "
                    f"the data have {ts.size}"
                )
            inner = cuts[1:-1]
            layout = {
                "t_start": np.concatenate([[self.t0], ts[inner]]),
                "t_end": ts[cuts[1:]],
                "owner": np.searchsorted(inner, np.arange(ts.size), side="right"),
                "end_index": inner,
            }
            self._layouts[segments] = layout
        return layout

    def _state_columns(self) -> dict[int, int]:
        """Observable column -> state index, for observables that are a state itself."""
        n_obs = len(self.model.observables)
        columns = {n_obs + i: i for i in range(self.model.n_states)}
        for k, o in enumerate(self.model.observables.values()):
            if isinstance(o.formula, Sym) and o.formula.name in self.model.states:
                columns[k] = self.model.states.index(o.formula.name)
        return columns

    def shooting_start(self, theta, shooting) -> np.ndarray:
        """``theta`` followed by the segment start states of every condition (C, K-1, n_states),
        for :meth:`evaluate` with ``shooting``: the states simulated at ``theta`` at each segment
        start, replaced by the mean of the data where a state is measured directly there."""
        layout = self._shooting_layout(shooting.segments)
        theta = np.asarray(theta, dtype=float)
        if self._theta_arrays is None:
            self._theta_arrays = self._arrays_at(None)[0]
        (H, _, _, _), _ = self.engine.predict(self._cm, self.settings, self.mode, jnp.asarray(theta), self._theta_arrays)
        n_obs = len(self.model.observables)
        states = np.asarray(H)[:, :, n_obs:]
        # past a failed solve: hold the last finite state
        ok = np.all(np.isfinite(states), axis=2)
        last = np.maximum.accumulate(np.where(ok, np.arange(ok.shape[1]), -1), axis=1)
        held = np.take_along_axis(states, np.maximum(last, 0)[:, :, None], axis=1)
        states = np.where(last[:, :, None] >= 0, held, np.asarray(self._theta_arrays["y0_value"]))
        starts = states[:, layout["end_index"]]
        d = self.data
        segment = np.full(d.ts.size, -1)
        segment[layout["end_index"]] = np.arange(layout["end_index"].size)
        state = np.full(len(self.observables), -1)
        for column, i in self._state_columns().items():
            state[column] = i
        rows = (segment[d.time_index] >= 0) & (state[d.obs_index] >= 0)
        where = (d.cond_index[rows], segment[d.time_index[rows]], state[d.obs_index[rows]])
        sums, counts = np.zeros_like(starts), np.zeros_like(starts)
        np.add.at(sums, where, d.values[rows])
        np.add.at(counts, where, 1.0)
        starts = np.where(counts > 0, sums / np.maximum(counts, 1), starts)
        return np.concatenate([theta, starts.reshape(-1)])

    # ------------------------------------------------------------ params API
    def loss(self, params=None) -> float:
        """The objective at ``params`` (a dict, missing names nominal, or the flat vector)."""
        arrays, theta = self._arrays_at(params)
        out, ct = self.engine.objective(self._cm, self.settings, None, self.mode, theta, arrays)
        self._record("compile_time_loss", ct)
        value, _, _, codes, t_reached = out
        self._raise_for(codes, t_reached)
        return float(value)

    def value_and_grad(
        self, params=None, sensitivity: str | AbstractSensitivity = "checkpoint", *, initial_states: bool = False
    ):
        """``(loss, grad)`` with ``grad`` a dict like ``params``: every mechanistic parameter
        and network array (estimated or not) in its shape; ``model.flatten(grad)`` gives the
        flat vector.

        With ``initial_states=True`` the initial state is an independent variable and
        ``grad`` also holds ``initial.<state>`` for every state (the parameter gradient
        then excludes the path through initial-value expressions). For a model given as
        a function, ``grad`` has the structure of ``params`` (and is a pair
        ``(grad_params, grad_y0)`` with ``initial_states=True``).

        ``sensitivity``: ``"checkpoint"`` (default), ``"adjoint"``, ``"forward"`` or a
        :class:`~pyude.Checkpoint` / :class:`~pyude.Adjoint` / :class:`~pyude.Forward`.
        """
        sens = as_sensitivity(sensitivity)
        z = self._z(params)
        n_p = self.model.n_params
        mask, values = self._fixed_initial(params, z[:n_p], initial_states)
        if initial_states:
            z[n_p:] = values
        est = self._linear_estimation(initial_states)
        arrays = self._arrays(z, est, mask, values)
        out, ct = self.engine.objective(self._cm, self.settings, sens, self.mode, z[est.index], arrays)
        self._record(f"compile_time_{sens.name}", ct)
        value, g, _, codes, t_reached = out
        self._check(value, g, codes, t_reached, sens)
        grad = self.model.unflatten(g[:n_p])
        if initial_states:
            if isinstance(self.model, FunctionModel):
                return float(value), (grad, g[n_p:])
            for i, s in enumerate(self.model.states):
                grad[INITIAL_PREFIX + s] = float(g[n_p + i])
        return float(value), grad

    def _linear_estimation(self, initial_states: bool) -> Estimation:
        """Every parameter (and with ``initial_states`` every initial state) estimated on the
        linear scale: the layout of :meth:`value_and_grad`'s gradient."""
        key = bool(initial_states)
        if key not in self._linear_est:
            n_p, n = self.model.n_params, self.model.n_states
            index = np.arange(n_p + n) if key else np.arange(n_p)
            is_network = np.zeros(index.size, bool)
            is_network[self.estimation.index[self.estimation.is_network]] = True  # l2 as in loss()
            self._linear_est[key] = dataclasses.replace(
                self.estimation,
                names=[],
                index=index,
                scale=np.zeros(index.size, np.int64),
                lower=np.full(index.size, -np.inf),
                upper=np.full(index.size, np.inf),
                is_network=is_network,
                y0_estimated=np.full(n, key),
            )
        return self._linear_est[key]

    # ------------------------------------------------------------ predictions
    def _predict(self, params, ts=None):
        arrays, theta = self._arrays_at(params, ts)
        (H, _, codes, t_reached), ct = self.engine.predict(self._cm, self.settings, self.mode, theta, arrays)
        self._record("compile_time_predict", ct)
        self._raise_for(codes, t_reached)
        return np.asarray(H)

    def predictions(self, params=None) -> pd.DataFrame:
        """The data with ``prediction`` and ``residual`` (value - prediction) columns."""
        d = self.data
        frame = d.frame.copy()
        if self._rows is None:
            H = self._predict(params)
            frame["prediction"] = H[d.cond_index, d.time_index, d.obs_index]
        else:  # per-measurement parameters: evaluated row by row
            arrays, theta = self._arrays_at(params)
            (h, _, codes, t_reached), ct = self.engine.rows(self._cm, self.settings, self.mode, theta, arrays)
            self._record("compile_time_rows", ct)
            self._raise_for(codes, t_reached)
            frame["prediction"] = h
        frame["residual"] = frame["value"] - frame["prediction"]
        return frame

    def simulate(self, params=None, times=None, n_times: int = 200) -> pd.DataFrame:
        """Every observable in the data, per condition, on ``times`` (default: ``n_times``
        points from t0 to the last data time): tidy ``condition, time, observable, value``."""
        ts = check_times(times, self.t0) if times is not None else np.linspace(self.t0, self.data.ts[-1], n_times)
        H = self._predict(params, ts)
        used = sorted(set(self.data.obs_index.tolist()))
        rows = []
        for c, cid in enumerate(self.conditions.ids):
            for o in used:
                rows.append(pd.DataFrame({"condition": cid, "time": ts, "observable": self.observables[o], "value": H[c, :, o]}))
        return pd.concat(rows, ignore_index=True)

    def __repr__(self) -> str:
        return (
            f"Problem({self.model.name!r}, {len(self.data.values)} data points, {self.n_conditions} condition(s), "
            f"{self.estimation.size} estimated, solver={self.solver})"
        )
