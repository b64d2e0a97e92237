"""Writes petab_reference_gradients.json: the gradients that tests/test_petab_benchmarks.py
checks every sensitivity against, for the models whose check runs by default.

Each is pyude's forward-sensitivity gradient of the negative log-likelihood at rtol = atol
= 1e-12, in the estimated parameters on their PEtab scales, at the test's two points (the
nominal one, and each parameter moved by 10 % on its scale within its bounds). Before
it is written, it is checked against central finite differences of the loss (also at
1e-12, relative step 1e-6 on each parameter's scale): the script stops if any component
differs by more than 1e-5 of the gradient's norm. Stored rather than recomputed by the
test because compiling the tight-tolerance program took ~10 s of each check's ~50.

Run from the repository root: python tests/data/make_petab_reference_gradients.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import pyude.petab

ROOT = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "benchmark-models"
MODELS = ("Boehm_JProteomeRes2014", "Elowitz_Nature2000")
OUT = Path(__file__).with_name("petab_reference_gradients.json")


def main() -> None:
    out = {}
    for name in MODELS:
        pr = pyude.petab.load(ROOT / name / f"{name}.yaml", rtol=1e-12, atol=1e-12)
        nominal = pr.theta0()
        # the test's other point: every parameter moved by 10 % on its scale, within bounds
        moved = np.clip(nominal + 0.1 * np.abs(nominal), pr.estimation.lower, pr.estimation.upper)
        out[name] = {}
        for point, theta in (("nominal", nominal), ("moved", moved)):
            ref = pr.evaluate(theta, "forward")
            assert ref["ok"], ref["message"]
            g = np.asarray(ref["grad"], dtype=float)
            fd = np.empty_like(g)
            for i in range(theta.size):
                h = 1e-6 * max(1.0, abs(theta[i]))
                up, down = theta.copy(), theta.copy()
                up[i] += h
                down[i] -= h
                fd[i] = (pr.evaluate(up)["value"] - pr.evaluate(down)["value"]) / (2 * h)
            err = np.max(np.abs(fd - g)) / np.linalg.norm(g)
            print(f"{name} {point}: {theta.size} parameters, max |FD - forward| / |grad| = {err:.2e}")
            assert err < 1e-5, (name, point, err)
            out[name][point] = {"names": list(pr.estimation.names), "theta": theta.tolist(), "grad": g.tolist()}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
