"""Synthetic substrate time courses for the Michaelis-Menten example (seed 0).

True values: Vmax = 2.0, Km = 1.5; S0 = 2, 5, 10 in three experiments; 15
irregular times each in (0, 8]; Gaussian noise, sd 0.05. Writes data.csv and
conditions.csv next to this file.
"""

from pathlib import Path

import numpy as np
import pandas as pd

import pyude

HERE = Path(__file__).parent
TRUE = {"Vmax": 2.0, "Km": 1.5}
S0 = {"low": 2.0, "mid": 5.0, "high": 10.0}
SIGMA = 0.05


def main() -> None:
    model = pyude.Model.from_yaml(HERE / "model.yaml")
    rng = np.random.default_rng(0)
    rows = []
    for cond, s0 in S0.items():
        t = np.sort(rng.uniform(0.2, 8.0, size=15))
        sol = pyude.solve(model, t, params={**TRUE, "S0": s0}, rtol=1e-10, atol=1e-12)
        noisy = sol["S"] + SIGMA * rng.standard_normal(t.size)
        rows += [{"condition": cond, "time": round(float(a), 4), "observable": "substrate", "value": round(float(b), 5)}
                 for a, b in zip(t, noisy)]
    pd.DataFrame(rows).to_csv(HERE / "data.csv", index=False)
    pd.DataFrame({"condition": list(S0), "S0": list(S0.values())}).to_csv(HERE / "conditions.csv", index=False)


if __name__ == "__main__":
    main()
