r"""PEtab v2 problems (with the PEtab SciML extension) -> :class:`~pyude.petab.PetabProblem`.

What is read (tables with pandas, YAML with safe loading; see docs/petab.md):

* ``model_files``: one SBML model (:func:`~pyude.petab._load.read_model`).
* **parameters**: as in v1 (``estimate`` ``0/1`` or ``true/false``; ``parameterScale`` lin
  if absent); priors from ``priorDistribution`` / ``priorParameters``: ``normal``,
  ``logNormal`` (``log-normal``) and ``uniform``, on the linear scale. Rows that the
  mapping table maps to network parameters are PEtab SciML's (see :mod:`._sciml`).
* **observables**: as in v1; ``noiseDistribution`` ``log-normal`` / ``log-laplace`` are
  v1's log transformation with normal / laplace noise.
* **experiments** (``experimentId, time, conditionId``): one pyude condition per
  experiment, starting at its ``time`` (the same for all: the problem's t0).
* **conditions** (``conditionId, targetId, targetValue``, long format): the experiment's
  condition sets parameters, species' initial values or network inputs to a number or
  a parameter id.
* **measurements** (``observableId, experimentId, measurement, time``).

Refused by name (:class:`PetabError` naming the file, the row and the id): experiments
with several periods (preequilibration at ``-inf``, condition changes during a
simulation), different start times, condition values that are expressions, placeholders
(``observablePlaceholders``/``observableParameters``...), aliases in the mapping table
(PEtab ids for model entities), other prior distributions, unknown problem-file keys.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..problem._problem import Problem
from ..spec._model import Model
from ._errors import PetabError
from ._load import PetabProblem, _Builder, _empty, _float, _need, _read_tsv, _tables, read_model

_KEYS = ("format_version", "id", "model_files", "parameter_files", "observable_files", "measurement_files",
         "condition_files", "experiment_files", "mapping_files", "extensions")
_SCIML_KEYS = ("sciml", "petab_sciml")
_V2_NOISE = {"log-normal": ("log", "normal"), "log-laplace": ("log", "laplace")}
_PRIORS = {"normal": "normal", "logNormal": "lognormal", "log-normal": "lognormal", "uniform": "uniform"}
_ESTIMATE = {"1": "1", "0": "0", "true": "1", "false": "0"}


def where_of(origin, k: int, ident: str = "") -> str:
    f, r = origin[k]
    return f"{f}, row {r + 2}" + (f" ({ident!r})" if ident else "")  # +2: header line, 1-based rows


def _cell(v) -> str:
    return "" if _empty(v) else str(v).strip()


def load_v2(path: Path, raw: dict, *, solver: str, rtol: float, atol: float, max_steps: int,
            engine: str, batching: str) -> PetabProblem:
    from ._sciml import SciML

    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise PetabError(f"{path}: unsupported problem-file key(s) {unknown} (PEtab v2: {', '.join(_KEYS)})")
    base = path.parent
    models = raw.get("model_files")
    if not isinstance(models, dict) or len(models) != 1:
        raise PetabError(f"{path}: expected exactly one entry in 'model_files'")
    (model_id, model_entry), = models.items()
    if not isinstance(model_entry, dict) or not isinstance(model_entry.get("location"), str):
        raise PetabError(f"{path}: model_files.{model_id}: expected {{location, language}}")
    language = str(model_entry.get("language", "sbml")).lower()
    if language != "sbml":
        raise PetabError(f"{path}: model_files.{model_id}: model language {language!r} is not supported (only sbml)")
    params_df, params_origin = _tables(base, raw.get("parameter_files"), "parameter")
    sbml = read_model(base / model_entry["location"], params_df)
    obs_df, obs_origin = _tables(base, raw.get("observable_files"), "observable")
    meas_df, meas_origin = _tables(base, raw.get("measurement_files"), "measurement")
    cond_df, cond_origin = _tables(base, raw.get("condition_files"), "condition", required=False)
    exp_df, exp_origin = _tables(base, raw.get("experiment_files"), "experiment", required=False)
    map_df, map_origin = _tables(base, raw.get("mapping_files"), "mapping", required=False)

    extensions = raw.get("extensions") or {}
    if not isinstance(extensions, dict):
        raise PetabError(f"{path}: 'extensions' must be a mapping")
    other = sorted(set(extensions) - set(_SCIML_KEYS))
    if other:
        raise PetabError(f"{path}: PEtab extension(s) {other} are not supported (only the SciML extension)")
    sciml_raw = [extensions[k] for k in _SCIML_KEYS if k in extensions]
    if len(sciml_raw) > 1:
        raise PetabError(f"{path}: the SciML extension is given twice ({', '.join(_SCIML_KEYS)})")

    b = _Builder(sbml)
    sciml = SciML(path, sciml_raw[0] if sciml_raw else {}, b)
    sciml.mapping(map_df, map_origin)
    net_rows = sciml.network_parameter_rows(params_df, params_origin)
    priors = _parameters(b, params_df.drop(index=net_rows), params_origin, net_rows)
    conditions = _conditions(b, sciml, cond_df, cond_origin)
    sciml.resolve(conditions)
    b.observables(_v2_observables(obs_df, obs_origin), obs_origin)
    experiments, t0 = _experiments(exp_df, exp_origin, set(conditions) | sciml.array_conditions)
    data, cond_table = _measurements(b, sciml, meas_df, meas_origin, experiments, conditions)

    spec = sciml.spec(b.spec())
    model = Model.from_dict(spec)
    estimate = [n for n in b.estimated if n in model.parameters] + sciml.estimated
    problem = PetabProblem.__new__(PetabProblem)
    Problem.__init__(
        problem,
        model,
        data,
        cond_table,
        estimate=estimate,
        priors={**priors, **sciml.priors} or None,
        solver=solver,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        t0=t0,
        engine=engine,
        params=sciml.nominal or None,
        batching=batching,
    )
    problem.petab_file = path
    problem.measurements = meas_df
    problem.rename = dict(sbml.rename)
    problem.network_params = dict(sciml.nominal)
    problem._load_options = {"solver": solver, "rtol": rtol, "atol": atol, "max_steps": max_steps, "engine": engine,
                             "batching": batching}
    return problem


# ------------------------------------------------------------------------ parameters
def _parameters(b: _Builder, df: pd.DataFrame, origin, skipped) -> dict[str, Any]:
    """Mechanistic rows through the v1 reader (``estimate`` true/false accepted); the priors."""
    if len(df) == 0 and not skipped:
        raise PetabError("parameter table: no rows")
    keep = [i for i in range(len(origin)) if i not in set(skipped)]
    sub_origin = [origin[i] for i in keep]
    df = df.reset_index(drop=True).copy()
    if "parameterScale" not in df.columns:
        df["parameterScale"] = "lin"
    _need(df, ("parameterId", "lowerBound", "upperBound", "nominalValue", "estimate"), sub_origin[0][0] if sub_origin
          else "parameter table")
    for k, row in df.iterrows():
        est = _cell(row["estimate"]).lower()
        if est not in _ESTIMATE:
            raise PetabError(f"{where_of(sub_origin, k, _cell(row['parameterId']))}: estimate must be 0/1 or "
                             f"true/false, got {row['estimate']!r}")
        df.loc[k, "estimate"] = _ESTIMATE[est]
        if _empty(row["parameterScale"]):
            df.loc[k, "parameterScale"] = "lin"
    legacy = [c for c in ("objectivePriorType", "objectivePriorParameters") if c in df.columns]
    b.parameters(df.drop(columns=legacy + [c for c in ("priorDistribution", "priorParameters") if c in df.columns]),
                 sub_origin)
    priors: dict[str, Any] = {}
    for k, row in df.iterrows():
        pid = _cell(row["parameterId"])
        kind = _cell(row.get("priorDistribution")) or _cell(row.get("objectivePriorType"))
        if not kind:
            continue
        spec = prior_spec(kind, _cell(row.get("priorParameters")) or _cell(row.get("objectivePriorParameters")),
                          where_of(sub_origin, k, pid))
        if b.name(pid) in b.estimated:  # a prior on a fixed parameter is a constant: PEtab leaves it out
            priors[b.name(pid)] = spec
    return priors


def prior_spec(kind: str, values: str, where: str) -> dict[str, Any]:
    """pyude's prior entry for a PEtab ``priorDistribution`` and its ``;``-separated parameters."""
    if kind not in _PRIORS:
        raise PetabError(f"{where}: prior distribution {kind!r} is not supported (supported: {sorted(_PRIORS)})")
    parts = [v.strip() for v in values.split(";")] if values else []
    if len(parts) != 2:
        raise PetabError(f"{where}: priorParameters must be two numbers 'a;b', got {values!r}")
    a, c = (_float(v, f"{where}, priorParameters") for v in parts)
    dist = _PRIORS[kind]
    return {"dist": dist, "lower": a, "upper": c} if dist == "uniform" else {"dist": dist, "mean": a, "sd": c}


# ------------------------------------------------------------------------ observables
def _v2_observables(df: pd.DataFrame, origin) -> pd.DataFrame:
    """v2 noise distributions as v1's (transformation, distribution); placeholders refused."""
    df = df.copy()
    for col in ("observablePlaceholders", "noisePlaceholders"):
        if col in df.columns:
            for k, v in enumerate(df[col]):
                if not _empty(v):
                    raise PetabError(f"{where_of(origin, k, _cell(df['observableId'].iloc[k]))}: {col} "
                                     f"(placeholders) are not supported")
            df = df.drop(columns=[col])
    if "noiseDistribution" in df.columns:
        for k, v in enumerate(df["noiseDistribution"]):
            if _cell(v) in _V2_NOISE:
                trafo = _cell(df["observableTransformation"].iloc[k]) if "observableTransformation" in df else ""
                if trafo not in ("", "lin"):
                    raise PetabError(f"{where_of(origin, k)}: noiseDistribution {v!r} with observableTransformation "
                                     f"{trafo!r}")
                if "observableTransformation" not in df.columns:
                    df["observableTransformation"] = "lin"
                df.loc[k, "observableTransformation"], df.loc[k, "noiseDistribution"] = _V2_NOISE[_cell(v)]
    return df


# ------------------------------------------------------------------------ conditions
def _conditions(b: _Builder, sciml, df: pd.DataFrame, origin) -> dict[str, dict[str, Any]]:
    """``{conditionId: {target name: number or parameter name}}``; targets are parameters,
    species (initial values) or network inputs set per condition (``sciml.condition_input``)."""
    out: dict[str, dict[str, Any]] = {}
    if len(df) == 0:
        return out
    _need(df, ("conditionId", "targetId", "targetValue"), origin[0][0])
    sb = b.sbml
    for k, row in df.iterrows():
        cid, target, value = _cell(row["conditionId"]), _cell(row["targetId"]), _cell(row["targetValue"])
        where = where_of(origin, k, target)
        if not cid:
            raise PetabError(f"{where}: empty conditionId")
        entry = out.setdefault(cid, {})
        name = b.name(target)
        if sciml.condition_input(target):
            name = target
        elif name in sb.rules:
            raise PetabError(f"{where}: targetId {target!r} is an assignment-rule target; setting it is not supported")
        elif target in sciml.hyb:
            raise PetabError(f"{where}: targetId {target!r} is set in the hybridization table")
        elif name not in b.params and name not in sb.states:
            raise PetabError(f"{where}: unknown targetId {target!r} (not a parameter, species or network input)")
        if name in entry:
            raise PetabError(f"{where}: condition {cid!r} sets {target!r} twice")
        if not value:
            raise PetabError(f"{where}: empty targetValue")
        try:
            x: Any = float(value)
        except ValueError:
            x = b.name(value)
            if x not in b.params:
                raise PetabError(f"{where}: targetValue {value!r} is neither a number nor a parameter id "
                                 f"(expressions are not supported)") from None
        if isinstance(x, float) and not math.isfinite(x):
            raise PetabError(f"{where}: targetValue {value!r} is not finite")
        entry[name] = x
    return out


# ------------------------------------------------------------------------ experiments
def _experiments(df: pd.DataFrame, origin, known_conditions: set[str]) -> tuple[dict[str, str], float]:
    """``{experimentId: conditionId ('' for none)}`` and the common start time."""
    out: dict[str, str] = {}
    if len(df) == 0:
        return out, 0.0
    _need(df, ("experimentId", "time", "conditionId"), origin[0][0])
    starts: dict[str, float] = {}
    for k, row in df.iterrows():
        eid = _cell(row["experimentId"])
        where = where_of(origin, k, eid)
        t = _float(row["time"], f"{where}, time")
        if eid in out:
            raise PetabError(f"{where}: experiment {eid!r} has several periods (condition changes during a "
                             f"simulation, or a preequilibration); only one period per experiment is supported")
        if math.isinf(t):
            raise PetabError(f"{where}: a period at time {t} (preequilibration) is not supported")
        cid = _cell(row["conditionId"])
        if cid and cid not in known_conditions:
            raise PetabError(f"{where}: unknown conditionId {cid!r} (not in the condition table or an array file)")
        out[eid], starts[eid] = cid, t
    t0s = sorted(set(starts.values()))
    if len(t0s) > 1:
        raise PetabError(f"{origin[0][0]}: experiments start at different times {t0s}; one start time is supported")
    return out, t0s[0]


def _measurements(b: _Builder, sciml, df: pd.DataFrame, origin, experiments: dict[str, str],
                  conditions: dict[str, dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The data frame (condition = experimentId) and the pyude conditions table (one row per experiment)."""
    _need(df, ("observableId", "measurement", "time"), origin[0][0])
    records = []
    used: list[str] = []
    for k, row in df.iterrows():
        where = where_of(origin, k)
        oid = _cell(row["observableId"])
        if oid not in b.obs_names:
            raise PetabError(f"{where}: unknown observableId {oid!r}")
        eid = _cell(row.get("experimentId"))
        if eid and eid not in experiments:
            raise PetabError(f"{where}: unknown experimentId {eid!r}")
        for col in ("observableParameters", "noiseParameters"):
            if col in df.columns and not _empty(row[col]):
                raise PetabError(f"{where}: {col} (placeholders) are not supported")
        t = _float(row["time"], f"{where}, time")
        if math.isinf(t):
            raise PetabError(f"{where}: steady-state measurements (time inf) are not supported")
        y = _float(row["measurement"], f"{where}, measurement")
        records.append({"time": t, "observable": b.obs_names[oid], "value": y, "condition": eid or "default"})
        if (eid or "default") not in used:
            used.append(eid or "default")
    rows = []
    for eid in used:
        cid = experiments.get(eid, "")
        rows.append({"condition": eid, **conditions.get(cid, {}), **sciml.condition_values(eid, cid)})
    return pd.DataFrame(records), pd.DataFrame(rows)

