"""Synthetic data for the toggle-switch neural-ODE example (seed 0).

True model: u' = 3/(1+v^3) - u, v' = 3/(1+u^3) - v, bistable with stable states near
(3.0, 0.11) and (0.11, 3.0). Eight experiments start on both sides of the separatrix
u = v (conditions.csv); each is sampled at 12 irregular times in (0, 8] (drawn
uniformly, different per experiment); Gaussian noise, sd 0.05, on both repressors.
HELD_OUT are starting points the fit never sees (used by the test).
"""

from pathlib import Path

import numpy as np
import pandas as pd

import pyude

HERE = Path(__file__).parent
TRUE = {
    "name": "toggle_switch",
    "states": ["u", "v"],
    "parameters": {"a": 3.0, "n": 3.0},
    "equations": {"u": "a/(1 + v^n) - u", "v": "a/(1 + u^n) - v"},
    "initial": {"u": 1.0, "v": 1.0},
}
STARTS = [(0.2, 2.5), (2.5, 0.3), (0.5, 1.5), (1.5, 0.4), (3.0, 2.0), (2.0, 3.0), (0.1, 0.6), (1.2, 0.1)]
HELD_OUT = [(0.8, 2.0), (2.2, 1.0), (1.0, 0.3), (2.6, 3.0)]


def main() -> None:
    rng = np.random.default_rng(0)
    rows, conditions = [], []
    for k, (u0, v0) in enumerate(STARTS):
        cid = f"start{k}"
        conditions.append({"condition": cid, "u": u0, "v": v0})
        t = np.sort(rng.uniform(0.0, 8.0, 12))
        sol = pyude.solve(TRUE, t, y0={"u": u0, "v": v0}, rtol=1e-10, atol=1e-12)
        for obs, state in (("repressor_u", "u"), ("repressor_v", "v")):
            noisy = sol[state] + 0.05 * rng.standard_normal(t.size)
            rows += [{"condition": cid, "time": float(a), "observable": obs, "value": float(b)} for a, b in zip(t, noisy)]
    pd.DataFrame(rows).to_csv(HERE / "data.csv", index=False, float_format="%.6g")
    pd.DataFrame(conditions).to_csv(HERE / "conditions.csv", index=False)


if __name__ == "__main__":
    main()
