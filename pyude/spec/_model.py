"""The model spec: parse and validate a plain dict, serialize it back, lay out parameters."""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .._errors import DataError, SpecError
from . import _expr
from ._checks import check_keys
from ._events import Event, parse_events
from ._expr import Expr
from ._graph import GraphNetwork, is_graph_network, parse_graph_network
from ._networks import Network, parse_network
from ._reactions import parse_equation, stoichiometry

TOP_KEYS = (
    "name", "description", "states", "parameters", "assignments", "equations", "reactions", "initial", "networks",
    "inputs", "observables", "events",
)
SCALES = ("lin", "log", "log10")
INTERPOLATIONS = ("linear", "zoh", "cubic")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INITIAL_PREFIX = "initial."
NOISE_MODELS = ("normal", "lognormal", "laplace", "poisson", "log10normal", "loglaplace", "log10laplace")


@dataclass(frozen=True)
class Parameter:
    """A mechanistic parameter: nominal value, estimation scale and bounds (on the linear scale)."""

    name: str
    value: float
    scale: str = "lin"
    bounds: tuple[float, float] | None = None


@dataclass(frozen=True)
class Reaction:
    """``reactants -> products`` at net rate ``rate - reverse_rate``."""

    equation: str
    reactants: dict[str, float]
    products: dict[str, float]
    rate: Expr
    reverse_rate: Expr | None
    rate_text: str
    reverse_rate_text: str | None


@dataclass(frozen=True)
class Input:
    """An exogenous signal u(t) given at knots; held constant outside ``[times[0], times[-1]]``."""

    name: str
    times: np.ndarray
    values: np.ndarray
    interpolation: str = "linear"


@dataclass(frozen=True)
class Observable:
    """What is measured: ``formula`` h(t, x, p, u) with a noise model.

    ``noise`` is ``None`` for a plain observable (least squares), else one of
    :data:`NOISE_MODELS`; ``sigma`` is the noise scale, an expression of the same
    symbols as the formula (parameters, states, inputs, ``t``, network calls), e.g.
    ``sigma_abs + sigma_rel * pERK`` for an absolute plus relative error (``None``: 1, or
    the data's ``sigma`` column).
    """

    name: str
    formula: Expr
    formula_text: Any
    noise: str | None = None
    sigma: Expr | None = None
    sigma_text: Any = None


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SpecError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise SpecError(f"{where}: {value!r} is not finite")
    return float(value)


def _check_name(name, where: str) -> str:
    if not isinstance(name, str) or not _IDENT.match(name):
        raise SpecError(f"{where}: {name!r} is not a valid name (letters, digits and '_', not starting with a digit)")
    if name == _expr.TIME:
        raise SpecError(f"{where}: the name 't' is reserved for time")
    if name in _expr.RESERVED:
        raise SpecError(f"{where}: the name {name!r} is reserved for a function")
    return name


def _read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise SpecError(f"cannot read model file {str(path)!r}: {e.strerror}") from None


def _parse_input(name: str, spec, where: str) -> Input:
    if not isinstance(spec, Mapping):
        raise SpecError(f"{where}: expected a mapping with 'times', 'values' and optional 'interpolation'")
    check_keys(spec, ("times", "values", "interpolation"), where, required=("times", "values"))
    try:
        times = np.asarray(spec["times"], dtype=float)
        values = np.asarray(spec["values"], dtype=float)
    except (TypeError, ValueError) as e:
        raise SpecError(f"{where}: times and values must be lists of numbers ({e})") from None
    if times.ndim != 1 or times.size < 1:
        raise SpecError(f"{where}.times: expected a non-empty list of numbers")
    if values.shape != times.shape:
        raise SpecError(f"{where}: 'values' has {values.size} entries but 'times' has {times.size}")
    if not (np.all(np.isfinite(times)) and np.all(np.isfinite(values))):
        raise SpecError(f"{where}: times and values must be finite")
    if np.any(np.diff(times) <= 0):
        i = int(np.argmax(np.diff(times) <= 0))
        raise SpecError(f"{where}.times: must be strictly increasing (times[{i}]={times[i]}, times[{i + 1}]={times[i + 1]})")
    interp = spec.get("interpolation", "linear")
    if interp not in INTERPOLATIONS:
        raise SpecError(f"{where}.interpolation: unknown {interp!r}; allowed: {', '.join(INTERPOLATIONS)}")
    return Input(name, times, values, interp)


class Model:
    """A dynamical model given by a spec: states, parameters, equations or reactions,
    initial values, networks and inputs.

    The right-hand side is ``dx/dt = f(t, x, p, u(t))`` with ``f`` the ``equations``,
    or ``dx/dt = S r(t, x, p, u(t))`` with ``S`` the stoichiometric matrix of the
    ``reactions`` and ``r`` their net rates. Build one with :meth:`from_dict`,
    :meth:`from_yaml` or :meth:`from_json`; the spec is untrusted input and is fully
    validated (a :class:`~pyude.SpecError` names the key and symbol at fault).

    The flat parameter vector holds the mechanistic parameters in spec order, then
    each network's arrays (``W`` (out, in) row-major, then ``b``, layer by layer).
    """

    def __init__(self, spec: Mapping[str, Any]):
        if not isinstance(spec, Mapping):
            raise SpecError(f"a model spec must be a mapping, got {type(spec).__name__}")
        spec = copy.deepcopy(dict(spec))
        unknown = [k for k in spec if k not in TOP_KEYS]
        if unknown:
            raise SpecError(f"unknown top-level key(s) {unknown}; allowed: {', '.join(TOP_KEYS)}")
        self.name: str = str(spec.get("name", "model"))
        self.description: str | None = spec.get("description")

        states = spec.get("states")
        if not isinstance(states, list) or not states:
            raise SpecError("states: expected a non-empty list of state names")
        self.states: list[str] = [_check_name(s, f"states[{i}]") for i, s in enumerate(states)]

        raw_params = spec.get("parameters") or {}
        if not isinstance(raw_params, Mapping):
            raise SpecError("parameters: expected a mapping name -> value (or {value, scale, bounds})")
        self.parameters: dict[str, Parameter] = {}
        for name, p in raw_params.items():
            self.parameters[name] = self._parse_parameter(name, p)

        raw_nets = spec.get("networks") or {}
        if not isinstance(raw_nets, Mapping):
            raise SpecError("networks: expected a mapping name -> {inputs, layers} or {inputs, layers, forward}")
        # two forms: an MLP {inputs, layers} or a graph network {inputs, layers, forward} (PEtab SciML)
        self.networks: dict[str, Network | GraphNetwork] = {
            _check_name(n, f"networks.{n}"): (parse_graph_network if is_graph_network(s) else parse_network)(
                n, s, f"networks.{n}"
            )
            for n, s in raw_nets.items()
        }

        raw_inputs = spec.get("inputs") or {}
        if not isinstance(raw_inputs, Mapping):
            raise SpecError("inputs: expected a mapping name -> {times, values, interpolation}")
        self.inputs: dict[str, Input] = {
            _check_name(n, f"inputs.{n}"): _parse_input(n, s, f"inputs.{n}") for n, s in raw_inputs.items()
        }
        self._check_unique()

        rhs_names = set(self.states) | set(self.parameters) | set(self.inputs) | {_expr.TIME}
        net_shapes = {n: (net.inputs, net.outputs) for n, net in self.networks.items()}
        self._assignment_text: dict[str, Any] = {}
        self.assignments: dict[str, Expr] = self._parse_assignments(spec.get("assignments") or {}, net_shapes)

        has_eq, has_rx = "equations" in spec, "reactions" in spec
        if has_eq == has_rx:
            raise SpecError("give exactly one of 'equations' and 'reactions'")
        self.equations: dict[str, Expr] | None = None
        self._equation_text: dict[str, Any] | None = None
        self.reactions: list[Reaction] | None = None
        if has_eq:
            eqs = spec["equations"]
            if not isinstance(eqs, Mapping):
                raise SpecError("equations: expected a mapping state -> expression")
            for name in eqs:
                if name not in self.states:
                    raise SpecError(f"equations.{name}: {name!r} is not a state")
            missing = [s for s in self.states if s not in eqs]
            if missing:
                raise SpecError(f"equations: state(s) without equation: {missing}")
            self._equation_text = {s: eqs[s] for s in self.states}
            self.equations = {}
            for s in self.states:
                node = _expr.parse(eqs[s], f"equations.{s}")
                _expr.check(node, f"equations.{s}", rhs_names, net_shapes)
                self.equations[s] = node
        else:
            rxs = spec["reactions"]
            if not isinstance(rxs, list) or not rxs:
                raise SpecError("reactions: expected a non-empty list of {equation, rate}")
            self.reactions = [self._parse_reaction(i, r, rhs_names, net_shapes) for i, r in enumerate(rxs)]

        raw_init = spec.get("initial") or {}
        if not isinstance(raw_init, Mapping):
            raise SpecError("initial: expected a mapping state -> number or expression of parameters")
        init_names = set(self.parameters)
        self._initial_text: dict[str, Any] = {}
        self.initial: dict[str, Expr] = {}
        for s, v in raw_init.items():
            if s not in self.states:
                raise SpecError(f"initial.{s}: {s!r} is not a state")
            node = _expr.parse(v, f"initial.{s}")
            _expr.check(node, f"initial.{s}", init_names, {})
            self.initial[s] = node
            self._initial_text[s] = v

        raw_obs = spec.get("observables") or {}
        if not isinstance(raw_obs, Mapping):
            raise SpecError("observables: expected a mapping name -> formula or {formula, noise, sigma}")
        obs_names = rhs_names
        self.observables: dict[str, Observable] = {}
        for name, o in raw_obs.items():
            self.observables[_check_name(name, f"observables.{name}")] = self._parse_observable(
                name, o, obs_names, net_shapes
            )

        self.events: list[Event] = parse_events(
            spec.get("events") or [], self.states, set(self.parameters), rhs_names, net_shapes
        )

        self._layout = self._make_layout()

    # ----------------------------------------------------------------- parsing
    def _parse_assignments(self, raw, net_shapes) -> dict[str, Expr]:
        """Parameters computed once per condition, before the solve (``p_k := e_k(p)``, in order)."""
        if not isinstance(raw, Mapping):
            raise SpecError("assignments: expected a mapping parameter -> expression of parameters")
        out: dict[str, Expr] = {}
        for name, text in raw.items():
            where = f"assignments.{name}"
            if name not in self.parameters:
                raise SpecError(f"{where}: {name!r} is not a parameter (an assignment sets a parameter)")
            node = _expr.parse(text, where)
            _expr.check(node, where, set(self.parameters), net_shapes)
            later = sorted((_expr.symbols(node) & set(raw)) - set(out))
            if later:
                raise SpecError(f"{where}: uses {later}, assigned at or after this entry (assignments run in order)")
            out[name] = node
            self._assignment_text[name] = text
        return out

    def _parse_observable(self, name, o, names, nets) -> Observable:
        where = f"observables.{name}"
        if isinstance(o, Mapping):
            check_keys(o, ("formula", "noise", "sigma"), where, required=("formula",))
            formula, noise, sigma = o["formula"], o.get("noise"), o.get("sigma")
        else:
            formula, noise, sigma = o, None, None
        node = _expr.parse(formula, f"{where}.formula")
        _expr.check(node, f"{where}.formula", names, nets)
        if noise is not None and noise not in NOISE_MODELS:
            raise SpecError(f"{where}.noise: unknown noise model {noise!r}; allowed: {', '.join(NOISE_MODELS)}")
        sigma_node = None
        if sigma is not None:
            if noise == "poisson":
                raise SpecError(f"{where}.sigma: a poisson observable has no sigma (its variance is its mean)")
            sigma_node = _expr.parse(sigma, f"{where}.sigma")
            _expr.check(sigma_node, f"{where}.sigma", names, nets)
        return Observable(name, node, formula, noise, sigma_node, sigma)

    def _parse_parameter(self, name, p) -> Parameter:
        where = f"parameters.{name}"
        _check_name(name, where)
        if isinstance(p, Mapping):
            check_keys(p, ("value", "scale", "bounds"), where, required=("value",))
            value = _number(p["value"], f"{where}.value")
            scale = p.get("scale", "lin")
            if scale not in SCALES:
                raise SpecError(f"{where}.scale: unknown scale {scale!r}; allowed: {', '.join(SCALES)}")
            bounds = p.get("bounds")
            if bounds is not None:
                if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
                    raise SpecError(f"{where}.bounds: expected [lower, upper]")
                lo = _number(bounds[0], f"{where}.bounds[0]")
                hi = _number(bounds[1], f"{where}.bounds[1]")
                if not lo < hi:
                    raise SpecError(f"{where}.bounds: lower {lo} must be below upper {hi}")
                if not lo <= value <= hi:
                    raise SpecError(f"{where}: value {value} is outside bounds [{lo}, {hi}]")
                if scale != "lin" and lo <= 0:
                    raise SpecError(f"{where}.bounds: a {scale}-scaled parameter needs a positive lower bound")
                bounds = (lo, hi)
            if scale != "lin" and value <= 0:
                raise SpecError(f"{where}: a {scale}-scaled parameter needs a positive value, got {value}")
            return Parameter(name, value, scale, bounds)
        return Parameter(name, _number(p, where))

    def _parse_reaction(self, i, r, names, nets) -> Reaction:
        where = f"reactions[{i}]"
        if not isinstance(r, Mapping):
            raise SpecError(f"{where}: expected a mapping with 'equation' and 'rate'")
        check_keys(r, ("equation", "rate", "reverse_rate"), where, required=("equation", "rate"))
        reactants, products, reversible = parse_equation(r["equation"], where, self.states)
        rate = _expr.parse(r["rate"], f"{where}.rate")
        _expr.check(rate, f"{where}.rate", names, nets)
        reverse = None
        if reversible:
            if "reverse_rate" not in r:
                raise SpecError(f"{where}: reversible reaction {r['equation']!r} needs 'reverse_rate'")
            reverse = _expr.parse(r["reverse_rate"], f"{where}.reverse_rate")
            _expr.check(reverse, f"{where}.reverse_rate", names, nets)
        elif "reverse_rate" in r:
            raise SpecError(f"{where}: 'reverse_rate' given but {r['equation']!r} is not reversible (use '<->')")
        return Reaction(r["equation"], reactants, products, rate, reverse, r["rate"], r.get("reverse_rate"))

    def _check_unique(self) -> None:
        seen: dict[str, str] = {}
        for kind, names in (
            ("state", self.states),
            ("parameter", list(self.parameters)),
            ("input", list(self.inputs)),
            ("network", list(self.networks)),
        ):
            for n in names:
                if n in seen:
                    raise SpecError(f"duplicate name {n!r}: used as {seen[n]} and as {kind}")
                seen[n] = kind

    def _make_layout(self) -> list[tuple[str, tuple[int, ...], int]]:
        layout, offset = [], 0
        for name in self.parameters:
            layout.append((name, (), offset))
            offset += 1
        for net in self.networks.values():
            for name, shape in net.shapes():
                layout.append((name, shape, offset))
                offset += int(np.prod(shape))
        self._n_params = offset
        return layout

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> "Model":
        return cls(spec)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Model":
        """Load a spec from a YAML file (safe loading only)."""
        text = _read_text(path)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise SpecError(f"{path}: invalid YAML: {e}") from None
        return cls(data)

    @classmethod
    def from_json(cls, path_or_text: str | Path) -> "Model":
        """Load a spec from a JSON file path or a JSON string."""
        text = str(path_or_text)
        if not text.lstrip().startswith("{"):
            text = _read_text(path_or_text)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"invalid JSON: {e}") from None
        return cls(data)

    # ---------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data; ``Model.from_dict(m.to_dict())`` equals ``m``."""
        d: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            d["description"] = self.description
        d["states"] = list(self.states)
        params = {}
        for p in self.parameters.values():
            if p.scale == "lin" and p.bounds is None:
                params[p.name] = p.value
            else:
                entry: dict[str, Any] = {"value": p.value, "scale": p.scale}
                if p.bounds is not None:
                    entry["bounds"] = list(p.bounds)
                params[p.name] = entry
        d["parameters"] = params
        if self._assignment_text:
            d["assignments"] = dict(self._assignment_text)
        if self.equations is not None:
            d["equations"] = dict(self._equation_text)
        else:
            rxs = []
            for r in self.reactions:
                entry = {"equation": r.equation, "rate": r.rate_text}
                if r.reverse_rate is not None:
                    entry["reverse_rate"] = r.reverse_rate_text
                rxs.append(entry)
            d["reactions"] = rxs
        if self._initial_text:
            d["initial"] = dict(self._initial_text)
        if self.networks:
            d["networks"] = {n: net.to_dict() for n, net in self.networks.items()}
        if self.observables:
            obs: dict[str, Any] = {}
            for o in self.observables.values():
                entry = {"formula": o.formula_text}
                if o.noise is not None:
                    entry["noise"] = o.noise
                if o.sigma_text is not None:
                    entry["sigma"] = o.sigma_text
                obs[o.name] = entry
        if self.inputs:
            d["inputs"] = {
                n: {"times": u.times.tolist(), "values": u.values.tolist(), "interpolation": u.interpolation}
                for n, u in self.inputs.items()
            }
        if self.observables:
            d["observables"] = obs
        if self.events:
            d["events"] = [e.to_dict() for e in self.events]
        return d

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text)
        return text

    def __eq__(self, other) -> bool:
        return isinstance(other, Model) and self.fingerprint() == other.fingerprint()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def fingerprint(self) -> str:
        """A canonical string of the spec: equal specs compile to the same code."""
        if not hasattr(self, "_fingerprint"):
            self._fingerprint = json.dumps(self.to_dict(), sort_keys=True)
        return self._fingerprint

    def __repr__(self) -> str:
        kind = "equations" if self.equations is not None else f"{len(self.reactions)} reactions"
        nets = f", networks={list(self.networks)}" if self.networks else ""
        return f"Model({self.name!r}, states={self.states}, {kind}, {self.n_params} parameters{nets})"

    # --------------------------------------------------------------- structure
    @property
    def n_states(self) -> int:
        return len(self.states)

    @property
    def n_params(self) -> int:
        """Length of the flat parameter vector (mechanistic parameters + network weights)."""
        return self._n_params

    @property
    def parameter_layout(self) -> list[tuple[str, tuple[int, ...], int]]:
        """``(name, shape, offset)`` of every entry of the flat parameter vector."""
        return list(self._layout)

    def stoichiometric_matrix(self) -> np.ndarray:
        """S (n_states x n_reactions); only for reaction models."""
        if self.reactions is None:
            raise SpecError("this model is given by equations, not reactions: it has no stoichiometric matrix")
        return stoichiometry([{"equation": r.equation} for r in self.reactions], self.states)

    # -------------------------------------------------------------- parameters
    def init_params(self, seed: int = 0) -> dict[str, float | np.ndarray]:
        """Nominal mechanistic values and freshly initialised network weights (reproducible by ``seed``)."""
        out: dict[str, Any] = {name: p.value for name, p in self.parameters.items()}
        rng = np.random.default_rng(seed)
        for net in self.networks.values():
            out.update(net.init(rng))
        return out

    def flatten(self, params: Mapping[str, Any] | np.ndarray | None) -> np.ndarray:
        """Flat float64 vector in the spec's layout.

        ``params`` is a dict (missing names take their nominal values, network weights
        those of ``init_params(seed=0)``; keys ``initial.<state>`` are initial-state
        overrides and are not part of the vector) or a vector of length ``n_params``.
        """
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            vec = np.asarray(params, dtype=float)
            if vec.shape != (self.n_params,):
                raise DataError(f"parameter vector has shape {vec.shape}, expected ({self.n_params},)")
            return vec.copy()
        names = {name for name, _, _ in self._layout}
        unknown = [k for k in params if k not in names and not str(k).startswith(INITIAL_PREFIX)]
        if unknown:
            raise DataError(f"unknown parameter name(s) {unknown}; known: {sorted(names)}")
        nominal = None
        vec = np.empty(self.n_params)
        for name, shape, off in self._layout:
            size = int(np.prod(shape))
            if name in params:
                val = np.asarray(params[name], dtype=float)
            else:
                if nominal is None:
                    nominal = self.init_params(0)
                val = np.asarray(nominal[name], dtype=float)
            if val.shape != shape:
                raise DataError(f"parameter {name!r} has shape {val.shape}, expected {shape}")
            vec[off : off + size] = val.reshape(-1)
        return vec

    def unflatten(self, vector) -> dict[str, float | np.ndarray]:
        """Inverse of :meth:`flatten`: scalars as floats, network arrays in their shapes."""
        vec = np.asarray(vector, dtype=float)
        if vec.shape != (self.n_params,):
            raise DataError(f"parameter vector has shape {vec.shape}, expected ({self.n_params},)")
        out: dict[str, Any] = {}
        for name, shape, off in self._layout:
            size = int(np.prod(shape))
            out[name] = float(vec[off]) if shape == () else vec[off : off + size].reshape(shape).copy()
        return out

    def initial_overrides(self, params: Mapping[str, Any] | None) -> dict[str, float]:
        """The ``initial.<state>`` entries of a params dict, checked."""
        out: dict[str, float] = {}
        if not isinstance(params, Mapping):
            return out
        for k, v in params.items():
            if str(k).startswith(INITIAL_PREFIX):
                s = k[len(INITIAL_PREFIX) :]
                if s not in self.states:
                    raise DataError(f"{k!r}: {s!r} is not a state")
                out[s] = float(v)
        return out


def as_model(model) -> Model:
    """Accept a :class:`Model` or a spec dict."""
    if isinstance(model, Model):
        return model
    if isinstance(model, Mapping):
        return Model(model)
    raise SpecError(f"expected a pyude.Model or a spec dict, got {type(model).__name__}")
