"""The torchdiffeq tutorial's neural-ODE training loop: pyude vs torchdiffeq, side by side.

Problem (as in torchdiffeq's ``examples/ode_demo.py``, batched): the true dynamics are
the harmonic oscillator x' = y, y' = -x; 1000 random initial states, uniform in
[-2, 2]^2 (seed 0); 50 save times on [0, 2*pi]; the model is an MLP 2-32-2 with tanh;
Adam, lr 1e-2; MSE against the true trajectories at the 49 times after t = 0;
rtol 1e-3, atol 1e-4; float64 everywhere. The initial weights are drawn once with
numpy (seed 1, PyTorch's default Linear initialisation U(+-1/sqrt(fan_in))) and loaded
into every method, so all methods start from the same loss.

As torchdiffeq does, the whole batch is ONE ODE with shared step sizes: the state is
(1000, 2) in torch and (2, 1000) in pyude, flattened to 2000, and the error norm is the
RMS over all of it (the layout does not change the norm or the loss).

Methods, all timed in the same process:

* ``pyude Problem.value_and_grad (checkpoint)``: the public API. The model is a
  callable ``f(t, y, p)`` that evaluates pyude's spec-compiled right-hand side of the
  ``nn`` spec below on the whole batch at once: the compiled right-hand side takes
  states with trailing batch axes, here (2, 1000) (all x, then all y), so that each
  layer is one matrix product over the batch; ``pyude.Problem`` holds the data (a tidy frame of
  98,000 rows, sigma = sqrt(98,000) so that its weighted sum of squares IS the MSE);
  ``value_and_grad`` differentiates through Tsit5 (reverse mode, recursive
  checkpointing); the Adam update is a jitted optax call. Each step crosses from
  Python to compiled code twice and converts the gradient to numpy.
* ``pyude Problem.value_and_grad (checkpoint, all steps stored)``: the same with
  ``pyude.Checkpoint(checkpoints="all")``: every step's state and stages stored, and the
  backward pass replays the stored stages instead of diffrax's online checkpointing
  (docs/engines.md).
* ``pyude Problem.value_and_grad (adjoint)``: the same with pyude's continuous adjoint.
* ``pyude JAX stack, fused jit step``: pyude's JAX engine stack (diffrax Tsit5 + optax)
  in one ``jax.jit`` per training step, with the same spec-compiled right-hand side
  (``pyude.engines.get_engine("jax").compiled(model).rhs``). pyude has no public
  batched training loop yet; this is what one would be.
* ``torchdiffeq odeint_adjoint`` and ``torchdiffeq odeint``: dopri5, same tolerances.

Run: python benchmarks/neural_ode.py [--steps 30] [--no-pyude-adjoint]
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
import optax
import pandas as pd

import pyude

N_BATCH, N_TIMES, RTOL, ATOL, LR = 1000, 50, 1e-3, 1e-4, 1e-2
MAX_STEPS = 10_000
SPEC = {
    "name": "neural_ode",
    "states": ["x", "y"],
    "networks": {"nn": {"inputs": 2, "layers": [{"units": 32, "activation": "tanh"}, {"units": 2}]}},
    "equations": {"x": "nn(x, y)[0]", "y": "nn(x, y)[1]"},
}
MODEL = pyude.Model.from_dict(SPEC)


# ------------------------------------------------------------------ problem data
def make_data():
    """Initial states (batch, 2), times (50,), true trajectories (times, batch, 2)."""
    rng = np.random.default_rng(0)
    z0 = rng.uniform(-2.0, 2.0, size=(N_BATCH, 2))
    t = np.linspace(0.0, 2.0 * np.pi, N_TIMES)
    c, s = np.cos(t)[:, None], np.sin(t)[:, None]
    x = z0[None, :, 0] * c + z0[None, :, 1] * s
    y = -z0[None, :, 0] * s + z0[None, :, 1] * c
    return t, z0, np.stack([x, y], axis=-1)


def make_weights() -> dict[str, np.ndarray]:
    """The initial weights, once, with numpy: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as torch.nn.Linear."""
    rng = np.random.default_rng(1)
    out = {}
    for name, (n_out, n_in) in (("nn.0", (32, 2)), ("nn.1", (2, 32))):
        bound = 1.0 / np.sqrt(n_in)
        out[f"{name}.weight"] = rng.uniform(-bound, bound, size=(n_out, n_in))
        out[f"{name}.bias"] = rng.uniform(-bound, bound, size=(n_out,))
    return out


def batched_rhs():
    """pyude's spec-compiled right-hand side on the batch, states laid out (2, N_BATCH): f(t, y_flat, p_flat).

    Laid out (N_BATCH, 2) and vmapped over the batch instead, as this script did before
    2026-12-03, a training step took ~25 % longer (12.7 against 9.6 ms, same losses)."""
    compiled = pyude.engines.get_engine("jax").compiled(MODEL)

    def f(t, y, p):
        return compiled.rhs(t, y.reshape(2, N_BATCH), (p, ())).reshape(-1)

    return f


def pyude_layout(a: np.ndarray) -> np.ndarray:
    """(..., N_BATCH, 2) -> (..., 2 * N_BATCH) in pyude's state order: all x, then all y."""
    return np.swapaxes(a, -1, -2).reshape(a.shape[:-2] + (-1,))


def true_mse(pred_batched, target) -> float:
    return float(np.mean((np.asarray(pred_batched)[1:] - target[1:]) ** 2))


# ------------------------------------------------------------------ pyude: public API
def pyude_problem_trainer(sensitivity: str, t, z0, target, weights):
    f = batched_rhs()
    p0 = MODEL.flatten(weights)
    n = 2 * N_BATCH
    names = np.array([f"y{i}" for i in range(n)])
    frame = pd.DataFrame(
        {
            "time": np.repeat(t[1:], n),
            "observable": np.tile(names, N_TIMES - 1),
            "value": pyude_layout(target[1:]).reshape(-1),
            "sigma": np.sqrt((N_TIMES - 1) * n),  # weights 1/sigma^2: the weighted sum of squares is the MSE
        }
    )
    start = time.perf_counter()
    problem = pyude.Problem(f, frame, y0=pyude_layout(z0), params=p0, solver="Tsit5", rtol=RTOL, atol=ATOL, max_steps=MAX_STEPS)
    setup_s = time.perf_counter() - start
    opt = optax.adam(LR)
    update = jax.jit(lambda g, s, p: (lambda u, s2: (optax.apply_updates(p, u), s2))(*opt.update(g, s, p)))
    state = {"p": jnp.asarray(p0), "opt": opt.init(jnp.asarray(p0))}

    def step():
        value, g = problem.value_and_grad(np.asarray(state["p"]), sensitivity)
        state["p"], state["opt"] = update(jnp.asarray(g), state["opt"], state["p"])
        return value

    def final_loss():
        return problem.loss(np.asarray(state["p"]))

    def compile_s():
        return problem.stats.get(f"compile_time_{getattr(sensitivity, 'name', sensitivity)}", float("nan"))

    return step, final_loss, compile_s, {"problem_setup_s": setup_s, "data_rows": len(frame)}


# ------------------------------------------------------------------ pyude: fused jitted step
def pyude_fused_trainer(t, z0, target, weights):
    import diffrax

    f = batched_rhs()
    ts, y0, tgt = jnp.asarray(t), jnp.asarray(pyude_layout(z0)), jnp.asarray(pyude_layout(target))
    opt = optax.adam(LR)

    def solve(p):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, y, p: f(t, y, p)),
            diffrax.Tsit5(),
            t0=ts[0],
            t1=ts[-1],
            dt0=None,
            y0=y0,
            args=p,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=ATOL),
            adjoint=diffrax.RecursiveCheckpointAdjoint(),
            max_steps=MAX_STEPS,
        )
        return sol.ys, sol.stats

    def loss(p):
        ys, stats = solve(p)
        return jnp.mean((ys[1:] - tgt[1:]) ** 2), stats

    def step(p, s):
        (value, stats), g = jax.value_and_grad(loss, has_aux=True)(p)
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s, value, stats["num_accepted_steps"], stats["num_rejected_steps"]

    p = jnp.asarray(MODEL.flatten(weights))
    s = opt.init(p)
    start = time.perf_counter()
    compiled = jax.jit(step).lower(p, s).compile()
    compile_s = time.perf_counter() - start
    loss_only = jax.jit(lambda p: loss(p)[0])
    state = {"p": p, "opt": s, "steps": []}

    def run_step():
        state["p"], state["opt"], value, acc, rej = compiled(state["p"], state["opt"])
        value = float(value)  # waits for the result
        state["steps"].append((int(acc), int(rej)))
        return value

    return run_step, lambda: float(loss_only(state["p"])), lambda: compile_s, state


# ------------------------------------------------------------------ torchdiffeq
def torch_trainer(adjoint: bool, t, z0, target, weights):
    import torch
    from torchdiffeq import odeint, odeint_adjoint

    torch.set_default_dtype(torch.float64)

    class ODEFunc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))
            with torch.no_grad():
                for i, name in ((0, "nn.0"), (2, "nn.1")):
                    self.net[i].weight.copy_(torch.from_numpy(weights[f"{name}.weight"]))
                    self.net[i].bias.copy_(torch.from_numpy(weights[f"{name}.bias"]))
            self.nfe = 0

        def forward(self, t, z):
            self.nfe += 1
            return self.net(z)

    func = ODEFunc()
    opt = torch.optim.Adam(func.parameters(), lr=LR)
    solve = odeint_adjoint if adjoint else odeint
    tt, zz, tgt = torch.from_numpy(t), torch.from_numpy(z0), torch.from_numpy(target)
    nfe = []

    def step():
        opt.zero_grad()
        func.nfe = 0
        pred = solve(func, zz, tt, rtol=RTOL, atol=ATOL, method="dopri5")
        forward_nfe = func.nfe
        loss = torch.mean((pred[1:] - tgt[1:]) ** 2)
        loss.backward()
        opt.step()
        nfe.append((forward_nfe, func.nfe - forward_nfe))
        return float(loss.detach())

    def final_loss():
        with torch.no_grad():
            pred = odeint(func, zz, tt, rtol=RTOL, atol=ATOL, method="dopri5")
        return float(torch.mean((pred[1:] - tgt[1:]) ** 2))

    return step, final_loss, lambda: 0.0, {"nfe": nfe}


# ------------------------------------------------------------------ driver
def measure(trainers: dict, n_steps: int, block: int) -> dict:
    """Step 1 of every method is its warm-up (compilation for pyude); then steps 2..n are
    run round-robin in blocks of ``block`` steps per method, so that the shared machine's
    drift (tens of percent within minutes) falls on every method alike, while each method
    still runs several steps in a row as a training loop does (one step at a time
    between torch steps costs JAX ~20 %: caches and torch's spinning worker threads)."""
    res = {}
    for name, (step, _, compile_s, _) in trainers.items():
        start = time.perf_counter()
        res[name] = {"losses": [step()], "first_step_s": time.perf_counter() - start, "compile_s": float(compile_s())}
        res[name]["step_s_all"] = []
        print(f"  warmed up: {name} ({res[name]['first_step_s']:.1f} s)", flush=True)
    for first in range(1, n_steps, block):
        for name, (step, _, _, _) in trainers.items():
            for _ in range(min(block, n_steps - first)):
                start = time.perf_counter()
                res[name]["losses"].append(step())
                res[name]["step_s_all"].append(time.perf_counter() - start)
        print(".", end="", flush=True)
    print()
    for name, (_, final_loss, _, extra) in trainers.items():
        out, times = res[name], res[name]["step_s_all"]
        out.update(step_s_median=float(np.median(times)), step_s_mean=float(np.mean(times)),
                   step_s_min=float(np.min(times)), final_loss=float(final_loss()))
        if "nfe" in extra:
            out["forward_nfe_mean"] = float(np.mean([a for a, _ in extra["nfe"]]))
            out["backward_nfe_mean"] = float(np.mean([b for _, b in extra["nfe"]]))
        if "steps" in extra:
            acc = [a for a, _ in extra["steps"]]
            out["solver_steps_mean"] = float(np.mean(acc))
            out["rejected_steps_mean"] = float(np.mean([r for _, r in extra["steps"]]))
            # Tsit5: 6 evaluations per attempted step (FSAL) + 2 for the initial step size: comparable to torch's nfe
            out["forward_nfe_mean"] = float(np.mean([6 * (a + r) + 2 for a, r in extra["steps"]]))
        for key in ("problem_setup_s", "data_rows"):
            if key in extra:
                out[key] = extra[key]
        print(f"  {name}: {out['step_s_median'] * 1e3:.1f} ms/step, final loss {out['final_loss']:.6f}", flush=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30, help="training steps per method (the first is the warm-up)")
    ap.add_argument("--block", type=int, default=5, help="steps per method before the next method's turn")
    ap.add_argument("--no-pyude-adjoint", action="store_true", help="skip pyude's continuous adjoint (slow here)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "neural_ode.json"))
    args = ap.parse_args()

    import torch
    import torchdiffeq

    torch.set_num_threads(os.cpu_count() or 1)
    t, z0, target = make_data()
    weights = make_weights()
    n = args.steps
    print(f"neural ODE training, {n} steps per method (step 1 = warm-up, then round-robin in blocks of {args.block}), {os.cpu_count()} CPU threads")
    trainers = {
        "pyude JAX stack, fused jit step (checkpoint)": pyude_fused_trainer(t, z0, target, weights),
        "pyude Problem.value_and_grad (checkpoint)": pyude_problem_trainer("checkpoint", t, z0, target, weights),
        "pyude Problem.value_and_grad (checkpoint, all steps stored)": pyude_problem_trainer(
            pyude.Checkpoint(checkpoints="all"), t, z0, target, weights
        ),
    }
    if not args.no_pyude_adjoint:
        trainers["pyude Problem.value_and_grad (adjoint)"] = pyude_problem_trainer("adjoint", t, z0, target, weights)
    trainers["torchdiffeq odeint_adjoint"] = torch_trainer(True, t, z0, target, weights)
    trainers["torchdiffeq odeint"] = torch_trainer(False, t, z0, target, weights)
    res = measure(trainers, n, args.block)

    print()
    print(f"| method | time per step, median (ms) | compile (s) | forward RHS evals / step | "
          f"loss at step 1 | loss after {n} steps |")
    print("|---|---|---|---|---|---|")
    for name, r in res.items():
        comp = f"{r['compile_s']:.1f}" if r["compile_s"] else "-"
        nfe = f"{r['forward_nfe_mean']:.0f}" if "forward_nfe_mean" in r else "-"
        print(f"| {name} | {r['step_s_median'] * 1e3:.1f} | {comp} | {nfe} | {r['losses'][0]:.6f} | {r['final_loss']:.6f} |")
    print()
    ratios = {}
    for py in [k for k in res if k.startswith("pyude")]:
        for tn in ("torchdiffeq odeint_adjoint", "torchdiffeq odeint"):
            ratios[f"{tn} / {py}"] = res[tn]["step_s_median"] / res[py]["step_s_median"]
            print(f"{tn} / {py}: {ratios[f'{tn} / {py}']:.2f}x")
    out = {
        "n_steps": n,
        "block": args.block,
        "settings": {"batch": N_BATCH, "times": N_TIMES, "rtol": RTOL, "atol": ATOL, "lr": LR, "dtype": "float64"},
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": sys.version.split()[0]},
        "versions": {"jax": jax.__version__, "torch": torch.__version__, "torchdiffeq": torchdiffeq.__version__,
                     "optax": optax.__version__, "numpy": np.__version__},
        "ratios": ratios,
        "results": res,
    }
    path = Path(args.out)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
