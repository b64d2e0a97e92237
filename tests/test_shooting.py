"""Multiple shooting: the pieced-together objective, its gradients, and what it buys on oscillations."""

import numpy as np
import pandas as pd
import pytest

import pyude
from pyude.problem._file import load_problem_file

OSCILLATOR = {
    "name": "oscillator",
    "states": ["x", "v"],
    "parameters": {"w": {"value": 1.0, "bounds": [0.1, 5.0]}, "c": 0.0},
    "equations": {"x": "v", "v": "-w^2*x - c*v"},
    "initial": {"x": 1.0, "v": 0.0},
}


def _data(w=1.0, c=0.0, n=120, t_end=60.0, noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.uniform(0.0, t_end, n))
    sol = pyude.solve({**OSCILLATOR, "parameters": {"w": w, "c": c}}, ts, rtol=1e-11, atol=1e-11)
    return pd.DataFrame({"time": ts, "observable": "x", "value": sol.y[:, 0] + noise * rng.normal(size=n)})


def _exact_starts(problem, params, segments):
    """The true states at every inner segment start, per condition (from one tight solve each)."""
    layout = problem._shooting_layout(segments)
    starts = []
    for cid in problem.conditions.ids:
        frame = problem.conditions.frame
        y0 = {"x": float(frame.loc[frame["condition"] == cid, "x"].iloc[0])} if "x" in frame else None
        sol = pyude.solve(OSCILLATOR, problem.data.ts, params=params, y0=y0, rtol=1e-12, atol=1e-12)
        starts.append(sol.y[layout["end_index"]])
    return np.stack(starts)


def test_layout_cuts_at_data_times():
    problem = pyude.Problem(OSCILLATOR, _data(n=11, t_end=10.0, noise=0.0), estimate=["w"], solver="Tsit5")
    layout = problem._shooting_layout(5)
    ts = problem.data.ts
    np.testing.assert_array_equal(layout["end_index"], [2, 4, 6, 8])
    np.testing.assert_array_equal(layout["t_start"], np.concatenate([[0.0], ts[[2, 4, 6, 8]]]))
    np.testing.assert_array_equal(layout["t_end"], ts[[2, 4, 6, 8, 10]])
    np.testing.assert_array_equal(layout["owner"], [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4])


def test_continuous_segments_reproduce_single_shooting():
    """With every segment started on the true trajectory the gaps vanish and the
    multiple-shooting objective equals the single-shooting one."""
    conditions = pd.DataFrame({"condition": ["a", "b"], "x": [1.0, 0.5]})
    data = pd.concat([_data(seed=1).assign(condition="a"), _data(seed=2).assign(condition="b")])
    problem = pyude.Problem(OSCILLATOR, data, conditions, estimate=["w"], solver="Tsit5", rtol=1e-11, atol=1e-11,
                            params={"w": 1.1})
    ms = pyude.MultipleShooting(segments=6, continuity=1e3)
    theta = problem.theta0()
    starts = _exact_starts(problem, {"w": 1.1}, 6)
    single = problem.evaluate(theta)
    shot = problem.evaluate(np.concatenate([theta, starts.ravel()]), shooting=ms)
    assert single["ok"] and shot["ok"]
    assert shot["value"] == pytest.approx(single["value"], rel=1e-7)
    # a gap of 0.1 in one state of the last segment start costs continuity * 0.1^2 (plus its effect on the data)
    moved = starts.copy()
    moved[1, -1, 1] += 0.1  # the last segment: no later gap depends on it
    gap = problem.evaluate(np.concatenate([theta, moved.ravel()]), shooting=ms)
    assert gap["value"] - gap["data_term"] == pytest.approx(1e3 * 0.01, rel=1e-6)


@pytest.mark.parametrize("sensitivity", ["checkpoint", "adjoint", "forward"])
def test_shooting_gradient_matches_finite_differences(sensitivity):
    conditions = pd.DataFrame({"condition": ["a", "b", "c"], "x": [1.0, 0.5, -0.3]})
    data = pd.concat([_data(n=30, t_end=12.0, seed=s).assign(condition=c) for s, c in enumerate("abc")])
    problem = pyude.Problem(OSCILLATOR, data, conditions, estimate=["w", "c"], solver="Tsit5", rtol=1e-10,
                            atol=1e-10, params={"w": 1.2, "c": 0.1})
    ms = pyude.MultipleShooting(segments=4, continuity=10.0)
    theta = problem.shooting_start(problem.theta0(), ms)
    assert theta.size == 2 + 3 * 3 * 2
    batch = np.array([0, 2])  # a mini-batch: the states of condition b get no gradient
    out = problem.evaluate(theta, sensitivity, batch=batch, shooting=ms)
    eps = 1e-6
    fd = np.array([
        (problem.evaluate(theta + eps * e, batch=batch, shooting=ms)["value"]
         - problem.evaluate(theta - eps * e, batch=batch, shooting=ms)["value"]) / (2 * eps)
        for e in np.eye(theta.size)
    ])
    np.testing.assert_allclose(out["grad"], fd, rtol=2e-5, atol=1e-6)
    b_states = theta.size - 3 * 3 * 2 + np.arange(6, 12)
    assert np.all(out["grad"][b_states] == 0.0)
    assert np.any(out["grad"][np.arange(2, 8)] != 0.0)


def test_shooting_start_uses_measured_states():
    data = _data(n=20, t_end=10.0, noise=0.0)
    data = pd.concat([data, data.iloc[[10]].assign(value=data["value"].iloc[10] + 0.2)])  # a replicate
    problem = pyude.Problem(OSCILLATOR, data, estimate=["w"], solver="Tsit5", params={"w": 1.5})
    ms = pyude.MultipleShooting(segments=2)
    theta = problem.shooting_start(problem.theta0(), ms)
    (cut,) = problem._shooting_layout(2)["end_index"]
    assert cut == 10
    x_data = data["value"].iloc[10] + 0.1  # the mean of the two replicates
    v_sim = pyude.solve(OSCILLATOR, problem.data.ts, params={"w": 1.5}).y[cut, 1]
    np.testing.assert_allclose(theta[1:], [x_data, v_sim], rtol=1e-5)


def test_multiple_shooting_escapes_the_local_minimum_of_a_long_oscillation():
    """20 periods observed, frequency started 60 % too high: single shooting stops in a
    local minimum; 30 segments recover w = 1."""
    problem = pyude.Problem(OSCILLATOR, _data(), estimate=["w"], solver="Tsit5", params={"w": 1.6})
    adam = pyude.Adam(steps=200, learning_rate=0.05)
    single = pyude.fit(problem, adam=adam)
    shot = pyude.fit(problem, adam=adam, shooting=pyude.MultipleShooting(segments=30, continuity=10.0))
    assert abs(single.params["w"] - 1.0) > 0.5 and single.loss > 50
    assert shot.params["w"] == pytest.approx(1.0, abs=1e-3)
    assert shot.loss < 0.1  # 120 points with noise sd 0.02: the sum of squares of the noise is ~0.05
    assert shot.success and list(shot.history["phase"].unique()) == ["adam", "lbfgs"]


def test_shooting_errors(tmp_path):
    with pytest.raises(pyude.DataError, match="segments must be >= 2"):
        pyude.MultipleShooting(segments=1)
    with pytest.raises(pyude.DataError, match="segments must be an integer"):
        pyude.MultipleShooting(segments="4")
    with pytest.raises(pyude.DataError, match="continuity must be positive"):
        pyude.MultipleShooting(continuity=0.0)
    problem = pyude.Problem(OSCILLATOR, _data(n=5, t_end=5.0), estimate=["w"], solver="Tsit5")
    with pytest.raises(pyude.DataError, match="8 segments needs at least 9 distinct data times; the data have 5"):
        pyude.fit(problem, shooting=pyude.MultipleShooting(segments=8))
    _data(n=20, t_end=5.0).to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "model.yaml").write_text(
        "name: osc\nstates: [x, v]\nparameters: {w: 1.0}\nequations: {x: v, v: -w^2*x}\ninitial: {x: 1.0, v: 0.0}\n"
    )
    (tmp_path / "problem.yaml").write_text(
        "model: model.yaml\ndata: data.csv\nfit:\n  shooting: {segments: 4, continuity: 50}\n"
    )
    _, kwargs = load_problem_file(tmp_path / "problem.yaml")
    assert kwargs["shooting"] == pyude.MultipleShooting(segments=4, continuity=50)
    (tmp_path / "problem.yaml").write_text("model: model.yaml\ndata: data.csv\nfit:\n  shooting: {segment: 4}\n")
    with pytest.raises(pyude.SpecError, match=r"fit.shooting: unknown key\(s\) \['segment'\]"):
        load_problem_file(tmp_path / "problem.yaml")


def test_shooting_is_refused_on_an_engine_without_it():
    import types

    problem = pyude.Problem(OSCILLATOR, _data(n=10, t_end=5.0), estimate=["w"], solver="Tsit5")
    problem.engine = types.SimpleNamespace(name="julia")
    with pytest.raises(pyude.DataError, match="multiple shooting runs on the JAX engine only, not on engine 'julia'"):
        pyude.fit(problem, shooting=pyude.MultipleShooting(segments=2))
