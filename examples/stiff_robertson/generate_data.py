"""Synthetic data for the stiff Robertson example (seed 0).

True values k1 = 0.04, k2 = 3e7, k3 = 1e4; y1, y2 and y3 at 12 log-spaced times in
[0.1, 1e4], multiplicative (lognormal) noise with sd 0.02 on the log scale.
"""

from pathlib import Path

import numpy as np
import pandas as pd

import pyude

HERE = Path(__file__).parent
TRUE = {"k1": 0.04, "k2": 3.0e7, "k3": 1.0e4}


def main() -> None:
    model = pyude.Model.from_yaml(HERE / "model.yaml")
    rng = np.random.default_rng(0)
    t = np.geomspace(0.1, 1e4, 12)
    sol = pyude.solve(model, t, params=TRUE, solver="Rodas5P", rtol=1e-11, atol=1e-14)
    rows = []
    for obs, state in (("A", "y1"), ("B", "y2"), ("C", "y3")):
        noisy = sol[state] * np.exp(0.02 * rng.standard_normal(t.size))
        rows += [{"time": float(a), "observable": obs, "value": float(b)} for a, b in zip(t, noisy)]
    pd.DataFrame(rows).to_csv(HERE / "data.csv", index=False, float_format="%.8g")


if __name__ == "__main__":
    main()
