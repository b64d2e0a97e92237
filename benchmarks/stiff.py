"""Stiff reference problems: pyude (forward per solver, gradient per sensitivity) vs scipy BDF.

Robertson on [0, 4e5] and HIRES on [0, 321.8122]; rtol 1e-8, atol 1e-10 for all.
Times are medians of repeated calls after compilation; compile time is reported apart.

Run: python benchmarks/stiff.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

import pyude

ROOT = Path(__file__).parents[1]
RTOL, ATOL, REPEAT = 1e-8, 1e-10, 5

PROBLEMS = {
    "Robertson": (pyude.Model.from_yaml(ROOT / "examples/robertson/model.yaml"), 4e5),
    "HIRES": (pyude.Model.from_yaml(ROOT / "examples/hires/model.yaml"), 321.8122),
}


def median_time(fn, repeat=REPEAT):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def scipy_rhs(model: pyude.Model):
    """pyude's compiled right-hand side and Jacobian, jitted, as numpy callables for scipy."""
    cm = pyude.engines.get_engine("jax").compiled(model)
    import jax

    p = model.flatten(None)
    f = jax.jit(lambda t, y: cm.rhs(t, y, (p, ())))
    jac = jax.jit(jax.jacfwd(lambda t, y: cm.rhs(t, y, (p, ())), argnums=1))
    return (lambda t, y: np.asarray(f(t, y))), (lambda t, y: np.asarray(jac(t, y)))


def run() -> dict:
    out = {}
    for name, (model, t_end) in PROBLEMS.items():
        row: dict = {}
        t = np.geomspace(t_end * 1e-6, t_end, 20) if name == "Robertson" else np.linspace(t_end / 20, t_end, 20)
        for solver in ("Rodas5P", "Kvaerno5", "Rosenbrock23"):
            sol = pyude.solve(model, t, solver=solver, rtol=RTOL, atol=ATOL, max_steps=200_000)
            s = median_time(lambda: pyude.solve(model, t, solver=solver, rtol=RTOL, atol=ATOL, max_steps=200_000))
            row[f"pyude {solver}"] = {"time_s": s, "steps": sol.stats["steps"],
                                      "rejected": sol.stats["rejected_steps"], "compile_s": sol.stats["compile_time"],
                                      "y_end": sol.y[-1].tolist()}
        f, jac = scipy_rhs(model)
        y0 = np.asarray(pyude.engines.get_engine("jax").compiled(model).initial(model.flatten(None)))
        for label, kwargs in (("scipy BDF", {}), ("scipy BDF + jac", {"jac": jac})):
            sol = solve_ivp(f, (0, t_end), y0, method="BDF", rtol=RTOL, atol=ATOL, t_eval=t, **kwargs)
            s = median_time(lambda: solve_ivp(f, (0, t_end), y0, method="BDF", rtol=RTOL, atol=ATOL, t_eval=t, **kwargs))
            row[label] = {"time_s": s, "nfev": int(sol.nfev), "njev": int(sol.njev), "nlu": int(sol.nlu),
                          "y_end": sol.y[:, -1].tolist()}
        # gradients of a weighted least-squares loss on synthetic data
        sol = pyude.solve(model, t, solver="Rodas5P", rtol=1e-10, atol=1e-14)
        scale = np.maximum(np.abs(sol.y).max(axis=0), 1e-12)
        data = pd.DataFrame([{"time": ti, "observable": s, "value": v * 1.02, "sigma": 0.01 * scale[j]}
                             for i, ti in enumerate(t) for j, (s, v) in enumerate(zip(model.states, sol.y[i]))])
        problem = pyude.Problem(model, data, solver="Rodas5P", rtol=RTOL, atol=ATOL)
        for sens in ("checkpoint", "adjoint", "forward"):
            problem.value_and_grad(None, sens)
            compile_s = problem.stats[f"compile_time_{sens}"]
            s = median_time(lambda: problem.value_and_grad(None, sens))
            row[f"pyude gradient ({sens})"] = {"time_s": s, "compile_s": compile_s}
        out[name] = row
    return out


def main():
    res = run()
    for name, row in res.items():
        bdf = row["scipy BDF"]["time_s"]
        print(f"\n### {name} (rtol {RTOL:g}, atol {ATOL:g})\n")
        print("| method | time (ms) | vs scipy BDF | steps / rejected | nfev / njev | compile (s) |")
        print("|---|---|---|---|---|---|")
        for label, r in row.items():
            steps = f"{r['steps']} / {r['rejected']}" if "steps" in r else ""
            ev = f"{r['nfev']} / {r['njev']}" if "nfev" in r else ""
            comp = f"{r['compile_s']:.2f}" if "compile_s" in r else ""
            print(f"| {label} | {r['time_s'] * 1e3:.2f} | {r['time_s'] / bdf:.3f}x | {steps} | {ev} | {comp} |")
    path = Path(__file__).parent / "results" / "stiff.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
