"""The torchdiffeq tutorial's neural-ODE training loop: pyude vs torchdiffeq, side by side.

Harmonic oscillator x' = y, y' = -x; 1000 random initial states; 50 times on
[0, 2*pi]; MLP 2-32-2 tanh; Adam lr 1e-2; MSE; rtol 1e-3, atol 1e-4; float64 in
both; equal initial weights (pyude's ``init_params(seed=0)`` loaded into torch).
As torchdiffeq does, the whole batch is one ODE (state 1000 x 2) with shared steps.

Run: python benchmarks/neural_ode.py [n_steps]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import pyude
from pyude.engines.jax._compile import compile_model
from pyude.engines.jax._gradient import _trajectory
from pyude.engines.jax._integrate import Settings
from pyude.spec._function import FunctionModel

N_BATCH, N_TIMES, RTOL, ATOL, LR = 1000, 50, 1e-3, 1e-4, 1e-2
SPEC = {
    "name": "neural_ode",
    "states": ["x", "y"],
    "networks": {"nn": {"inputs": 2, "layers": [{"units": 32, "activation": "tanh"}, {"units": 2}]}},
    "equations": {"x": "nn(x, y)[0]", "y": "nn(x, y)[1]"},
}


def data():
    rng = np.random.default_rng(0)
    z0 = rng.uniform(-2, 2, size=(N_BATCH, 2))
    t = np.linspace(0, 2 * np.pi, N_TIMES)
    c, s = np.cos(t)[:, None], np.sin(t)[:, None]
    x = z0[None, :, 0] * c + z0[None, :, 1] * s
    y = -z0[None, :, 0] * s + z0[None, :, 1] * c
    return t, z0, np.stack([x, y], axis=-1)  # (times, batch, 2)


def pyude_trainer(sensitivity: str, t, z0, target, params0):
    model = pyude.Model.from_dict(SPEC)
    single = pyude.engines.get_engine("jax").compiled(model)

    def f(t, y, p):  # the spec-compiled right-hand side, vmapped over the batch
        return jax.vmap(lambda yi: single.rhs(t, yi, (p, ())))(y.reshape(N_BATCH, 2)).reshape(-1)

    p0 = model.flatten(params0)
    cm = compile_model(FunctionModel(f, 2 * N_BATCH, p0))
    trajectory = _trajectory(cm, Settings("Tsit5", RTOL, ATOL, 10_000), pyude._sensitivity.as_sensitivity(sensitivity))
    ts, y0, tgt = jnp.asarray(t[1:]), jnp.asarray(z0.reshape(-1)), jnp.asarray(target[1:].reshape(N_TIMES - 1, -1))
    opt = optax.adam(LR)

    def loss(p):
        ys, _, _ = trajectory(ts, jnp.asarray(0.0), y0, p, ())
        return jnp.mean((ys - tgt) ** 2)

    @jax.jit
    def step(p, state):
        value, g = jax.value_and_grad(loss)(p)
        updates, state = opt.update(g, state, p)
        return optax.apply_updates(p, updates), state, value

    return step, jnp.asarray(p0), opt.init(jnp.asarray(p0))


def torch_trainer(adjoint: bool, t, z0, target, params0):
    import torch
    from torchdiffeq import odeint, odeint_adjoint

    torch.set_default_dtype(torch.float64)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l0 = torch.nn.Linear(2, 32)
            self.l1 = torch.nn.Linear(32, 2)
            with torch.no_grad():
                self.l0.weight.copy_(torch.tensor(params0["nn.0.weight"]))
                self.l0.bias.copy_(torch.tensor(params0["nn.0.bias"]))
                self.l1.weight.copy_(torch.tensor(params0["nn.1.weight"]))
                self.l1.bias.copy_(torch.tensor(params0["nn.1.bias"]))

        def forward(self, t, z):
            return self.l1(torch.tanh(self.l0(z)))

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    solve = odeint_adjoint if adjoint else odeint
    tt, zz, tgt = torch.tensor(t), torch.tensor(z0), torch.tensor(target)

    def step():
        opt.zero_grad()
        pred = solve(net, zz, tt, rtol=RTOL, atol=ATOL, method="dopri5")
        loss = torch.mean((pred[1:] - tgt[1:]) ** 2)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def run(n_steps: int) -> dict:
    t, z0, target = data()
    params0 = pyude.Model.from_dict(SPEC).init_params(seed=0)
    results = {}
    for name, sens in (("pyude (checkpoint)", "checkpoint"), ("pyude (adjoint)", "adjoint")):
        step, p, state = pyude_trainer(sens, t, z0, target, params0)
        start = time.perf_counter()
        p, state, value = step(p, state)
        jax.block_until_ready(value)
        compile_and_first = time.perf_counter() - start
        losses, times = [float(value)], []
        for _ in range(n_steps - 1):
            start = time.perf_counter()
            p, state, value = step(p, state)
            jax.block_until_ready(value)
            times.append(time.perf_counter() - start)
            losses.append(float(value))
        results[name] = {"step_s": float(np.median(times)), "first_step_s": compile_and_first, "losses": losses}
    for name, adjoint in (("torchdiffeq odeint_adjoint", True), ("torchdiffeq odeint", False)):
        step = torch_trainer(adjoint, t, z0, target, params0)
        losses, times = [], []
        for i in range(n_steps):
            start = time.perf_counter()
            losses.append(step())
            if i:
                times.append(time.perf_counter() - start)
        results[name] = {"step_s": float(np.median(times)), "losses": losses}
    return results


def main():
    n_steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    import torch
    import torchdiffeq

    torch.set_num_threads(2)
    res = run(n_steps)
    base = res["pyude (checkpoint)"]["step_s"]
    print(f"| method | time per step (ms) | vs pyude (checkpoint) | loss after {n_steps} steps |")
    print("|---|---|---|---|")
    for name, r in res.items():
        print(f"| {name} | {r['step_s'] * 1e3:.1f} | {r['step_s'] / base:.1f}x | {r['losses'][-1]:.5f} |")
    out = {
        "n_steps": n_steps,
        "versions": {"jax": jax.__version__, "torch": torch.__version__, "torchdiffeq": torchdiffeq.__version__},
        "results": res,
    }
    path = Path(__file__).parent / "results" / "neural_ode.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
