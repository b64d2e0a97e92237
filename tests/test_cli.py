"""The command line: simulate writes a trajectory and a plot; bad specs exit 2 with the reason."""

from pathlib import Path

import pandas as pd

from pyude.cli import main

ROOT = Path(__file__).parents[1]


def test_simulate_writes_csv_and_png(tmp_path, capsys):
    code = main(["simulate", str(ROOT / "examples/robertson/model.yaml"), "--t-end", "40", "--points", "5",
                 "--rtol", "1e-10", "--atol", "1e-14", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "Rodas5P (auto" in out
    frame = pd.read_csv(tmp_path / "trajectory.csv")
    assert list(frame.columns) == ["time", "y1", "y2", "y3"]
    assert abs(frame["y1"].iloc[-1] - 0.7158270687193135) < 1e-7
    assert (tmp_path / "trajectory.png").read_bytes()[:4] == b"\x89PNG"


def test_validate_reports_the_bad_symbol(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text("states: [x]\nequations: {x: '-k*x'}\n")
    assert main(["validate", str(spec)]) == 2
    assert "equations.x: unknown symbol 'k'" in capsys.readouterr().err


def test_validate_checks_data(tmp_path, capsys):
    spec = tmp_path / "ok.yaml"
    spec.write_text("states: [x]\nparameters: {k: 1}\nequations: {x: '-k*x'}\n")
    data = tmp_path / "d.csv"
    data.write_text("time,observable,value\n1,x,0.5\n2,z,0.1\n")
    assert main(["validate", str(spec), "--data", str(data)]) == 2
    assert "data row 1: unknown observable 'z'" in capsys.readouterr().err
