"""Compile and run time of large reaction networks: monomial terms as arrays vs scalar code.

Model: the reversible chain X0 <-> X1 <-> ... <-> X{n-1} with mass-action rates (random
rate constants, seed 0), all mass at X0 at t = 0, solved to t = 100 with Rodas5P at
rtol 1e-8 / atol 1e-10; the gradient is ``Problem.value_and_grad`` (checkpoint) of a
sum of squares on every state at t = 1, 10, 100. "scalar" traces every rate term as
its own XLA ops (``MassAction.MIN_TERMS`` raised past the model's size), "arrays" is
the default. Compile times are the first call's; run times the median of 5 calls after.

Run: python benchmarks/large_network.py [--sizes 50 100 300]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

import pyude
from pyude.engines.jax._compile import MassAction
from stiff import median_time  # benchmarks/ is on the path when a script here runs


def chain(n: int) -> dict:
    rng = np.random.default_rng(0)
    kf, kr = rng.uniform(0.5, 2.0, n - 1), rng.uniform(0.5, 2.0, n - 1)
    return {
        "name": f"chain{n}",
        "states": [f"X{i}" for i in range(n)],
        "parameters": {**{f"kf{i}": float(v) for i, v in enumerate(kf)}, **{f"kr{i}": float(v) for i, v in enumerate(kr)}},
        "reactions": [{"equation": f"X{i} <-> X{i + 1}", "rate": f"kf{i}*X{i}", "reverse_rate": f"kr{i}*X{i + 1}"}
                      for i in range(n - 1)],
        "initial": {f"X{i}": 1.0 if i == 0 else 0.0 for i in range(n)},
    }


def measure(n: int, label: str, gradient: bool = True) -> dict:
    spec = {**chain(n), "name": f"chain{n} {label}"}  # its own compiled model, not the engine's cached one
    model = pyude.Model.from_dict(spec)
    t = [1.0, 10.0, 100.0]
    sol = pyude.solve(model, t, solver="Rodas5P", rtol=1e-8, atol=1e-10)
    data = pd.DataFrame({"time": np.repeat(t, n), "observable": np.tile(spec["states"], len(t)),
                         "value": sol.y.reshape(-1) * 1.01})
    out = {
        "solve_compile_s": sol.stats["compile_time"],
        "solve_s": median_time(lambda: pyude.solve(model, t, solver="Rodas5P", rtol=1e-8, atol=1e-10), 5),
        "grad_compile_s": float("nan"),
        "grad_s": float("nan"),
    }
    if gradient:
        problem = pyude.Problem(model, data, solver="Rodas5P", rtol=1e-8, atol=1e-10)
        problem.value_and_grad()
        out.update(grad_compile_s=problem.stats["compile_time_checkpoint"], grad_s=median_time(problem.value_and_grad, 5))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 300])
    ap.add_argument("--scalar-gradient-max", type=int, default=100,
                    help="largest size whose scalar-code gradient is compiled (it takes over 20 min at 300)")
    args = ap.parse_args()
    default = MassAction.MIN_TERMS
    print("| species | rate terms | RHS as | solve compile (s) | solve (ms) | gradient compile (s) | gradient (ms) |")
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for label, threshold in (("scalar code", 10**9), ("arrays", default)):
            MassAction.MIN_TERMS = threshold  # the class default, restored below
            try:
                r = measure(n, label, gradient=threshold == default or n <= args.scalar_gradient_max)
            finally:
                MassAction.MIN_TERMS = default
            print(f"| {n} | {2 * (n - 1)} | {label} | {r['solve_compile_s']:.1f} | {r['solve_s'] * 1e3:.1f} | "
                  f"{r['grad_compile_s']:.1f} | {r['grad_s'] * 1e3:.1f} |", flush=True)


if __name__ == "__main__":
    main()
