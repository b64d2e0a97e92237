"""piecewise/comparisons in the spec; switch times in t handed to the step-size controller;
gradients in a switch time by every sensitivity (the adjoint adds the jump term)."""

import numpy as np
import pandas as pd
import pytest

import pyude

MODEL = {
    "states": ["x", "y"],
    "parameters": {"tau": 1.0, "k": 0.3},
    "equations": {"x": "piecewise(0, lt(t - tau, 0), 1) - k*x", "y": "x*piecewise(k, gt(t, 2*tau), 1)"},
}


def test_step_is_exact():
    m = pyude.Model.from_dict({"states": ["x"], "parameters": {"tau": 1.0}, "equations": {"x": "piecewise(0, lt(t, tau), 1)"}})
    sol = pyude.solve(m, np.array([0.5, 1.0, 2.5]), rtol=1e-10, atol=1e-12)
    assert np.allclose(sol.y[:, 0], [0.0, 0.0, 1.5], atol=1e-9)


def test_logic_functions():
    m = pyude.Model.from_dict({"states": ["x"], "parameters": {"a": 2.0},
                               "equations": {"x": "and(ge(a, 2), not(eq(a, 3)), or(0, ne(a, 1))) + floor(a/3)"}})
    sol = pyude.solve(m, np.array([1.0]), rtol=1e-10, atol=1e-12)
    assert sol.y[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("sens", ["checkpoint", "adjoint", "forward"])
def test_gradient_in_switch_time(sens):
    data = pd.DataFrame({"time": [2.0, 3.0, 3.0], "observable": ["x", "x", "y"], "value": [0.5, 1.0, 0.7]})
    pr = pyude.Problem(MODEL, data, rtol=1e-10, atol=1e-12)
    _, g = pr.value_and_grad({"tau": 1.2}, sens)
    h = 1e-6
    fd = (pr.loss({"tau": 1.2 + h}) - pr.loss({"tau": 1.2 - h})) / (2 * h)
    assert g["tau"] == pytest.approx(fd, rel=1e-5)


def test_checkpoint_gradient_with_switch_times_in_vmapped_conditions():
    """Conditions solved in one vmapped call finish after different numbers of steps; the
    finished lanes then take zero-length steps, whose Rodas5P dense output was 0/0: a NaN
    that reached the checkpoint gradient (as on the Beer benchmark)."""
    ts = np.arange(0.0, 20.0, 1.0)
    data = pd.DataFrame({"time": np.concatenate([ts, ts]), "observable": "x", "value": 0.5,
                         "condition": ["a"] * ts.size + ["b"] * ts.size})
    conditions = pd.DataFrame({"condition": ["a", "b"], "tau": ["tau", "tau2"]})
    model = {**MODEL, "parameters": {**MODEL["parameters"], "tau2": 1.0}}
    # vectorized explicitly: "auto" solves a stiff solver's conditions one after another
    pr = pyude.Problem(model, data, conditions, solver="Rodas5P", rtol=1e-8, atol=1e-10, estimate=["tau", "tau2", "k"],
                       batching="vectorized")
    params = {"tau": 0.5, "tau2": 3.0}
    _, g = pr.value_and_grad(params, "checkpoint")  # raises on a non-finite gradient
    _, g_fwd = pr.value_and_grad(params, "forward")
    for k in ("tau", "tau2", "k"):
        assert g[k] == pytest.approx(g_fwd[k], rel=1e-7)
