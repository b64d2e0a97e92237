"""Synthetic data for the enzyme-network UDE example (seed 0).

True model: E + S <-> C (kf = 2, kr = 1), C -> E + P at kcat*C/(1 + P/Ki) (kcat = 1.5,
Ki = 0.5: product inhibition), E0 = 1, C0 = P0 = 0. Three experiments with S0 = 2, 4,
6 (conditions.csv); substrate and product sampled at 16 times in [0.25, 12]; Gaussian
noise, sd 0.05.
"""

from pathlib import Path

import numpy as np
import pandas as pd

import pyude

HERE = Path(__file__).parent
TRUE = {
    "name": "enzyme_product_inhibition",
    "states": ["E", "S", "C", "P"],
    "parameters": {"kf": 2.0, "kr": 1.0, "kcat": 1.5, "Ki": 0.5},
    "reactions": [
        {"equation": "E + S <-> C", "rate": "kf*E*S", "reverse_rate": "kr*C"},
        {"equation": "C -> E + P", "rate": "kcat*C/(1 + P/Ki)"},
    ],
    "initial": {"E": 1.0, "S": 4.0, "C": 0.0, "P": 0.0},
}
SUBSTRATE = {"s2": 2.0, "s4": 4.0, "s6": 6.0}


def main() -> None:
    rng = np.random.default_rng(0)
    t = np.linspace(0.25, 12.0, 16)
    rows = []
    for cid, s0 in SUBSTRATE.items():
        sol = pyude.solve(TRUE, t, y0={"E": 1.0, "S": s0, "C": 0.0, "P": 0.0}, rtol=1e-10, atol=1e-12)
        for obs, state in (("substrate", "S"), ("product", "P")):
            noisy = sol[state] + 0.05 * rng.standard_normal(t.size)
            rows += [{"condition": cid, "time": float(a), "observable": obs, "value": float(b)} for a, b in zip(t, noisy)]
    pd.DataFrame(rows).to_csv(HERE / "data.csv", index=False, float_format="%.6g")
    pd.DataFrame({"condition": list(SUBSTRATE), "S": list(SUBSTRATE.values())}).to_csv(HERE / "conditions.csv", index=False)


if __name__ == "__main__":
    main()
