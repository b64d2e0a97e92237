"""Each example's fit reaches its stated outcome (see examples/<name>/model.yaml and generate_data.py)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pyude
from pyude.cli import main
from pyude.problem._file import load_problem_file

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_michaelis_menten_cli_fit(tmp_path, capsys):
    """The README's main job: `pyude fit` writes params, predictions, history and plots."""
    code = main(["fit", str(EXAMPLES / "michaelis_menten" / "problem.yaml"), "--out", str(tmp_path), "--quiet"])
    assert code == 0
    params = json.loads((tmp_path / "params.json").read_text())
    assert abs(params["Vmax"] / 2.0 - 1) < 0.10 and abs(params["Km"] / 1.5 - 1) < 0.10
    pred = pd.read_csv(tmp_path / "predictions.csv")
    assert {"condition", "time", "observable", "value", "prediction", "residual"} <= set(pred.columns)
    assert len(pd.read_csv(tmp_path / "history.csv")) >= 150
    assert (tmp_path / "fit.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "Vmax" in out and "plots" in out


def test_stiff_robertson_adjoint_fit():
    """Rodas5P + continuous adjoint from a start 3x off: every rate constant within 5%."""
    problem, kw = load_problem_file(EXAMPLES / "stiff_robertson" / "problem.yaml")
    kw.pop("multistart")
    assert problem.solver == "Rodas5P" and kw["sensitivity"] == "adjoint"
    result = pyude.fit(problem, **kw)
    assert result.success
    for name, true in {"k1": 0.04, "k2": 3.0e7, "k3": 1.0e4}.items():
        assert abs(result.params[name] / true - 1) < 0.05, (name, result.params[name])


def test_lotka_volterra_ude_learns_the_interaction():
    """The network learns the missing terms: fit RMSE at the noise level (0.05) and the
    network's output along the trajectory within 35% of -beta*x*y, gamma*x*y (measured: 26%)."""
    problem, kw = load_problem_file(EXAMPLES / "lotka_volterra_ude" / "problem.yaml")
    kw.pop("multistart")
    result = pyude.fit(problem, **kw)
    pred = result.predictions
    assert float(np.sqrt((pred["residual"] ** 2).mean())) < 0.06
    sol = pyude.solve(problem.model, np.linspace(0.1, 3.0, 30), params=result.params)
    x, y = sol["x"], sol["y"]
    out = problem.model.networks["nn"](result.params, sol.y)
    truth = np.stack([-0.9 * x * y, 0.8 * x * y], axis=1)
    assert np.linalg.norm(out - truth) / np.linalg.norm(truth) < 0.35


def _load_generator(name: str, directory: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"gen_{name}", directory / "generate_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_toggle_switch_neural_ode_predicts_unseen_starts():
    """A network as the whole right-hand side, from 8 experiments sampled at irregular
    times: fit RMSE at the noise level (0.05); from 4 starting points it never saw,
    trajectories on [0, 8] within RMSE 0.1 of the truth on average (measured 0.07,
    worst 0.19) and every one settles in the right one of the two stable states
    (within 0.03 at t = 30; measured 0.007)."""
    gen = _load_generator("toggle_switch", EXAMPLES / "toggle_switch")
    problem, kw = load_problem_file(EXAMPLES / "toggle_switch" / "problem.yaml")
    kw.pop("multistart")
    result = pyude.fit(problem, **kw)
    assert result.success
    assert float(np.sqrt((result.predictions["residual"] ** 2).mean())) < 0.06
    ts = np.linspace(0.0, 8.0, 41)
    errors = []
    for u0, v0 in gen.HELD_OUT:
        y0 = {"u": u0, "v": v0}
        truth = pyude.solve(gen.TRUE, np.append(ts, 30.0), y0=y0, rtol=1e-10, atol=1e-12).y
        learned = pyude.solve(problem.model, np.append(ts, 30.0), params=result.params, y0=y0).y
        errors.append(np.sqrt(np.mean((truth[:-1] - learned[:-1]) ** 2)))
        assert np.max(np.abs(truth[-1] - learned[-1])) < 0.03, (u0, v0, learned[-1])
    assert np.mean(errors) < 0.1 and max(errors) < 0.25, errors


def test_enzyme_network_ude_conserves_and_learns_the_rate():
    """dx/dt = S r(x) with the catalytic rate a network: fit RMSE at the noise level;
    E + C and S + C + P conserved to 1e-10 along the fitted trajectories; kf within 10%
    (measured 3%); the learned rate within 15% of kcat*C/(1 + P/Ki) along the
    trajectories (measured 7.4%); the unobserved E and C within 0.05 of the truth."""
    gen = _load_generator("enzyme_network_ude", EXAMPLES / "enzyme_network_ude")
    problem, kw = load_problem_file(EXAMPLES / "enzyme_network_ude" / "problem.yaml")
    kw.pop("multistart")
    result = pyude.fit(problem, **kw)
    assert result.success
    assert float(np.sqrt((result.predictions["residual"] ** 2).mean())) < 0.06
    assert abs(result.params["kf"] / 2.0 - 1) < 0.10
    ts = np.linspace(0.0, 12.0, 49)
    learned_rate, true_rate = [], []
    for s0 in gen.SUBSTRATE.values():
        y0 = {"E": 1.0, "S": s0, "C": 0.0, "P": 0.0}
        sol = pyude.solve(problem.model, ts, params=result.params, y0=y0)
        E, S, C, P = sol.y.T
        np.testing.assert_allclose(E + C, 1.0, atol=1e-10)
        np.testing.assert_allclose(S + C + P, s0, atol=1e-10)
        truth = pyude.solve(gen.TRUE, ts, y0=y0, rtol=1e-10, atol=1e-12)
        assert np.max(np.abs(truth["E"] - E)) < 0.05 and np.max(np.abs(truth["C"] - C)) < 0.05
        learned_rate.append(problem.model.networks["rate"](result.params, np.stack([C, P], axis=1))[:, 0])
        true_rate.append(1.5 * C / (1 + P / 0.5))
    learned_rate, true_rate = np.concatenate(learned_rate), np.concatenate(true_rate)
    assert np.linalg.norm(learned_rate - true_rate) / np.linalg.norm(true_rate) < 0.15


@pytest.mark.parametrize(
    "name", ["michaelis_menten", "stiff_robertson", "lotka_volterra_ude", "toggle_switch", "enzyme_network_ude"]
)
def test_example_data_is_reproducible(name, tmp_path):
    """generate_data.py (fixed seed) rewrites exactly the committed data (and conditions)."""
    import shutil

    src = EXAMPLES / name
    for f in src.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    _load_generator(name, tmp_path).main()
    for table in ("data.csv", "conditions.csv"):
        if (src / table).exists():
            pd.testing.assert_frame_equal(pd.read_csv(tmp_path / table), pd.read_csv(src / table))
