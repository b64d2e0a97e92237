"""Which quantities are estimated, on which scale, within which bounds, with which priors.

The optimiser works on a vector theta of the estimated entries, each on its
declared scale (``lin``: x, ``log``: log x, ``log10``: log10 x). The model sees
``z = [p, y0]``: the flat parameter vector followed by one initial value per
state (used only for the states whose initial value is estimated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import DataError
from ..spec._model import INITIAL_PREFIX

SCALE_CODES = {"lin": 0, "log": 1, "log10": 2}
PRIORS = ("normal", "lognormal", "uniform", "laplace", "loglaplace")  # codes of the objective's prior arrays
# each prior's two numbers, in the objective's (mean, sd) arrays
PRIOR_KEYS = {"normal": ("mean", "sd"), "lognormal": ("mean", "sd"), "uniform": ("lower", "upper"),
              "laplace": ("loc", "scale"), "loglaplace": ("loc", "scale")}


def to_scale(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(codes == 1, np.log(x), np.where(codes == 2, np.log10(x), x))


def from_scale(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.where(codes == 1, np.exp(x), np.where(codes == 2, 10.0**x, x))


@dataclass(frozen=True)
class Estimation:
    """The map theta <-> z and the penalty terms.

    ``names[k]`` is the name of theta's ``k``-th entry (``<param>``, ``<net>.<l>.weight[i]``
    style entries are grouped by array: see :meth:`labels`); ``index[k]`` its position
    in z; ``scale[k]`` its scale code; ``lower/upper`` bounds on the estimation scale.
    """

    names: list[str]  # estimated arrays/parameters, in z order
    index: np.ndarray
    scale: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    is_network: np.ndarray
    y0_estimated: np.ndarray  # (n_states,) bool
    prior_index: np.ndarray  # into z
    prior_kind: np.ndarray  # index into PRIORS
    prior_mean: np.ndarray  # the prior's first number (PRIOR_KEYS)
    prior_sd: np.ndarray  # its second
    prior_on: np.ndarray  # 0: density over the value, 1: over its log, 2: over its log10
    l2: float

    @property
    def size(self) -> int:
        return int(self.index.size)

    @property
    def bounds(self) -> list[tuple[float | None, float | None]]:
        return [
            (None if not np.isfinite(lo) else float(lo), None if not np.isfinite(hi) else float(hi))
            for lo, hi in zip(self.lower, self.upper)
        ]

    def theta_of(self, z: np.ndarray) -> np.ndarray:
        return to_scale(np.asarray(z)[self.index], self.scale)

    def z_of(self, theta: np.ndarray, base_z: np.ndarray) -> np.ndarray:
        z = np.array(base_z, dtype=float)
        z[self.index] = from_scale(theta, self.scale)
        return z

    def clip(self, theta: np.ndarray) -> np.ndarray:
        return np.clip(theta, self.lower, self.upper)


def build_estimation(
    model,
    estimate: Sequence[str] | None,
    priors: Mapping[str, Any] | None,
    l2: float,
) -> Estimation:
    """Resolve ``estimate`` names (None: all mechanistic parameters and network arrays)."""
    n_p, n = model.n_params, model.n_states
    layout = list(getattr(model, "parameter_layout", []))
    params = getattr(model, "parameters", {})
    networks = getattr(model, "networks", {})
    if not layout:  # a model given as a function: its whole parameter pytree, linear scale
        layout = [("p", (n_p,), 0)] if n_p else []
    entries: dict[str, tuple[int, int]] = {name: (off, int(np.prod(shape))) for name, shape, off in layout}
    groups: dict[str, list[str]] = {
        net: [name for name, _ in networks[net].shapes()] for net in networks
    }
    if estimate is None:
        chosen = [name for name, _, _ in layout]
    else:
        if isinstance(estimate, str):
            estimate = [estimate]
        chosen = []
        for name in estimate:
            if name in groups:
                chosen.extend(groups[name])
            elif name in entries or (name.startswith(INITIAL_PREFIX) and name[len(INITIAL_PREFIX) :] in model.states):
                chosen.append(name)
            else:
                known = list(params) + list(groups) + [INITIAL_PREFIX + s for s in model.states]
                raise DataError(f"estimate: {name!r} is not a parameter, network or initial state; known: {known}")
        chosen = list(dict.fromkeys(chosen))

    index, scale, lower, upper, is_net, names = [], [], [], [], [], []
    y0_est = np.zeros(n, bool)
    for name in chosen:
        if name.startswith(INITIAL_PREFIX) and name not in entries:
            i = model.states.index(name[len(INITIAL_PREFIX) :])
            y0_est[i] = True
            index.append(n_p + i)
            scale.append(0)
            lower.append(-np.inf)
            upper.append(np.inf)
            is_net.append(False)
            names.append(name)
            continue
        off, size = entries[name]
        p = params.get(name)
        code = SCALE_CODES[p.scale] if p is not None else 0
        lo, hi = (p.bounds if p is not None and p.bounds is not None else (-np.inf, np.inf))
        lo_s = to_scale(np.array(lo), np.array(code)) if np.isfinite(lo) else -np.inf
        hi_s = to_scale(np.array(hi), np.array(code)) if np.isfinite(hi) else np.inf
        for k in range(size):
            index.append(off + k)
            scale.append(code)
            lower.append(float(lo_s))
            upper.append(float(hi_s))
            is_net.append(p is None)
        names.append(name)

    p_index, p_kind, p_mean, p_sd, p_on = [], [], [], [], []
    for name, spec in (priors or {}).items():
        where = f"priors.{name}"
        if name not in params and name not in groups and name not in entries:
            known = list(params) + list(groups) + [n for g in groups.values() for n in g]
            raise DataError(f"{where}: {name!r} is not a parameter, network or network array ({known})")
        kind, a, b, on = _prior(spec, where)
        # a network (all its arrays) or one array: the same prior on every entry
        for entry in groups.get(name, [name]):
            off, size = entries[entry]
            p_index.extend(range(off, off + size))
            p_kind.extend([kind] * size)
            p_mean.extend([a] * size)
            p_sd.extend([b] * size)
            p_on.extend([on] * size)
    l2 = float(l2)
    if not (np.isfinite(l2) and l2 >= 0):
        raise DataError(f"l2 must be a non-negative number, got {l2}")
    return Estimation(
        names,
        np.asarray(index, dtype=np.int64),
        np.asarray(scale, dtype=np.int64),
        np.asarray(lower, dtype=float),
        np.asarray(upper, dtype=float),
        np.asarray(is_net, dtype=bool),
        y0_est,
        np.asarray(p_index, dtype=np.int64),
        np.asarray(p_kind, dtype=np.int64),
        np.asarray(p_mean, dtype=float),
        np.asarray(p_sd, dtype=float),
        np.asarray(p_on, dtype=np.int64),
        l2,
    )


def _prior(spec, where: str) -> tuple[int, float, float, int]:
    """``(kind, a, b, on)``: the two numbers of ``PRIOR_KEYS[dist]``; ``on`` the scale code
    of the variable the density is over (``on: log10``: over ``log10(value)``, no Jacobian,
    as PEtab's parameterScale priors)."""
    if not isinstance(spec, Mapping) or spec.get("dist") not in PRIORS:
        raise DataError(f"{where}: expected {{dist: normal|lognormal, mean: m, sd: s}}, "
                        f"{{dist: laplace|loglaplace, loc: m, scale: b}} or {{dist: uniform, lower: a, upper: b}} "
                        f"(optionally on: lin|log|log10), got {spec!r}")
    dist = spec["dist"]
    keys = PRIOR_KEYS[dist]
    unknown = set(spec) - {"dist", "on", *keys}
    if unknown:
        raise DataError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: dist, {', '.join(keys)}, on")
    on = spec.get("on", "lin")
    if on not in SCALE_CODES:
        raise DataError(f"{where}: on must be one of {list(SCALE_CODES)}, got {on!r}")
    if on != "lin" and dist in ("lognormal", "loglaplace"):
        raise DataError(f"{where}: a {dist} prior is over the value itself (on: lin); for a {dist[3:]} density "
                        f"over log(value) use dist: {dist[3:]} with on: log")
    try:
        a, b = float(spec[keys[0]]), float(spec[keys[1]])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where}: {keys[0]!r} and {keys[1]!r} must be numbers") from None
    if dist == "uniform":
        if not (np.isfinite(a) and np.isfinite(b) and a < b):
            raise DataError(f"{where}: need finite lower < upper, got lower={a}, upper={b}")
    elif not (np.isfinite(a) and np.isfinite(b) and b > 0):
        raise DataError(f"{where}: need a finite {keys[0]} and a positive {keys[1]}, got {keys[0]}={a}, {keys[1]}={b}")
    return PRIORS.index(dist), a, b, SCALE_CODES[on]
