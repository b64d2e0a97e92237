r"""PEtab v2 problems (with the PEtab SciML extension) -> :class:`~pyude.petab.PetabProblem`.

What is read (tables with pandas, YAML with safe loading; see docs/petab.md):

* ``model_files``: one SBML model (:func:`~pyude.petab._load.read_model`).
* **parameters**: as in v1 (``estimate`` ``0/1`` or ``true/false``; ``parameterScale`` lin
  if absent); priors from ``priorDistribution`` / ``priorParameters``: ``normal``,
  ``logNormal`` (``log-normal``) and ``uniform``, on the linear scale. Rows that the
  mapping table maps to network parameters are PEtab SciML's (see :mod:`._sciml`).
* **observables**: as in v1; ``noiseDistribution`` ``log-normal`` / ``log-laplace`` are
  v1's log transformation with normal / laplace noise; ``observablePlaceholders`` /
  ``noisePlaceholders`` declare each observable's placeholder ids (any valid id).
* **experiments** (``experimentId, time, conditionId``): one pyude condition per
  experiment, starting at its first finite period (the same time for all: the problem's
  t0), optionally after a preequilibration period at ``-inf``; rows with the same ``time``
  are one period. v2's changes persist, so the preequilibration's parameter values hold on
  in the main period unless it sets them again; parameters changed by later periods become
  time switches, species changed by them time-triggered events (:class:`_Switches`).
* **conditions** (``conditionId, targetId, targetValue``, long format): a period's
  conditions set parameters, species' values or network inputs to a number or a
  parameter id.
* **measurements** (``observableId, experimentId, measurement, time``, optional
  ``observableParameters`` / ``noiseParameters``); time ``inf`` is a steady state.

Refused by name (:class:`PetabError` naming the file, the row and the id): compartments
or network inputs changed by a later period, species changed by a later period together with
a preequilibration, different start times,
conditions of one period that set the same target, condition or placeholder values that
are expressions, preequilibration of a model with events or with network inputs set per
condition, aliases in the mapping table (PEtab ids for model entities), other prior
distributions, unknown problem-file keys.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..problem._problem import Problem
from ..spec._expr import Call, Expr, Num, Op, Sym, parse, symbols, to_string
from ..spec._model import Model
from ._errors import PetabError
from ._load import PetabProblem, _Builder, _empty, _float, _need, _read_tsv, _tables, petab_prior, read_model
from ._sbml import substitute

_KEYS = ("format_version", "id", "model_files", "parameter_files", "observable_files", "measurement_files",
         "condition_files", "experiment_files", "mapping_files", "extensions")
_SCIML_KEYS = ("sciml", "petab_sciml")
_V2_NOISE = {"log-normal": ("log", "normal"), "log-laplace": ("log", "laplace")}
_ESTIMATE = {"1": "1", "0": "0", "true": "1", "false": "0"}
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    obs_table, declared = _v2_observables(obs_df, obs_origin)
    b.observables(obs_table, obs_origin, declared=declared)
    experiments, t0 = _experiments(exp_df, exp_origin, set(conditions) | sciml.array_conditions)
    switches = _Switches(b, experiments, conditions)
    data, cond_table, row_parameters = _measurements(b, sciml, meas_df, meas_origin, experiments, conditions,
                                                     switches)

    spec = switches.apply(sciml.spec(b.spec()), str(path))
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
        row_parameters=row_parameters,
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
        # v2 has no parameter scales: every density is over the value
        spec = petab_prior(kind, _cell(row.get("priorParameters")) or _cell(row.get("objectivePriorParameters")),
                           where_of(sub_origin, k, pid))
        if b.name(pid) in b.estimated:  # a prior on a fixed parameter is a constant: PEtab leaves it out
            priors[b.name(pid)] = spec
    return priors


# ------------------------------------------------------------------------ observables
def _v2_observables(df: pd.DataFrame, origin) -> tuple[pd.DataFrame, dict[str, tuple[list[str], list[str]]]]:
    """v2 noise distributions as v1's (transformation, distribution), and each observable's
    declared placeholders ``{observableId: (observablePlaceholders, noisePlaceholders)}``."""
    df = df.copy()
    declared: dict[str, tuple[list[str], list[str]]] = {}
    for k in range(len(df)):
        oid = _cell(df["observableId"].iloc[k]) if "observableId" in df.columns else ""
        lists = []
        for col in ("observablePlaceholders", "noisePlaceholders"):
            raw = df[col].iloc[k] if col in df.columns else None
            ids = [] if _empty(raw) else [v.strip() for v in str(raw).split(";")]
            for ph in ids:
                if not _ID.fullmatch(ph):
                    raise PetabError(f"{where_of(origin, k, oid)}: {col}: {ph!r} is not a valid id")
            lists.append(ids)
        dup = sorted({ph for ph in lists[0] + lists[1] if (lists[0] + lists[1]).count(ph) > 1})
        if dup:
            raise PetabError(f"{where_of(origin, k, oid)}: placeholder(s) {dup} declared twice")
        declared[oid] = (lists[0], lists[1])
    df = df.drop(columns=[c for c in ("observablePlaceholders", "noisePlaceholders") if c in df.columns])
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
    return df, declared


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
@dataclass(frozen=True)
class _Experiment:
    """An experiment's periods as pyude reads them: the conditions applied at ``t0`` and,
    where it has a preequilibration period (``time`` -inf), the conditions applied before it."""

    main: tuple[str, ...]
    preequilibration: tuple[str, ...] | None
    t0: float
    where: str
    later: tuple[tuple[float, tuple[str, ...]], ...] = ()  # (start time, conditions) of the periods after t0


def _experiments(df: pd.DataFrame, origin, known_conditions: set[str]) -> tuple[dict[str, _Experiment], float]:
    """``{experimentId: _Experiment}`` and the common start time. Rows of one experiment with
    the same ``time`` are one period whose conditions apply together."""
    if len(df) == 0:
        return {}, 0.0
    _need(df, ("experimentId", "time", "conditionId"), origin[0][0])
    periods: dict[str, dict[float, list[str]]] = {}
    first_row: dict[str, str] = {}
    for k, row in df.iterrows():
        eid = _cell(row["experimentId"])
        where = where_of(origin, k, eid)
        if not eid:
            raise PetabError(f"{where}: empty experimentId")
        t = _float(row["time"], f"{where}, time")
        if t == math.inf:
            raise PetabError(f"{where}: a period cannot start at time inf")
        cid = _cell(row["conditionId"])
        if cid and cid not in known_conditions:
            raise PetabError(f"{where}: unknown conditionId {cid!r} (not in the condition table or an array file)")
        first_row.setdefault(eid, where)
        cids = periods.setdefault(eid, {}).setdefault(t, [])
        if cid in cids:
            raise PetabError(f"{where}: condition {cid!r} is applied twice at time {t} in experiment {eid!r}")
        if cid:
            cids.append(cid)
    out: dict[str, _Experiment] = {}
    for eid, by_time in periods.items():
        finite = sorted(t for t in by_time if math.isfinite(t))
        if not finite:
            raise PetabError(f"{first_row[eid]}: experiment {eid!r} has no period at a finite time (only a "
                             f"preequilibration)")
        t0 = finite[0]
        pre = tuple(by_time[-math.inf]) if -math.inf in by_time else None
        later = tuple((t, tuple(by_time[t])) for t in finite[1:])
        out[eid] = _Experiment(tuple(by_time[t0]), pre, t0, first_row[eid], later)
    t0s = sorted({e.t0 for e in out.values()})
    if len(t0s) > 1:
        raise PetabError(f"{origin[0][0]}: experiments start at different times {t0s}; one start time is supported")
    return out, t0s[0]


def _merge(cids: tuple[str, ...], conditions: dict[str, dict[str, Any]], where: str) -> dict[str, Any]:
    """The changes of several conditions applied together (their targets must be disjoint)."""
    out: dict[str, Any] = {}
    for cid in cids:
        for name, value in conditions.get(cid, {}).items():
            if name in out:
                raise PetabError(f"{where}: conditions {list(cids)} applied together both set {name!r}")
            out[name] = value
    return out


def _measurements(b: _Builder, sciml, df: pd.DataFrame, origin, experiments: dict[str, _Experiment],
                  conditions: dict[str, dict[str, Any]], switches: _Switches
                  ) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The data frame (condition = experimentId), the pyude conditions table (one row per
    experiment, plus one per distinct preequilibration) and the placeholder columns."""
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
        t = _float(row["time"], f"{where}, time")
        if t == -math.inf:
            raise PetabError(f"{where}: time -inf is not a measurement time (inf, for steady state, is)")
        y = _float(row["measurement"], f"{where}, measurement")
        records.append({"time": t, "observable": b.obs_names[oid], "value": y, "condition": eid or "default",
                        **b.placeholder_values(row, oid, where)})
        if (eid or "default") not in used:
            used.append(eid or "default")
    rows = []
    pre_rows: dict[tuple[str, ...], str] = {}
    per_condition_inputs = bool(sciml.condition_inputs or sciml.array_inputs)
    for eid in used:
        e = experiments.get(eid)
        if e is None:
            rows.append({"condition": eid, **sciml.condition_values(eid, "")})
            continue
        if per_condition_inputs and (len(e.main) > 1 or e.preequilibration is not None or e.later):
            what = ("a preequilibration" if e.preequilibration is not None
                    else "several periods" if e.later else "several conditions")
            raise PetabError(f"{e.where}: experiment {eid!r}: network inputs set per condition together with "
                             f"{what} are not supported")
        main = _merge(e.main, conditions, e.where)
        row: dict[str, Any] = {"condition": eid}
        if e.preequilibration is not None:
            if b.sbml.spec.get("events"):
                raise PetabError(f"{e.where}: preequilibration of a model with events is not supported")
            if switches.jumps:
                raise PetabError(f"{e.where}: experiment {eid!r}: preequilibration together with species changed "
                                 f"by a later period (events) is not supported")
            pre = _merge(e.preequilibration, conditions, e.where)
            if e.preequilibration not in pre_rows:
                pre_rows[e.preequilibration] = _fresh_id("preequilibration:" + "+".join(e.preequilibration),
                                                         set(experiments) | {"default"} | set(pre_rows.values()))
            row["preequilibration"] = pre_rows[e.preequilibration]
            # v2's changes persist: the preequilibration's parameter values hold on unless
            # the main period changes them; its species values were initial values only
            row.update({n: v for n, v in pre.items() if n not in b.sbml.states})
        row.update(main)
        row.update(sciml.condition_values(eid, e.main[0] if e.main else ""))
        row.update(switches.values(e, conditions))
        rows.append(row)
    for cids, pid in pre_rows.items():
        rows.append({"condition": pid, "preequilibration": None, **_merge(cids, conditions, pid)})
    ph_columns = b.placeholder_columns()
    data = pd.DataFrame(records)
    for col in ph_columns:
        if col not in data.columns:
            data[col] = np.nan
    return data, pd.DataFrame(rows), ph_columns


def _set_by(f: str, v: str, prev: Expr) -> Expr:
    """``F V + (1 - F) prev``: the value ``V`` where an experiment's period sets the target
    (its flag ``F`` is 1), else ``prev``."""
    return Op("+", (Op("*", (Sym(f), Sym(v))), Op("*", (Op("-", (Num(1.0), Sym(f))), prev))))


class _Switches:
    """Parameter changes of the periods after t0, as time switches in the spec.

    The ``j``-th later period of every experiment is slot ``j``; a parameter ``P`` that any
    experiment changes in slot ``j`` gets three parameters set per experiment: the period's
    start ``T_j``, the new value ``V_j`` and a flag ``F_j`` (1 where this experiment changes
    ``P`` then), and every use of ``P`` in the equations, rates, observables and events
    becomes ``piecewise(V_J, and(F_J, ge(t, T_J)), ... piecewise(V_1, and(F_1, ge(t, T_1)), P))``:
    v2's changes persist until a later one, and the ``ge(t, T_j)`` are jump times of the
    step-size controller. A species (a state) changed in slot ``j`` jumps there: one
    time-triggered event per slot, ``ge(t, T_j)`` with assignments ``S = F_j V_j + (1 - F_j) S``
    (an experiment without slot ``j`` has ``T_j = t0``, where the trigger already holds and the
    event does not fire). Compartments changed in a later period are refused by name."""

    def __init__(self, b: _Builder, experiments: dict[str, _Experiment], conditions: dict[str, dict[str, Any]]):
        sb = b.sbml
        self.t0 = min((e.t0 for e in experiments.values()), default=0.0)
        self.states = set(sb.states)
        taken = set(b.params) | set(sb.states) | set(b.obs_names.values())
        self.slots: list[tuple[str, dict[str, tuple[str, str]]]] = []  # (T_j, {P: (V_j, F_j)})
        for eid, e in experiments.items():
            for j, (t, cids) in enumerate(e.later):
                where = f"{e.where}: experiment {eid!r}, period at time {t}"
                changes = _merge(cids, conditions, where)
                while len(self.slots) <= j:
                    name = _fresh_id(f"period{len(self.slots) + 1}_start", taken)
                    taken.add(name)
                    self.slots.append((name, {}))
                for target in changes:
                    if target in sb.compartments:
                        raise PetabError(f"{where}: changing compartment {target!r} during a simulation is not "
                                         f"supported (only parameters and species)")
                    if target not in self.slots[j][1]:
                        v, f = (_fresh_id(f"{target}_period{j + 1}{sfx}", taken) for sfx in ("", "_set"))
                        taken |= {v, f}
                        self.slots[j][1][target] = (v, f)

    @property
    def jumps(self) -> bool:
        """Whether a later period changes a species (the spec then has events)."""
        return any(target in self.states for _, targets in self.slots for target in targets)

    def values(self, e: _Experiment, conditions: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Experiment ``e``'s switch parameters (its conditions table entries)."""
        out: dict[str, Any] = {}
        for j, (t_name, targets) in enumerate(self.slots):
            changes = _merge(e.later[j][1], conditions, e.where) if j < len(e.later) else {}
            out[t_name] = e.later[j][0] if j < len(e.later) else e.t0
            for target, (v, f) in targets.items():
                out[v], out[f] = (changes[target], 1.0) if target in changes else (0.0, 0.0)
        return out

    def apply(self, spec: dict[str, Any], where: str) -> dict[str, Any]:
        """``spec`` with the switch parameters and every changed parameter's uses switched."""
        if not self.slots:
            return spec
        env: dict[str, Expr] = {}
        events = []
        for t_name, targets in self.slots:
            jumps = {}
            for target, (v, f) in targets.items():
                if target in self.states:
                    jumps[target] = to_string(_set_by(f, v, Sym(target)))
                    continue
                prev = env.get(target, Sym(target))
                # from T_j on (a plain comparison of t: a jump time)
                env[target] = Call("piecewise", (_set_by(f, v, prev), Call("ge", (Sym("t"), Sym(t_name))), prev))
            if jumps:  # after the model's own events: on a common target at T_j, the period's value wins
                events.append({"id": f"{t_name}_species", "trigger": f"ge(t, {t_name})", "assignments": jumps})
        for name, expr in (spec.get("assignments") or {}).items():
            used = sorted((symbols(parse(expr, where)) | {name}) & set(env))
            if used:
                raise PetabError(f"{where}: {used} change(s) during a simulation, but the assignment of {name!r} "
                                 f"(evaluated once, before the solve) uses it")

        def sub(text):
            return to_string(substitute(parse(text, where), env))

        spec = dict(spec)
        params = dict(spec.get("parameters") or {})
        for t_name, targets in self.slots:
            params[t_name] = self.t0
            for v, f in targets.values():
                params[v], params[f] = 0.0, 0.0
        spec["parameters"] = params
        if "equations" in spec:
            spec["equations"] = {k: sub(v) for k, v in spec["equations"].items()}
        if "reactions" in spec:
            spec["reactions"] = [{k: sub(v) if k in ("rate", "reverse_rate") else v for k, v in r.items()}
                                 for r in spec["reactions"]]
        if "observables" in spec:
            spec["observables"] = {k: sub(v) if isinstance(v, str) else
                                   {kk: sub(vv) if kk in ("formula", "sigma") else vv for kk, vv in v.items()}
                                   for k, v in spec["observables"].items()}
        if "events" in spec:
            spec["events"] = [{**ev, "trigger": sub(ev["trigger"]),
                               "assignments": {k: sub(v) for k, v in ev.get("assignments", {}).items()}}
                              for ev in spec["events"]]
        if events:
            spec["events"] = list(spec.get("events") or []) + events
        return spec


def _fresh_id(name: str, taken: set[str]) -> str:
    while name in taken:
        name = "_" + name
    return name
