"""The cost of pyude's continuous adjoint against max_steps x n_states.

The ODE is trivial (y' = -k y, n independent states, Tsit5, rtol 1e-3: a handful of
steps), 10 data times. An adjoint whose backward pass kept a buffer sized by
``max_steps`` would grow in proportion to ``max_steps * n`` although the number of
steps taken is the same; the chunked adjoint (pyude/engines/jax/_adjoint.py) should
stay flat in ``max_steps``, as the checkpoint gradient does.

Run: python benchmarks/adjoint_scaling.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

import pyude


def main():
    rows = []
    print("| states | max_steps | checkpoint (ms) | adjoint (ms) | adjoint compile (s) |")
    print("|---|---|---|---|---|")
    for n in (2, 200, 2000):
        for max_steps in (1_000, 10_000):
            t = np.linspace(0.1, 1.0, 10)
            data = pd.DataFrame({"time": np.repeat(t, n), "observable": np.tile([f"y{i}" for i in range(n)], len(t)),
                                 "value": 0.5})
            params = {"k": np.array(1.0)}
            problem = pyude.Problem(lambda t, y, p: -p["k"] * y, data, y0=np.ones(n), params=params, solver="Tsit5",
                                    rtol=1e-3, atol=1e-4, max_steps=max_steps)
            row = {"states": n, "max_steps": max_steps}
            for sens in ("checkpoint", "adjoint"):
                problem.value_and_grad(params, sens)
                start = time.perf_counter()
                for _ in range(3):
                    problem.value_and_grad(params, sens)
                row[f"{sens}_ms"] = (time.perf_counter() - start) / 3 * 1e3
                row[f"{sens}_compile_s"] = problem.stats[f"compile_time_{sens}"]
            rows.append(row)
            print(f"| {n} | {max_steps} | {row['checkpoint_ms']:.1f} | {row['adjoint_ms']:.1f} | "
                  f"{row['adjoint_compile_s']:.1f} |", flush=True)
    path = Path(__file__).parent / "results" / "adjoint_scaling.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
