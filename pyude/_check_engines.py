"""``pyude.check_engines``: the same problem, parameters and data on two engines, compared.

Both engines solve and differentiate the problem at tight tolerances with the same
solver method; the report lists, per observable trajectory, for the loss and per
parameter block of the gradient, the largest absolute difference and the relative
difference ``max|a - b| / max(max|a|, max|b|, floor)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._sensitivity import AbstractSensitivity, as_sensitivity

COLUMNS = ["quantity", "name", "max_abs", "max_rel", "ok"]


@dataclass
class EngineCheck:
    """The comparison: one row per trajectory, the loss, and each gradient block; ``ok`` if every
    relative difference is within ``tolerance``."""

    rows: pd.DataFrame
    tolerance: float
    reference: str
    candidate: str

    @property
    def ok(self) -> bool:
        return bool(self.rows["ok"].all())

    def table(self) -> str:
        lines = [f"{'quantity':<11} {'name':<28} {'max abs diff':>13} {'max rel diff':>13}  ok"]
        for r in self.rows.itertuples(index=False):
            lines.append(f"{r.quantity:<11} {r.name:<28} {r.max_abs:>13.3e} {r.max_rel:>13.3e}  {'yes' if r.ok else 'NO'}")
        verdict = "agree" if self.ok else "DISAGREE"
        lines.append(f"{self.reference} vs {self.candidate}: {verdict} (relative tolerance {self.tolerance:g})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _rebuild(problem, **overrides):
    """The same problem (model, data, conditions, estimation, solver method) with other settings."""
    from .problem import Problem

    recipe = dict(problem._recipe)
    recipe.update(overrides)
    return Problem(recipe.pop("model"), recipe.pop("data"), recipe.pop("conditions"), **recipe)


def _diff(a, b, floor: float) -> tuple[float, float]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0, 0.0
    d = float(np.max(np.abs(a - b)))
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), floor)
    return d, d / scale


def check_engines(
    problem,
    *,
    reference: str = "jax",
    candidate: str = "julia",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    sensitivity: str | AbstractSensitivity = "checkpoint",
    reference_sensitivity: str | AbstractSensitivity | None = None,
    tolerance: float = 1e-6,
    floor: float = 1e-8,
    n_times: int = 50,
    params=None,
) -> EngineCheck:
    """Solve and differentiate ``problem`` (a :class:`~pyude.Problem` or a problem file) on two
    engines at tolerances ``rtol``/``atol`` and compare trajectories (``n_times`` points per
    condition), the loss and the gradient per parameter block at ``params`` (default: the
    problem's starting values). ``reference_sensitivity`` defaults to ``sensitivity``.
    """
    if isinstance(problem, (str, Path)):
        from .problem._file import load_problem_file

        problem, _ = load_problem_file(problem)
    if params is None:
        params = problem.params_of(problem.theta0())
    settings = {"rtol": rtol, "atol": atol, "max_steps": max(problem.settings.max_steps, 200_000)}
    ref = _rebuild(problem, engine=reference, **settings)
    cand = _rebuild(problem, engine=candidate, **settings)
    sens_ref = as_sensitivity(reference_sensitivity if reference_sensitivity is not None else sensitivity)
    sens_cand = as_sensitivity(sensitivity)

    rows: list[dict[str, Any]] = []

    def add(quantity: str, name: str, a, b) -> None:
        d, rel = _diff(a, b, floor)
        rows.append({"quantity": quantity, "name": name, "max_abs": d, "max_rel": rel, "ok": bool(rel <= tolerance)})

    sim_ref, sim_cand = ref.simulate(params, n_times=n_times), cand.simulate(params, n_times=n_times)
    keys = ["condition", "time", "observable"]
    if not sim_ref[keys].equals(sim_cand[keys]):
        raise ValueError("the two engines simulated different (condition, time, observable) rows")
    for obs, group in sim_ref.groupby("observable", sort=False):
        add("trajectory", str(obs), group["value"], sim_cand.loc[group.index, "value"])
    add("loss", "loss", ref.loss(params), cand.loss(params))
    value_ref, grad_ref = ref.value_and_grad(params, sens_ref)
    value_cand, grad_cand = cand.value_and_grad(params, sens_cand)
    add("loss", f"loss ({sens_cand.name})", value_ref, value_cand)
    for name in grad_ref:
        add("gradient", name, grad_ref[name], grad_cand[name])
    return EngineCheck(pd.DataFrame(rows, columns=COLUMNS), float(tolerance), reference, candidate)


__all__ = ["check_engines", "EngineCheck"]
