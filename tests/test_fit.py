"""Fitting layer: noise models, batched conditions, estimation scales, fit, resume, multi-start."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from scipy.special import gammaln

import pyude
from pyude import DataError, SpecError
from pyude.fitting import sample_starts

DECAY = {
    "name": "decay",
    "states": ["x"],
    "parameters": {"k": {"value": 0.7, "scale": "log", "bounds": [0.01, 10.0]}, "x0": 2.0, "s": 0.1},
    "equations": {"x": "-k*x"},
    "initial": {"x": "x0"},
}


def _decay(observables):
    return pyude.Model.from_dict({**DECAY, "observables": observables})


# ------------------------------------------------------------ noise models
@pytest.mark.parametrize("noise", ["normal", "lognormal", "laplace", "poisson"])
def test_negative_log_likelihood_matches_formula(noise):
    obs = {"formula": "3*x", "noise": noise}
    if noise != "poisson":
        obs["sigma"] = "s"
    model = _decay({"o": obs})
    t = np.array([0.5, 1.0, 2.0, 3.0])
    y = np.array([2.0, 1.5, 1.0, 0.0 if noise == "poisson" else 0.4])
    data = pd.DataFrame({"time": t, "observable": "o", "value": y})
    problem = pyude.Problem(model, data, solver="Tsit5", rtol=1e-12, atol=1e-14)
    h = 3 * 2.0 * np.exp(-0.7 * t)
    s = 0.1
    expected = {
        "normal": lambda: np.sum(0.5 * np.log(2 * np.pi * s**2) + 0.5 * ((y - h) / s) ** 2),
        "lognormal": lambda: np.sum(0.5 * np.log(2 * np.pi * s**2 * y**2) + 0.5 * ((np.log(y) - np.log(h)) / s) ** 2),
        "laplace": lambda: np.sum(np.log(2 * s) + np.abs(y - h) / s),
        "poisson": lambda: np.sum(h - y * np.log(h) + gammaln(y + 1)),
    }[noise]()
    assert problem.mode == "nll"
    np.testing.assert_allclose(problem.loss(), expected, rtol=1e-9)


@pytest.mark.parametrize("layout", ["grid", "gather"])
def test_noise_scales_that_read_states_and_time(layout):
    # an absolute plus relative error that grows in time, and a purely relative one
    model = _decay({
        "o": {"formula": "3*x", "noise": "normal", "sigma": "s + 0.2*x + 0.05*t"},
        "p": {"formula": "x", "noise": "laplace", "sigma": "s*x"},
    })
    t = np.array([0.5, 1.0, 2.0, 3.0])
    y = {"o": np.array([2.0, 1.5, 1.0, 0.4]), "p": np.array([1.3, 1.1, 0.5, 0.2])}
    keep = {"o": slice(None), "p": slice(None) if layout == "grid" else slice(1, 3)}
    data = pd.concat([pd.DataFrame({"time": t[keep[o]], "observable": o, "value": y[o][keep[o]]}) for o in "op"])
    data = data.sort_values(["time", "observable"])  # every (time, observable) in order: read as one block
    problem = pyude.Problem(model, data, solver="Tsit5", rtol=1e-12, atol=1e-14)
    assert ("grid" in problem._arrays_at(None)[0]["data"]) == (layout == "grid")

    def nll(k=0.7, x0=2.0, s=0.1):
        x = x0 * np.exp(-k * t)
        so = s + 0.2 * x + 0.05 * t
        normal = 0.5 * np.log(2 * np.pi * so**2) + 0.5 * ((y["o"] - 3 * x) / so) ** 2
        laplace = np.log(2 * s * x) + np.abs(y["p"] - x) / (s * x)
        return normal.sum() + laplace[keep["p"]].sum()

    value, grad = problem.value_and_grad()
    np.testing.assert_allclose(value, nll(), rtol=1e-9)
    for name in ("k", "x0", "s"):
        h = 1e-6
        fd = (nll(**{name: DECAY_NOMINAL[name] + h}) - nll(**{name: DECAY_NOMINAL[name] - h})) / (2 * h)
        np.testing.assert_allclose(grad[name], fd, rtol=1e-6, err_msg=name)


DECAY_NOMINAL = {"k": 0.7, "x0": 2.0, "s": 0.1}


def test_plain_data_is_weighted_sum_of_squares_and_data_sigma_overrides():
    model = _decay({"o": {"formula": "x", "sigma": 0.5}})
    t = np.array([1.0, 2.0])
    data = pd.DataFrame({"time": t, "observable": ["o", "x"], "value": [1.0, 0.5], "sigma": [np.nan, 0.2]})
    problem = pyude.Problem(model, data, solver="Tsit5", rtol=1e-12, atol=1e-14)
    h = 2.0 * np.exp(-0.7 * t)
    assert problem.mode == "wss"
    np.testing.assert_allclose(problem.loss(), ((1.0 - h[0]) / 0.5) ** 2 + ((0.5 - h[1]) / 0.2) ** 2, rtol=1e-9)


def test_noise_data_errors():
    model = _decay({"o": {"formula": "x", "noise": "lognormal", "sigma": 0.1}})
    with pytest.raises(DataError, match="row 1: a lognormal observable needs positive values"):
        pyude.Problem(model, pd.DataFrame({"time": [1, 2], "observable": "o", "value": [1.0, -0.1]}))
    with pytest.raises(SpecError, match="observables.o.noise: unknown noise model 'gauss'"):
        _decay({"o": {"formula": "x", "noise": "gauss"}})
    with pytest.raises(SpecError, match="observables.o.sigma: unknown symbol 'q'"):
        _decay({"o": {"formula": "x", "noise": "normal", "sigma": "0.1*q"}})
    with pytest.raises(SpecError, match="poisson observable has no sigma"):
        _decay({"o": {"formula": "x", "noise": "poisson", "sigma": 1}})


def test_observables_round_trip():
    model = _decay({"o": {"formula": "3*x", "noise": "laplace", "sigma": "s"}, "p": "x + 1"})
    again = pyude.Model.from_dict(model.to_dict())
    assert again == model
    assert again.observables["o"].noise == "laplace" and again.observables["p"].noise is None


# -------------------------------------------------------------- conditions
INPUT_MODEL = {
    "name": "driven",
    "states": ["a", "b"],
    "parameters": {"k": 0.5, "kb": 0.3, "a0": 1.0, "k_alt": 1.1},
    "inputs": {"u": {"times": [0, 1, 2, 3], "values": [0.0, 1.0, 0.5, 0.2], "interpolation": "cubic"}},
    "equations": {"a": "u - k*a", "b": "k*a - kb*b"},
    "initial": {"a": "a0", "b": 0.0},
}


def test_batched_conditions_equal_solving_one_by_one():
    model = pyude.Model.from_dict(INPUT_MODEL)
    conditions = pd.DataFrame(
        {"condition": ["ctrl", "fast", "dosed", "alt"], "k": [np.nan, 2.0, np.nan, "k_alt"],
         "b": [np.nan, 0.5, np.nan, np.nan], "u": [np.nan, np.nan, 0.8, np.nan]}
    )
    t = np.array([0.3, 0.9, 1.7, 2.5, 3.5])
    rows = [{"condition": c, "time": ti, "observable": o, "value": 0.0}
            for c in conditions["condition"] for ti in t for o in ("a", "b")]
    problem = pyude.Problem(model, pd.DataFrame(rows), conditions, solver="Tsit5", rtol=1e-10, atol=1e-12)
    pred = problem.predictions()
    one_by_one = {
        "ctrl": pyude.solve(model, t, rtol=1e-10, atol=1e-12),
        "fast": pyude.solve(model, t, y0={"b": 0.5}, params={"k": 2.0}, rtol=1e-10, atol=1e-12),
        "dosed": pyude.solve(model, t, inputs={"u": {"times": [0.0], "values": [0.8]}}, rtol=1e-10, atol=1e-12),
        "alt": pyude.solve(model, t, params={"k": 1.1}, rtol=1e-10, atol=1e-12),
    }
    for cid, sol in one_by_one.items():
        for o in ("a", "b"):
            got = pred[(pred["condition"] == cid) & (pred["observable"] == o)]["prediction"].to_numpy()
            np.testing.assert_allclose(got, sol[o], rtol=1e-8, atol=1e-10)


def test_conditions_table_order_and_unmeasured_conditions_do_not_mix_up_predictions():
    """The data may list conditions in any order, and the table may define conditions
    without data: each row is still predicted under its own condition."""
    conditions = pd.DataFrame({"condition": ["unused", "ctrl", "fast"], "k": [5.0, np.nan, 2.0]})
    data = pd.DataFrame({"condition": ["fast", "ctrl", "fast"], "time": [1.0, 1.0, 2.0],
                         "observable": ["a", "a", "a"], "value": [0.0, 0.0, 0.0]})
    problem = pyude.Problem(INPUT_MODEL, data, conditions, solver="Tsit5", rtol=1e-10, atol=1e-12)
    pred = problem.predictions()["prediction"].to_numpy()
    fast = pyude.solve(INPUT_MODEL, [1.0, 2.0], params={"k": 2.0}, rtol=1e-10, atol=1e-12)["a"]
    ctrl = pyude.solve(INPUT_MODEL, [1.0], rtol=1e-10, atol=1e-12)["a"]
    np.testing.assert_allclose(pred, [fast[0], ctrl[0], fast[1]], rtol=1e-8)
    np.testing.assert_allclose(problem.loss(), np.sum(pred**2), rtol=1e-10)


def test_full_grid_data_read_by_slice_equal_row_gather():
    """Rows that fill a block of the (condition, time, observable) table in order are read
    off the predictions with one slice; any other order by a per-row gather: same numbers."""
    conditions = pd.DataFrame({"condition": ["ctrl", "fast"], "k": [np.nan, 2.0]})
    rng = np.random.default_rng(3)
    grid = pd.DataFrame(
        [{"condition": c, "time": t, "observable": o} for c in ("ctrl", "fast") for t in (0.5, 1.0, 2.0) for o in "ab"]
    ).assign(value=lambda f: rng.uniform(0.1, 1.0, len(f)), sigma=lambda f: rng.uniform(0.5, 2.0, len(f)))
    shuffled = grid.sample(frac=1.0, random_state=0)
    problems = [pyude.Problem(INPUT_MODEL, f, conditions, solver="Tsit5", rtol=1e-10, atol=1e-12)
                for f in (grid, shuffled)]
    assert problems[0].data.grid() == ((0, 0, 0), (2, 3, 2)) and problems[1].data.grid() is None
    params = {"k": 0.8, "kb": 0.4}
    (v0, g0), (v1, g1) = (p.value_and_grad(params) for p in problems)
    assert v0 > 1.0  # residuals of random data: a loss that a wrong slice would change
    np.testing.assert_allclose(v0, v1, rtol=1e-12)
    np.testing.assert_allclose([g0[k] for k in sorted(g0)], [g1[k] for k in sorted(g1)], rtol=1e-10)
    # a mini-batch remaps conditions: gathered, never sliced
    b0, b1 = (p.evaluate(p.theta0(), "checkpoint", batch=np.array([1]))["value"] for p in problems)
    np.testing.assert_allclose(b0, b1, rtol=1e-12)
    pred = problems[0].predictions()
    fast = pred[pred["condition"] == "fast"]
    np.testing.assert_allclose(b0, 2 * np.sum(((fast["value"] - fast["prediction"]) / fast["sigma"]) ** 2), rtol=1e-10)


@pytest.mark.parametrize(
    "table, message",
    [
        (pd.DataFrame({"condition": ["c1"], "kq": [1.0]}), "column 'kq' is not a parameter, state or input"),
        (pd.DataFrame({"condition": ["c1", "c1"], "k": [1.0, 2.0]}), "row 1: condition 'c1' already defined"),
        (pd.DataFrame({"condition": ["c1"], "k": ["fast"]}), "row 0 .* column 'k': 'fast' is neither a number"),
        (pd.DataFrame({"condition": ["c2"], "k": [1.0]}), r"data condition\(s\) \['c1'\] are not in the conditions"),
        (pd.DataFrame({"id": ["c1"]}), "needs a 'condition' column"),
    ],
)
def test_condition_errors(table, message):
    data = pd.DataFrame({"condition": ["c1"], "time": [1.0], "observable": ["a"], "value": [0.1]})
    with pytest.raises(DataError, match=message):
        pyude.Problem(INPUT_MODEL, data, table, solver="Tsit5")


# ------------------------------------------------------- estimation scales
def _mm_problem(**kw):
    from pathlib import Path

    here = Path(__file__).parents[1] / "examples" / "michaelis_menten"
    return pyude.Problem(
        pyude.Model.from_yaml(here / "model.yaml"), here / "data.csv", here / "conditions.csv",
        estimate=["Vmax", "Km"], solver="Tsit5", rtol=1e-10, atol=1e-12, **kw,
    )


@pytest.mark.parametrize("sensitivity", ["checkpoint", "adjoint", "forward"])
def test_gradient_in_theta_matches_finite_differences(sensitivity):
    problem = _mm_problem(priors={"Km": {"dist": "lognormal", "mean": 0.0, "sd": 1.0}})
    theta = problem.theta0() + np.array([0.2, -0.1])
    out = problem.evaluate(theta, sensitivity)
    assert out["ok"]
    fd = np.empty(2)
    for i in range(2):
        h = 1e-5
        vals = []
        for k in (-2, -1, 1, 2):
            th = theta.copy()
            th[i] += k * h
            vals.append(problem.evaluate(th)["value"])
        fd[i] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h)
    np.testing.assert_allclose(out["grad"], fd, rtol=1e-5)


def test_estimation_errors():
    with pytest.raises(DataError, match="estimate: 'Vmx' is not a parameter"):
        pyude.Problem(
            pyude.Model.from_dict({**DECAY}), pd.DataFrame({"time": [1.0], "observable": ["x"], "value": [1.0]}),
            estimate=["Vmx"],
        )
    with pytest.raises(DataError, match="priors.k: expected"):
        pyude.Problem(DECAY, pd.DataFrame({"time": [1.0], "observable": ["x"], "value": [1.0]}), priors={"k": 1.0})


PRIOR_MODEL = {"states": ["x"], "parameters": {"a": 0.6, "b": 1.3, "c": 0.4, "d": 2.0, "e": 3.0},
               "equations": {"x": "-a * b * c * d * e * x / 10"}, "initial": {"x": 1.0}}
PRIORS = {
    "a": {"dist": "laplace", "loc": 0.5, "scale": 0.2},
    "b": {"dist": "loglaplace", "loc": 0.1, "scale": 0.3},
    "c": {"dist": "normal", "mean": -0.2, "sd": 0.5, "on": "log10"},
    "d": {"dist": "uniform", "lower": -1.0, "upper": 2.0, "on": "log"},
    "e": {"dist": "laplace", "loc": 0.0, "scale": 1.0, "on": "log10"},
}


def _prior_nlp(v):
    a, b, c, d, e = (v[k] for k in "abcde")
    value = (np.log(0.4) + abs(a - 0.5) / 0.2 + np.log(b) + np.log(0.6) + abs(np.log(b) - 0.1) / 0.3
             + np.log(0.5) + 0.5 * np.log(2 * np.pi) + 0.5 * ((np.log10(c) + 0.2) / 0.5) ** 2
             + np.log(3.0) + np.log(2.0) + abs(np.log10(e)))
    grad = {"a": np.sign(a - 0.5) / 0.2, "b": 1 / b + np.sign(np.log(b) - 0.1) / (0.3 * b),
            "c": (np.log10(c) + 0.2) / 0.25 / (c * np.log(10)), "d": 0.0, "e": np.sign(np.log10(e)) / (e * np.log(10))}
    return value, grad


def test_laplace_loglaplace_and_scale_priors_match_their_densities():
    """-log densities (PEtab's definitions; ``on: log10`` is a density over log10 of the value,
    without a Jacobian) and their gradients, against the closed forms."""
    data = pd.DataFrame({"time": [1.0], "observable": ["x"], "value": [0.7]})
    plain = pyude.Problem(PRIOR_MODEL, data, solver="Tsit5", rtol=1e-10, atol=1e-12)
    with_priors = pyude.Problem(PRIOR_MODEL, data, solver="Tsit5", rtol=1e-10, atol=1e-12, priors=PRIORS)
    v = dict(PRIOR_MODEL["parameters"])
    want, want_grad = _prior_nlp(v)
    assert with_priors.loss(v) - plain.loss(v) == pytest.approx(want, rel=1e-12)
    _, g0 = plain.value_and_grad(v)
    _, g1 = with_priors.value_and_grad(v)
    for k in "abcde":
        assert g1[k] - g0[k] == pytest.approx(want_grad[k], rel=1e-9, abs=1e-12), k
    assert np.isinf(with_priors.loss({**v, "d": np.exp(2.5)}))  # outside the uniform's log-range
    # a prior over the value itself at a value of 0: no log of it anywhere (its gradient was NaN)
    _, g0 = plain.value_and_grad({**v, "a": 0.0})
    _, g1 = with_priors.value_and_grad({**v, "a": 0.0})
    assert g1["a"] - g0["a"] == pytest.approx(-1 / 0.2, rel=1e-12)
    with pytest.raises(DataError, match="priors.b: a loglaplace prior is over the value itself"):
        pyude.Problem(PRIOR_MODEL, data, priors={"b": {**PRIORS["b"], "on": "log"}})
    with pytest.raises(DataError, match="priors.a: need a finite loc and a positive scale"):
        pyude.Problem(PRIOR_MODEL, data, priors={"a": {**PRIORS["a"], "scale": 0.0}})
    with pytest.raises(DataError, match=r"priors.a: on must be one of \['lin', 'log', 'log10'\]"):
        pyude.Problem(PRIOR_MODEL, data, priors={"a": {**PRIORS["a"], "on": "ln"}})


# --------------------------------------------------------------------- fit
def test_michaelis_menten_recovers_vmax_and_km():
    """examples/michaelis_menten: true Vmax 2.0, Km 1.5; stated: each within 10%."""
    problem = _mm_problem()
    result = pyude.fit(problem, adam=pyude.Adam(steps=150, learning_rate=0.05), polish=pyude.LBFGS(max_iter=100))
    assert result.success
    assert abs(result.params["Vmax"] / 2.0 - 1) < 0.10
    assert abs(result.params["Km"] / 1.5 - 1) < 0.10
    rmse = float(np.sqrt((result.predictions["residual"] ** 2).mean()))
    assert 0.03 < rmse < 0.07  # the noise sd is 0.05
    assert list(result.history.columns) == ["step", "phase", "loss", "best_loss", "learning_rate", "seconds"]
    assert (result.history["phase"] == "adam").sum() == 150


def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path, monkeypatch):
    adam = pyude.Adam(steps=30, learning_rate=0.05, schedule="exponential", batch_size=2)
    full = pyude.fit(_mm_problem(), adam=adam, polish=None, seed=3)

    problem = _mm_problem()
    calls = {"n": 0}
    original = problem.evaluate

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 17:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(problem, "evaluate", interrupted)
    path = tmp_path / "ckpt.npz"
    with pytest.raises(KeyboardInterrupt):
        pyude.fit(problem, adam=adam, polish=None, seed=3, checkpoint=path, checkpoint_every=10)
    monkeypatch.setattr(problem, "evaluate", original)
    resumed = pyude.fit(problem, adam=adam, polish=None, seed=3, checkpoint=path, checkpoint_every=10)
    assert any("resumed" in m and "step 10" in m for m in resumed.messages)
    np.testing.assert_array_equal(resumed.theta, full.theta)
    assert resumed.loss == full.loss
    np.testing.assert_array_equal(resumed.history["loss"].to_numpy(), full.history["loss"].to_numpy())
    with pytest.raises(DataError, match="different problem or fit settings"):
        pyude.fit(problem, adam=pyude.Adam(steps=31), polish=None, seed=3, checkpoint=path)


def test_failing_fit_says_so_and_keeps_the_start():
    blowup = {
        "name": "blowup", "states": ["x"], "parameters": {"k": 1.0}, "equations": {"x": "k*x^2"},
        "initial": {"x": 1.0},
    }
    data = pd.DataFrame({"time": [0.5, 2.0], "observable": "x", "value": [2.0, 3.0]})
    problem = pyude.Problem(blowup, data, solver="Tsit5", max_steps=200)
    result = pyude.fit(problem, adam=pyude.Adam(steps=5), polish=None)
    assert not result.success
    assert any("adam: step 0 failed" in m and "t=" in m for m in result.messages)
    assert result.params["k"] == 1.0


def test_multistart_ranks_starts_and_survives_a_failing_one():
    problem = _mm_problem()
    ms = pyude.fit_multistart(
        problem, 3, ThreadPoolExecutor(max_workers=2), adam=pyude.Adam(steps=40, learning_rate=0.1),
        polish=pyude.LBFGS(max_iter=50),
    )
    losses = ms.summary["loss"].to_numpy()
    assert np.all(np.diff(losses[np.isfinite(losses)]) >= 0)
    assert abs(ms.best.params["Vmax"] / 2.0 - 1) < 0.1
    bad = pyude.fit_multistart(problem, 2, ThreadPoolExecutor(max_workers=1), adam=pyude.Adam(steps=2), polish=None,
                               sensitivity="nonsense")
    assert not bad.summary["success"].any() and bad.summary["error"].str.contains("unknown sensitivity").all()


def test_multistart_default_process_pool_equals_in_process_fits():
    """The default executor (spawned processes: the Problem travels as its recipe) gives
    the same fits as running the starts here."""
    problem = _mm_problem()
    kwargs = {"adam": pyude.Adam(steps=20, learning_rate=0.1), "polish": pyude.LBFGS(max_iter=20)}
    ms = pyude.fit_multistart(problem, 2, seed=5, **kwargs)
    assert ms.summary["success"].all() and (ms.summary["error"] == "").all()
    starts = sample_starts(problem, 2, 5)
    for row, result in zip(ms.summary.itertuples(), ms.results):
        here = pyude.fit(problem, seed=5 + row.start, init=starts[row.start], **kwargs)
        np.testing.assert_allclose(result.theta, here.theta, rtol=1e-9)
        assert result.loss == pytest.approx(here.loss, rel=1e-9)


def test_multistart_on_a_dask_cluster():
    """A Dask cluster's executor (``client.get_executor()``) runs the starts unchanged:
    the same fits as in-process. Worker processes get the Problem as its recipe."""
    distributed = pytest.importorskip("distributed")
    problem = _mm_problem()
    kwargs = {"adam": pyude.Adam(steps=10, learning_rate=0.1), "polish": None}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            ms = pyude.fit_multistart(problem, 2, client.get_executor(), seed=1, **kwargs)
    assert ms.summary["success"].all(), ms.summary["error"].tolist()
    starts = sample_starts(problem, 2, 1)
    for row, result in zip(ms.summary.itertuples(), ms.results):
        here = pyude.fit(problem, seed=1 + row.start, init=starts[row.start], **kwargs)
        assert result.loss == pytest.approx(here.loss, rel=1e-9)


def test_problem_pickles_by_recipe():
    import pickle

    problem = _mm_problem(l2=0.0)
    again = pickle.loads(pickle.dumps(problem))
    theta = problem.theta0()
    assert again.evaluate(theta)["value"] == problem.evaluate(theta)["value"]
    assert again.solver == problem.solver and again.n_conditions == 3
