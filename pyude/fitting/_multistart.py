"""``pyude.fit_multistart``: independent fits from sampled starting points, on any Executor.

The problem travels to the workers as its recipe (spec, data, conditions, settings;
see ``Problem.__getstate__``), so a ``concurrent.futures.ProcessPoolExecutor`` (the
default), a Dask cluster's ``client.get_executor()`` or a Ray executor run it with no
change. A start that raises or diverges is recorded as failed; the others go on.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._errors import DataError
from ._fit import FitResult, _starting_theta, fit


def sample_starts(problem, n_starts: int, seed: int) -> list[np.ndarray]:
    """Start 0: the problem's starting values. Start k > 0: mechanistic entries uniform
    within their bounds on the estimation scale (no bounds: the start +- 1 on a log
    scale, x(1 +- 0.5) on a linear one); networks re-initialised with ``seed + k``."""
    est = problem.estimation
    rng = np.random.default_rng(seed)
    starts = []
    for k in range(n_starts):
        theta = _starting_theta(problem, None, seed + k)
        if k > 0:
            mech = ~est.is_network
            lo, hi = est.lower, est.upper
            bounded = np.isfinite(lo) & np.isfinite(hi)
            u = rng.uniform(size=theta.size)
            spread = np.where(est.scale > 0, 1.0, 0.5 * np.maximum(np.abs(theta), 1e-3))
            unbounded = theta + (2 * u - 1) * spread
            theta = np.where(mech & bounded, lo + u * (hi - lo), np.where(mech, unbounded, theta))
            theta = est.clip(theta)
        starts.append(theta)
    return starts


def _run_start(problem, theta0: np.ndarray, start: int, seed: int, fit_kwargs: dict[str, Any]) -> dict[str, Any]:
    """One start in a worker; never raises (the failure is the result)."""
    try:
        r = fit(problem, seed=seed, init=theta0, **fit_kwargs)
        return {"start": start, "theta": r.theta, "loss": r.loss, "history": r.history, "messages": r.messages,
                "success": r.success, "wall_time": r.wall_time, "evaluations": r.evaluations, "error": ""}
    except Exception as e:  # noqa: BLE001 - one start must not take the others down
        return {"start": start, "theta": theta0, "loss": np.inf, "history": None, "messages": [],
                "success": False, "wall_time": np.nan, "evaluations": 0,
                "error": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"}


@dataclass
class MultistartResult:
    """All starts, ranked by loss (failed ones last). ``best`` is the best :class:`FitResult`."""

    results: list[FitResult | None]
    summary: pd.DataFrame

    @property
    def best(self) -> FitResult:
        for r in self.results:
            if r is not None and np.isfinite(r.loss):
                return r
        raise DataError("every start failed: see .summary['error']")

    def plot_waterfall(self, path: str | Path | None = None):
        """Sorted final losses against rank (the waterfall plot); PNG at ``path`` if given."""
        from ..plotting import plot_waterfall

        return plot_waterfall(self.summary, path)


def fit_multistart(problem, n_starts: int, executor: Executor | None = None, *, seed: int = 0, **fit_kwargs):
    """Fit from ``n_starts`` starting points (see :func:`sample_starts`) on ``executor``
    (default: a process pool of up to ``os.cpu_count()`` workers). ``fit_kwargs`` go to
    :func:`pyude.fit` (``adam=``, ``polish=``, ``sensitivity=``...). Start ``k`` uses
    seed ``seed + k``."""
    if int(n_starts) < 1:
        raise DataError(f"n_starts must be >= 1, got {n_starts}")
    for bad in ("init", "seed", "checkpoint"):
        if bad in fit_kwargs:
            raise DataError(f"fit_multistart: {bad!r} is set per start; it cannot be passed")
    starts = sample_starts(problem, int(n_starts), seed)
    own = executor is None
    if own:
        workers = max(1, min(int(n_starts), os.cpu_count() or 1))
        # spawn, not fork: a forked JAX runtime can deadlock
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [executor.submit(_run_start, problem, th, k, seed + k, fit_kwargs) for k, th in enumerate(starts)]
        outs = []
        for k, f in enumerate(futures):
            try:
                outs.append(f.result())
            except Exception as e:  # noqa: BLE001 - a lost worker fails its start only
                outs.append({"start": k, "theta": starts[k], "loss": np.inf, "history": None, "messages": [],
                             "success": False, "wall_time": np.nan, "evaluations": 0,
                             "error": f"{type(e).__name__}: {e}"})
    finally:
        if own:
            executor.shutdown()
    outs.sort(key=lambda o: (not np.isfinite(o["loss"]), o["loss"]))
    results: list[FitResult | None] = []
    for o in outs:
        if o["history"] is None:
            results.append(None)
            continue
        results.append(FitResult(problem, np.asarray(o["theta"]), float(o["loss"]), o["history"], o["messages"],
                                 bool(o["success"]), seed + o["start"], float(o["wall_time"]), int(o["evaluations"])))
    summary = pd.DataFrame(
        {
            "rank": np.arange(len(outs)),
            "start": [o["start"] for o in outs],
            "loss": [o["loss"] for o in outs],
            "success": [o["success"] for o in outs],
            "wall_time": [o["wall_time"] for o in outs],
            "error": [o["error"].splitlines()[0] if o["error"] else "" for o in outs],
        }
    )
    return MultistartResult(results, summary)
