"""``problem.yaml``: a model, its data and the fit settings in one file (the input of ``pyude fit``).

Paths are relative to the file. Keys::

    model: model.yaml          # or an inline spec mapping
    data: data.csv
    conditions: conditions.csv # optional
    estimate: [k1, nn]         # optional; default: all parameters and networks
    priors: {k1: {dist: lognormal, mean: 0.0, sd: 1.0}}
    l2: 0.0
    solver: auto               # rtol, atol, max_steps, t0, batching likewise
    fit:
      seed: 0
      sensitivity: checkpoint  # adjoint | forward
      adam: {steps: 500, learning_rate: 0.01, schedule: constant}   # or false
      lbfgs: {max_iter: 200}                                         # or false
      shooting: {segments: 8, continuity: 100}   # optional: multiple shooting for Adam
      multistart: 0            # > 0: that many starts (process pool)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


from .._errors import SpecError
from ..spec._checks import check_keys, read_yaml
from ..spec._model import Model

PROBLEM_KEYS = ("model", "data", "conditions", "estimate", "priors", "l2", "solver", "rtol", "atol", "max_steps", "t0",
                "batching", "fit")
FIT_KEYS = ("seed", "sensitivity", "adam", "lbfgs", "shooting", "multistart", "checkpoint_every")
ADAM_KEYS = ("steps", "learning_rate", "schedule", "decay", "batch_size", "patience", "min_delta")
LBFGS_KEYS = ("max_iter", "gtol", "ftol")
SHOOTING_KEYS = ("segments", "continuity")


def _path(base: Path, value, key: str) -> Path:
    if not isinstance(value, str):
        raise SpecError(f"problem file: {key!r} must be a path (string), got {value!r}")
    path = (base / value).resolve()
    if not path.exists():
        raise SpecError(f"problem file: {key} file {str(path)!r} not found")
    return path


def load_problem_file(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """``(Problem, fit keyword arguments)`` from a problem file."""
    from ..fitting._optimizers import LBFGS, Adam, MultipleShooting
    from ._problem import Problem

    path = Path(path)
    from ..petab._load import is_petab_file

    if is_petab_file(path):  # a PEtab v1 problem: its own tables, a stiff solver, L-BFGS-B alone
        from ..petab import load

        return load(path), {"seed": 0, "sensitivity": "forward", "adam": None, "polish": LBFGS(), "multistart": 0}
    raw = read_yaml(path, SpecError, "problem file")
    if not isinstance(raw, Mapping):
        raise SpecError(f"{path}: expected a mapping with keys {', '.join(PROBLEM_KEYS)}")
    check_keys(raw, PROBLEM_KEYS, "problem file", required=("model", "data"))
    base = path.parent
    spec = raw["model"]
    model = Model.from_dict(spec) if isinstance(spec, Mapping) else Model.from_yaml(_path(base, spec, "model"))
    data = _path(base, raw["data"], "data")
    conditions = _path(base, raw["conditions"], "conditions") if raw.get("conditions") else None
    kwargs = {k: raw[k] for k in ("estimate", "priors", "l2", "solver", "rtol", "atol", "max_steps", "t0", "batching")
              if k in raw}
    for k in ("rtol", "atol", "l2", "t0"):
        if k in kwargs and not isinstance(kwargs[k], (int, float)):
            raise SpecError(f"problem file: {k!r} must be a number, got {kwargs[k]!r}")
    problem = Problem(model, data, conditions, **kwargs)

    fit_raw = raw.get("fit") or {}
    if not isinstance(fit_raw, Mapping):
        raise SpecError("problem file: 'fit' must be a mapping")
    check_keys(fit_raw, FIT_KEYS, "problem file: fit")
    fit_kwargs: dict[str, Any] = {"seed": int(fit_raw.get("seed", 0)), "sensitivity": fit_raw.get("sensitivity", "checkpoint")}
    for key, cls, keys in (("adam", Adam, ADAM_KEYS), ("lbfgs", LBFGS, LBFGS_KEYS)):
        value = fit_raw.get(key, {})
        target = "adam" if key == "adam" else "polish"
        if value is False or value is None:
            fit_kwargs[target] = None
            continue
        if not isinstance(value, Mapping):
            raise SpecError(f"problem file: fit.{key} must be a mapping or false")
        check_keys(value, keys, f"problem file: fit.{key}")
        fit_kwargs[target] = cls(**value)
    shooting = fit_raw.get("shooting")
    if shooting is not None and shooting is not False:
        if not isinstance(shooting, Mapping):
            raise SpecError("problem file: fit.shooting must be a mapping (segments, continuity) or false")
        check_keys(shooting, SHOOTING_KEYS, "problem file: fit.shooting")
        fit_kwargs["shooting"] = MultipleShooting(**shooting)
    if "checkpoint_every" in fit_raw:
        fit_kwargs["checkpoint_every"] = int(fit_raw["checkpoint_every"])
    fit_kwargs["multistart"] = int(fit_raw.get("multistart", 0))
    return problem, fit_kwargs
