"""Plots of trajectories (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_solution(sol, path: str | Path, *, title: str = "", log_time: bool = False) -> Path:
    """One panel, one line per state; written as PNG to ``path``."""
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for j, s in enumerate(sol.states):
        y = sol.y[:, j]
        ax.plot(sol.t, y, label=s)
    if log_time:
        ax.set_xscale("log")
    ax.set_xlabel("time")
    ax.set_ylabel("state")
    ax.set_title(f"{title} ({sol.stats.get('solver')})" if title else str(sol.stats.get("solver")))
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
