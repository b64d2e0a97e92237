"""Plots of trajectories (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_solution(sol, path: str | Path, *, title: str = "", log_time: bool = False) -> Path:
    """One panel per state (states of a model often differ by orders of magnitude); PNG at ``path``."""
    n = len(sol.states)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), dpi=110, squeeze=False)
    for j, s in enumerate(sol.states):
        ax = axes[j // cols][j % cols]
        ax.plot(sol.t, sol.y[:, j], color=f"C{j}")
        ax.set_title(s)
        ax.set_xlabel("time")
        if log_time:
            ax.set_xscale("log")
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle(f"{title} ({sol.stats.get('solver')})" if title else str(sol.stats.get("solver")))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_fit(result, path: str | Path | None = None):
    """Data (points) and fitted observables (lines): one panel per observable, one colour
    per condition; a last panel with the loss per iteration."""
    problem = result.problem
    # times given explicitly: a PEtab problem's simulate() without them returns its measurement rows
    finite = problem.data.ts[np.isfinite(problem.data.ts)]
    sim = problem.simulate(result.params, times=np.linspace(problem.t0, finite.max(initial=problem.t0), 200))
    data = problem.data.frame.copy()
    if "condition" not in data.columns:
        data["condition"] = problem.conditions.ids[0]
    data["condition"] = data["condition"].astype(str)
    observables = list(dict.fromkeys(sim["observable"]))
    n = len(observables) + 1
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.0 * rows), dpi=110, squeeze=False)
    conditions = problem.conditions.ids
    for j, obs in enumerate(observables):
        ax = axes[j // cols][j % cols]
        for c, cid in enumerate(conditions):
            colour = f"C{c % 10}"
            s = sim[(sim["observable"] == obs) & (sim["condition"] == cid)]
            d = data[(data["observable"] == obs) & (data["condition"] == cid)]
            label = cid if len(conditions) > 1 else None
            ax.plot(s["time"], s["value"], color=colour, label=label)
            ax.plot(d["time"], d["value"], "o", ms=3, color=colour, alpha=0.7)
        ax.set_title(obs)
        ax.set_xlabel("time")
        if len(conditions) > 1 and j == 0 and len(conditions) <= 8:
            ax.legend(fontsize=7)
    ax = axes[(n - 1) // cols][(n - 1) % cols]
    h = result.history
    for phase, colour in (("adam", "C0"), ("lbfgs", "C3")):
        part = h[h["phase"] == phase]
        if len(part):
            ax.plot(part["step"], part["loss"], color=colour, label=phase)
    finite = h["loss"][np.isfinite(h["loss"])] if len(h) else []
    if len(finite) and (np.asarray(finite) > 0).all():
        ax.set_yscale("log")
    ax.set_title("loss")
    ax.set_xlabel("iteration")
    ax.legend(fontsize=7)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle(f"{problem.model.name}: loss {result.loss:.5g}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig


def plot_waterfall(summary, path: str | Path | None = None):
    """Final loss of each start, sorted (the multi-start waterfall plot)."""
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=110)
    loss = np.asarray(summary["loss"], dtype=float)
    ok = np.isfinite(loss)
    ax.plot(np.flatnonzero(ok), loss[ok], "o-", ms=4)
    if (~ok).any():
        ax.plot(np.flatnonzero(~ok), np.full((~ok).sum(), np.nanmax(loss[ok]) if ok.any() else 1.0), "x", color="C3",
                label="failed")
        ax.legend()
    if ok.any() and (loss[ok] > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("start (sorted)")
    ax.set_ylabel("final loss")
    ax.set_title("multi-start waterfall")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig
