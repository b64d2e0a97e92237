"""Loss against wall time: Adam alone vs Adam then L-BFGS-B (the two-stage UDE recipe).

For each network example the same problem, seed and start are fitted twice:
``adam_only`` runs Adam (the example's learning rate, cosine schedule) for ``--adam-only``
steps; ``adam_lbfgs`` is the example's own recipe (problem.yaml: Adam, then L-BFGS-B).
Every gradient is compiled before the clocks start, so the curves compare optimizers,
not compilation. Reports the best loss reached by fixed wall times and at the end,
writes benchmarks/results/fit_loss_vs_time.json and docs/img/loss_vs_time.png.

Run: python benchmarks/fit_loss_vs_time.py [--adam-only 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import pyude
from pyude.problem._file import load_problem_file

ROOT = Path(__file__).parents[1]
EXAMPLES = ("lotka_volterra_ude", "toggle_switch", "enzyme_network_ude")
MARKS = (1.0, 2.0, 5.0, 10.0, 20.0, 40.0)


def best_by(history, seconds: float) -> float:
    done = history[history["seconds"] <= seconds]
    return float(done["best_loss"].min()) if len(done) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--adam-only", type=int, default=2000, help="Adam steps of the Adam-only run")
    args = parser.parse_args()
    results, curves = [], {}
    header = "| example | recipe | " + " | ".join(f"best @ {m:g} s" for m in MARKS) + " | final loss | wall (s) |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in EXAMPLES:
        problem, kw = load_problem_file(ROOT / "examples" / name / "problem.yaml")
        kw.pop("multistart")
        theta = problem.theta0()
        problem.evaluate(theta, kw["sensitivity"])  # compile once, outside the timed fits
        recipes = {
            "adam_only": {**kw, "adam": dataclasses.replace(kw["adam"], steps=args.adam_only), "polish": None},
            "adam_lbfgs": kw,
        }
        for recipe, settings in recipes.items():
            result = pyude.fit(problem, **settings)
            h = result.history
            row = {"example": name, "recipe": recipe, "final_loss": result.loss, "wall_time": result.wall_time,
                   "iterations": len(h), **{f"best_at_{m:g}s": best_by(h, m) for m in MARKS}}
            results.append(row)
            curves[(name, recipe)] = (h["seconds"].to_numpy(), h["best_loss"].to_numpy())
            cells = " | ".join(f"{row[f'best_at_{m:g}s']:.4g}" for m in MARKS)
            print(f"| {name} | {recipe} | {cells} | {result.loss:.6g} | {result.wall_time:.1f} |", flush=True)
    out = ROOT / "benchmarks" / "results" / "fit_loss_vs_time.json"
    out.write_text(json.dumps(results, indent=1))
    fig, axes = plt.subplots(1, len(EXAMPLES), figsize=(4.2 * len(EXAMPLES), 3.4))
    for ax, name in zip(axes, EXAMPLES):
        lowest = min(curves[(name, r)][1].min() for r in ("adam_only", "adam_lbfgs"))
        for recipe, style, label in (("adam_only", "-", "Adam only"), ("adam_lbfgs", "--", "Adam + L-BFGS-B")):
            t, best = curves[(name, recipe)]
            ax.plot(t, best - lowest + 1.0, style, label=label)
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("wall time (s)")
        ax.set_ylabel("best loss - lowest + 1")
        ax.legend()
    fig.tight_layout()
    img = ROOT / "docs" / "img"
    img.mkdir(exist_ok=True)
    fig.savefig(img / "loss_vs_time.png", dpi=110)


if __name__ == "__main__":
    main()
