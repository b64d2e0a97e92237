"""The command line: simulate writes a trajectory and a plot (or a problem file's simulated
measurements); fit and simulate take PEtab problem files; bad specs exit 2 with the reason."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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


CONFORMANCE = ROOT.parent / "shared" / "conformance"
SCIML_001 = CONFORMANCE / "petab-sciml" / "sciml_problem_import" / "001"
BOEHM = CONFORMANCE / "benchmark-models" / "Boehm_JProteomeRes2014"


def _reported_loss(out: str) -> float:
    return float(re.search(r"^loss\s+(\S+)", out, re.M).group(1))


@pytest.mark.skipif(not SCIML_001.exists(), reason="PEtab SciML conformance cases not found (../shared beside the repository)")
def test_simulate_and_fit_a_petab_sciml_problem_file(tmp_path, capsys):
    """`pyude simulate` and `pyude fit` take a PEtab v2 (SciML) problem file as it is."""
    problem = str(SCIML_001 / "petab" / "problem.yaml")
    assert main(["simulate", problem, "--out", str(tmp_path / "sim")]) == 0
    nominal = _reported_loss(capsys.readouterr().out)
    assert abs(-nominal - 33.02909543616718) < 1e-3  # the case's reference log-likelihood
    sim = pd.read_csv(tmp_path / "sim" / "simulation.csv")
    ref = pd.read_csv(SCIML_001 / "simulations.tsv", sep="\t")
    both = sim.merge(ref, on=["observableId", "experimentId", "time"], suffixes=("", "_ref"))
    assert len(both) == len(ref) == len(sim)
    assert np.max(np.abs(both["simulation"] - both["simulation_ref"])) < 1e-3

    code = main(["fit", problem, "--out", str(tmp_path / "fit"), "--quiet", "--max-iterations", "3"])
    assert code in (0, 1)  # 1: L-BFGS-B stopped at the iteration cap, reported as not converged
    out = capsys.readouterr().out
    assert _reported_loss(out) <= nominal + 1e-9
    params = json.loads((tmp_path / "fit" / "params.json").read_text())
    assert np.shape(params["net1.layer1.weight"]) == (5, 2) and "alpha" in params  # PEtab's names and shapes
    assert len(pd.read_csv(tmp_path / "fit" / "predictions.csv")) == len(ref)


@pytest.mark.skipif(not BOEHM.exists(), reason="PEtab benchmark models not found (../shared beside the repository)")
def test_simulate_a_petab_v1_problem_file(tmp_path, capsys):
    assert main(["simulate", str(BOEHM / "Boehm_JProteomeRes2014.yaml"), "--out", str(tmp_path)]) == 0
    assert abs(-_reported_loss(capsys.readouterr().out) - (-138.22199693517703)) < 1e-3  # reference_llh.yaml
    frame = pd.read_csv(tmp_path / "simulation.csv")
    table = pd.read_csv(BOEHM / "measurementData_Boehm_JProteomeRes2014.tsv", sep="\t")
    assert {"observableId", "time", "measurement", "simulation"} <= set(frame.columns) and len(frame) == len(table)


def test_simulate_a_model_spec_needs_an_end_time(capsys):
    assert main(["simulate", str(ROOT / "examples/robertson/model.yaml")]) == 2
    assert "--t-end is required" in capsys.readouterr().err
