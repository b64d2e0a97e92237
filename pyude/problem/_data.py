"""Tidy measurement data: ``time, observable, value[, sigma]``, validated row by row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._errors import DataError
from ..spec import _expr
from ._conditions import DEFAULT_CONDITION, read_table

REQUIRED = ("time", "observable", "value")


@dataclass(frozen=True)
class Measurements:
    """Data rows as indices: condition, time (into the sorted unique finite times ``ts``;
    ``len(ts)`` for a steady-state measurement, time ``inf``) and observable."""

    frame: pd.DataFrame
    ts: np.ndarray
    conditions: list[str]
    cond_index: np.ndarray
    time_index: np.ndarray
    obs_index: np.ndarray
    values: np.ndarray
    sigma: np.ndarray  # NaN where the data give none

    @property
    def steady(self) -> np.ndarray:
        """Per condition: whether it has steady-state measurements (time ``inf``)."""
        out = np.zeros(len(self.conditions), bool)
        out[self.cond_index[self.time_index == self.ts.size]] = True
        return out

    def grid(self) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
        """``(start, shape)`` when the rows are, in order, every (condition, time, observable)
        of a contiguous block of the (condition, time, observable) table, else None: such
        data are read off the predictions with one slice instead of a per-row gather."""
        idx = (self.cond_index, self.time_index, self.obs_index)
        if self.cond_index.size == 0:
            return None
        lo = tuple(int(i.min()) for i in idx)
        shape = tuple(int(i.max()) - a + 1 for i, a in zip(idx, lo))
        if int(np.prod(shape)) != self.cond_index.size:
            return None
        block = np.indices(shape).reshape(3, -1) + np.asarray(lo)[:, None]
        return (lo, shape) if all(np.array_equal(i, b) for i, b in zip(idx, block)) else None


def _numeric(frame: pd.DataFrame, column: str) -> np.ndarray:
    col = pd.to_numeric(frame[column], errors="coerce")
    bad = col.isna() & frame[column].notna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(f"data row {row}: column {column!r} has non-numeric value {frame[column].iloc[row]!r}")
    return col.to_numpy(dtype=float)


def measurements(data, observables: list[str], t0: float, known_hint: str = "") -> Measurements:
    """Validate ``data`` against the problem's observable names and initial time."""
    frame = read_table(data, "data").reset_index(drop=True)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(
            f"data is missing column(s) {missing}; required: {list(REQUIRED)} (optional: sigma, condition)"
        )
    if len(frame) == 0:
        raise DataError("data has no rows")
    time = _numeric(frame, "time")
    value = _numeric(frame, "value")
    # time inf: a steady-state measurement
    for name, bad in (("time", np.isnan(time) | (time == -np.inf)), ("value", ~np.isfinite(value))):
        if bad.any():
            row = int(np.argmax(bad))
            col = time if name == "time" else value
            raise DataError(f"data row {row}: {name} is {col[row]} ({'NaN or -inf' if name == 'time' else 'NaN or inf'})")
    early = time < t0
    if early.any():
        row = int(np.argmax(early))
        raise DataError(f"data row {row}: time {time[row]:g} is before the initial time t0 = {t0:g}")
    obs = frame["observable"].astype(str).to_numpy()
    index = {s: i for i, s in enumerate(observables)}
    unknown = [i for i, o in enumerate(obs) if o not in index]
    if unknown:
        row = unknown[0]
        raise DataError(f"data row {row}: unknown observable {obs[row]!r}; known: {known_hint or observables}")
    if "sigma" in frame.columns:
        sigma = _numeric(frame, "sigma")
        given = ~np.isnan(sigma)
        bad = given & ~(np.isfinite(sigma) & (sigma > 0))
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"data row {row}: sigma must be positive and finite, got {sigma[row]}")
    else:
        sigma = np.full_like(value, np.nan)
    if "condition" in frame.columns:
        if frame["condition"].isna().any():
            row = int(np.argmax(frame["condition"].isna().to_numpy()))
            raise DataError(f"data row {row}: empty condition")
        cond = frame["condition"].astype(str).to_numpy()
    else:
        cond = np.full(len(frame), DEFAULT_CONDITION, dtype=object)
    conditions = list(dict.fromkeys(cond))
    cond_pos = {c: i for i, c in enumerate(conditions)}
    ts, time_index = np.unique(time, return_inverse=True)  # inf sorts last: index len(finite ts)
    steady = np.isinf(ts[-1])
    ts = ts[:-1] if steady else ts
    if ts.size == 0:  # only steady-state measurements: the trajectory is the initial state
        ts = np.array([float(t0)])
        time_index = np.ones_like(time_index)
    if ts[-1] <= t0 and not steady:
        raise DataError(f"all data times are at t0 = {t0:g}: nothing to fit")
    obs_index = np.array([index[o] for o in obs], dtype=np.int64)
    cond_index = np.array([cond_pos[c] for c in cond], dtype=np.int64)
    return Measurements(frame, ts, conditions, cond_index, time_index.astype(np.int64), obs_index, value, sigma)


def row_overrides(model, frame: pd.DataFrame, names, offsets: dict[str, int]) -> dict[str, np.ndarray] | None:
    """Per-measurement parameter overrides: ``{"index" (R,), "fixed", "value", "source" (K, R)}``
    from the data columns ``names`` (None when there are none). See the objective's ``row`` arrays."""
    if not names:
        return None
    names = [names] if isinstance(names, str) else list(names)
    dynamic: set[str] = set()
    if getattr(model, "equations", None) is not None:
        for e in model.equations.values():
            dynamic |= _expr.symbols(e)
    for r in getattr(model, "reactions", None) or []:
        dynamic |= _expr.symbols(r.rate) | (_expr.symbols(r.reverse_rate) if r.reverse_rate is not None else set())
    for e in getattr(model, "initial", {}).values():
        dynamic |= _expr.symbols(e)
    K, R = len(frame), len(names)
    index = np.zeros(R, np.int64)
    fixed = np.zeros((K, R), bool)
    value = np.zeros((K, R))
    source = np.zeros((K, R), np.int64)
    for j, name in enumerate(names):
        if name not in offsets:
            raise DataError(f"row parameter {name!r} is not a parameter of the model")
        if name in dynamic:
            raise DataError(f"row parameter {name!r} is used in the dynamics; only observables and sigmas may use it")
        if name not in frame.columns:
            raise DataError(f"row parameter {name!r} has no data column")
        index[j] = offsets[name]
        source[:, j] = offsets[name]
        for k, v in enumerate(frame[name].tolist()):
            if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()):
                continue
            try:
                x = float(v)
            except (TypeError, ValueError):
                x = None
            if x is None:
                ref = str(v).strip()
                if ref not in offsets:
                    raise DataError(f"data row {k}, column {name!r}: {v!r} is neither a number nor a parameter of the model")
                source[k, j] = offsets[ref]
            elif not np.isfinite(x):
                raise DataError(f"data row {k}, column {name!r}: {v!r} is not finite")
            else:
                fixed[k, j], value[k, j] = True, x
    return {"index": index, "fixed": fixed, "value": value, "source": source}
