"""Tidy measurement data: ``time, observable, value[, sigma]``, validated row by row."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import DataError

REQUIRED = ("time", "observable", "value")


@dataclass(frozen=True)
class Measurements:
    """Data as index arrays into the trajectory at the unique sorted times ``ts``."""

    frame: pd.DataFrame
    ts: np.ndarray
    time_index: np.ndarray
    state_index: np.ndarray
    values: np.ndarray
    weights: np.ndarray


def read_data(data) -> pd.DataFrame:
    if isinstance(data, (str, Path)):
        try:
            return pd.read_csv(data)
        except FileNotFoundError:
            raise DataError(f"data file {str(data)!r} not found") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read data file {str(data)!r}: {e}") from None
    if isinstance(data, pd.DataFrame):
        return data.copy()
    raise DataError(f"data must be a pandas DataFrame or a CSV path, got {type(data).__name__}")


def _numeric(frame: pd.DataFrame, column: str) -> np.ndarray:
    col = pd.to_numeric(frame[column], errors="coerce")
    bad = col.isna() & frame[column].notna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(f"data row {row}: column {column!r} has non-numeric value {frame[column].iloc[row]!r}")
    return col.to_numpy(dtype=float)


def measurements(data, states: list[str], t0: float) -> Measurements:
    """Validate ``data`` against the model's states and initial time."""
    frame = read_data(data).reset_index(drop=True)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(f"data is missing column(s) {missing}; required: {list(REQUIRED)} (optional: sigma)")
    if len(frame) == 0:
        raise DataError("data has no rows")
    time = _numeric(frame, "time")
    value = _numeric(frame, "value")
    for name, col in (("time", time), ("value", value)):
        bad = ~np.isfinite(col)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"data row {row}: {name} is {col[row]} (NaN or inf)")
    early = time < t0
    if early.any():
        row = int(np.argmax(early))
        raise DataError(f"data row {row}: time {time[row]:g} is before the initial time t0 = {t0:g}")
    obs = frame["observable"].astype(str).to_numpy()
    index = {s: i for i, s in enumerate(states)}
    unknown = [i for i, o in enumerate(obs) if o not in index]
    if unknown:
        row = unknown[0]
        raise DataError(f"data row {row}: unknown observable {obs[row]!r}; known: {states}")
    if "sigma" in frame.columns:
        sigma = _numeric(frame, "sigma")
        bad = ~(np.isfinite(sigma) & (sigma > 0))
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"data row {row}: sigma must be positive and finite, got {sigma[row]}")
        weights = 1.0 / sigma**2
    else:
        weights = np.ones_like(value)
    ts, time_index = np.unique(time, return_inverse=True)
    if ts[-1] <= t0:
        raise DataError(f"all data times are at t0 = {t0:g}: nothing to fit")
    state_index = np.array([index[o] for o in obs], dtype=np.int64)
    return Measurements(frame, ts, time_index.astype(np.int64), state_index, value, weights)
