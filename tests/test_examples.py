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
    p = result.params
    h = np.tanh(p["nn.0.weight"] @ np.stack([x, y]) + p["nn.0.bias"][:, None])
    h = np.tanh(p["nn.1.weight"] @ h + p["nn.1.bias"][:, None])
    out = p["nn.2.weight"] @ h + p["nn.2.bias"][:, None]
    truth = np.stack([-0.9 * x * y, 0.8 * x * y])
    assert np.linalg.norm(out - truth) / np.linalg.norm(truth) < 0.35


@pytest.mark.parametrize("name", ["michaelis_menten", "stiff_robertson", "lotka_volterra_ude"])
def test_example_data_is_reproducible(name, tmp_path, monkeypatch):
    """generate_data.py (fixed seed) rewrites exactly the committed data."""
    import importlib.util
    import shutil

    src = EXAMPLES / name
    for f in src.iterdir():
        shutil.copy(f, tmp_path / f.name)
    spec = importlib.util.spec_from_file_location(f"gen_{name}", tmp_path / "generate_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "data.csv"), pd.read_csv(src / "data.csv"))
