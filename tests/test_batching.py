"""How a problem's conditions are solved (``Problem(batching=...)``): sequential (one after
another) gives the analytic trajectories and gradients, and the same objective and
gradients as vectorized (one vmapped solve); ``"auto"`` picks by solver.

Model: x' = k - d x, preequilibrated under k = k_pre (x0 = k_pre / d), then

    x(t) = k/d + (k_pre - k)/d exp(-d t).

The conditions differ in k, so their step counts differ.
"""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import pyude

MODEL = {
    "states": ["x"],
    "parameters": {"k": 1.0, "d": 0.8, "k_pre": 0.5},
    "initial": {"x": "0"},
    "equations": {"x": "k - d*x"},
}
PARAMS = {"k": 1.0, "d": 0.8, "k_pre": 0.5}
DOSES = {"washout": 0.0, "low": 1.0, "high": 6.0}
TIMES = np.array([0.3, 1.0, 2.5, 6.0])


def analytic(t, k, d, k_pre):
    return k / d + (k_pre - k) / d * np.exp(-d * t)


def _problem(batching, solver="Rodas5P", doses=DOSES):
    conditions = pd.DataFrame({
        "condition": [*doses, "pre"],
        "k": [*doses.values(), "k_pre"],
        "preequilibration": ["pre"] * len(doses) + [None],
    })
    rng = np.random.default_rng(3)
    data = pd.DataFrame([
        {"condition": c, "time": t, "observable": "x", "value": analytic(t, k, 0.8, 0.5) + 0.05 * rng.normal()}
        for c, k in doses.items() for t in TIMES
    ])
    return pyude.Problem(MODEL, data, conditions, solver=solver, rtol=1e-10, atol=1e-12, estimate=["d", "k_pre"],
                         batching=batching)


@pytest.fixture(scope="module")
def problems():
    return {b: _problem(b) for b in ("vectorized", "sequential")}


def test_auto_is_sequential_for_stiff_solvers_on_cpu():
    stiff_default = "sequential" if jax.default_backend() == "cpu" else "vectorized"
    assert _problem("auto").settings.batching == stiff_default
    assert _problem("auto", solver="Tsit5").settings.batching == "vectorized"
    assert _problem("vectorized").settings.batching == "vectorized"
    # multi-start workers rebuild the problem from its recipe: the choice travels with it
    assert pickle.loads(pickle.dumps(_problem("vectorized"))).settings.batching == "vectorized"


def test_unknown_batching_is_refused():
    with pytest.raises(pyude.SpecError, match=r"unknown batching 'parallel'; choose one of: auto, vectorized, sequential"):
        _problem("parallel")


def test_sequential_gives_the_analytic_trajectories(problems):
    pred = problems["sequential"].predictions(PARAMS)
    want = [analytic(t, DOSES[c], **{k: PARAMS[k] for k in ("d", "k_pre")}) for c, t in zip(pred["condition"], pred["time"])]
    np.testing.assert_allclose(pred["prediction"], want, rtol=1e-8)


def analytic_gradient(problem, doses=DOSES, rows=None):
    """d loss / d (d, k_pre) of the sum of squares, from the analytic trajectories (over the
    data rows where ``rows``, if given)."""
    d, k_pre = PARAMS["d"], PARAMS["k_pre"]
    frame = problem.data.frame
    k = frame["condition"].map(doses).to_numpy()
    t, v = frame["time"].to_numpy(), frame["value"].to_numpy()
    decay = np.exp(-d * t)
    dx = {
        "d": -k / d**2 - (k_pre - k) / d**2 * decay - (k_pre - k) / d * t * decay,
        "k_pre": decay / d,
    }
    residual = v - analytic(t, k, d, k_pre)
    rows = np.ones(residual.shape, bool) if rows is None else rows
    return np.array([np.sum(-2 * residual[rows] * dx[name][rows]) for name in problem.estimation.names])


def test_sequential_gradients_match_vectorized_and_the_analytic_gradient(problems):
    vec, seq = problems["vectorized"], problems["sequential"]
    theta = seq.theta0(PARAMS)
    assert seq.loss(PARAMS) == pytest.approx(vec.loss(PARAMS), rel=1e-10)
    want = analytic_gradient(seq)
    reference = np.asarray(vec.evaluate(theta, "checkpoint")["grad"])
    np.testing.assert_allclose(reference, want, rtol=1e-7)
    for sens in ("checkpoint", "forward", "adjoint"):
        out = seq.evaluate(theta, sens)
        assert out["ok"], out["message"]
        np.testing.assert_allclose(out["grad"], want, rtol=1e-7, err_msg=sens)
        np.testing.assert_allclose(out["grad"], reference, rtol=1e-9, err_msg=sens)


def test_sequential_multiple_shooting_matches_vectorized(problems):
    ms = pyude.MultipleShooting(segments=2, continuity=10.0)
    values = []
    for b in ("vectorized", "sequential"):
        pr = problems[b]
        theta = pr.shooting_start(pr.theta0(PARAMS), ms)
        theta[pr.estimation.index.size:] += 0.01  # starts off the trajectory: non-zero gaps
        out = pr.evaluate(theta, "checkpoint", shooting=ms)
        assert out["ok"], out["message"]
        values.append((out["value"], np.asarray(out["grad"])))
    assert values[1][0] == pytest.approx(values[0][0], rel=1e-10)
    np.testing.assert_allclose(values[1][1], values[0][1], rtol=1e-8)


def _scan_lengths(jaxpr) -> list[int]:
    out = []
    for e in jaxpr.eqns:
        if e.primitive.name == "scan":
            out.append(e.params["length"])
        for v in e.params.values():
            for sub in v if isinstance(v, (tuple, list)) else (v,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    out += _scan_lengths(inner)
    return out


@pytest.mark.parametrize("batching", ["sequential", "vectorized"])
def test_repeated_conditions_are_solved_once(batching):
    """Conditions with equal overrides (replicates) have equal trajectories: the objective
    solves each distinct condition once and serves every replicate's rows from it, with the
    values and gradients of solving them all (and the analytic ones); a mini-batch still
    picks conditions by their own positions."""
    from pyude.engines.jax._objective import objective_fns

    doses = {**DOSES, "low_again": DOSES["low"]}
    pr = _problem(batching, doses=doses)
    ids = list(pr.conditions.ids)
    arrays = pr._arrays_at(PARAMS)[0]
    of = np.asarray(arrays["distinct"]["of"])
    assert of[ids.index("low_again")] == of[ids.index("low")]
    assert len(set(of.tolist())) == len(ids) - 1
    theta = jnp.asarray(pr.theta0(PARAMS))
    solve_all = {k: v for k, v in arrays.items() if k != "distinct"}
    sens = pyude.Checkpoint()
    (value, grad, *_), _ = pr.engine.objective(pr._cm, pr.settings, sens, pr.mode, theta, arrays)
    (value_all, grad_all, *_), _ = pr.engine.objective(pr._cm, pr.settings, sens, pr.mode, theta, solve_all)
    assert value == pytest.approx(value_all, rel=1e-13)
    np.testing.assert_allclose(grad, grad_all, rtol=1e-12)
    np.testing.assert_allclose(grad, analytic_gradient(pr, doses), rtol=1e-7)
    if batching == "sequential":  # one solve per distinct condition in the compiled program
        fn = objective_fns(pr._cm, pr.settings, None, pr.mode)["value"]
        assert len(ids) - 1 in _scan_lengths(fn.trace(theta, arrays).jaxpr.jaxpr)
        assert len(ids) in _scan_lengths(fn.trace(theta, solve_all).jaxpr.jaxpr)
    batch = np.array([ids.index("low_again"), ids.index("high")])
    out = pr.evaluate(theta, "checkpoint", batch=batch)
    assert out["ok"], out["message"]
    rows = pr.data.frame["condition"].isin(["low_again", "high"]).to_numpy()
    np.testing.assert_allclose(out["grad"], analytic_gradient(pr, doses, rows) * len(ids) / 2, rtol=1e-7)
