"""The Julia engine, executed: runs only where Julia is installed (marker ``julia``).

Where Julia is missing every test here is skipped with the reason the engine gives;
where it is present they run as they are (the first run installs the Julia packages).
Never executed on the machines where pyude is developed: no Julia can be installed there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pyude
from pyude.engines.julia import unavailable_reason

ROOT = Path(__file__).parents[1]
PROBLEMS = sorted(ROOT.glob("examples/*/problem.yaml"))
REASON = unavailable_reason()

pytestmark = [
    pytest.mark.julia,
    pytest.mark.skipif(REASON is not None, reason=f"Julia engine unavailable: {REASON}"),
]

DECAY = {"states": ["x"], "parameters": {"k": 0.7}, "equations": {"x": "-k*x"}, "initial": {"x": 2.0}}


@pytest.mark.parametrize("path", PROBLEMS, ids=lambda p: p.parent.name)
def test_example_agrees_across_engines(path):
    result = pyude.check_engines(path)
    print(result.table())
    assert result.ok, result.table()


@pytest.mark.parametrize("solver", ["Tsit5", "Dopri5", "Rodas5P", "Kvaerno5", "KenCarp4", "FBDF", "QNDF", "auto"])
def test_solve_matches_the_exact_solution(solver):
    t = np.linspace(0.5, 3.0, 6)
    sol = pyude.solve(DECAY, t, engine="julia", solver=solver, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sol["x"], 2.0 * np.exp(-0.7 * t), rtol=1e-6)
    assert sol.stats["steps"] > 0
    np.testing.assert_allclose(sol(1.25), 2.0 * np.exp(-0.7 * 1.25), rtol=1e-6)


@pytest.mark.parametrize("sensitivity", ["checkpoint", "adjoint", "forward"])
def test_gradient_matches_the_jax_engine(sensitivity):
    import pandas as pd

    data = pd.DataFrame({"time": [1.0, 2.0], "observable": ["x", "x"], "value": [1.0, 0.5]})
    jax = pyude.Problem(DECAY, data, rtol=1e-10, atol=1e-12, solver="Tsit5")
    julia = pyude.Problem(DECAY, data, rtol=1e-10, atol=1e-12, solver="Tsit5", engine="julia")
    v_jax, g_jax = jax.value_and_grad(sensitivity=sensitivity)
    v_jl, g_jl = julia.value_and_grad(sensitivity=sensitivity)
    assert v_jl == pytest.approx(v_jax, rel=1e-7)
    assert g_jl["k"] == pytest.approx(g_jax["k"], rel=1e-6)


def test_failed_solve_is_a_solver_error():
    with pytest.raises(pyude.SolverError) as info:
        pyude.solve(DECAY, [1e6], engine="julia", solver="Tsit5", max_steps=5)
    assert info.value.code == "max_steps_reached"
