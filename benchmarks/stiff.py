"""Stiff reference problems: pyude (forward per solver, gradient per sensitivity) vs scipy BDF.

* Robertson (examples/robertson/model.yaml, reaction form, k = 0.04, 3e7, 1e4) on
  [0, 4e5], saved at 20 log-spaced times in [0.4, 4e5].
* HIRES (Hairer & Wanner, Solving ODEs II; IVP Test Set problem "hires"), written
  below as a pyude equations dict in the Test Set's parametrised form (k1..k9, oks),
  on [0, 321.8122], saved at 20 equispaced times. The parameter values reproduce the
  usual numeric coefficients; ``check_hires`` verifies that against a literal
  transcription at random states before anything is timed.

Tolerances rtol 1e-8, atol 1e-10 for every solver. Accuracy is the maximum relative
error over the states at the final time against a reference: the IVP Test Set's
values for HIRES (RADAU5 in quadruple precision), and for Robertson at 4e5 scipy
Radau at rtol 1e-13 (checked against pyude Rodas5P at rtol 1e-12).

scipy is given a plain numpy right-hand side and analytic Jacobian (what a scipy user
writes), and, as a second variant, pyude's own compiled right-hand side and AD
Jacobian through ``jax.jit`` (each call then pays JAX's dispatch, tens of µs).

Gradients: ``pyude.Problem.value_and_grad`` of the weighted sum of squares on
synthetic data (every state at the 20 save times, the nominal solution times
1 + 2% deterministic noise, sigma = 1% of each state's range), at the nominal
parameters, solver Rodas5P, each sensitivity. scipy has no gradients; for
scale, a one-sided finite-difference gradient would cost (n_params + 1) BDF solves.

Times are medians over repeated calls after compilation; compile time is apart.

Run: python benchmarks/stiff.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy
from scipy.integrate import solve_ivp

import pyude

ROOT = Path(__file__).resolve().parents[1]
RTOL, ATOL = 1e-8, 1e-10
# pyude's default max_steps. It matters beyond "enough steps": the continuous adjoint's
# cost grows with it (see benchmarks/adjoint_scaling.py), so every pyude call uses it.
MAX_STEPS = 10_000
PYUDE_SOLVERS = ("Rodas5P", "Kvaerno5", "Rosenbrock23")
SENSITIVITIES = ("checkpoint", "adjoint", "forward")

# HIRES, IVP Test Set (Mazzia & Magherini), hires.f:
#   f1 = -k1*y1 + k2*y2 + k6*y3 + oks
#   f2 =  k1*y1 - (k2 + k3)*y2
#   f3 = -(k6 + k1)*y3 + k2*y4 + k5*y5
#   f4 =  k3*y2 + k1*y3 - (k4 + k2)*y4
#   f5 = -(k5 + k1)*y5 + k2*(y6 + y7)
#   f6 = -k7*y6*y8 + k8*y4 + k1*y5 - k2*y6 + k8*y7
#   f7 =  k7*y6*y8 - (k2 + k8 + k9)*y7
#   f8 = -f7
# y(0) = (1, 0, 0, 0, 0, 0, 0, 0.0057), t in [0, 321.8122].
HIRES = {
    "name": "hires",
    "states": ["y1", "y2", "y3", "y4", "y5", "y6", "y7", "y8"],
    "parameters": {"k1": 1.71, "k2": 0.43, "k3": 8.32, "k4": 0.69, "k5": 0.035,
                   "k6": 8.32, "k7": 280.0, "k8": 0.69, "k9": 0.69, "oks": 0.0007},
    "equations": {
        "y1": "-k1*y1 + k2*y2 + k6*y3 + oks",
        "y2": "k1*y1 - (k2 + k3)*y2",
        "y3": "-(k6 + k1)*y3 + k2*y4 + k5*y5",
        "y4": "k3*y2 + k1*y3 - (k4 + k2)*y4",
        "y5": "-(k5 + k1)*y5 + k2*(y6 + y7)",
        "y6": "-k7*y6*y8 + k8*y4 + k1*y5 - k2*y6 + k8*y7",
        "y7": "k7*y6*y8 - (k2 + k8 + k9)*y7",
        "y8": "-k7*y6*y8 + (k2 + k8 + k9)*y7",
    },
    "initial": {"y1": 1.0, "y8": 0.0057},
}
HIRES_T_END = 321.8122
HIRES_REFERENCE = np.array([  # IVP Test Set, hiressol: RADAU5, rtol = atol = 1.1e-18
    0.7371312573325668e-3, 0.1442485726316185e-3, 0.5888729740967575e-4, 0.1175651343283149e-2,
    0.2386356198831331e-2, 0.6238968252742796e-2, 0.2849998395185769e-2, 0.2850001604814231e-2,
])
ROBERTSON_T_END = 4e5


# ---------------------------------------------------------------- plain numpy versions for scipy
def hires_numpy(t, y):
    """HIRES with the numeric coefficients as usually printed (Hairer & Wanner IV.10)."""
    y1, y2, y3, y4, y5, y6, y7, y8 = y
    r = 280.0 * y6 * y8
    return np.array([
        -1.71 * y1 + 0.43 * y2 + 8.32 * y3 + 0.0007,
        1.71 * y1 - 8.75 * y2,
        -10.03 * y3 + 0.43 * y4 + 0.035 * y5,
        8.32 * y2 + 1.71 * y3 - 1.12 * y4,
        -1.745 * y5 + 0.43 * y6 + 0.43 * y7,
        -r + 0.69 * y4 + 1.71 * y5 - 0.43 * y6 + 0.69 * y7,
        r - 1.81 * y7,
        -r + 1.81 * y7,
    ])


def hires_numpy_jac(t, y):
    J = np.zeros((8, 8))
    J[0, :3] = -1.71, 0.43, 8.32
    J[1, :2] = 1.71, -8.75
    J[2, 2:5] = -10.03, 0.43, 0.035
    J[3, 1:4] = 8.32, 1.71, -1.12
    J[4, 4:7] = -1.745, 0.43, 0.43
    J[5, 3:8] = 0.69, 1.71, -280.0 * y[7] - 0.43, 0.69, -280.0 * y[5]
    J[6, 5:8] = 280.0 * y[7], -1.81, 280.0 * y[5]
    J[7, 5:8] = -280.0 * y[7], 1.81, -280.0 * y[5]
    return J


def robertson_numpy(t, y):
    y1, y2, y3 = y
    a, b, c = 0.04 * y1, 3e7 * y2 * y2, 1e4 * y2 * y3
    return np.array([-a + c, a - b - c, b])


def robertson_numpy_jac(t, y):
    _, y2, y3 = y
    return np.array([
        [-0.04, 1e4 * y3, 1e4 * y2],
        [0.04, -6e7 * y2 - 1e4 * y3, -1e4 * y2],
        [0.0, 6e7 * y2, 0.0],
    ])


def check_hires(model: pyude.Model) -> float:
    """The spec's parametrised HIRES equals the literal coefficients (and the example model, if present)."""
    cm = pyude.engines.get_engine("jax").compiled(model)
    p = jnp.asarray(model.flatten(None))
    rng = np.random.default_rng(3)
    worst = 0.0
    others = []
    example = ROOT / "examples/hires/model.yaml"
    if example.exists():
        ex = pyude.Model.from_yaml(example)
        others.append((pyude.engines.get_engine("jax").compiled(ex), jnp.asarray(ex.flatten(None))))
    for _ in range(20):
        y = rng.uniform(0, 1, 8)
        ref = hires_numpy(0.0, y)
        got = np.asarray(cm.rhs(0.0, jnp.asarray(y), (p, ())))
        worst = max(worst, float(np.max(np.abs(got - ref) / (np.abs(ref) + 1e-300))))
        np.testing.assert_allclose(np.asarray(jax.jacfwd(lambda z: cm.rhs(0.0, z, (p, ())))(jnp.asarray(y))),
                                   hires_numpy_jac(0.0, y), rtol=1e-12, atol=1e-12)
        for ocm, op in others:
            np.testing.assert_allclose(np.asarray(ocm.rhs(0.0, jnp.asarray(y), (op, ()))), ref, rtol=1e-12, atol=1e-15)
    assert worst < 1e-12, worst
    np.testing.assert_allclose(np.asarray(cm.initial(p)), [1, 0, 0, 0, 0, 0, 0, 0.0057])
    return worst


# ---------------------------------------------------------------- helpers
def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def rel_err(y, ref) -> float:
    return float(np.max(np.abs(np.asarray(y) - ref) / np.abs(ref)))


def jax_rhs_for_scipy(model: pyude.Model):
    """pyude's compiled right-hand side and AD Jacobian, jitted, as numpy callables."""
    cm = pyude.engines.get_engine("jax").compiled(model)
    p = jnp.asarray(model.flatten(None))
    f = jax.jit(lambda t, y: cm.rhs(t, y, (p, ())))
    jac = jax.jit(jax.jacfwd(lambda t, y: cm.rhs(t, y, (p, ())), argnums=1))
    return (lambda t, y: np.asarray(f(t, y))), (lambda t, y: np.asarray(jac(t, y)))


def problems():
    rob = pyude.Model.from_yaml(ROOT / "examples/robertson/model.yaml")
    hires = pyude.Model.from_dict(HIRES)
    t_rob = np.geomspace(ROBERTSON_T_END * 1e-6, ROBERTSON_T_END, 20)
    t_hires = np.linspace(HIRES_T_END / 20, HIRES_T_END, 20)
    return {
        "Robertson": dict(model=rob, t=t_rob, y0=np.array([1.0, 0.0, 0.0]), f=robertson_numpy, jac=robertson_numpy_jac),
        "HIRES": dict(model=hires, t=t_hires, y0=np.array([1.0, 0, 0, 0, 0, 0, 0, 0.0057]), f=hires_numpy,
                      jac=hires_numpy_jac),
    }


def robertson_reference(y0) -> tuple[np.ndarray, dict]:
    sol = solve_ivp(robertson_numpy, (0, ROBERTSON_T_END), y0, method="Radau", rtol=1e-13,
                    atol=np.array([1e-20, 1e-24, 1e-20]), jac=robertson_numpy_jac)
    assert sol.success, sol.message
    ref = sol.y[:, -1]
    model = pyude.Model.from_yaml(ROOT / "examples/robertson/model.yaml")
    check = pyude.solve(model, [ROBERTSON_T_END], solver="Rodas5P", rtol=1e-12, atol=1e-20, max_steps=200_000).y[-1]
    return ref, {"reference": "scipy Radau rtol 1e-13", "pyude Rodas5P rtol 1e-12 vs reference": rel_err(check, ref)}


# ---------------------------------------------------------------- the benchmark
def run(repeat_pyude: int, repeat_scipy: int) -> dict:
    out: dict = {}
    for name, pr in problems().items():
        model, t, y0 = pr["model"], pr["t"], pr["y0"]
        t_end = float(t[-1])
        print(f"\n{name}: ", end="", flush=True)
        if name == "HIRES":
            ref, ref_info = HIRES_REFERENCE, {"reference": "IVP Test Set (RADAU5, rtol = atol = 1.1e-18)",
                                              "spec vs literal coefficients, max rel diff": check_hires(model)}
        else:
            ref, ref_info = robertson_reference(y0)
        rows: dict = {}
        for solver in PYUDE_SOLVERS:
            kw = dict(solver=solver, rtol=RTOL, atol=ATOL, max_steps=MAX_STEPS)
            try:
                sol = pyude.solve(model, t, **kw)
            except pyude.SolverError as e:  # noqa: PERF203
                rows[f"pyude {solver}"] = {"failed": str(e)}
                continue
            s = median_time(lambda: pyude.solve(model, t, **kw), repeat_pyude)
            st = sol.stats
            rows[f"pyude {solver}"] = {
                "time_s": s, "steps": st["steps"], "rejected": st["rejected_steps"], "nfev": st["rhs_evals"],
                "njev": st["jacobian_evals"], "compile_s": st["compile_time"], "engine_solve_s": st["solve_time"],
                "rel_err_end": rel_err(sol.y[-1], ref),
            }
            print(".", end="", flush=True)
        f_jax, jac_jax = jax_rhs_for_scipy(model)
        variants = (
            ("scipy BDF", "BDF", pr["f"], None),
            ("scipy BDF + jac", "BDF", pr["f"], pr["jac"]),
            ("scipy BDF + jac (pyude's jitted JAX rhs/jac)", "BDF", f_jax, jac_jax),
            ("scipy LSODA + jac", "LSODA", pr["f"], pr["jac"]),
        )
        for label, method, f, jac in variants:
            kw = dict(method=method, rtol=RTOL, atol=ATOL, **({"jac": jac} if jac is not None else {}))
            sol = solve_ivp(f, (0, t_end), y0, t_eval=t, **kw)
            assert sol.success, sol.message
            steps = len(solve_ivp(f, (0, t_end), y0, **kw).t) - 1  # t_eval does not change the steps taken
            s = median_time(lambda: solve_ivp(f, (0, t_end), y0, t_eval=t, **kw), repeat_scipy)
            rows[label] = {"time_s": s, "steps": steps, "nfev": int(sol.nfev), "njev": int(sol.njev),
                           "nlu": int(sol.nlu), "rel_err_end": rel_err(sol.y[:, -1], ref)}
            print(".", end="", flush=True)
        # gradients on synthetic data
        nominal = pyude.solve(model, t, solver="Rodas5P", rtol=1e-10, atol=1e-14, max_steps=200_000).y
        noise = 1.0 + 0.02 * np.sin(np.arange(nominal.size)).reshape(nominal.shape)
        sigma = 0.01 * np.maximum(np.abs(nominal).max(axis=0), 1e-12)
        data = pd.DataFrame({
            "time": np.repeat(t, len(model.states)),
            "observable": np.tile(model.states, len(t)),
            "value": (nominal * noise).reshape(-1),
            "sigma": np.tile(sigma, len(t)),
        })
        problem = pyude.Problem(model, data, solver="Rodas5P", rtol=RTOL, atol=ATOL, max_steps=MAX_STEPS)
        grads = {}
        for sens in SENSITIVITIES:
            value, g = problem.value_and_grad(None, sens)
            grads[sens] = model.flatten(g)
            s = median_time(lambda: problem.value_and_grad(None, sens), repeat_pyude)
            rows[f"pyude gradient ({sens})"] = {"time_s": s, "compile_s": problem.stats[f"compile_time_{sens}"],
                                               "loss": value, "n_params": model.n_params}
            print(".", end="", flush=True)
        base = grads["checkpoint"]
        for sens in SENSITIVITIES:
            rows[f"pyude gradient ({sens})"]["max_rel_diff_vs_checkpoint"] = float(
                np.max(np.abs(grads[sens] - base) / np.maximum(np.abs(base), 1e-12 * np.abs(base).max())))
        out[name] = {"t_end": t_end, "n_states": len(model.states), "n_params": model.n_params,
                     "save_times": len(t), **ref_info, "rows": rows}
    print()
    return out


def table(name: str, res: dict) -> str:
    rows = res["rows"]
    bdf = rows["scipy BDF"]["time_s"]
    bdf_jac = rows["scipy BDF + jac"]["time_s"]
    fwd = rows["pyude Rodas5P"]["time_s"]
    n_p = res["n_params"]
    lines = [
        f"### {name} (t_end {res['t_end']:g}, {res['n_states']} states, {n_p} parameters; "
        f"rtol {RTOL:g}, atol {ATOL:g})",
        "",
        "Forward solve, 20 save times:",
        "",
        "| method | time (ms) | speed-up vs scipy BDF | steps / rejected | f evals / J evals | "
        "max rel. error at t_end | compile (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r in rows.items():
        if label.startswith("pyude gradient"):
            continue
        if "failed" in r:
            lines.append(f"| {label} | failed: {r['failed']} | | | | | |")
            continue
        steps = f"{r['steps']} / {r['rejected']}" if "rejected" in r else str(r["steps"])
        nf = "-" if r.get("nfev") is None else str(r["nfev"])
        nj = "-" if r.get("njev") is None else str(r["njev"])
        comp = f"{r['compile_s']:.1f}" if "compile_s" in r else ""
        lines.append(f"| {label} | {r['time_s'] * 1e3:.2f} | {bdf / r['time_s']:.1f}x | {steps} | {nf} / {nj} | "
                     f"{r['rel_err_end']:.1e} | {comp} |")
    lines += [
        "",
        f"Gradient of the loss w.r.t. all {n_p} parameters (pyude.Problem.value_and_grad, Rodas5P). "
        f"Last column: a forward-difference gradient with scipy ({n_p + 1} x 'scipy BDF + jac') over this time:",
        "",
        "| sensitivity | time (ms) | compile (s) | x one pyude Rodas5P solve | max rel. diff vs checkpoint | "
        "scipy FD estimate / this |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in rows.items():
        if not label.startswith("pyude gradient"):
            continue
        sens = label.split("(")[1].rstrip(")")
        lines.append(f"| {sens} | {r['time_s'] * 1e3:.2f} | {r['compile_s']:.1f} | {r['time_s'] / fwd:.1f} | "
                     f"{r['max_rel_diff_vs_checkpoint']:.1e} | {(n_p + 1) * bdf_jac / r['time_s']:.1f}x |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat-pyude", type=int, default=20)
    ap.add_argument("--repeat-scipy", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "stiff.json"))
    args = ap.parse_args()
    res = run(args.repeat_pyude, args.repeat_scipy)
    for name, r in res.items():
        print()
        print(table(name, r))
    import diffrax

    out = {
        "rtol": RTOL, "atol": ATOL, "repeat_pyude": args.repeat_pyude, "repeat_scipy": args.repeat_scipy,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": sys.version.split()[0]},
        "versions": {"jax": jax.__version__, "diffrax": diffrax.__version__, "scipy": scipy.__version__,
                     "numpy": np.__version__},
        "problems": res,
    }
    path = Path(args.out)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
