"""Loss gradients: every sensitivity method against central finite differences."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pyude
from pyude import DataError

SENSITIVITIES = ["checkpoint", "adjoint", "forward"]


def finite_difference(problem: pyude.Problem, model, params: dict, rel_step: float = 1e-4) -> np.ndarray:
    """Fourth-order central differences of the loss in the flat parameter vector."""
    p0 = model.flatten(params)
    g = np.empty_like(p0)
    for i in range(p0.size):
        h = rel_step * max(abs(p0[i]), 1e-2)
        vals = []
        for k in (-2, -1, 1, 2):
            p = p0.copy()
            p[i] += k * h
            vals.append(problem.loss(p))
        g[i] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h)
    return g


def rel_error(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _synthetic(model, params, times, observables, solver, sigma=None, noise=0.05, seed=0, **kw):
    sol = pyude.solve(model, times, params=params, solver=solver, rtol=1e-10, atol=1e-12, **kw)
    rng = np.random.default_rng(seed)
    rows = []
    for obs in observables:
        y = sol[obs]
        for t, v in zip(times, y):
            row = {"time": t, "observable": obs, "value": v * (1 + noise * rng.standard_normal())}
            if sigma is not None:
                row["sigma"] = sigma[obs]
            rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ mechanistic
MECH = pyude.Model.from_dict(
    {
        "name": "two_compartment",
        "states": ["c1", "c2"],
        "parameters": {"k12": 0.8, "k21": 0.3, "ke": 0.25, "dose": 4.0},
        "equations": {"c1": "-(k12 + ke)*c1 + k21*c2", "c2": "k12*c1 - k21*c2"},
        "initial": {"c1": "dose", "c2": 0.0},
    }
)


@pytest.fixture(scope="module")
def mech_problem():
    times = np.array([0.25, 0.5, 1, 2, 3, 5, 8, 12])
    data = _synthetic(MECH, None, times, ["c1", "c2"], "Tsit5", sigma={"c1": 0.1, "c2": 0.05})
    return pyude.Problem(MECH, data, solver="Tsit5", rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("sensitivity", SENSITIVITIES)
def test_mechanistic_gradient(mech_problem, sensitivity):
    params = {"k12": 0.6, "k21": 0.35, "ke": 0.2, "dose": 3.7}
    loss, grad = mech_problem.value_and_grad(params, sensitivity)
    assert loss == pytest.approx(mech_problem.loss(params), rel=1e-12)
    assert set(grad) == set(MECH.parameters)
    fd = finite_difference(mech_problem, MECH, params)
    assert rel_error(MECH.flatten(grad), fd) < 1e-5
    # the initial value dose enters only through initial.c1 = dose
    assert abs(grad["dose"]) > 1e-3


def test_initial_state_gradient(mech_problem):
    params = {"k12": 0.6, "k21": 0.35, "ke": 0.2, "dose": 3.7}
    for sens in SENSITIVITIES:
        _, grad = mech_problem.value_and_grad(params, sens, initial_states=True)
        # with independent initial states, dose has no other path into the loss
        assert grad["dose"] == 0.0
        h = 1e-4
        for s, y0 in (("c1", 3.7), ("c2", 0.0)):
            f = [mech_problem.loss({**params, f"initial.{s}": y0 + k * h}) for k in (-2, -1, 1, 2)]
            fd = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h)
            assert grad[f"initial.{s}"] == pytest.approx(fd, rel=1e-6)
        # and the initial-state gradient equals the dose gradient of the coupled problem
        _, coupled = mech_problem.value_and_grad(params, sens)
        assert grad["initial.c1"] == pytest.approx(coupled["dose"], rel=1e-7)


def test_sensitivity_objects(mech_problem):
    params = {"k12": 0.6}
    _, a = mech_problem.value_and_grad(params, pyude.Adjoint(quadrature_nodes=7))
    _, c = mech_problem.value_and_grad(params, pyude.Checkpoint(checkpoints=20))
    np.testing.assert_allclose(MECH.flatten(a), MECH.flatten(c), rtol=1e-6)
    with pytest.raises(pyude.SpecError, match="unknown sensitivity 'backsolve'"):
        mech_problem.value_and_grad(params, "backsolve")


# ------------------------------------------------------------------------ stiff
ROBERTSON = pyude.Model.from_yaml(Path(__file__).parents[1] / "examples/robertson/model.yaml")


@pytest.fixture(scope="module")
def stiff_problem():
    times = np.array([0.1, 1, 10, 40, 100, 400])
    data = _synthetic(
        ROBERTSON, None, times, ["y1", "y2", "y3"], "Rodas5P", sigma={"y1": 0.01, "y2": 1e-7, "y3": 0.01}
    )
    return pyude.Problem(ROBERTSON, data, solver="Rodas5P", rtol=1e-10, atol=1e-14)


# Adjoint(interval_steps=8): every data interval re-solved in many chunks (restarts included)
@pytest.mark.parametrize(
    "sensitivity", SENSITIVITIES + [pyude.Adjoint(interval_steps=8)], ids=SENSITIVITIES + ["adjoint-chunked"]
)
def test_stiff_gradient(stiff_problem, sensitivity):
    params = {"k1": 0.05, "k2": 2.5e7, "k3": 1.2e4}
    assert stiff_problem.solver == "Rodas5P"
    _, grad = stiff_problem.value_and_grad(params, sensitivity)
    fd = finite_difference(stiff_problem, ROBERTSON, params)
    g = ROBERTSON.flatten(grad)
    # compare on the scale the parameters live on: d loss / d log k
    p = ROBERTSON.flatten(params)
    assert rel_error(g * p, fd * p) < 1e-5


def test_adjoint_memory_does_not_grow_with_max_steps():
    """50 states, max_steps 5e6: storing every step's dense output would need ~100 GB."""
    n = 50
    k = np.linspace(0.5, 2.0, n)
    model = lambda t, y, p: -p["k"] * y  # noqa: E731
    times = np.linspace(0.2, 2.0, 10)
    data = pd.DataFrame(
        {"time": np.repeat(times, n), "observable": np.tile([f"y{i}" for i in range(n)], times.size), "value": 0.3}
    )
    problem = pyude.Problem(model, data, y0=np.ones(n), params={"k": k}, solver="Tsit5", rtol=1e-9, atol=1e-12,
                            max_steps=5_000_000)
    loss, grad = problem.value_and_grad({"k": k}, "adjoint")
    # analytic: L = sum_i,j (exp(-k_i t_j) - 0.3)^2, dL/dk_i = sum_j 2 (e - 0.3) (-t_j e)
    e = np.exp(-np.outer(times, k))
    np.testing.assert_allclose(loss, np.sum((e - 0.3) ** 2), rtol=1e-8)
    np.testing.assert_allclose(grad["k"], np.sum(2 * (e - 0.3) * (-times[:, None] * e), axis=0), rtol=1e-6)


def test_checkpoint_all_stores_steps_under_growing_bounds():
    """``Checkpoint(checkpoints="all")`` stores every step, under a bound on the steps that
    grows (64, 512, 4096) when a solve reaches it: the gradient is the same as with
    diffrax's recursive checkpointing, and the user's max_steps still applies."""
    from pyude.engines.jax._engine import STORED_STEP_BOUNDS

    osc = {"states": ["x", "v"], "parameters": {"w": 3.0}, "equations": {"x": "v", "v": "-w^2 * x"},
           "initial": {"x": 1.0, "v": 0.0}}
    times = np.linspace(0.5, 20.0, 40)
    data = pd.DataFrame({"time": times, "observable": "x", "value": np.cos(2.9 * times)})
    problem = pyude.Problem(osc, data, solver="Tsit5", rtol=1e-10, atol=1e-12)
    every_step = pyude.Checkpoint(checkpoints="all")
    _, grad = problem.value_and_grad({}, every_step)
    # ~1,700 steps: the third bound; x = cos(w t), dx/dw = -t sin(w t)
    assert problem._cm.cache[("stored_step_rung", problem.settings, problem.mode, False)] == 2 and STORED_STEP_BOUNDS[2] == 4096
    x = np.cos(3.0 * times)
    analytic = np.sum(2 * (x - np.cos(2.9 * times)) * (-times * np.sin(3.0 * times)))
    assert grad["w"] == pytest.approx(analytic, rel=1e-8)
    _, recursive = problem.value_and_grad({}, "checkpoint")  # diffrax's online checkpointing
    assert grad["w"] == pytest.approx(recursive["w"], rel=1e-12)
    _, again = problem.value_and_grad({}, every_step)  # the bound that sufficed is kept
    assert again["w"] == grad["w"]

    short = pyude.Problem(osc, data, solver="Tsit5", rtol=1e-10, atol=1e-12, max_steps=300)
    with pytest.raises(pyude.SolverError, match=r"max_steps \(now 300\)"):
        short.value_and_grad({}, every_step)
    for bad in (0, 2.5, "some", True, [3]):
        with pytest.raises(pyude.SpecError, match="checkpoints must be a positive integer, None or 'all'"):
            pyude.Checkpoint(checkpoints=bad)


REPLAY_UDE = {
    "states": ["x", "y"],
    "parameters": {"alpha": 1.3, "delta": 1.8},
    "networks": {"nn": {"inputs": 2, "layers": [{"units": 5, "activation": "tanh"}, {"units": 2, "activation": "identity"}]}},
    "equations": {"x": "alpha*x + nn(x, y)[0]", "y": "-delta*y + nn(x, y)[1]"},
    "initial": {"x": 0.44, "y": 0.26},
}


def _replay_problem(solver, batching):
    """A UDE over three conditions (alpha and the initial x differ, so do the steps), with
    data at t0, a time repeated and times that fall on no particular step."""
    conditions = pd.DataFrame({"condition": ["a", "b", "c"], "alpha": [1.3, 0.4, -0.5], "x": [0.44, 1.5, 0.1]})
    times = np.array([0.0, 0.05, 0.05, 0.7, 1.3, 2.0, 2.0, 3.0])
    rng = np.random.default_rng(5)
    data = pd.DataFrame([{"condition": c, "time": t, "observable": o, "value": rng.normal()}
                         for c in "abc" for t in times for o in ("x", "y")])
    return pyude.Problem(REPLAY_UDE, data, conditions, solver=solver, rtol=1e-7, atol=1e-9, batching=batching)


@pytest.mark.parametrize("solver, batching", [("Tsit5", "vectorized"), ("Dopri5", "sequential")])
def test_checkpoint_all_replays_stored_stages(solver, batching, monkeypatch):
    """With Tsit5 or Dopri5 (first-same-as-last, stages unrolled) and no events, inputs or
    jumps, ``Checkpoint(checkpoints="all")`` stores every accepted step's stages and
    replays them backwards (``StoredStages``): the gradient is diffrax's checkpointed one to
    round-off, in the network's weights and the conditions' parameters alike, and so is
    the gradient under multiple shooting (checked with Tsit5)."""
    from pyude.engines.jax._replay import StoredStages

    monkeypatch.setattr("pyude.engines.jax._replay.REPLAY_MIN_COST", 0.0)  # this small network is cheap
    problem = _replay_problem(solver, batching)
    model = pyude.Model.from_dict(REPLAY_UDE)
    params = model.init_params(seed=4)
    every_step = pyude.Checkpoint(checkpoints="all")
    value, grad = problem.value_and_grad(params, every_step)
    assert any(isinstance(k, tuple) and k[0] == "objective" and k[2] == StoredStages() for k in problem._cm.cache)
    reference_value, reference = problem.value_and_grad(params, "checkpoint")
    assert value == pytest.approx(reference_value, rel=1e-13)
    assert rel_error(model.flatten(grad), model.flatten(reference)) < 1e-11
    assert np.linalg.norm(model.flatten(reference)) > 1.0  # not a vanishing gradient
    if solver != "Tsit5":
        return
    ms = pyude.MultipleShooting(segments=3, continuity=10.0)
    theta = problem.shooting_start(problem.theta0(params), ms)
    theta[problem.estimation.index.size:] += 0.02  # segment starts off the trajectory
    got, want = (problem.evaluate(theta, sens, shooting=ms) for sens in (every_step, "checkpoint"))
    assert got["ok"] and want["ok"]
    assert got["value"] == pytest.approx(want["value"], rel=1e-13)
    assert rel_error(np.asarray(got["grad"]), np.asarray(want["grad"])) < 1e-11


def test_replayed_stages_direct():
    """The replayed trajectory's VJP in the initial state and the parameters against
    diffrax's checkpointed loop, at save times on a fine grid (several per step, one at
    t0) and with every save time at t0 (no step taken: each saved state is y0)."""
    import jax
    import jax.numpy as jnp

    from pyude.engines.jax._gradient import _trajectory
    from pyude.engines.jax._integrate import Settings
    from pyude.engines.jax._replay import StoredStages, replays

    model = pyude.Model.from_dict(REPLAY_UDE)
    cm = pyude.engines.get_engine("jax").compiled(model)
    s = Settings("Tsit5", 1e-8, 1e-10, 64)
    assert replays(cm, s) and not replays(cm, Settings("Rodas5P", 1e-8, 1e-10, 64))
    p = jnp.asarray(model.flatten(model.init_params(seed=1)))
    y0 = jnp.asarray([0.44, 0.26])
    weights = jnp.asarray(np.random.default_rng(0).normal(size=(40, 2)))
    for ts in (jnp.linspace(0.0, 2.0, 40), jnp.zeros(40)):
        def loss(sens, y0, p):
            ys, code, _ = _trajectory(cm, s, sens)(ts, jnp.asarray(0.0), y0, p, ())
            return jnp.sum(weights * ys ** 2) + 0.0 * code

        got = jax.grad(lambda y0, p: loss(StoredStages(), y0, p), argnums=(0, 1))(y0, p)
        want = jax.grad(lambda y0, p: loss(pyude.Checkpoint(checkpoints=64), y0, p), argnums=(0, 1))(y0, p)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-14)
    # every save time at t0: d/dy0 sum(w * y0^2) = 2 y0 sum(w)
    np.testing.assert_allclose(got[0], 2 * y0 * weights.sum(axis=0), rtol=1e-14)
    assert not np.any(got[1])


def test_replay_only_where_the_right_hand_side_is_costly():
    """The replay is used where one step's evaluations cost at least ``REPLAY_MIN_COST``
    (XLA's count): an MLP 2-32-2 over a batch of 1,000 states (the neural-ODE benchmark's
    model) is above, the same over a batch of 10 and the small UDE below; a cheap model
    keeps diffrax's loop with every state stored, with the same gradient."""
    import jax.numpy as jnp

    from pyude.engines.jax._replay import REPLAY_MIN_COST, StoredStages, replay_pays, rhs_cost

    rng = np.random.default_rng(0)
    weights = rng.uniform(-0.5, 0.5, size=5 * 32 + 2)

    def mlp(batch):
        def f(t, y, p):
            w1, b1, w2, b2 = p[:64].reshape(32, 2), p[64:96], p[96:160].reshape(2, 32), p[160:]
            return (w2 @ jnp.tanh(w1 @ y.reshape(2, batch) + b1[:, None]) + b2[:, None]).reshape(-1)

        times = np.linspace(0.5, 2.0, 4)
        names = [f"y{i}" for i in range(2 * batch)]
        frame = pd.DataFrame({"time": np.repeat(times, 2 * batch), "observable": np.tile(names, times.size), "value": 0.1})
        return pyude.Problem(f, frame, y0=rng.uniform(-1, 1, 2 * batch), params=weights, solver="Tsit5", rtol=1e-6, atol=1e-8)

    big, small = mlp(1000), mlp(10)
    # 2 x (2 x 32) multiply-adds and 32 tanh per batch member, plus the biases
    assert rhs_cost(big._cm, 2000) == pytest.approx(1000 * rhs_cost(small._cm, 20) / 10, rel=0.02)
    assert rhs_cost(big._cm, 2000) > REPLAY_MIN_COST > rhs_cost(small._cm, 20)
    assert replay_pays(big._cm, 2000, 1) and not replay_pays(small._cm, 20, 1) and replay_pays(small._cm, 20, 100)
    ude = pyude.Problem(REPLAY_UDE, pd.DataFrame({"time": [0.5, 1.0], "observable": "x", "value": [0.5, 0.6]}),
                        solver="Tsit5")
    assert not replay_pays(ude._cm, 2, 3)

    every_step = pyude.Checkpoint(checkpoints="all")
    for problem, replayed in ((big, True), (small, False)):
        _, grad = problem.value_and_grad(weights, every_step)
        uses = any(isinstance(k, tuple) and k[0] == "objective" and k[2] == StoredStages() for k in problem._cm.cache)
        assert uses == replayed
        _, reference = problem.value_and_grad(weights, "checkpoint")
        assert rel_error(np.asarray(grad), np.asarray(reference)) < 1e-11


def test_replay_not_used_with_inputs():
    """A model with an input (its knots are jump times, after which a step does not start
    from the last stage of the one before) keeps diffrax's loop with every state stored."""
    from pyude.engines.jax._integrate import Settings
    from pyude.engines.jax._replay import replays

    spec = {"states": ["x"], "parameters": {"k": 0.7}, "equations": {"x": "-k*x + u"}, "initial": {"x": 1.0},
            "inputs": {"u": {"times": [0.0, 1.0, 2.0], "values": [0.0, 1.0, 0.5], "interpolation": "zoh"}}}
    model = pyude.Model.from_dict(spec)
    assert not replays(pyude.engines.get_engine("jax").compiled(model), Settings("Tsit5", 1e-8, 1e-10, 64))
    times = np.linspace(0.25, 3.0, 12)
    data = pd.DataFrame({"time": times, "observable": "x", "value": np.exp(-0.5 * times)})
    problem = pyude.Problem(model, data, solver="Tsit5", rtol=1e-9, atol=1e-11)
    _, every = problem.value_and_grad({}, pyude.Checkpoint(checkpoints="all"))
    _, reference = problem.value_and_grad({}, "checkpoint")
    assert every["k"] == pytest.approx(reference["k"], rel=1e-12) and abs(reference["k"]) > 0.1


def test_adjoint_settings_are_checked():
    with pytest.raises(pyude.SpecError, match="interval_steps"):
        pyude.Adjoint(interval_steps=7)
    with pytest.raises(pyude.SpecError, match="quadrature_nodes"):
        pyude.Adjoint(quadrature_nodes=0)


def test_stiff_auto_problem_uses_stiff_solver(stiff_problem):
    auto = pyude.Problem(ROBERTSON, stiff_problem.data.frame, rtol=1e-8, atol=1e-12)
    assert auto.solver == "Rodas5P" and auto.stiffness.stiff


# ------------------------------------------------------------------------ UDE
UDE = pyude.Model.from_dict(
    {
        "name": "lotka_volterra_ude",
        "states": ["x", "y"],
        "parameters": {"alpha": 1.3, "delta": 1.8},
        "networks": {
            "nn": {"inputs": 2, "layers": [{"units": 5, "activation": "tanh"}, {"units": 2, "activation": "identity"}]}
        },
        "equations": {"x": "alpha*x + nn(x, y)[0]", "y": "-delta*y + nn(x, y)[1]"},
        "initial": {"x": 0.44, "y": 0.26},
    }
)


@pytest.fixture(scope="module")
def ude_problem():
    lv = {
        "states": ["x", "y"],
        "parameters": {"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8},
        "equations": {"x": "alpha*x - beta*x*y", "y": "gamma*x*y - delta*y"},
        "initial": {"x": 0.44, "y": 0.26},
    }
    times = np.linspace(0.1, 3.0, 15)
    data = _synthetic(lv, None, times, ["x", "y"], "Tsit5", noise=0.01)
    return pyude.Problem(UDE, data, solver="Tsit5", rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("sensitivity", SENSITIVITIES)
def test_ude_gradient(ude_problem, sensitivity):
    params = UDE.init_params(seed=2)
    _, grad = ude_problem.value_and_grad(params, sensitivity)
    assert grad["nn.0.weight"].shape == (5, 2) and grad["nn.1.weight"].shape == (2, 5)
    fd = finite_difference(ude_problem, UDE, params)
    assert rel_error(UDE.flatten(grad), fd) < 1e-5


def test_ude_gradient_stiff_solver(ude_problem):
    """The same UDE through Rodas5P: the Jacobian of the network enters every step."""
    problem = pyude.Problem(UDE, ude_problem.data.frame, solver="Rodas5P", rtol=1e-11, atol=1e-12)
    params = UDE.init_params(seed=2)
    fd = finite_difference(problem, UDE, params)
    for sens in SENSITIVITIES:
        _, grad = problem.value_and_grad(params, sens)
        assert rel_error(UDE.flatten(grad), fd) < 1e-5, sens


# ------------------------------------------------------------------ data errors
GOOD = pd.DataFrame({"time": [1.0, 2.0], "observable": ["c1", "c2"], "value": [1.0, 0.5]})


@pytest.mark.parametrize(
    "frame, message",
    [
        (GOOD.assign(value=[1.0, np.nan]), "data row 1: value is nan"),
        (GOOD.assign(value=[np.inf, 1.0]), "data row 0: value is inf"),
        (GOOD.assign(time=[-1.0, 1.0]), "data row 0: time -1 is before the initial time"),
        (GOOD.assign(observable=["c1", "c3"]), "data row 1: unknown observable 'c3'"),
        (GOOD.assign(sigma=[1.0, 0.0]), "data row 1: sigma must be positive"),
        (GOOD.assign(sigma=[1.0, -2.0]), "data row 1: sigma must be positive"),
        (GOOD.drop(columns="value"), "missing column\\(s\\) \\['value'\\]"),
        (GOOD.assign(value=["1.0", "abc"]), "data row 1: column 'value' has non-numeric value 'abc'"),
    ],
)
def test_data_errors(frame, message):
    with pytest.raises(DataError, match=message):
        pyude.Problem(MECH, frame, solver="Tsit5")


def test_data_from_csv(tmp_path):
    path = tmp_path / "data.csv"
    GOOD.to_csv(path, index=False)
    problem = pyude.Problem(MECH, path, solver="Tsit5")
    assert problem.loss() > 0
    with pytest.raises(DataError, match="not found"):
        pyude.Problem(MECH, tmp_path / "missing.csv")


def test_callable_model_gradient():
    """A model given as f(t, y, p): gradients come back in the structure of p."""
    import jax.numpy as jnp

    def f(t, y, p):
        return jnp.array([-p["k"] * y[0] + p["a"][0] * y[1], -p["a"][1] * y[1]])

    params = {"k": 0.5, "a": np.array([0.3, 0.7])}
    data = pd.DataFrame({"time": [0.5, 1.0, 2.0], "observable": ["y0", "y1", "y0"], "value": [1.5, 0.6, 0.9]})
    problem = pyude.Problem(f, data, y0=[2.0, 1.0], params=params, solver="Tsit5", rtol=1e-11, atol=1e-12)
    loss, grad = problem.value_and_grad(params, "adjoint")
    assert grad["a"].shape == (2,)
    h = 1e-5
    for key, idx in (("k", None), ("a", 0), ("a", 1)):
        vals = []
        for sgn in (1, -1):
            p = {"k": params["k"], "a": params["a"].copy()}
            if idx is None:
                p["k"] += sgn * h
            else:
                p["a"][idx] += sgn * h
            vals.append(problem.loss(p))
        fd = (vals[0] - vals[1]) / (2 * h)
        got = grad[key] if idx is None else grad[key][idx]
        assert got == pytest.approx(fd, rel=1e-6)


def test_adjoint_chunks_differ_between_batched_conditions():
    """Two conditions solved in one vmapped call, one needing many more steps per data
    interval: with 8-step chunks their chunk counts differ, and each condition's adjoint
    must read its own re-solved chunks (the re-solve runs only where some condition needs it)."""
    model = {
        "name": "damped", "states": ["x", "v"], "parameters": {"w": 1.0, "c": 0.3},
        "equations": {"x": "v", "v": "-w^2 * x - c * v"}, "initial": {"x": 1.0, "v": 0.0},
    }
    conditions = pd.DataFrame({"condition": ["slow", "fast"], "w": [np.nan, 7.0]})
    t = np.array([0.5, 1.0, 2.0, 3.0])
    rows = [{"condition": c, "time": ti, "observable": o, "value": 0.1}
            for c in ("slow", "fast") for ti in t for o in ("x", "v")]
    problem = pyude.Problem(model, pd.DataFrame(rows), conditions, solver="Tsit5", rtol=1e-10, atol=1e-12)
    params = {"w": 1.3, "c": 0.2}
    _, ref = problem.value_and_grad(params, "forward")
    _, adj = problem.value_and_grad(params, pyude.Adjoint(interval_steps=8))
    for k in ("w", "c"):
        assert adj[k] == pytest.approx(ref[k], rel=1e-6), k


@pytest.mark.parametrize("batching", ["sequential", "vectorized"])
def test_rosenbrock_adjoint_reads_the_dense_state_up_to_each_chunk_end(batching):
    """Regression: the adjoint re-solves every chunk but the last of a data interval, and with
    Rodas5P the re-solve could stop a step short of the chunk end (the two compiled copies of
    the solve rounded differently), where diffrax's dense output is NaN: the gradient was NaN
    (here x' = -kl x / c, kl alone estimated). x = exp(-kl t / c), c set per condition."""
    model = {"states": ["x"], "parameters": {"k": 0.5, "kl": 1.5, "c": 1.0}, "initial": {"x": 1.0},
             "equations": {"x": "-(kl * x / c)"}}
    t = np.array([1.0, 3.0, 1.0, 3.0])
    c = np.array([1.0, 1.0, 2.0, 2.0])
    data = pd.DataFrame({"time": t, "observable": "x", "value": 0.3, "condition": ["a", "a", "b", "b"]})
    conditions = pd.DataFrame({"condition": ["a", "b"], "c": [1.0, 2.0]})
    pr = pyude.Problem(model, data, conditions, solver="Rodas5P", rtol=1e-10, atol=1e-12, estimate=["kl"],
                       batching=batching)
    x = np.exp(-1.5 * t / c)
    want = np.sum(2 * (0.3 - x) * t / c * x)  # d/dkl of sum (0.3 - x)^2
    for sens in ("adjoint", "checkpoint"):
        out = pr.evaluate(pr.theta0(), sens)
        assert out["ok"], (sens, out["message"])
        assert out["grad"][0] == pytest.approx(want, rel=1e-7), sens


def _chain_loss(n: int, t_end: float, rtol: float, atol: float):
    """``(loss(p, solver, adjoint), p0)``: the sum of squares at 4-5 times of an n-state
    Michaelis-Menten chain with a stiff fast pair and a time-dependent decay, solved by diffrax."""
    import diffrax
    import jax.numpy as jnp

    def f(t, y, p):
        flux = p[: n - 1] * y[:-1] / (p[n - 1] + y[:-1]) - 0.05 * y[1:] ** 2
        dy = jnp.concatenate([-flux[:1], flux[:-1] - flux[1:], flux[-1:]])
        return dy - p[n] * (1.0 + jnp.sin(t)) * y + jnp.zeros(n).at[0].set(200.0 * (y[1] - y[0]))

    y0 = jnp.linspace(1.0, 0.1, n)
    ts = jnp.linspace(0.5, t_end, 5 if t_end > 3.0 else 4)

    def loss(p, solver, adjoint):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(f), solver, 0.0, ts[-1], None, y0, args=p,
            saveat=diffrax.SaveAt(ts=ts), stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            adjoint=adjoint, max_steps=4096,
        )
        return jnp.sum(sol.ys**2)

    return loss, jnp.concatenate([jnp.linspace(0.5, 3.0, n - 1), jnp.array([0.7, 0.02])])


@pytest.mark.parametrize("name", ["Rodas5P", "Rosenbrock23"])
def test_rosenbrock_tangent_products_equal_the_jacobians_derivative(name):
    """Forward mode through a Rosenbrock method with more states than stage solves
    differentiates each stage solve through second-order products (``tangent_products``,
    chosen by ``make_solver``): the same derivative as through the Jacobian's, and the
    finite-difference one."""
    import diffrax
    import jax

    from pyude.engines.jax._solvers import make_solver

    n = 10  # more states than Rodas5P's 8 stage solves
    loss, p0 = _chain_loss(n, 4.0, 1e-9, 1e-11)
    forward = make_solver(name, 1e-9, 1e-11, forward_mode=True, n_states=n)
    plain = make_solver(name, 1e-9, 1e-11)
    assert forward.tangent_products and not plain.tangent_products
    assert not make_solver(name, 1e-9, 1e-11, forward_mode=True, n_states=type(forward).stage_solves).tangent_products

    g_products = jax.jacfwd(loss)(p0, forward, diffrax.ForwardMode())
    g_jacobian = jax.jacfwd(loss)(p0, plain, diffrax.ForwardMode())
    np.testing.assert_allclose(g_products, g_jacobian, rtol=1e-10, atol=1e-12 * np.abs(g_jacobian).max())
    if name != "Rodas5P":  # the rule is shared: the differences once (compile time)
        return
    value = jax.jit(lambda p: loss(p, plain, diffrax.RecursiveCheckpointAdjoint()))
    h = 1e-5 * np.maximum(np.abs(np.asarray(p0)), 1e-2)
    fd = np.array([(value(p0.at[i].add(h[i])) - value(p0.at[i].add(-h[i]))) / (2 * h[i]) for i in range(p0.size)])
    assert rel_error(g_products, fd) < 1e-6


@pytest.mark.parametrize("name", ["Rodas5P", "Rosenbrock23"])
def test_rosenbrock_reverse_products_equal_forward_mode(name):
    """Reverse mode through a Rosenbrock method past ``UNROLL_LIMIT`` states (LAPACK's LU)
    takes the Jacobian's share of the cotangents as one batched second-order product per
    stage solve (``reverse_products``, chosen by ``make_solver``): the same gradient as
    forward mode through the same steps, and as reverse mode through the Jacobian."""
    import diffrax
    import jax

    from pyude.engines.jax._solvers import make_solver
    from pyude.engines.jax._solvers._linalg import UNROLL_LIMIT

    n = UNROLL_LIMIT + 2
    loss, p0 = _chain_loss(n, 3.0, 1e-8, 1e-10)
    reverse = make_solver(name, 1e-8, 1e-10, n_states=n)
    assert reverse.reverse_products and not reverse.tangent_products
    assert not make_solver(name, 1e-8, 1e-10, n_states=UNROLL_LIMIT).reverse_products
    forward = make_solver(name, 1e-8, 1e-10, forward_mode=True, n_states=n)
    assert not forward.reverse_products

    g_products = jax.grad(loss)(p0, reverse, diffrax.RecursiveCheckpointAdjoint())
    g_forward = jax.jacfwd(loss)(p0, forward, diffrax.ForwardMode())
    np.testing.assert_allclose(g_products, g_forward, rtol=1e-10, atol=1e-12 * np.abs(g_forward).max())
    if name == "Rodas5P":  # the rule is shared: against the Jacobian's own reverse pass once
        g_jacobian = jax.grad(loss)(p0, type(reverse)(), diffrax.RecursiveCheckpointAdjoint())
        np.testing.assert_allclose(g_products, g_jacobian, rtol=1e-9, atol=1e-12 * np.abs(g_forward).max())


def test_rosenbrock_past_the_unrolled_elimination():
    """Between ``ELIMINATION_LIMIT`` and ``UNROLL_LIMIT`` states the step's inverse is LAPACK's
    (with the same closed-form derivative): reverse and forward mode agree with each other and
    with central differences."""
    import diffrax
    import jax

    from pyude.engines.jax._solvers import make_solver
    from pyude.engines.jax._solvers._linalg import ELIMINATION_LIMIT, UNROLL_LIMIT, factor_kind

    n = ELIMINATION_LIMIT + 3
    assert n <= UNROLL_LIMIT and factor_kind(n) == "inverse"
    loss, p0 = _chain_loss(n, 3.0, 1e-9, 1e-11)
    reverse = make_solver("Rodas5P", 1e-9, 1e-11, n_states=n)
    forward = make_solver("Rodas5P", 1e-9, 1e-11, forward_mode=True, n_states=n)
    g_reverse = jax.jit(jax.grad(lambda p: loss(p, reverse, diffrax.RecursiveCheckpointAdjoint())))(p0)
    g_forward = jax.jit(jax.jacfwd(lambda p: loss(p, forward, diffrax.ForwardMode())))(p0)
    np.testing.assert_allclose(g_reverse, g_forward, rtol=1e-9, atol=1e-12 * np.abs(g_forward).max())
    value = jax.jit(lambda p: loss(p, reverse, diffrax.RecursiveCheckpointAdjoint()))
    h = 1e-5 * np.maximum(np.abs(np.asarray(p0)), 1e-2)
    fd = np.array([(value(p0.at[i].add(h[i])) - value(p0.at[i].add(-h[i]))) / (2 * h[i]) for i in range(p0.size)])
    assert rel_error(g_reverse, fd) < 1e-6
