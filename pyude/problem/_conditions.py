"""Experimental conditions: per-condition overrides of parameters, initial states and inputs.

A conditions table has a ``condition`` column (the id used in the data's
``condition`` column) and one column per overridden quantity:

* a mechanistic parameter's name: its value in that condition (a number, or the
  name of another parameter, e.g. a condition-specific one to be estimated);
* a state's name: its initial value (a number or a parameter's name);
* an input's name: the input held at that constant value.

An empty cell means "no override". All conditions are solved in one compiled call
(``Problem(batching=...)``).

An optional ``preequilibration`` column names another condition of the table: the
model is first run to a steady state under that condition's overrides, and the
condition starts from there, except for the states it overrides itself (PEtab's
preequilibration). A condition used only as a preequilibration and not in the data
is not solved on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import DataError

DEFAULT_CONDITION = "default"


@dataclass(frozen=True)
class Conditions:
    """Overrides as dense arrays over (condition, quantity).

    Parameter ``j`` in condition ``c`` is ``p_value[c, j]`` where ``p_fixed[c, j]``,
    else ``p[p_source[c, j]]`` (``p_source`` is the identity unless the table names
    another parameter). State ``i`` starts at ``y_value[c, i]`` where ``y_fixed``,
    at ``p[y_source[c, i]]`` where ``y_source >= 0``, else at the model's initial value.
    """

    ids: list[str]
    p_fixed: np.ndarray
    p_value: np.ndarray
    p_source: np.ndarray
    y_fixed: np.ndarray
    y_value: np.ndarray
    y_source: np.ndarray
    u_fixed: np.ndarray
    u_value: np.ndarray
    frame: pd.DataFrame | None = None
    # preequilibration: pre[c] and the preequilibration condition's overrides
    # (keys p_fixed, p_value, p_source, y_fixed, y_value, y_source), or None
    pre: np.ndarray | None = None
    pre_overrides: dict[str, np.ndarray] | None = None

    @property
    def n(self) -> int:
        return len(self.ids)

    def index(self, condition: str) -> int:
        return self.ids.index(condition)


def read_table(table, what: str) -> pd.DataFrame:
    if isinstance(table, (str, Path)):
        try:
            return pd.read_csv(table)
        except FileNotFoundError:
            raise DataError(f"{what} file {str(table)!r} not found") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read {what} file {str(table)!r}: {e}") from None
    if isinstance(table, pd.DataFrame):
        return table.copy()
    raise DataError(f"{what} must be a pandas DataFrame or a CSV path, got {type(table).__name__}")


def _cell_number(v) -> float | None:
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        return float(v)
    try:
        return float(str(v).strip())
    except ValueError:
        return None


def build_conditions(model, table, data_ids: list[str], param_offsets: dict[str, int]) -> Conditions:
    """Validate ``table`` (or ``None``) against the model and the ids used in the data."""
    states = list(model.states)
    inputs = list(getattr(model, "inputs", {}))
    params = list(param_offsets)
    n_p = model.n_params
    if table is None:
        ids = data_ids
        frame = None
    else:
        frame = read_table(table, "conditions").reset_index(drop=True)
        if "condition" not in frame.columns:
            raise DataError(f"conditions table needs a 'condition' column; it has {list(frame.columns)}")
        ids = [str(c) for c in frame["condition"]]
        seen: dict[str, int] = {}
        for row, c in enumerate(ids):
            if c in seen:
                raise DataError(f"conditions row {row}: condition {c!r} already defined in row {seen[c]}")
            seen[c] = row
        known = set(states) | set(inputs) | set(params)
        pre_of: dict[str, str] = {}
        if PRE in frame.columns:
            for row, v in enumerate(frame[PRE]):
                if v is None or (isinstance(v, float) and math.isnan(v)) or not str(v).strip():
                    continue
                if str(v).strip() not in seen:
                    raise DataError(f"conditions row {row} (condition {ids[row]!r}): preequilibration {v!r} is not a condition of the table")
                pre_of[ids[row]] = str(v).strip()
        for col in frame.columns:
            if col not in ("condition", PRE) and col not in known:
                raise DataError(
                    f"conditions column {col!r} is not a parameter, state or input of the model "
                    f"(parameters: {params}; states: {states}; inputs: {inputs})"
                )
        missing = [c for c in data_ids if c not in seen]
        if missing:
            raise DataError(f"data condition(s) {missing} are not in the conditions table (it defines {ids})")

    if frame is not None and pre_of:
        only_pre = set(pre_of.values()) - set(data_ids) - set(pre_of)
        all_rows = ids
        ids = [c for c in ids if c not in only_pre]
        full = _overrides(model, frame, all_rows, inputs, param_offsets)
        keep = np.array([all_rows.index(c) for c in ids])
        pre = np.array([c in pre_of for c in ids])
        src = np.array([all_rows.index(pre_of.get(c, c)) for c in ids])
        own = {k: v[keep] for k, v in full.items()}
        pre_overrides = {k: full[k][src] for k in ("p_fixed", "p_value", "p_source", "y_fixed", "y_value", "y_source")}
        return Conditions(ids, **own, frame=frame, pre=pre, pre_overrides=pre_overrides)
    return Conditions(ids, **_overrides(model, frame, ids, inputs, param_offsets), frame=frame)


PRE = "preequilibration"


def _overrides(model, frame, ids, inputs, param_offsets) -> dict[str, np.ndarray]:
    """The override arrays of the table's rows ``ids`` (all of them when ``frame`` is None: none)."""
    states = list(model.states)
    n_p = model.n_params
    C, n, m = len(ids), len(states), len(inputs)
    p_fixed = np.zeros((C, n_p), bool)
    p_value = np.zeros((C, n_p))
    p_source = np.tile(np.arange(n_p), (C, 1))
    y_fixed = np.zeros((C, n), bool)
    y_value = np.zeros((C, n))
    y_source = np.full((C, n), -1)
    u_fixed = np.zeros((C, max(m, 0)), bool)
    u_value = np.zeros((C, max(m, 0)))
    if frame is not None:
        rows = {str(c): i for i, c in enumerate(frame["condition"])}
        for k, cid in enumerate(ids):
            row = rows[cid]
            for col in frame.columns:
                if col in ("condition", PRE):
                    continue
                v = frame[col].iloc[row]
                if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
                    continue
                x = _cell_number(v)
                where = f"conditions row {row} (condition {cid!r}), column {col!r}"
                if x is not None and not math.isfinite(x):
                    raise DataError(f"{where}: {v!r} is not finite")
                if x is None and (col in inputs or str(v).strip() not in param_offsets):
                    raise DataError(f"{where}: {v!r} is neither a number nor a parameter of the model")
                if col in param_offsets:
                    j = param_offsets[col]
                    if x is None:
                        p_source[k, j] = param_offsets[str(v).strip()]
                    else:
                        p_fixed[k, j], p_value[k, j] = True, x
                elif col in states:
                    i = states.index(col)
                    if x is None:
                        y_source[k, i] = param_offsets[str(v).strip()]
                    else:
                        y_fixed[k, i], y_value[k, i] = True, x
                else:
                    j = inputs.index(col)
                    u_fixed[k, j], u_value[k, j] = True, x
    return {
        "p_fixed": p_fixed, "p_value": p_value, "p_source": p_source, "y_fixed": y_fixed, "y_value": y_value,
        "y_source": y_source, "u_fixed": u_fixed, "u_value": u_value,
    }
