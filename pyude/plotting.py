"""Plots of trajectories (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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
