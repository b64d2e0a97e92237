"""Synthetic data for the Lotka-Volterra UDE example (seed 0).

True model: x' = 1.3x - 0.9xy, y' = 0.8xy - 1.8y from (0.4425, 4.6281); 31
times in [0, 3]; Gaussian noise, sd 0.05, on both species.
"""

from pathlib import Path

import numpy as np
import pandas as pd

import pyude

HERE = Path(__file__).parent
TRUE = {
    "name": "lotka_volterra",
    "states": ["x", "y"],
    "parameters": {"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8},
    "equations": {"x": "alpha*x - beta*x*y", "y": "gamma*x*y - delta*y"},
    "initial": {"x": 0.44249296, "y": 4.6280594},
}


def main() -> None:
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 3.0, 31)
    sol = pyude.solve(TRUE, t, rtol=1e-10, atol=1e-12)
    rows = []
    for obs, state in (("prey", "x"), ("predator", "y")):
        noisy = sol[state] + 0.05 * rng.standard_normal(t.size)
        rows += [{"time": float(a), "observable": obs, "value": float(b)} for a, b in zip(t, noisy)]
    pd.DataFrame(rows).to_csv(HERE / "data.csv", index=False, float_format="%.6g")


if __name__ == "__main__":
    main()
