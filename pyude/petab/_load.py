r"""PEtab v1 problems -> :class:`pyude.Problem` (tables read with pandas).

* **model**: the SBML file, converted by :func:`~pyude.petab._sbml.read_sbml`.
* **observables**: ``observableFormula`` (assignment rules substituted, ``time`` is t)
  with ``observableTransformation`` x ``noiseDistribution`` mapped onto the noise models
  normal / lognormal / log10normal / laplace / loglaplace / log10laplace (the PEtab
  likelihood, Jacobian term of the log transformations included); ``noiseFormula`` is
  the noise scale sigma (an expression of parameters, species, time and observable ids).
* **placeholders** ``observableParameter{n}_{observableId}`` and
  ``noiseParameter{n}_{observableId}`` are parameters set per measurement from the
  ``observableParameters`` / ``noiseParameters`` columns (numbers or parameter ids,
  ``;``-separated), through the problem's ``row_parameters``.
* **parameters**: the parameter table's nominal values replace the SBML values;
  ``estimate = 1`` parameters are estimated on their ``parameterScale`` within their
  bounds; priors of every v1 ``objectivePriorType``: ``normal``, ``laplace``, ``logNormal``,
  ``logLaplace``, ``uniform`` over the value, ``parameterScale{Normal,Laplace,Uniform}`` over
  the parameter on its ``parameterScale``.
* **conditions**: the condition table's columns override parameters, compartment sizes
  and species' initial values (a number or a parameter id; empty/NaN keeps the model's).
  A measurement's (``preequilibrationConditionId``, ``simulationConditionId``) pair is
  one pyude condition; with a preequilibration the model first runs to a steady state
  under that condition (see :mod:`pyude.problem._conditions`).
* **steady-state measurements** (time ``inf``): the simulation continues from the last
  finite data time to a steady state (see :mod:`pyude.engines.jax._steady_state`).

Refused by name: several problems in one file (v2: :mod:`pyude.petab._v2`), other noise
distributions, other prior types, condition columns that are assignment-rule targets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from .._errors import SolverError
from .._sensitivity import AbstractSensitivity
from ..problem._estimate import PRIOR_KEYS
from ..problem._problem import Problem
from ..spec import _expr
from ..spec._checks import read_yaml
from ..spec._expr import Expr, Sym
from ..spec._model import Model
from ._errors import PetabError
from ._sbml import SbmlModel, read_sbml, substitute

_NOISE = {
    ("lin", "normal"): "normal",
    ("log", "normal"): "lognormal",
    ("log10", "normal"): "log10normal",
    ("lin", "laplace"): "laplace",
    ("log", "laplace"): "loglaplace",
    ("log10", "laplace"): "log10laplace",
}
_SCALES = ("lin", "log", "log10")
# PEtab prior types -> (pyude's dist, whether the density is over the parameter's scale, not its value)
_PRIORS = {"normal": ("normal", False), "laplace": ("laplace", False), "uniform": ("uniform", False),
           "logNormal": ("lognormal", False), "logLaplace": ("loglaplace", False),
           "log-normal": ("lognormal", False), "log-laplace": ("loglaplace", False),  # v2's spellings
           "parameterScaleNormal": ("normal", True), "parameterScaleLaplace": ("laplace", True),
           "parameterScaleUniform": ("uniform", True)}
# sympy-style function names of PEtab formulas -> the spec's
_FUNCTION_ALIASES = {"ln": "log", "Abs": "abs", "Max": "max", "Min": "min", "arcsin": "asin", "arccos": "acos",
                     "arctan": "atan"}


def _empty(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def _read_tsv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise PetabError(f"{what} file {str(path)!r} not found")
    try:
        return pd.read_csv(path, sep="\t", dtype=object, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise PetabError(f"cannot read {what} file {str(path)!r}: {e}") from None


def _tables(base: Path, files, what: str, required: bool = True) -> tuple[pd.DataFrame, list[tuple[str, int]]]:
    """The files concatenated (an empty frame when none are given and ``required`` is False),
    and (file, row) of every row for error messages."""
    if isinstance(files, str):
        files = [files]
    if not files:
        if required:
            raise PetabError(f"{what}: no file given")
        return pd.DataFrame(), []
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise PetabError(f"{what} files: expected a list of file names, got {files!r}")
    frames, origin = [], []
    for f in files:
        df = _read_tsv(base / f, what)
        frames.append(df)
        origin += [(str(base / f), i) for i in range(len(df))]
    return pd.concat(frames, ignore_index=True), origin


def _need(df: pd.DataFrame, cols: Sequence[str], path: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise PetabError(f"{path}: missing column(s) {missing}")


def _float(v, where: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        raise PetabError(f"{where}: {v!r} is not a number") from None


class PetabProblem(Problem):
    """A :class:`pyude.Problem` read from a PEtab v1 or v2 (SciML) problem (see :func:`load`).

    Parameter names are the PEtab/SBML ids (renamed only where an id is a reserved
    name of the spec, see ``self.rename``). ``loss`` is the negative log-likelihood
    (negative log-posterior with priors); PEtab's llh is ``-loss``.
    """

    petab_file: Path
    measurements: pd.DataFrame  # the measurement table as read, in file order
    rename: dict[str, str]

    network_params: dict[str, np.ndarray] = {}  # PEtab SciML: the networks' nominal arrays

    def nominal_params(self) -> dict[str, Any]:
        """The parameter table's nominal values (and the SBML values of the other parameters);
        with PEtab SciML networks also their arrays (from the array files and the parameter table)."""
        out: dict[str, Any] = {name: p.value for name, p in self.model.parameters.items()}
        out.update({k: np.array(v) for k, v in self.network_params.items()})
        return out

    def value_and_grad(
        self,
        params=None,
        sensitivity: str | AbstractSensitivity = "checkpoint",
        *,
        scaled: bool = False,
        initial_states: bool = False,
    ):
        """``(loss, grad)``: with ``scaled=False`` as :meth:`pyude.Problem.value_and_grad`
        (gradient in the linear-scale values of every parameter); with ``scaled=True`` the
        gradient in the estimated parameters on their estimation scales (a dict over
        ``self.estimation.names``)."""
        if not scaled:
            return super().value_and_grad(params, sensitivity, initial_states=initial_states)
        out = self.evaluate(self.theta0(params), sensitivity)
        if not out["ok"]:
            raise SolverError(out["message"], code="failed", t_reached=float("nan"))
        return float(out["value"]), dict(zip(self.estimation.names, np.asarray(out["grad"], dtype=float)))

    def simulate(self, params=None, times=None, n_times: int = 200) -> pd.DataFrame:  # type: ignore[override]
        """The measurement table with a ``simulation`` column (the observable's value at each
        measurement, with its row's placeholder values). ``times`` given: as
        :meth:`pyude.Problem.simulate` (every observable on a time grid)."""
        if times is not None:
            return super().simulate(params, times, n_times)
        arrays, theta = self._arrays_at(params)
        (h, _, codes, t_reached), ct = self.engine.rows(self._cm, self.settings, self.mode, theta, arrays)
        self._record("compile_time_rows", ct)
        self._raise_for(codes, t_reached)
        frame = self.measurements.copy()
        frame["simulation"] = h
        return frame

    def __getstate__(self) -> dict[str, Any]:
        return {"petab_file": str(self.petab_file), "options": self._load_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        other = load(state["petab_file"], **state["options"])
        self.__dict__.update(other.__dict__)


def is_petab_file(path: str | Path) -> bool:
    """Whether ``path`` is a PEtab problem file (a YAML mapping with ``format_version`` and ``problems``)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return False
    return isinstance(raw, dict) and "format_version" in raw and (
        "problems" in raw or "parameter_file" in raw or "model_files" in raw
    )


def load(
    problem_yaml: str | Path,
    *,
    solver: str = "Rodas5P",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 100_000,
    engine: str = "jax",
    batching: str = "auto",
) -> PetabProblem:
    """Read a PEtab v1 problem, or a v2 problem with the SciML extension (see
    :mod:`pyude.petab._v2`), into a :class:`PetabProblem` (a :class:`pyude.Problem`).

    Stiff solver by default (systems-biology models mostly are); the tolerances are the
    solver's (and the preequilibration's steady-state criterion); ``batching`` as
    :class:`pyude.Problem`'s (``"auto"``: the conditions one after another with a stiff
    solver on CPU)."""
    path = Path(problem_yaml)
    raw = read_yaml(path, PetabError, "PEtab problem file")
    if not isinstance(raw, dict) or "format_version" not in raw:
        raise PetabError(f"{path}: not a PEtab problem file (no 'format_version')")
    version = str(raw["format_version"]).split(".")[0]
    if version == "2":
        from ._v2 import load_v2

        return load_v2(path, raw, solver=solver, rtol=rtol, atol=atol, max_steps=max_steps, engine=engine,
                       batching=batching)
    if version != "1":
        raise PetabError(f"{path}: PEtab format_version {raw['format_version']!r} is not supported (1 or 2)")
    problems = raw.get("problems") or []
    if len(problems) != 1:
        raise PetabError(f"{path}: expected exactly one entry in 'problems', found {len(problems)}")
    prob = problems[0]
    base = path.parent
    sbml_files = prob.get("sbml_files") or []
    if len(sbml_files) != 1:
        raise PetabError(f"{path}: expected exactly one SBML file, found {len(sbml_files)}")
    params_df, params_origin = _tables(base, raw.get("parameter_file"), "parameter")
    sbml = read_model(base / sbml_files[0], params_df)
    obs_df, obs_origin = _tables(base, prob.get("observable_files"), "observable")
    cond_df, cond_origin = _tables(base, prob.get("condition_files"), "condition")
    meas_df, meas_origin = _tables(base, prob.get("measurement_files"), "measurement")
    b = _Builder(sbml)
    b.parameters(params_df, params_origin)
    b.observables(obs_df, obs_origin)
    conditions, data, row_parameters = b.experiments(cond_df, cond_origin, meas_df, meas_origin)
    model = Model.from_dict(b.spec())
    problem = PetabProblem.__new__(PetabProblem)
    Problem.__init__(
        problem,
        model,
        data,
        conditions,
        estimate=b.estimated,
        priors=b.priors or None,
        solver=solver,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        engine=engine,
        row_parameters=row_parameters,
        batching=batching,
    )
    problem.petab_file = path
    problem.measurements = meas_df
    problem.rename = dict(sbml.rename)
    problem._load_options = {"solver": solver, "rtol": rtol, "atol": atol, "max_steps": max_steps, "engine": engine,
                             "batching": batching}
    return problem


def read_model(path: Path, params_df: pd.DataFrame):
    """The SBML model, with the initial values of event-assigned parameters that the
    parameter table lists kept as parameters of those ids (:func:`read_sbml`)."""
    return read_sbml(path, initial_parameters={str(p).strip() for p in params_df.get("parameterId", [])})


class _Builder:
    """Collects the spec's parameters, observables and the data/conditions frames."""

    def __init__(self, sbml: SbmlModel):
        self.sbml = sbml
        self.params: dict[str, Any] = dict(sbml.parameters)
        self.table_ids: set[str] = set()
        self.estimated: list[str] = []
        self.priors: dict[str, Any] = {}
        self.obs: dict[str, dict[str, Any]] = {}
        self.obs_names: dict[str, str] = {}  # observableId -> spec name
        self.placeholders: dict[str, tuple[list[str], list[str]]] = {}  # obsId -> (observable, noise) names
        # PEtab ids that stand for an expression (PEtab SciML network outputs and the parameters they replace)
        self.extra: dict[str, Expr] = {}

    def name(self, ident: str) -> str:
        return self.sbml.name(ident)

    # ---------------------------------------------------------------- parameters
    def parameters(self, df: pd.DataFrame, origin) -> None:
        _need(df, ("parameterId", "parameterScale", "lowerBound", "upperBound", "nominalValue", "estimate"), origin[0][0])
        sb = self.sbml
        for k, row in df.iterrows():
            f, r = origin[k]
            where = f"{f}, row {r + 2}"  # +2: the header line and 1-based rows, as an editor shows them
            pid = str(row["parameterId"]).strip()
            name = self.name(pid)
            where += f" ({pid!r})"
            # a parameter that events change: the entry is its initial value (read_model)
            name = sb.initial_parameters.get(pid, name)
            if name in sb.species or name in sb.compartments or name in sb.rules or name in sb.states:
                raise PetabError(f"{where}: a parameter table entry must not be a species, compartment or rule target")
            scale = str(row["parameterScale"]).strip()
            if scale not in _SCALES:
                raise PetabError(f"{where}: parameterScale {scale!r} is not one of {_SCALES}")
            value = _float(row["nominalValue"], f"{where}, nominalValue")
            estimate = str(row["estimate"]).strip()
            if estimate not in ("0", "1"):
                raise PetabError(f"{where}: estimate must be 0 or 1, got {estimate!r}")
            self.table_ids.add(name)
            if estimate == "1":
                lo, hi = _float(row["lowerBound"], f"{where}, lowerBound"), _float(row["upperBound"], f"{where}, upperBound")
                if not lo <= value <= hi:
                    raise PetabError(f"{where}: nominal value {value} is outside its bounds [{lo}, {hi}]")
                if scale != "lin" and (lo <= 0 or value <= 0):
                    raise PetabError(f"{where}: a {scale}-scaled parameter needs a positive value and lower bound")
                self.params[name] = {"value": value, "scale": scale, "bounds": [lo, hi]}
                self.estimated.append(name)
                self._prior(row, name, where)
            else:
                self.params[name] = value

    def _prior(self, row, name: str, where: str) -> None:
        kind = row.get("objectivePriorType")
        if _empty(kind):
            return
        values = row.get("objectivePriorParameters")
        self.priors[name] = petab_prior(str(kind).strip(), "" if _empty(values) else str(values), where,
                                        self.params[name]["scale"], "objectivePriorParameters")

    # ---------------------------------------------------------------- observables
    def _formula(
        self, text, where: str, allowed_placeholders: dict[str, str], observables: dict[str, Expr] | None = None
    ) -> Expr:
        """``text`` as a spec expression: SBML ids, assignment rules substituted, placeholders;
        ``observables`` (noise formulas): observable ids that may be used, by their formulas."""
        node = _expr.parse(str(text), where)
        node = _rename_calls(node, where)
        sb = self.sbml
        env: dict[str, Expr] = {}
        for s in _expr.symbols(node):
            if s == "time":
                env[s] = Sym(_expr.TIME)
                continue
            name = self.name(s)
            if s in self.extra:
                env[s] = self.extra[s]
            elif name in allowed_placeholders:
                env[s] = Sym(allowed_placeholders[name])
            elif name in sb.rules:
                env[s] = sb.rules[name]
            elif name in sb.states or name in self.params:
                env[s] = Sym(name)
            elif name in sb.species:
                env[s] = Sym(name)
            elif observables is not None and s in observables:
                env[s] = observables[s]
            else:
                known = "a species, parameter, compartment, placeholder" + (" or observable" if observables else "")
                raise PetabError(f"{where}: unknown symbol {s!r} (not {known})")
        return substitute(node, env)

    def observables(
        self, df: pd.DataFrame, origin, declared: dict[str, tuple[list[str], list[str]]] | None = None
    ) -> None:
        """``declared`` (PEtab v2): each observable's placeholder ids as listed in its
        ``observablePlaceholders`` / ``noisePlaceholders``; v2's noise formula may read both
        kinds. Without it (v1), placeholders are the ``observableParameter{n}_{id}`` names."""
        _need(df, ("observableId", "observableFormula", "noiseFormula"), origin[0][0])
        taken = set(self.sbml.states) | set(self.params)
        formulas: dict[str, Expr] = {}
        noise: dict[str, tuple[Any, str, list[str]]] = {}
        for k, row in df.iterrows():
            f, r = origin[k]
            oid = str(row["observableId"]).strip()
            where = f"{f}, row {r + 2} ({oid!r})"
            if oid in self.obs_names:
                raise PetabError(f"{where}: observableId defined twice")
            trafo = "lin" if _empty(row.get("observableTransformation")) else str(row["observableTransformation"]).strip()
            dist = "normal" if _empty(row.get("noiseDistribution")) else str(row["noiseDistribution"]).strip()
            if (trafo, dist) not in _NOISE:
                raise PetabError(f"{where}: observableTransformation {trafo!r} with noiseDistribution {dist!r} is not supported")
            formula_text, noise_text = row["observableFormula"], row["noiseFormula"]
            if _empty(formula_text) or _empty(noise_text):
                raise PetabError(f"{where}: observableFormula and noiseFormula are required")
            if declared is None:
                obs_ph = _placeholders(str(formula_text), "observableParameter", oid)
                noise_ph = _placeholders(str(noise_text), "noiseParameter", oid)
            else:
                obs_ph, noise_ph = declared.get(oid, ([], []))
            for ph in obs_ph + noise_ph:
                if ph in taken:
                    raise PetabError(f"{where}: placeholder {ph!r} collides with a model id")
                self.params[ph] = 1.0  # always set per measurement
            formula = self._formula(formula_text, f"{where}, observableFormula", {p: p for p in obs_ph})
            name = oid if _valid_name(oid) and oid not in taken else _fresh(oid + "_obs", taken)
            taken.add(name)
            self.obs_names[oid] = name
            self.placeholders[oid] = (obs_ph, noise_ph)
            formulas[oid] = formula
            noise[oid] = (noise_text, f"{where}, noiseFormula", noise_ph if declared is None else obs_ph + noise_ph)
            self.obs[name] = {"formula": _expr.to_string(formula), "noise": _NOISE[(trafo, dist)]}
        # a noise formula may read states, time and observables (by their formulas), e.g. an
        # absolute plus relative error `noiseParameter1_obs + noiseParameter2_obs * obs`
        for oid, (text, where, noise_ph) in noise.items():
            sigma = self._formula(text, where, {p: p for p in noise_ph}, formulas)
            self.obs[self.obs_names[oid]]["sigma"] = _expr.to_string(sigma)

    # ---------------------------------------------------------------- experiments
    def experiments(self, cond_df, cond_origin, meas_df, meas_origin):
        _need(cond_df, ("conditionId",), cond_origin[0][0] if cond_origin else "condition table")
        _need(meas_df, ("observableId", "simulationConditionId", "measurement", "time"), meas_origin[0][0])
        sb = self.sbml
        rows: dict[str, dict[str, Any]] = {}
        for k, row in cond_df.iterrows():
            f, r = cond_origin[k]
            cid = str(row["conditionId"]).strip()
            where = f"{f}, row {r + 2} ({cid!r})"
            if cid in rows:
                raise PetabError(f"{where}: conditionId defined twice")
            entry: dict[str, Any] = {}
            for col in cond_df.columns:
                if col in ("conditionId", "conditionName"):
                    continue
                name = self.name(col)
                if name in sb.rules:
                    raise PetabError(f"{where}, column {col!r}: overriding an assignment-rule target is not supported")
                if name not in self.params and name not in sb.states:
                    raise PetabError(f"{where}, column {col!r}: not a parameter, species or compartment of the model")
                v = row[col]
                if _empty(v):
                    continue
                try:
                    x: Any = float(v)
                except ValueError:
                    x = self.name(str(v).strip())
                    if x not in self.params:
                        raise PetabError(f"{where}, column {col!r}: {v!r} is neither a number nor a parameter id") from None
                if isinstance(x, float) and not math.isfinite(x):
                    raise PetabError(f"{where}, column {col!r}: {v!r} is not finite")
                entry[name] = x
            rows[cid] = entry

        # measurements: one pyude condition per (preequilibration, simulation) pair
        pre_col = "preequilibrationConditionId"
        pairs: list[tuple[str, str]] = []
        records: list[dict[str, Any]] = []
        ph_columns = self.placeholder_columns()
        for k, row in meas_df.iterrows():
            f, r = meas_origin[k]
            where = f"{f}, row {r + 2}"
            oid = str(row["observableId"]).strip()
            if oid not in self.obs_names:
                raise PetabError(f"{where}: unknown observableId {oid!r}")
            sim = str(row["simulationConditionId"]).strip()
            if sim not in rows:
                raise PetabError(f"{where}: unknown simulationConditionId {sim!r}")
            pre = "" if pre_col not in meas_df.columns or _empty(row[pre_col]) else str(row[pre_col]).strip()
            if pre and pre not in rows:
                raise PetabError(f"{where}: unknown preequilibrationConditionId {pre!r}")
            if pre and self.sbml.spec.get("events"):
                raise PetabError(f"{where}: preequilibration ({pre!r}) of a model with events is not supported")
            t = _float(row["time"], f"{where}, time")
            if t == -math.inf or math.isnan(t):
                raise PetabError(f"{where}: time {row['time']!r} is not a time (inf, for steady state, is)")
            if t < 0:
                raise PetabError(f"{where}: time {t} is before 0")
            y = _float(row["measurement"], f"{where}, measurement")
            rec: dict[str, Any] = {"time": t, "observable": self.obs_names[oid], "value": y, "_pair": (pre, sim),
                                   **self.placeholder_values(row, oid, where)}
            if (pre, sim) not in pairs:
                pairs.append((pre, sim))
            records.append(rec)

        # pyude condition ids: the simulation condition's id where it has only one pairing
        by_sim: dict[str, set[str]] = {}
        for pre, sim in pairs:
            by_sim.setdefault(sim, set()).add(pre)
        ids = {(pre, sim): sim if len(by_sim[sim]) == 1 else f"{sim}@{pre or 'none'}" for pre, sim in pairs}
        table: list[dict[str, Any]] = []
        defined: set[str] = set()
        for (pre, sim), cid in ids.items():
            table.append({"condition": cid, "preequilibration": pre or None, **rows[sim]})
            defined.add(cid)
        for pre, _ in pairs:
            if pre and pre not in defined:
                table.append({"condition": pre, "preequilibration": None, **rows[pre]})
                defined.add(pre)
        conditions = pd.DataFrame(table)
        if not any(pre for pre, _ in pairs):
            conditions = conditions.drop(columns=["preequilibration"])
        data = pd.DataFrame(records)
        data["condition"] = [ids[p] for p in data.pop("_pair")]
        for col in ph_columns:
            if col not in data.columns:
                data[col] = np.nan
        return conditions, data, ph_columns

    def placeholder_values(self, row: pd.Series, oid: str, where: str) -> dict[str, Any]:
        """A measurement row's ``observableParameters`` / ``noiseParameters``: placeholder name
        -> number or parameter name, one value per placeholder of observable ``oid``, in order."""
        out: dict[str, Any] = {}
        obs_ph, noise_ph = self.placeholders[oid]
        for col, names in (("observableParameters", obs_ph), ("noiseParameters", noise_ph)):
            raw = row[col] if col in row.index else None
            values = [] if _empty(raw) else [v.strip() for v in str(raw).split(";")]
            if len(values) != len(names):
                raise PetabError(
                    f"{where}: {col} gives {len(values)} value(s) but observable {oid!r} has {len(names)} placeholder(s)"
                )
            for ph, v in zip(names, values):
                try:
                    out[ph] = float(v)
                except ValueError:
                    ref = self.name(v)
                    if ref not in self.params:
                        raise PetabError(f"{where}: {col} value {v!r} is neither a number nor a parameter id") from None
                    out[ph] = ref
                if isinstance(out[ph], float) and not math.isfinite(out[ph]):
                    raise PetabError(f"{where}: {col} value {v!r} is not finite")
        return out

    def placeholder_columns(self) -> list[str]:
        """Every placeholder name once, in the observables' order."""
        return list(dict.fromkeys(p for o, n in self.placeholders.values() for p in o + n))

    def spec(self) -> dict[str, Any]:
        sb = self.sbml
        spec = dict(sb.spec)
        spec["parameters"] = self.params
        spec["observables"] = self.obs
        return spec


def petab_prior(kind: str, values: str, where: str, scale: str = "lin", column: str = "priorParameters") -> dict:
    """pyude's prior entry for a PEtab prior type and its ``;``-separated two numbers; a
    ``parameterScale...`` prior is a density over the parameter on its ``scale``."""
    if kind not in _PRIORS:
        raise PetabError(f"{where}: prior {kind!r} is not supported (supported: {sorted(_PRIORS)})")
    dist, on_scale = _PRIORS[kind]
    parts = [v.strip() for v in values.split(";")] if values else []
    if len(parts) != 2:
        raise PetabError(f"{where}: {column} must be two numbers 'a;b', got {values!r}")
    a, b = (_float(v, f"{where}, {column}") for v in parts)
    first, second = PRIOR_KEYS[dist]
    out: dict[str, Any] = {"dist": dist, first: a, second: b}
    if on_scale and scale != "lin":
        out["on"] = scale
    return out


def _placeholders(text: str, kind: str, oid: str) -> list[str]:
    found = set(re.findall(rf"\b{kind}(\d+)_{re.escape(oid)}\b", text))
    n = max((int(i) for i in found), default=0)
    return [f"{kind}{i}_{oid}" for i in range(1, n + 1)]


def _rename_calls(node: Expr, where: str) -> Expr:
    from ..spec._expr import Call, NetCall, Op

    if isinstance(node, Call):
        fn = _FUNCTION_ALIASES.get(node.fn, node.fn)
        if fn not in _expr.RESERVED:
            raise PetabError(f"{where}: unknown function {node.fn!r}")
        return Call(fn, tuple(_rename_calls(a, where) for a in node.args))
    if isinstance(node, NetCall):
        raise PetabError(f"{where}: unknown function {node.net!r}(...)[{node.index}]")
    if isinstance(node, Op):
        return Op(node.op, tuple(_rename_calls(a, where) for a in node.args))
    return node


def _valid_name(name: str) -> bool:
    return bool(re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name)) and name != _expr.TIME and name not in _expr.RESERVED


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    return name
