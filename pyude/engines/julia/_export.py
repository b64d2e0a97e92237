"""What the Python side sends to PyUDE.jl: the spec as JSON, and the weight layout.

The spec JSON carries every expression as the tree pyude's parser produced
(``pyude.spec.to_json``): Julia never parses a string. Names appear only as data
(they index states, parameters and inputs); the Julia side turns them into
``u[i]``, ``θ.mech[j]``, ``inp[k]``.

Weight layout: the spec's flat vector holds each network weight ``W`` of shape
(out, in) row-major. Julia arrays are column-major, and ``ComponentArray`` appends
each Lux array in memory order, so the same numbers sit in a different order in
θ's flat data. :func:`julia_layout` gives the permutation ``perm`` (1-based) with
``θ_data = p[perm]``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..._errors import SpecError
from ...spec._expr import net_calls, symbols, to_json
from ...spec._model import Model
from ...problem._estimate import PRIORS
from ...spec._networks import Network
from ._graph_export import graph_json

FORMAT = "pyude-julia-spec/1"


def julia_layout(model: Model) -> np.ndarray:
    """``perm`` (1-based, length ``n_params``): θ's flat data in Julia is ``p[perm]``.

    Mechanistic parameters keep their place; inside each weight block of a multilayer
    perceptron the column-major position (i, j) takes the row-major entry ``i * in + j``.
    Graph networks' blocks stay row-major: PyUDE.jl reads each array as the column-major
    array of the reversed shape, the same memory (``_graph_export``).
    """
    perm = np.arange(model.n_params)
    mlps = {name for name, net in model.networks.items() if isinstance(net, Network)}
    for name, shape, offset in model.parameter_layout:
        if len(shape) == 2 and name.split(".")[0] in mlps:
            size = shape[0] * shape[1]
            block = np.arange(offset, offset + size).reshape(shape)  # row-major positions of W[i, j]
            perm[offset : offset + size] = block.ravel(order="F")
    return perm + 1


def to_julia_order(model: Model, p) -> np.ndarray:
    """The flat vector in θ's (column-major) order: what ``ComponentArray`` holds in Julia."""
    return np.asarray(p, dtype=float)[julia_layout(model) - 1]


def from_julia_order(model: Model, data) -> np.ndarray:
    """Inverse of :func:`to_julia_order` (e.g. a gradient read from θ's flat data)."""
    out = np.empty(model.n_params)
    out[julia_layout(model) - 1] = np.asarray(data, dtype=float)
    return out


def rhs_switches(model: Model) -> list:
    """``d = a - b`` of every comparison ``cmp(a, b)`` of t in the right-hand side (affine in t,
    otherwise parameters only; the JAX engine's ``_time_switches``): PyUDE.jl steps onto each
    root (``tstops``), as the JAX engine's step-size controller does."""
    from ..jax._compile import _time_switches

    rhs_exprs = list(model.equations.values()) if model.equations is not None else [
        e for r in model.reactions for e in (r.rate, r.reverse_rate) if e is not None
    ]
    return _time_switches(rhs_exprs, set(model.parameters))


def events_json(model: Model) -> list[dict[str, Any]]:
    """The spec's events for PyUDE.jl, in spec order: the trigger function ``g`` (the event fires
    where it crosses zero upwards), ``strict`` (``gt``/``lt``: false where ``g`` is 0),
    ``fires_initially`` (``initial_value`` false), ``timed`` (the JAX engine's classification,
    :func:`pyude.engines.jax._events.time_triggered`: Julia steps onto the root of ``g`` in t
    instead of locating a crossing) and the assignments ``state := value``."""
    from ..jax._events import time_triggered

    params = set(model.parameters)
    return [
        {
            "id": e.id,
            "g": to_json(e.g),
            "strict": e.strict,
            "fires_initially": e.fires_initially,
            "timed": time_triggered(e.g, params),
            "assignments": [{"state": s, "value": to_json(x)} for s, x in e.assignments],
        }
        for e in model.events
    ]


def julia_spec(model: Model) -> dict[str, Any]:
    """The spec as PyUDE.jl's ``compile_model`` reads it (plain JSON data)."""
    if not isinstance(model, Model):
        raise SpecError("the Julia engine runs model specs only; a model given as a Python function needs engine='jax'")
    if model.n_params == 0:
        raise SpecError("the Julia engine needs a model with at least one parameter")
    layout = {name: off for name, _, off in model.parameter_layout}
    if model.equations is not None:
        rhs: dict[str, Any] = {"kind": "equations", "equations": [to_json(model.equations[s]) for s in model.states]}
    else:
        rhs = {
            "kind": "reactions",
            "stoichiometry": model.stoichiometric_matrix().tolist(),
            "rates": [to_json(r.rate) for r in model.reactions],
            "reverse_rates": [None if r.reverse_rate is None else to_json(r.reverse_rate) for r in model.reactions],
        }
    networks = []
    for name, net in model.networks.items():
        if not isinstance(net, Network):
            networks.append(graph_json(net, _block_start(model, name)))
            continue
        layers, n_in = [], net.inputs
        for layer in net.layers:
            layers.append({"in": n_in, "out": layer.units, "activation": layer.activation, "bias": layer.bias})
            n_in = layer.units
        networks.append({"name": name, "kind": "mlp", "inputs": net.inputs, "outputs": n_in,
                         "offset": layout[net.shapes()[0][0]], "layers": layers})
    return {
        "format": FORMAT,
        "name": model.name,
        "states": list(model.states),
        "parameters": list(model.parameters),
        "n_params": model.n_params,
        "rhs": rhs,
        "initial": [to_json(model.initial[s]) if s in model.initial else None for s in model.states],
        "networks": networks,
        "inputs": [{"name": n, "interpolation": u.interpolation} for n, u in model.inputs.items()],
        "observables": [
            {"name": o.name, "formula": to_json(o.formula), "sigma": None if o.sigma is None else to_json(o.sigma)}
            for o in model.observables.values()
        ],
        "switches": [to_json(d) for d in rhs_switches(model)],
        "assignments": [{"name": name, "value": to_json(node)} for name, node in model.assignments.items()],
        "events": events_json(model),
        "julia_layout": julia_layout(model).tolist(),
    }


def _block_start(model: Model, name: str) -> int:
    """Where network ``name``'s block starts: after the mechanistic parameters and the arrays
    of the networks before it (the spec's layout; also for a network without parameters)."""
    before = list(model.networks)[: list(model.networks).index(name)]
    end = len(model.parameters)
    for pname, shape, off in model.parameter_layout:
        if pname.split(".")[0] in before:
            end = max(end, off + int(np.prod(shape)))
    return end


def julia_spec_json(model: Model) -> str:
    """:func:`julia_spec` as a JSON string (every float written exactly: ``repr`` round-trips)."""
    return json.dumps(julia_spec(model), allow_nan=False)


def input_arrays(u) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Input signals' knot data, concatenated: ``(times, values, m, lengths)``."""
    if not u:
        empty = np.zeros(0)
        return empty, empty, empty, np.zeros(0, dtype=np.int64)
    times = np.concatenate([np.asarray(d.times, dtype=float) for d in u])
    values = np.concatenate([np.asarray(d.values, dtype=float) for d in u])
    m = np.concatenate([np.asarray(d.m, dtype=float) for d in u])
    lengths = np.array([np.asarray(d.times).size for d in u], dtype=np.int64)
    return times, values, m, lengths


# What PyUDE.jl's objective implements: an objective input beyond these (a feature the JAX
# objective gained later) is refused by name, never dropped (a silently different objective)
PRE_KEYS = {"pre", "pre_p_fixed", "pre_p_value", "pre_p_source", "pre_y_fixed", "pre_y_value", "pre_y_source"}
OBJECTIVE_KEYS = {
    # "distinct": which conditions repeat, for the JAX engine to solve each once; PyUDE.jl
    # solves every condition, with the same result
    "": {"base_z", "index", "scale", "is_network", "l2", "y0_fixed", "y0_value", "y0_estimated", "ts", "t0", "u",
         "cond", "data", "priors", "distinct"},
    "cond": {"p_fixed", "p_value", "p_source", "y_fixed", "y_value", "y_source", "u_fixed", "u_value"} | PRE_KEYS,
    # "grid": the JAX engine's slice for data that fill a block of the prediction table; the
    # same rows are still given by cond/time/obs, which the Julia objective gathers
    "data": {"cond", "time", "obs", "value", "sigma", "noise", "weight", "row", "grid"},
    "priors": {"index", "kind", "mean", "sd", "on"},
}
ROW_KEYS = {"index", "fixed", "value", "source"}
# none, normal, lognormal, laplace, poisson, log10normal, loglaplace, log10laplace (jax/_objective.py)
NOISE_CODES = (0, 1, 2, 3, 4, 5, 6, 7)
PRIOR_KINDS = ("normal", "lognormal")


def check_supported(arrays: dict[str, Any]) -> None:
    """Raise :class:`SpecError` for objective inputs PyUDE.jl does not implement."""
    for group, known in OBJECTIVE_KEYS.items():
        have = set(arrays if not group else arrays.get(group, {}))
        extra = sorted(have - known)
        if extra:
            where = f"arrays[{group!r}]" if group else "arrays"
            raise SpecError(
                f"the Julia engine does not implement objective input(s) {extra} of {where} "
                "(e.g. multiple shooting, steady-state measurements); use engine='jax'"
            )
    extra = sorted(set(arrays["data"].get("row", {})) - ROW_KEYS)
    if extra:
        raise SpecError(f"the Julia engine does not implement objective input(s) {extra} of arrays['data']['row']; "
                        "use engine='jax'")
    kinds = sorted({PRIORS[int(k)] for k in np.asarray(arrays["priors"]["kind"]).reshape(-1)} - set(PRIOR_KINDS))
    if kinds:
        raise SpecError(f"the Julia engine implements normal and lognormal priors only, not {kinds}; use engine='jax'")
    if np.any(np.asarray(arrays["priors"]["on"]) != 0):
        raise SpecError("the Julia engine implements priors over the parameter's value only, not over its log "
                        "(on: log/log10, PEtab's parameterScale priors); use engine='jax'")
    codes = np.unique(np.asarray(arrays["data"]["noise"]))
    unknown = [int(c) for c in codes if int(c) not in NOISE_CODES]
    if unknown:
        raise SpecError(f"the Julia engine does not implement noise model code(s) {unknown}; use engine='jax'")


def _time_dependencies(model: Model) -> tuple[list[str], list[str]]:
    """``(parameters, networks)`` that the times of the right-hand side's switches and of the
    time-triggered events depend on, directly or through the spec's assignments (an assigned
    parameter moves with whatever its expression reads, a network's weights included)."""
    from ..jax._events import time_triggered

    params = set(model.parameters)
    todo = rhs_switches(model) + [e.g for e in model.events if time_triggered(e.g, params)]
    names: set[str] = set()
    nets: set[str] = set()
    while todo:
        tree = todo.pop()
        nets |= {c.net for c in net_calls(tree)}
        for name in symbols(tree) - names:
            names.add(name)
            if name in model.assignments:
                todo.append(model.assignments[name])
    return [p for p in model.parameters if p in names], [n for n in model.networks if n in nets]


def switch_parameters(model: Model) -> list[str]:
    """The parameters the times of the right-hand side's switches and of the time-triggered
    events depend on, directly or through the spec's assignments."""
    return _time_dependencies(model)[0]


def check_switch_times(model: Model, arrays: dict[str, Any]) -> None:
    """Refuse switch and time-triggered event times that move with an estimated parameter:
    PyUDE.jl passes them to the solver as ``tstops`` (and fixed ``DiscreteCallback`` times),
    constants to SciMLSensitivity, so the gradient would lack the event-time term (for a switch
    ``λ·(f(τ-) - f(τ+)) dτ/dθ``) that the JAX engine includes."""
    names, nets = _time_dependencies(model)
    if not names and not nets:
        return
    offsets = {name: off for name, _, off in model.parameter_layout}
    estimated = {int(i) for i in np.asarray(arrays["index"]).ravel() if int(i) < model.n_params}
    for name, shape, off in model.parameter_layout:
        if "." in name and name.split(".")[0] in nets and estimated & set(range(off, off + int(np.prod(shape)))):
            raise SpecError(
                f"the Julia engine does not differentiate switch or event times: a switch or time-triggered "
                f"event time depends on network {name.split('.')[0]!r} (through the spec's assignments), whose "
                "weights are estimated; fix them or use engine='jax'"
            )
    c = arrays["cond"]
    for prefix in ("", "pre_"):
        if prefix + "p_fixed" not in c:
            continue
        fixed, source = np.asarray(c[prefix + "p_fixed"]), np.asarray(c[prefix + "p_source"])
        for name in names:
            j = offsets[name]
            moved = {int(s) for s in source[~fixed[:, j].astype(bool), j]} & estimated
            if moved:
                raise SpecError(
                    f"the Julia engine does not differentiate switch or event times: the right-hand side switches "
                    f"or a time-triggered event fires at a time that depends on parameter {name!r}, which is "
                    "estimated; fix it or use engine='jax'"
                )


def objective_kwargs(arrays: dict[str, Any], mode: str, model: Model | None = None) -> dict[str, Any]:
    """The keyword arguments of ``PyUDE.make_arrays`` from the arrays ``pyude.Problem`` builds
    (the JAX objective's input): numpy, indices 1-based, masks 0/1 integers, and
    ``log Γ(y+1)`` of the poisson rows (a constant of the data). Without per-measurement
    parameters the ``row_*`` arrays are empty; without preequilibration ``pre`` is all 0
    (and the ``pre_*`` overrides repeat the condition's own, unused)."""
    from scipy.special import gammaln

    check_supported(arrays)
    if model is not None:
        check_switch_times(model, arrays)

    def f64(x):
        return np.ascontiguousarray(np.asarray(x, dtype=float))

    def i64(x, shift: int = 0):
        return np.ascontiguousarray(np.asarray(x).astype(np.int64) + shift)

    c, d, pr = arrays["cond"], arrays["data"], arrays["priors"]
    noise = i64(d["noise"])
    value = f64(d["value"])
    n_rows = value.shape[0]
    row = d.get("row", {"index": np.zeros(0), "fixed": np.zeros((n_rows, 0)), "value": np.zeros((n_rows, 0)),
                        "source": np.zeros((n_rows, 0))})
    pre = c if "pre" in c else {f"pre_{k}": c[k] for k in ("p_fixed", "p_value", "p_source", "y_fixed", "y_value",
                                                          "y_source")}
    u_times, u_values, u_m, u_len = input_arrays(arrays["u"])
    return {
        "base_z": f64(arrays["base_z"]),
        "est_index": i64(arrays["index"], 1),
        "scale": i64(arrays["scale"]),
        "is_network": i64(arrays["is_network"]),
        "l2": float(arrays["l2"]),
        "y0_fixed": i64(arrays["y0_fixed"]),
        "y0_value": f64(arrays["y0_value"]),
        "y0_estimated": i64(arrays["y0_estimated"]),
        "ts": f64(arrays["ts"]),
        "t0": float(arrays["t0"]),
        "u_times": u_times,
        "u_values": u_values,
        "u_m": u_m,
        "u_len": u_len,
        "p_fixed": i64(c["p_fixed"]),
        "p_value": f64(c["p_value"]),
        "p_source": i64(c["p_source"], 1),
        "y_fixed": i64(c["y_fixed"]),
        "y_value": f64(c["y_value"]),
        "y_source": i64(c["y_source"], 1),  # -1 (none) becomes 0
        "u_fixed": i64(c["u_fixed"]),
        "u_value": f64(c["u_value"]),
        "pre": i64(c["pre"]) if "pre" in c else np.zeros(np.asarray(c["p_fixed"]).shape[0], dtype=np.int64),
        "pre_p_fixed": i64(pre["pre_p_fixed"]),
        "pre_p_value": f64(pre["pre_p_value"]),
        "pre_p_source": i64(pre["pre_p_source"], 1),
        "pre_y_fixed": i64(pre["pre_y_fixed"]),
        "pre_y_value": f64(pre["pre_y_value"]),
        "pre_y_source": i64(pre["pre_y_source"], 1),
        "d_cond": i64(d["cond"], 1),
        "d_time": i64(d["time"], 1),
        "d_obs": i64(d["obs"], 1),
        "d_value": value,
        "d_sigma": f64(d["sigma"]),
        "d_noise": noise,
        "d_weight": f64(d["weight"]),
        "d_lgamma": np.where(noise == 4, gammaln(np.where(noise == 4, value, 0.0) + 1.0), 0.0),
        "row_index": i64(row["index"], 1),
        "row_fixed": i64(row["fixed"]),
        "row_value": f64(row["value"]),
        "row_source": i64(row["source"], 1),
        "prior_index": i64(pr["index"], 1),
        "prior_kind": i64(pr["kind"]),
        "prior_mean": f64(pr["mean"]),
        "prior_sd": f64(pr["sd"]),
        "mode": str(mode),
    }
