"""The Julia engine's pieces that can be checked without Julia: the .jl sources parse, the
declared Julia dependencies agree, the spec JSON and weight layout sent to Julia, the name
maps, and the error (fast, no download) where Julia is missing."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
import tomllib
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

import pyude
from pyude.engines.jax._solvers import NAMES as JAX_SOLVERS
from pyude.engines.julia import (
    JULIA_SENSITIVITIES,
    JULIA_SOLVERS,
    from_julia_order,
    julia_layout,
    julia_sensealg,
    julia_solver_name,
    julia_spec,
    julia_spec_json,
    objective_kwargs,
    to_julia_order,
)
from pyude.engines.julia import _detect
from pyude.spec import _expr

ROOT = Path(__file__).parents[1]
JULIA = ROOT / "julia"
JL_FILES = sorted(JULIA.rglob("*.jl"))
EXAMPLE_MODELS = sorted(ROOT.glob("examples/*/model.yaml"))

UDE = {
    "name": "ude",
    "states": ["x", "y"],
    "parameters": {"a": 1.3, "b": {"value": 0.5, "scale": "log"}},
    "networks": {
        "nn": {"inputs": 2, "layers": [{"units": 3, "activation": "tanh"}, {"units": 2, "bias": False}]},
        "g": {"inputs": 1, "layers": [{"units": 4, "activation": "gelu"}, {"units": 1}]},
    },
    "equations": {"x": "a*x + nn(x, y)[0] + nn(x, y)[1]", "y": "-b*y^2 + g(t)[0]"},
    "initial": {"x": "2*a", "y": 0.3},
    "observables": {"total": {"formula": "x + y", "noise": "normal", "sigma": "b"}},
}


# ----------------------------------------------------------------- Julia sources
def _parser():
    tree_sitter = pytest.importorskip("tree_sitter")
    tsj = pytest.importorskip("tree_sitter_julia")
    return tree_sitter.Parser(tree_sitter.Language(tsj.language()))


def _problems(node, out):
    if node.type == "ERROR" or node.is_missing:
        out.append(f"{node.type or 'MISSING'} at line {node.start_point[0] + 1}")
    for child in node.children:
        _problems(child, out)
    return out


def test_julia_package_files_exist():
    assert (JULIA / "Project.toml").is_file()
    assert (JULIA / "src" / "PyUDE.jl").is_file()
    assert len(JL_FILES) >= 5


@pytest.mark.parametrize("path", JL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_julia_file_parses(path):
    tree = _parser().parse(path.read_bytes())
    assert _problems(tree.root_node, []) == []


def test_parser_detects_syntax_errors():
    """The parse check above can fail: a broken file is reported."""
    broken = b"function f(x)\n    y = (x + \nend\nmodule M\n"
    assert _problems(_parser().parse(broken).root_node, [])


def test_included_files_are_the_sources():
    main = (JULIA / "src" / "PyUDE.jl").read_text()
    included = set(re.findall(r'include\("([^"]+)"\)', main))
    assert included == {p.name for p in JL_FILES if p.name != "PyUDE.jl"}
    assert re.search(r"^module PyUDE$", main, re.M) and main.rstrip().endswith("end")


# ----------------------------------------------------------- declared dependencies
def test_juliapkg_json_and_project_toml_name_the_same_packages():
    project = tomllib.loads((JULIA / "Project.toml").read_text())
    jpkg = json.loads((ROOT / "pyude" / "juliapkg.json").read_text())
    packages = jpkg["packages"]
    assert project["name"] == "PyUDE"
    assert packages["PyUDE"]["uuid"] == project["uuid"]
    assert packages["PyUDE"]["dev"] is True
    assert (ROOT / "pyude" / packages["PyUDE"]["path"]).resolve() == JULIA.resolve()
    deps = {name: uuid for name, uuid in packages.items() if name != "PyUDE"}
    assert {k: v["uuid"] for k, v in deps.items()} == project["deps"]
    # the same compat bounds in both files
    assert {k: v["version"] for k, v in deps.items()} == {k: project["compat"][k] for k in deps}
    assert set(project["compat"]) == set(project["deps"]) | {"julia"}


def test_every_package_the_julia_code_uses_is_a_dependency():
    project = tomllib.loads((JULIA / "Project.toml").read_text())
    used = set()
    for path in JL_FILES:
        for line in path.read_text().splitlines():
            m = re.match(r"\s*(?:using|import)\s+([A-Za-z0-9_]+)", line)
            if m:
                used.add(m.group(1))
    assert used == set(project["deps"])


def test_juliapkg_json_ships_with_the_package():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "juliapkg.json" in pyproject["tool"]["setuptools"]["package-data"]["pyude"]
    assert any(r.startswith("juliacall") for r in pyproject["project"]["optional-dependencies"]["julia"])


# -------------------------------------------------------------------- spec JSON
def _walk(tree):
    yield tree
    for a in tree.get("args", []):
        yield from _walk(a)


def test_spec_json_carries_the_parsed_trees():
    model = pyude.Model.from_dict(UDE)
    spec = json.loads(julia_spec_json(model))
    assert spec["format"] == "pyude-julia-spec/1"
    assert spec["states"] == ["x", "y"] and spec["parameters"] == ["a", "b"]
    assert spec["n_params"] == model.n_params
    assert spec["rhs"]["kind"] == "equations"
    assert spec["rhs"]["equations"] == [_expr.to_json(model.equations[s]) for s in model.states]
    assert spec["initial"] == [_expr.to_json(model.initial["x"]), _expr.to_json(model.initial["y"])]
    assert spec["observables"] == [
        {"name": "total", "formula": _expr.to_json(model.observables["total"].formula), "sigma": {"sym": "b"}}
    ]
    nets = {n["name"]: n for n in spec["networks"]}
    layout = {name: off for name, _, off in model.parameter_layout}
    assert nets["nn"]["offset"] == layout["nn.0.weight"] and nets["g"]["offset"] == layout["g.0.weight"]
    assert nets["nn"]["layers"] == [
        {"in": 2, "out": 3, "activation": "tanh", "bias": True},
        {"in": 3, "out": 2, "activation": "identity", "bias": False},
    ]
    # the equal network calls are one subtree each (Julia evaluates each once)
    calls = [n for n in _walk(spec["rhs"]["equations"][0]) if "net" in n]
    assert calls[0]["args"] == calls[1]["args"] and [c["index"] for c in calls] == [0, 1]


@pytest.mark.parametrize("path", EXAMPLE_MODELS, ids=lambda p: p.parent.name)
def test_spec_json_of_examples_uses_only_whitelisted_nodes(path):
    model = pyude.Model.from_yaml(path)
    spec = julia_spec(model)
    trees = list(spec["rhs"].get("equations", [])) + list(spec["rhs"].get("rates", []))
    trees += [t for t in spec["rhs"].get("reverse_rates", []) + spec["initial"] if t is not None]
    trees += [o["formula"] for o in spec["observables"]] + [o["sigma"] for o in spec["observables"] if o["sigma"]]
    names = set(model.states) | set(model.parameters) | set(model.inputs) | {"t"}
    for tree in trees:
        for node in _walk(tree):
            kinds = set(node) & {"num", "sym", "op", "call", "net"}
            assert len(kinds) == 1, node
            if "sym" in node:
                assert node["sym"] in names
            if "op" in node:
                assert node["op"] in (*_expr.BINARY_OPS, "neg")
            if "call" in node:
                assert node["call"] in _expr.FUNCTIONS
    if model.reactions is not None:
        assert np.array_equal(np.array(spec["rhs"]["stoichiometry"]), model.stoichiometric_matrix())
    assert json.loads(julia_spec_json(model)) == spec  # plain, finite JSON


def test_spec_json_refuses_function_models_and_parameterless_models():
    with pytest.raises(pyude.SpecError, match="at least one parameter"):
        julia_spec(pyude.Model.from_dict({"states": ["x"], "equations": {"x": "-x"}}))
    with pytest.raises(pyude.SpecError, match="engine='jax'"):
        julia_spec(lambda t, y, p: -y)


def _julia_table(name: str, path: str) -> dict[str, str]:
    """The `"key" => (GlobalRef(Mod, :fn), arity)` / `"key" => Value` entries of a const Dict in a .jl file."""
    text = (JULIA / "src" / path).read_text()
    block = re.search(rf"const {name} = Dict\{{.*?\}}\(\n(.*?)\n\)", text, re.S).group(1)
    return dict(re.findall(r'"([^"]+)" => (.+?),?\s*(?:#.*)?$', block, re.M))


def test_julia_function_whitelist_equals_the_parser_list():
    table = _julia_table("FUNCTIONS", "expressions.jl")
    assert set(table) == set(_expr.FUNCTIONS)
    for name, entry in table.items():
        arity = int(re.search(r", (\d)\)$", entry).group(1))
        assert arity == _expr.FUNCTIONS[name], name
    assert set(_julia_table("OPERATORS", "expressions.jl")) == {*_expr.BINARY_OPS, "neg"}
    variadic = _julia_table("VARIADIC", "expressions.jl")
    assert {k: int(v) for k, v in variadic.items()} == _expr.VARIADIC


def test_julia_activations_equal_the_spec_list():
    from pyude.spec._networks import ACTIVATIONS

    assert set(_julia_table("ACTIVATIONS", "model.jl")) == set(ACTIVATIONS)


# --------------------------------------------------------------- weight layout
def test_weight_layout_round_trip_through_column_major():
    model = pyude.Model.from_dict(UDE)
    params = model.init_params(seed=3)
    p = model.flatten(params)
    data = to_julia_order(model, p)
    assert np.array_equal(from_julia_order(model, data), p)
    perm = julia_layout(model)
    assert sorted(perm) == list(range(1, model.n_params + 1))
    for name, shape, offset in model.parameter_layout:
        size = int(np.prod(shape))
        block = data[offset : offset + size]
        if len(shape) == 2:
            # what Julia's column-major reshape(block, out, in) reads is the spec's W (out, in)
            assert np.array_equal(block.reshape(shape, order="F"), params[name])
            assert np.array_equal(block, params[name].T.ravel())
            if min(shape) > 1:
                assert not np.array_equal(block, params[name].ravel())  # the layouts do differ
        else:
            assert np.array_equal(block, np.ravel(params[name]))


# -------------------------------------------------------------------- name maps
def test_solver_names_match_between_python_and_julia():
    julia_keys = set(_julia_table("SOLVERS", "solvers.jl"))
    assert julia_keys == set(JULIA_SOLVERS)
    for name, alg in _julia_table("SOLVERS", "solvers.jl").items():
        assert JULIA_SOLVERS[name] == alg + "()"
    assert set(JAX_SOLVERS) <= set(JULIA_SOLVERS)  # every JAX solver name runs on both engines


def test_solver_name_resolution():
    assert julia_solver_name("tsit5") == "Tsit5"
    assert julia_solver_name("AUTO") == "auto"
    assert julia_solver_name("fbdf") == "FBDF"
    with pytest.raises(pyude.SpecError, match="unknown solver 'RK45' for engine='julia'"):
        julia_solver_name("RK45")
    with pytest.raises(pyude.SpecError, match="unknown solver 'FBDF'"):
        pyude.solve({"states": ["x"], "parameters": {"k": 1.0}, "equations": {"x": "-k*x"}}, [1.0], solver="FBDF")


def test_sensitivity_names(monkeypatch):
    assert set(JULIA_SENSITIVITIES) == {"adjoint", "checkpoint", "forward"}
    assert julia_sensealg("checkpoint", "enzyme") == "InterpolatingAdjoint(autojacvec=EnzymeVJP(), checkpointing=true)"
    assert julia_sensealg("adjoint", "reversediff") == "GaussAdjoint(autojacvec=ReverseDiffVJP())"
    monkeypatch.setenv("PYUDE_JULIA_VJP", "zygote")
    assert julia_sensealg("adjoint") == "GaussAdjoint(autojacvec=ZygoteVJP())"
    monkeypatch.setenv("PYUDE_JULIA_VJP", "tracker")
    with pytest.raises(pyude.SpecError, match="PYUDE_JULIA_VJP"):
        julia_sensealg("adjoint")
    solvers_jl = (JULIA / "src" / "solvers.jl").read_text()
    assert 'name == "adjoint" && return GaussAdjoint(autojacvec = VJPS[vjp]())' in solvers_jl
    assert 'InterpolatingAdjoint(autojacvec = VJPS[vjp](), checkpointing = true)' in solvers_jl
    assert set(_julia_table("VJPS", "solvers.jl")) == {"enzyme", "reversediff", "zygote"}


# -------------------------------------------------------------- objective input
def test_objective_arrays_are_one_based_with_integer_masks():
    from pyude.problem._file import load_problem_file

    problem = load_problem_file(ROOT / "examples/michaelis_menten/problem.yaml")[0]
    arrays, _ = problem._arrays_at(None)
    kw = objective_kwargs(arrays, problem.mode)
    d = problem.data
    assert np.array_equal(kw["d_cond"], d.cond_index + 1)
    assert np.array_equal(kw["d_time"], d.time_index + 1)
    assert np.array_equal(kw["d_obs"], d.obs_index + 1)
    assert np.array_equal(kw["est_index"], problem.estimation.index + 1)
    assert np.array_equal(kw["p_source"], problem.conditions.p_source + 1)
    assert np.array_equal(kw["y_source"] == 0, problem.conditions.y_source < 0)
    assert kw["p_fixed"].dtype == np.int64 and set(np.unique(kw["p_fixed"])) <= {0, 1}
    assert kw["mode"] == problem.mode and kw["ts"].shape == d.ts.shape
    assert np.all(kw["d_lgamma"] == 0.0)  # no poisson rows


def test_poisson_rows_get_log_gamma():
    arrays = {
        "base_z": [1.0], "index": [0], "scale": [0], "is_network": [False], "l2": 0.0, "y0_fixed": [True],
        "y0_value": [1.0], "y0_estimated": [False], "ts": [1.0, 2.0], "t0": 0.0, "u": (),
        "cond": {k: np.zeros((1, 1)) for k in ("p_fixed", "p_value", "p_source", "y_fixed", "y_value", "y_source",
                                               "u_fixed", "u_value")},
        "data": {"cond": [0, 0], "time": [0, 1], "obs": [0, 0], "value": [3.0, 4.0], "sigma": [np.nan, np.nan],
                 "noise": [4, 1], "weight": [1.0, 1.0]},
        "priors": {"index": [], "kind": [], "mean": [], "sd": [], "on": []},
    }
    kw = objective_kwargs(arrays, "nll")
    assert kw["d_lgamma"] == pytest.approx([np.log(6.0), 0.0])


def test_objective_inputs_julia_does_not_implement_are_refused():
    """A feature the JAX objective has and PyUDE.jl lacks must not be dropped silently."""
    import pandas as pd

    import pyude

    model = {"name": "decay", "states": ["x"], "parameters": {"k": 1.0}, "equations": {"x": "-k*x"},
             "initial": {"x": 1.0}}
    data = pd.DataFrame({"time": np.linspace(0.5, 3.0, 6), "observable": "x", "value": np.exp(-np.linspace(0.5, 3, 6))})
    problem = pyude.Problem(model, data, solver="Tsit5")
    arrays, _ = problem._arrays_at(None)
    objective_kwargs(arrays, problem.mode)  # the plain objective is supported
    shooting = {**arrays, "shooting": {"t_start": np.zeros(2)}}
    with pytest.raises(pyude.SpecError, match=r"does not implement objective input\(s\) \['shooting'\] of arrays"):
        objective_kwargs(shooting, problem.mode)
    per_row = {**arrays, "data": {**arrays["data"], "row_params": np.zeros((6, 1))}}
    with pytest.raises(pyude.SpecError, match=r"\['row_params'\] of arrays\['data'\]"):
        objective_kwargs(per_row, problem.mode)
    new_noise = {**arrays, "data": {**arrays["data"], "noise": np.full(6, 8)}}
    with pytest.raises(pyude.SpecError, match=r"noise model code\(s\) \[8\]"):
        objective_kwargs(new_noise, problem.mode)
    row_extra = {**arrays, "data": {**arrays["data"], "row": {"index": [0], "fixed": np.zeros((6, 1)),
                                                              "value": np.zeros((6, 1)), "source": np.zeros((6, 1)),
                                                              "scale": np.zeros((6, 1))}}}
    with pytest.raises(pyude.SpecError, match=r"\['scale'\] of arrays\['data'\]\['row'\]"):
        objective_kwargs(row_extra, problem.mode)


def test_piecewise_and_logic_export_and_time_switches():
    import pyude

    state_switch = pyude.Model.from_dict({
        "name": "sw", "states": ["x"], "parameters": {"k": 1.0},
        "equations": {"x": "piecewise(-k*x, and(gt(x, 0.5), not(eq(k, 0))), 0.1)"}, "initial": {"x": 1.0},
    })
    spec = julia_spec(state_switch)
    rhs = spec["rhs"]["equations"][0]
    assert rhs["call"] == "piecewise" and [a.get("call") for a in rhs["args"]] == [None, "and", None]
    assert spec["switches"] == []  # a comparison of a state is no time switch
    time_switch = pyude.Model.from_dict({
        "name": "sw", "states": ["x"], "parameters": {"k": 1.0, "tau": 2.0},
        "equations": {"x": "piecewise(-k*x, lt(t, 2*tau - 1), 0.0)"}, "initial": {"x": 1.0},
    })
    spec = julia_spec(time_switch)
    # d = a - b of lt(a, b): PyUDE.jl steps onto the root of d(p, t) (tstops)
    assert spec["switches"] == [{"op": "-", "args": [{"sym": "t"}, {"op": "-", "args": [
        {"op": "*", "args": [{"num": 2.0}, {"sym": "tau"}]}, {"num": 1.0}]}]}]
    from pyude.engines.julia._export import switch_parameters

    assert switch_parameters(time_switch) == ["tau"] and switch_parameters(state_switch) == []


def _decay_problem(**kw):
    import pandas as pd

    model = {"name": "decay", "states": ["x"], "parameters": {"k": 1.0, "tau": 1.5},
             "equations": {"x": "piecewise(-k*x, lt(t, tau), 0.0)"}, "initial": {"x": 1.0}}
    t = np.linspace(0.5, 3.0, 6)
    data = pd.DataFrame({"time": t, "observable": "x", "value": np.exp(-t)})
    return pyude.Problem(model, data, solver="Tsit5", **kw)


def test_switch_times_of_estimated_parameters_are_refused():
    """PyUDE.jl's switch times are tstops (constants to SciMLSensitivity): no gradient in tau."""
    fixed_tau = _decay_problem(estimate=["k"])
    arrays, _ = fixed_tau._arrays_at(None)
    kw = objective_kwargs(arrays, fixed_tau.mode, fixed_tau.model)
    assert kw["est_index"].tolist() == [1]
    free_tau = _decay_problem()
    arrays, _ = free_tau._arrays_at(None)
    objective_kwargs(arrays, free_tau.mode)  # without the model: no check
    with pytest.raises(pyude.SpecError, match="depends on parameter 'tau', which is estimated"):
        objective_kwargs(arrays, free_tau.mode, free_tau.model)


def test_new_noise_codes_rows_and_preequilibration_reach_julia():
    """PEtab v1 inputs PyUDE.jl implements: noise codes 5-7, per-row parameters, preequilibration."""
    problem = _decay_problem(estimate=["k"])
    arrays, _ = problem._arrays_at(None)
    c = arrays["cond"]
    kw = objective_kwargs({**arrays, "data": {**arrays["data"], "noise": np.array([1, 2, 4, 5, 6, 7])}}, "nll")
    assert kw["d_noise"].tolist() == [1, 2, 4, 5, 6, 7]
    assert kw["d_lgamma"][2] == pytest.approx(math.lgamma(float(arrays["data"]["value"][2]) + 1.0), rel=1e-14)
    assert kw["d_lgamma"][[0, 1, 3, 4, 5]].tolist() == [0.0] * 5
    # without rows or preequilibration: empty row maps, no condition preequilibrated
    assert kw["row_index"].shape == (0,) and kw["row_fixed"].shape == (6, 0)
    assert kw["pre"].tolist() == [0] and np.array_equal(kw["pre_p_source"], kw["p_source"])
    row = {"index": np.array([1]), "fixed": np.array([[True]] * 3 + [[False]] * 3),
           "value": np.array([[2.0]] * 3 + [[0.0]] * 3), "source": np.array([[1]] * 3 + [[0]] * 3)}
    pre = {"pre": np.array([True]), "pre_p_fixed": np.array([[True, False]]), "pre_p_value": np.array([[0.5, 0.0]]),
           "pre_p_source": np.array([[0, 1]]), "pre_y_fixed": np.array([[False]]), "pre_y_value": np.array([[0.0]]),
           "pre_y_source": np.array([[-1]])}
    kw = objective_kwargs({**arrays, "cond": {**c, **pre}, "data": {**arrays["data"], "row": row}}, "nll")
    assert kw["row_index"].tolist() == [2]  # 1-based
    assert kw["row_fixed"][:, 0].tolist() == [1, 1, 1, 0, 0, 0] and kw["row_value"][0, 0] == 2.0
    assert kw["row_source"][:, 0].tolist() == [2, 2, 2, 1, 1, 1]
    assert kw["pre"].tolist() == [1] and kw["pre_p_source"].tolist() == [[1, 2]]
    assert kw["pre_p_value"].tolist() == [[0.5, 0.0]] and kw["pre_y_source"].tolist() == [[0]]


def test_julia_make_arrays_takes_every_keyword_python_sends():
    """The keyword names of PyUDE.make_arrays (objective.jl) equal objective_kwargs' keys."""
    text = (JULIA / "src" / "objective.jl").read_text()
    sig = re.search(r"function make_arrays\(m::Model; (.*?)\)\n", text, re.S).group(1)
    julia_kw = {k.strip() for k in sig.replace("\n", " ").split(",")}
    problem = _decay_problem(estimate=["k"])
    arrays, _ = problem._arrays_at(None)
    assert set(objective_kwargs(arrays, problem.mode)) == julia_kw


# objective.jl's per-code terms (pinned) and the same formulas in numpy, checked against the JAX engine
JULIA_NLL = {
    1: ("normal_nll(y, h, σ) = 0.5 .* (LOG2PI .+ 2 .* log.(σ)) .+ 0.5 .* abs2.((y .- h) ./ σ)",
        lambda y, h, s: 0.5 * (LOG2PI + 2 * np.log(s)) + 0.5 * ((y - h) / s) ** 2),
    2: (("lognormal_nll(y, h, σ) = 0.5 .* (LOG2PI .+ 2 .* log.(σ) .+ 2 .* log.(y)) .+ "
         "0.5 .* abs2.((log.(y) .- log.(h)) ./ σ)"),
        lambda y, h, s: 0.5 * (LOG2PI + 2 * np.log(s) + 2 * np.log(y)) + 0.5 * ((np.log(y) - np.log(h)) / s) ** 2),
    3: ("laplace_nll(y, h, σ) = log.(2 .* σ) .+ abs.(y .- h) ./ σ",
        lambda y, h, s: np.log(2 * s) + np.abs(y - h) / s),
    5: (("log10normal_nll(y, h, σ) = 0.5 .* (LOG2PI .+ 2 .* log.(σ) .+ 2 .* log.(y) .+ 2 * log(LN10)) .+\n"
         "                           0.5 .* abs2.((log.(y) .- log.(h)) ./ (LN10 .* σ))"),
        lambda y, h, s: 0.5 * (LOG2PI + 2 * np.log(s) + 2 * np.log(y) + 2 * np.log(LN10))
        + 0.5 * ((np.log(y) - np.log(h)) / (LN10 * s)) ** 2),
    6: ("loglaplace_nll(y, h, σ) = log.(2 .* σ) .+ log.(y) .+ abs.(log.(y) .- log.(h)) ./ σ",
        lambda y, h, s: np.log(2 * s) + np.log(y) + np.abs(np.log(y) - np.log(h)) / s),
    7: ("log10laplace_nll(y, h, σ) = log.(2 .* σ) .+ log.(y) .+ log(LN10) .+ abs.(log.(y) .- log.(h)) ./ (LN10 .* σ)",
        lambda y, h, s: np.log(2 * s) + np.log(y) + np.log(LN10) + np.abs(np.log(y) - np.log(h)) / (LN10 * s)),
}
LOG2PI, LN10 = np.log(2 * np.pi), np.log(10.0)


def test_julia_noise_terms_match_the_jax_formulas():
    from pyude.engines.jax._objective import nll_terms

    text = (JULIA / "src" / "objective.jl").read_text()
    y, h, s = np.array([0.7, 2.0, 13.0]), np.array([1.1, 1.5, 9.0]), np.array([0.3, 0.8, 2.5])
    for code, (line, numpy_form) in JULIA_NLL.items():
        assert line in text, line
        np.testing.assert_allclose(numpy_form(y, h, s), np.asarray(nll_terms(np.full(3, code), y, h, s)), rtol=1e-13)
    # nll() sums group k with the term of code k (groups[4] is poisson, written out there)
    for code, (line, _) in JULIA_NLL.items():
        name = line.split("(")[0]
        assert f"term(r.groups[{code}], {name})" in text, name
    assert "groups = [findall(k -> max(k, 1) == code, codes) for code in 1:7]" in text  # code 0 counts as normal


EVENTS_MODEL = {
    "name": "dosing",
    "states": ["x", "y"],
    "parameters": {"k": 1.0, "tau": 2.0, "dose": 1.0, "c": 1.5, "e": 0.1},
    "equations": {"x": "-k*x + 1", "y": "0"},
    "initial": {"x": 1.0, "y": 0.0},
    "events": [
        {"id": "bolus", "trigger": "ge(t, tau)", "assignments": {"x": "x + dose"}},
        {"trigger": "gt(x, c)", "assignments": {"x": "x/2", "y": "y + e*x"}},
        {"trigger": "lt(2*tau - t, 0)", "assignments": {"y": "1"}, "initial_value": False},
        {"trigger": "ge(t*t, 4)", "assignments": {"y": "y + 1"}},
    ],
}


def test_events_reach_julia_as_trees_with_the_jax_classification():
    """Every event in spec order: g (fires where it crosses zero upwards), strictness,
    initial_value, the JAX engine's time-triggered classification, the assignments."""
    from pyude.engines.jax._compile import compile_model

    model = pyude.Model.from_dict(EVENTS_MODEL)
    spec = json.loads(julia_spec_json(model))
    x, y, t, tau = {"sym": "x"}, {"sym": "y"}, {"sym": "t"}, {"sym": "tau"}
    assert spec["events"] == [
        {"id": "bolus", "g": {"op": "-", "args": [t, tau]}, "strict": False, "fires_initially": False,
         "timed": True, "assignments": [{"state": "x", "value": {"op": "+", "args": [x, {"sym": "dose"}]}}]},
        {"id": None, "g": {"op": "-", "args": [x, {"sym": "c"}]}, "strict": True, "fires_initially": False,
         "timed": False, "assignments": [
             {"state": "x", "value": {"op": "/", "args": [x, {"num": 2.0}]}},
             {"state": "y", "value": {"op": "+", "args": [y, {"op": "*", "args": [{"sym": "e"}, x]}]}}]},
        # lt(a, b): g = b - a
        {"id": None, "g": {"op": "-", "args": [{"num": 0.0}, {"op": "-", "args": [
            {"op": "*", "args": [{"num": 2.0}, tau]}, t]}]}, "strict": True, "fires_initially": True,
         "timed": True, "assignments": [{"state": "y", "value": {"num": 1.0}}]},
        # t*t is not affine in t: a state-triggered (root-found) event
        {"id": None, "g": {"op": "-", "args": [{"op": "*", "args": [t, t]}, {"num": 4.0}]}, "strict": False,
         "fires_initially": False, "timed": False, "assignments": [
             {"state": "y", "value": {"op": "+", "args": [y, {"num": 1.0}]}}]},
    ]
    events = compile_model(model).events
    assert [j for j, e in enumerate(spec["events"]) if e["timed"]] == events.timed.tolist() == [0, 2]
    assert [e["strict"] for e in spec["events"]] == events.strict.tolist()
    assert [e["fires_initially"] for e in spec["events"]] == events.fires_initially.tolist()
    assert spec["assignments"] == []


def test_assignments_reach_julia_in_order():
    model = pyude.Model.from_dict({
        "name": "static", "states": ["x"],
        "parameters": {"a": 0.5, "b": 2.0, "net_out": 0.0, "gamma": 0.0},
        "networks": {"nn": {"inputs": 2, "layers": [{"units": 3, "activation": "tanh"}, {"units": 1}]}},
        "assignments": {"net_out": "nn(a, b)[0]", "gamma": "2 * net_out + a"},
        "equations": {"x": "-gamma*x"}, "initial": {"x": "b"},
    })
    spec = json.loads(julia_spec_json(model))
    assert spec["assignments"] == [
        {"name": "net_out", "value": {"net": "nn", "index": 0, "args": [{"sym": "a"}, {"sym": "b"}]}},
        {"name": "gamma", "value": {"op": "+", "args": [
            {"op": "*", "args": [{"num": 2.0}, {"sym": "net_out"}]}, {"sym": "a"}]}},
    ]
    # targets are mechanistic parameters, first in the flat vector: Julia's `assign` rewrites p[1:n_mech] only
    assert spec["parameters"] == ["a", "b", "net_out", "gamma"] and spec["events"] == []
    offsets = {name: off for name, _, off in model.parameter_layout}
    assert [offsets[n] for n in spec["parameters"]] == [0, 1, 2, 3] and min(offsets.values()) == 0
    assert all(off >= 4 for name, off in offsets.items() if name.startswith("nn."))
    # pyude.solve applies them on the host (JuliaCompiledModel.assign is the JAX engine's)
    from pyude.engines.jax._compile import compile_model
    from pyude.engines.julia import JuliaCompiledModel

    p = model.flatten(None) + np.linspace(0.1, 0.9, model.n_params)
    host = JuliaCompiledModel(model, None)
    np.testing.assert_array_equal(np.asarray(host.assign(p)), np.asarray(compile_model(model).assign(p)))
    out = np.asarray(host.assign(p))
    assert out[3] == pytest.approx(2 * out[2] + p[0], rel=1e-15) and out[2] != p[2]


def _problem(spec, **kw):
    import pandas as pd

    t = np.linspace(0.5, 3.0, 6)
    data = pd.DataFrame({"time": t, "observable": spec["states"][0], "value": np.exp(-t)})
    return pyude.Problem(spec, data, solver="Tsit5", **kw)


def test_event_times_of_estimated_parameters_are_refused():
    """Timed-event times are tstops and fixed DiscreteCallback times in Julia (constants to
    SciMLSensitivity): refused where they move with an estimated parameter, directly, through
    an assignment, or through an assigned network output; state-triggered events are not."""
    timed = {"name": "d", "states": ["x"], "parameters": {"k": 1.0, "tau": 1.5, "dose": 1.0},
             "equations": {"x": "-k*x"}, "initial": {"x": 1.0},
             "events": [{"trigger": "ge(t, tau)", "assignments": {"x": "x + dose"}}]}
    for estimate in (["k", "dose"], ["k", "tau"]):
        problem = _problem(timed, estimate=estimate)
        arrays, _ = problem._arrays_at(None)
        if "tau" in estimate:
            with pytest.raises(pyude.SpecError, match="depends on parameter 'tau', which is estimated"):
                objective_kwargs(arrays, problem.mode, problem.model)
        else:
            objective_kwargs(arrays, problem.mode, problem.model)
    assigned = {**timed, "parameters": {**timed["parameters"], "s": 1.0}, "assignments": {"tau": "2*s"}}
    problem = _problem(assigned, estimate=["k", "s"])
    arrays, _ = problem._arrays_at(None)
    with pytest.raises(pyude.SpecError, match="depends on parameter 's', which is estimated"):
        objective_kwargs(arrays, problem.mode, problem.model)
    net = {**timed, "networks": {"nn": {"inputs": 1, "layers": [{"units": 2, "activation": "tanh"}, {"units": 1}]}},
           "assignments": {"tau": "1 + softplus(nn(k)[0])"}}
    problem = _problem(net, estimate=["k"])  # the network's weights fixed
    arrays, _ = problem._arrays_at(None)
    with pytest.raises(pyude.SpecError, match="parameter 'k', which is estimated"):
        objective_kwargs(arrays, problem.mode, problem.model)
    problem = _problem(net, estimate=["dose", "nn"])
    arrays, _ = problem._arrays_at(None)
    with pytest.raises(pyude.SpecError, match="network 'nn'"):
        objective_kwargs(arrays, problem.mode, problem.model)
    state = {**timed, "events": [{"trigger": "lt(x, tau)", "assignments": {"x": "x + dose"}}]}
    problem = _problem(state)
    arrays, _ = problem._arrays_at(None)
    objective_kwargs(arrays, problem.mode, problem.model)  # a root-found event: SciMLSensitivity differentiates it


def test_zygote_vjp_with_events_is_refused_for_adjoints():
    from pyude.engines.julia._names import check_event_sensitivity

    model = pyude.Model.from_dict(EVENTS_MODEL)
    for sens in ("adjoint", "checkpoint"):
        with pytest.raises(pyude.SpecError, match="PYUDE_JULIA_VJP=zygote with events"):
            check_event_sensitivity(model, sens, "zygote")
        check_event_sensitivity(model, sens, "reversediff")
        check_event_sensitivity(model, sens, "enzyme")
    check_event_sensitivity(model, "forward", "zygote")
    check_event_sensitivity(model, "", "zygote")
    check_event_sensitivity(pyude.Model.from_dict(UDE), "adjoint", "zygote")


def test_julia_reads_the_event_and_assignment_keys_python_sends():
    """events.jl reads exactly the keys julia_spec writes (no key dropped or misspelt)."""
    text = (JULIA / "src" / "events.jl").read_text()
    spec = julia_spec(pyude.Model.from_dict(EVENTS_MODEL))
    assert set(re.findall(r'ev\["(\w+)"\]', text)) == set(spec["events"][0]) - {"id"}
    assert set(re.findall(r'a\["(\w+)"\]', text)) == {"state", "value", "name"}
    assert set(spec["events"][0]["assignments"][0]) == {"state", "value"}
    assert re.search(r'spec\["assignments"\]', text) and re.search(r'spec\["events"\]', text)
    # upward crossings only (affect_neg! = nothing), every event time a tstop
    assert "ContinuousCallback(EventCondition(m, j, sig), EventAffect(m, [j], sig), nothing)" in text
    solvers = (JULIA / "src" / "solvers.jl").read_text()
    assert "stops(m, sig, p, t0, t1, taus)" in solvers and "callback_kw(cb)..." in solvers


# ------------------------------------------------------------ Julia is missing
def _no_julia(monkeypatch, tmp_path):
    for var in ("PYTHON_JULIACALL_EXE", "PYTHON_JULIAPKG_EXE", "PYTHON_JULIAPKG_PROJECT", "PYUDE_JULIA",
                "JULIAUP_DEPOT_PATH", "JULIA_DEPOT_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(_detect.sys, "prefix", str(tmp_path))
    monkeypatch.setattr(_detect.sys, "base_prefix", str(tmp_path / "base"))


def test_missing_julia_is_reported_fast_with_instructions(monkeypatch, tmp_path):
    _no_julia(monkeypatch, tmp_path)
    # juliacall "installed": the missing Julia executable alone must refuse the engine
    monkeypatch.setattr(_detect.importlib.util, "find_spec", lambda name: object())
    start = time.perf_counter()
    with pytest.raises(pyude.EngineUnavailable) as info:
        pyude.solve({"states": ["x"], "parameters": {"k": 1.0}, "equations": {"x": "-k*x"}}, [1.0], engine="julia")
    assert time.perf_counter() - start < 1.0
    msg = str(info.value)
    assert "no Julia installation was found" in msg
    assert 'pip install "pyude[julia]"' in msg and "juliaup" in msg and "PYTHON_JULIAPKG_PROJECT" in msg
    assert "engine='jax'" in msg


def test_missing_juliacall_is_named(monkeypatch, tmp_path):
    _no_julia(monkeypatch, tmp_path)
    monkeypatch.setattr(_detect.importlib.util, "find_spec", lambda name: None)
    assert "juliacall is not installed" in _detect.unavailable_reason()
    with pytest.raises(pyude.EngineUnavailable, match="juliacall"):
        pyude.Problem({"states": ["x"], "parameters": {"k": 1.0}, "equations": {"x": "-k*x"}},
                      __import__("pandas").DataFrame({"time": [1.0], "observable": ["x"], "value": [0.4]}),
                      engine="julia")


def test_detection_finds_a_julia_on_path_without_running_it(monkeypatch, tmp_path):
    _no_julia(monkeypatch, tmp_path)
    assert _detect.find_julia() is None
    fake = tmp_path / "julia"
    fake.write_text("#!/bin/sh\nexit 99\n")  # never executed by the detection
    fake.chmod(0o755)
    assert _detect.find_julia() == str(fake)
    monkeypatch.setattr(_detect.importlib.util, "find_spec", lambda name: object())
    assert _detect.julia_available()
    monkeypatch.setenv("PYUDE_JULIA", "no")
    assert "switched off" in _detect.unavailable_reason()


def test_detection_honours_juliapkg_exe_and_its_install(monkeypatch, tmp_path):
    _no_julia(monkeypatch, tmp_path)
    exe = tmp_path / "bin" / "myjulia"
    exe.parent.mkdir()
    exe.write_text("")
    monkeypatch.setenv("PYTHON_JULIAPKG_EXE", str(exe))
    assert _detect.find_julia() == str(exe)
    monkeypatch.delenv("PYTHON_JULIAPKG_EXE")
    installed = tmp_path / "julia_env" / "pyjuliapkg" / "install" / "bin" / "julia"  # juliapkg's own install
    installed.parent.mkdir(parents=True)
    installed.write_text("")
    assert _detect.find_julia() == str(installed)


def test_import_pyude_never_imports_juliacall():
    code = (
        "import sys, pyude\n"
        "try:\n    pyude.solve({'states': ['x'], 'parameters': {'k': 1.0}, 'equations': {'x': '-k*x'}}, [1.0],"
        " engine='julia')\nexcept pyude.EngineUnavailable:\n    pass\n"
        "assert 'juliacall' not in sys.modules and 'juliapkg' not in sys.modules\nprint('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ------------------------------------------------------------ check-engines
def test_check_engines_table_and_exit_status(monkeypatch, capsys):
    from pyude import cli
    from pyude._check_engines import EngineCheck

    problem = ROOT / "examples/michaelis_menten/problem.yaml"
    result = pyude.check_engines(problem, candidate="jax", reference_sensitivity="checkpoint",
                                 sensitivity="forward", n_times=20)
    rows = result.rows
    model = pyude.Model.from_yaml(ROOT / "examples/michaelis_menten/model.yaml")
    assert set(rows.loc[rows.quantity == "gradient", "name"]) == set(model.parameters)
    assert (rows.quantity == "trajectory").sum() >= 1 and (rows.quantity == "loss").sum() == 2
    # checkpoint vs forward on one engine: not bit-identical, but far within the tolerance
    assert result.ok and rows["max_rel"].max() < 1e-6
    assert rows.loc[rows.quantity == "gradient", "max_abs"].max() > 0
    assert "jax vs jax: agree" in result.table()

    bad = EngineCheck(rows.assign(ok=[False] + [True] * (len(rows) - 1)), 1e-6, "jax", "julia")
    monkeypatch.setattr(pyude._check_engines, "check_engines", lambda *a, **k: bad)
    assert cli.main(["check-engines", str(problem)]) == 1
    assert "DISAGREE" in capsys.readouterr().out


def test_check_engines_cli_without_julia_is_an_error(monkeypatch, tmp_path, capsys):
    from pyude import cli

    _no_julia(monkeypatch, tmp_path)
    assert cli.main(["check-engines", str(ROOT / "examples/michaelis_menten/problem.yaml")]) == 2
    assert "engine='julia' is unavailable" in capsys.readouterr().err


def test_problem_files_of_examples_exist():
    assert sorted(ROOT.glob("examples/*/problem.yaml")), "no example problem files"
    for path in ROOT.glob("examples/*/problem.yaml"):
        assert "model" in yaml.safe_load(path.read_text())


# ------------------------------------------------------- graph (PEtab SciML) networks
GRAPH = {
    "inputs": [{"input_id": "a", "shape": [2]}, {"input_id": "b", "shape": [1]}],
    "layers": [
        {"layer_id": "l1", "layer_type": "Linear", "args": {"in_features": 3, "out_features": 4}},
        {"layer_id": "act", "layer_type": "Softplus", "args": {"beta": 2.0}},
        {"layer_id": "l2", "layer_type": "Linear", "args": {"in_features": 4, "out_features": 2, "bias": False}},
    ],
    "forward": [
        {"name": "a", "op": "placeholder", "target": "a", "args": [], "kwargs": {}},
        {"name": "b", "op": "placeholder", "target": "b", "args": [], "kwargs": {}},
        {"name": "cat", "op": "call_function", "target": "cat", "args": [["a", "b"]], "kwargs": {"dim": 0}},
        {"name": "l1", "op": "call_module", "target": "l1", "args": ["cat"], "kwargs": {}},
        {"name": "act", "op": "call_module", "target": "act", "args": ["l1"], "kwargs": {}},
        {"name": "half", "op": "call_function", "target": "mul", "args": ["act", 0.5], "kwargs": {}},
        {"name": "l2", "op": "call_module", "target": "l2", "args": ["half"], "kwargs": {}},
        {"name": "out", "op": "call_method", "target": "tanh", "args": ["l2"], "kwargs": {}},
        {"name": "output", "op": "output", "target": "output", "args": ["out"], "kwargs": {}},
    ],
}
GRAPH_UDE = {
    "name": "graph_ude", "states": ["x", "y"], "parameters": {"k": 0.3},
    "networks": {"mlp": {"inputs": 1, "layers": [{"units": 2, "activation": "tanh"}, {"units": 1}]}, "g": GRAPH},
    "equations": {"x": "-k*x + g(x, y, t)[0]", "y": "mlp(x)[0] + g(x, y, t)[1]"},
    "initial": {"x": 1.0, "y": 0.5},
}


def test_graph_network_spec_json_is_exact():
    model = pyude.Model.from_dict(GRAPH_UDE)
    spec = json.loads(julia_spec_json(model))
    mlp, g = spec["networks"]
    assert mlp["kind"] == "mlp" and mlp["outputs"] == 1 and mlp["offset"] == 1
    assert g == {
        "name": "g", "kind": "graph", "inputs": 3, "outputs": 2, "offset": 1 + 7, "size": 12 + 4 + 8,
        "input_shapes": [[2], [1]],
        "layers": [
            {"id": "l1", "type": "Linear", "family": "linear", "dim": 0,
             "args": {"in_features": 3, "out_features": 4, "bias": True},
             "params": [{"name": "weight", "offset": 0, "shape": [4, 3]}, {"name": "bias", "offset": 12, "shape": [4]}]},
            {"id": "act", "type": "Softplus", "family": "activation", "dim": 0,
             "args": {"fn": "softplus", "beta": 2.0, "threshold": 20.0}, "params": []},
            {"id": "l2", "type": "Linear", "family": "linear", "dim": 0,
             "args": {"in_features": 4, "out_features": 2, "bias": False},
             "params": [{"name": "weight", "offset": 16, "shape": [2, 4]}]},
        ],
        "nodes": [
            {"name": "a", "shape": [2], "op": "placeholder", "inputs": []},
            {"name": "b", "shape": [1], "op": "placeholder", "inputs": []},
            {"name": "cat", "shape": [3], "op": "function", "fn": "cat", "inputs": ["a", "b"], "args": {"dim": 0}},
            {"name": "l1", "shape": [4], "op": "module", "layer": "l1", "inputs": ["cat"]},
            {"name": "act", "shape": [4], "op": "module", "layer": "act", "inputs": ["l1"]},
            {"name": "half", "shape": [4], "op": "function", "fn": "mul", "inputs": ["act"],
             "operands": [{"node": "act"}, {"num": 0.5}], "args": {}},
            {"name": "l2", "shape": [2], "op": "module", "layer": "l2", "inputs": ["half"]},
            {"name": "out", "shape": [2], "op": "function", "fn": "tanh", "inputs": ["l2"], "args": {}},
            {"name": "output", "op": "output", "inputs": ["out"]},
        ],
    }
    # the graph network's block stays row-major (Julia reads it with reversed axes); the MLP's is permuted
    perm = julia_layout(model) - 1
    assert np.array_equal(perm[g["offset"]:g["offset"] + g["size"]], np.arange(g["offset"], g["offset"] + g["size"]))
    assert sorted(perm) == list(range(model.n_params))


def test_graph_networks_julia_does_not_implement_are_refused_by_name():
    from pyude.engines.julia._graph_export import JULIA_OPS, UNARY

    convt = {**GRAPH, "layers": GRAPH["layers"] + [{"layer_id": "up", "layer_type": "ConvTranspose1d",
                                                     "args": {"in_channels": 1, "out_channels": 1, "kernel_size": 2}}]}
    with pytest.raises(pyude.SpecError, match=r"does not implement layer type 'ConvTranspose1d'.*layer 'up'"):
        julia_spec(pyude.Model.from_dict({**GRAPH_UDE, "networks": {**GRAPH_UDE["networks"], "g": convt}}))
    mm = {"inputs": [{"input_id": "a", "shape": [2, 2, 2]}], "layers": [], "forward": [
        {"name": "a", "op": "placeholder", "target": "a", "args": [], "kwargs": {}},
        {"name": "m", "op": "call_function", "target": "matmul", "args": ["a", "a"], "kwargs": {}},
        {"name": "output", "op": "output", "target": "output", "args": ["m"], "kwargs": {}}]}
    model = pyude.Model.from_dict({"states": ["x"], "parameters": {"k": 1.0}, "networks": {"h": mm},
                                   "equations": {"x": "-k*x + h(x, x, x, x, x, x, x, x)[0]"}, "initial": {"x": 1.0}})
    with pytest.raises(pyude.SpecError, match=r"matmul of 1-d and 2-d arrays only.*node 'm'"):
        julia_spec(model)
    # the lists Julia implements: every op of the spec, and graph.jl's UNARY equals the Python list
    assert set(JULIA_OPS) == set(_expr_ops())
    text = (JULIA / "src" / "graph.jl").read_text()
    block = re.search(r"const UNARY = \((.*?)\)\n", text, re.S).group(1)
    assert set(re.findall(r'"([a-z_0-9]+)"', block)) == set(UNARY)


def _expr_ops():
    from pyude.spec._graph import OPS

    return OPS


# NumPy mirror of julia/src/graph.jl's index maths (line by line; Julia is 1-based and column-major:
# `jl_reshape` is Julia's `reshape`, `vec_jl` its `vec`). Checked against the JAX engine, which
# computes what PyTorch computes; this tests the maths written in graph.jl, not the Julia code itself.
def jdims(shape):
    return tuple(reversed([int(d) for d in shape]))


def jl_reshape(v, dims):
    return np.reshape(np.asarray(v), dims, order="F")


def vec_jl(x):
    return np.asarray(x).ravel(order="F")


def jl_cartesian(dims):
    """Julia's `vec(CartesianIndices(dims))` (0-based): the first index runs fastest."""
    import itertools

    return [tuple(reversed(c)) for c in itertools.product(*(range(d) for d in reversed(dims)))]


def rowmajor(shape):
    return [tuple(reversed(c)) for c in jl_cartesian(jdims(shape))]


def flatindex(q, shape):
    acc = 0
    for qi, si in zip(q, shape):
        acc = acc * si + qi
    return acc


def padded(q, s, mode):
    if 0 <= q < s:
        return q
    if mode == "zeros":
        return None
    if mode == "replicate":
        return min(max(q, 0), s - 1)
    if mode == "circular":
        return q % s
    r = -q if q < 0 else 2 * (s - 1) - q
    assert 0 <= r < s
    return r


def conv_padding(padding, k, d):
    if padding == "valid":
        return [0] * len(k), [0] * len(k)
    if padding == "same":
        tot = [d[j] * (k[j] - 1) for j in range(len(k))]
        return [t // 2 for t in tot], [t - t // 2 for t in tot]
    return list(padding), list(padding)


def conv_index(xs, a, dim):
    N, C, S = xs[0], xs[1], list(xs[2:])
    k, s, d = a["kernel_size"], a["stride"], a["dilation"]
    lo, hi = conv_padding(a["padding"], k, d)
    P = [(S[j] + lo[j] + hi[j] - d[j] * (k[j] - 1) - 1) // s[j] + 1 for j in range(dim)]
    G = a["groups"]
    ig = C // G
    offsets, positions = rowmajor(k), rowmajor(P)
    zero_at = N * C * int(np.prod(S)) + 1
    idx = np.empty((len(positions), ig * len(offsets), G, N), dtype=int)
    for n in range(1, N + 1):
        for g in range(1, G + 1):
            for i in range(1, ig + 1):
                for kk, kq in enumerate(offsets, 1):
                    for ll, p in enumerate(positions, 1):
                        q = [padded(p[j] * s[j] - lo[j] + kq[j] * d[j], S[j], a["padding_mode"]) for j in range(dim)]
                        c = (g - 1) * ig + (i - 1)
                        idx[ll - 1, (i - 1) * len(offsets) + kk - 1, g - 1, n - 1] = (
                            zero_at if any(v is None for v in q) else flatindex((n - 1, c, *q), (N, C, *S)) + 1)
    return idx


def apply_conv(x_jl, block, w_off, b_off, cout, groups, idx, out):
    cols = np.concatenate([vec_jl(x_jl), [0.0]])[idx - 1]
    kr, og = idx.shape[1], cout // groups
    W = jl_reshape(block[w_off:w_off + kr * cout], (kr, cout))
    y = np.stack([np.hstack([cols[:, :, g, n] @ W[:, g * og:(g + 1) * og] for g in range(groups)])
                  for n in range(idx.shape[3])], axis=2)
    if b_off >= 0:
        y = y + jl_reshape(block[b_off:b_off + cout], (cout,)).reshape(1, cout, 1)
    return jl_reshape(y, jdims(out))


def _single_layer_net(layer_type, args, shape, extra=()):
    from pyude.spec._graph import parse_graph_network

    spec = {"inputs": [{"input_id": "x", "shape": list(shape)}],
            "layers": [{"layer_id": "l", "layer_type": layer_type, "args": args}, *extra],
            "forward": [{"name": "x", "op": "placeholder", "target": "x", "args": [], "kwargs": {}},
                        {"name": "l", "op": "call_module", "target": "l", "args": ["x"], "kwargs": {}},
                        {"name": "output", "op": "output", "target": "output", "args": ["l"], "kwargs": {}}]}
    return parse_graph_network("n", spec, "<test>")


def _torch_from_julia(y_jl, shape):
    """The PyTorch (row-major) array that Julia's reversed-axes array `y_jl` holds."""
    return vec_jl(y_jl).reshape(shape)


def test_julia_reversed_axes_read_pytorch_arrays_element_by_element():
    rng = np.random.default_rng(0)
    for shape in [(4, 3), (2, 3, 5, 4), (2, 2, 3, 2, 3), (5,)]:
        t = rng.normal(size=shape)
        j = jl_reshape(t.ravel(), jdims(shape))  # graph.jl `param`: reshape(block, reverse(shape)...)
        for ix in np.ndindex(*shape):
            assert j[tuple(reversed(ix))] == t[ix]
    # Linear: W = reshape(block, in, out) is weightᵀ; y = Wᵀ x equals PyTorch's x @ weightᵀ + b
    w, b, x = rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=(5, 3))
    W = jl_reshape(w.ravel(), (3, 4))
    assert np.array_equal(W, w.T)
    x_jl = jl_reshape(x.ravel(), jdims(x.shape))
    y_jl = (W.T @ jl_reshape(x_jl, (3, -1)) + b[:, None]).reshape((4, 5), order="F")
    np.testing.assert_allclose(_torch_from_julia(y_jl, (5, 4)), x @ w.T + b, rtol=1e-14)


@pytest.mark.parametrize("args,shape", [
    ({"in_channels": 3, "out_channels": 1, "kernel_size": 5}, (3, 10, 10)),  # PEtab SciML case 015's layer
    ({"in_channels": 4, "out_channels": 6, "kernel_size": [3, 2], "stride": [2, 1], "padding": [1, 2],
      "dilation": [1, 2], "groups": 2}, (2, 4, 7, 6)),
    ({"in_channels": 2, "out_channels": 3, "kernel_size": [3, 3], "padding": "same", "padding_mode": "reflect",
      "bias": False}, (2, 5, 4)),
    ({"in_channels": 2, "out_channels": 2, "kernel_size": [2, 3], "padding": [1, 2], "padding_mode": "circular"},
     (2, 4, 5)),
    ({"in_channels": 1, "out_channels": 2, "kernel_size": [2, 2], "padding": 1, "padding_mode": "replicate"},
     (1, 3, 3)),
])
def test_julia_conv2d_gather_matches_pytorch_semantics(args, shape):
    net = _single_layer_net("Conv2d", args, shape)
    params = net.init(np.random.default_rng(1))
    x = np.random.default_rng(2).normal(size=shape)
    expected = net(params, x)  # the JAX engine: PyTorch's Conv2d
    lay = net.layers[0]
    block = np.concatenate([np.ravel(params[f"n.l.{k}"]) for k, _ in lay.shapes()])  # the spec's row-major block
    b_off = int(np.prod(lay.shapes()[0][1])) if lay.args["bias"] else -1
    xs = list(shape) if len(shape) == 4 else [1, *shape]  # graph.jl batched_shape
    idx = conv_index(xs, lay.args, 2)
    y_jl = apply_conv(jl_reshape(x.ravel(), jdims(shape)), block, 0, b_off, lay.args["out_channels"],
                      lay.args["groups"], idx, expected.shape)
    np.testing.assert_allclose(_torch_from_julia(y_jl, expected.shape), expected, rtol=1e-12, atol=1e-12)
    # Julia's weight matrix W[r, c] is weight[c] flattened row-major over (in/groups, kH, kW)
    w = params["n.l.weight"]
    W = jl_reshape(block[:w.size], (idx.shape[1], w.shape[0]))
    for c in range(w.shape[0]):
        assert np.array_equal(W[:, c], w[c].ravel())


def window_index(xs, windows):
    N, C, S = xs[0], xs[1], list(xs[2:])
    dim = len(S)
    kmax = [max(len(w) for w in ws) for ws in windows]
    offsets, positions = rowmajor(kmax), rowmajor([len(ws) for ws in windows])
    pad_at = N * C * int(np.prod(S)) + 1
    idx = np.empty((len(offsets), len(positions), C, N), dtype=int)
    inside, present = np.zeros(len(positions), dtype=int), np.zeros(len(positions), dtype=int)
    for n in range(1, N + 1):
        for c in range(1, C + 1):
            for ll, p in enumerate(positions, 1):
                for kk, kq in enumerate(offsets, 1):
                    lists = [windows[j][p[j]] for j in range(dim)]
                    ispresent = all(kq[j] < len(lists[j]) for j in range(dim))
                    q = [lists[j][kq[j]] for j in range(dim)] if ispresent else []
                    isinside = ispresent and all(0 <= q[j] < S[j] for j in range(dim))
                    idx[kk - 1, ll - 1, c - 1, n - 1] = flatindex((n - 1, c - 1, *q), (N, C, *S)) + 1 if isinside \
                        else pad_at
                    if n == 1 and c == 1:
                        inside[ll - 1] += isinside
                        present[ll - 1] += ispresent
    return idx, inside, present


def fixed_windows(S, k, s, pad, d):
    return [[[p * s[j] - pad[j] + q * d[j] for q in range(k[j])]
             for p in range((S[j] + 2 * pad[j] - d[j] * (k[j] - 1) - 1) // s[j] + 1)] for j in range(len(S))]


def adaptive_windows(S, sizes):
    out = []
    for j in range(len(S)):
        o = S[j] if sizes[j] is None else sizes[j]
        out.append([list(range((i * S[j]) // o, -((-(i + 1) * S[j]) // o))) for i in range(o)])
    return out


@pytest.mark.parametrize("layer_type,args,shape", [
    ("MaxPool2d", {"kernel_size": [3, 2], "stride": [2, 1], "padding": [1, 1], "dilation": [1, 2]}, (2, 3, 7, 6)),
    ("AvgPool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}, (3, 7, 6)),
    ("AvgPool2d", {"kernel_size": [2, 3], "padding": [1, 1]}, (2, 5, 7)),
    ("AdaptiveAvgPool2d", {"output_size": [3, None]}, (2, 7, 5)),
    ("AdaptiveMaxPool1d", {"output_size": 4}, (3, 9)),
    ("LPPool1d", {"norm_type": 2.0, "kernel_size": 3, "stride": 2}, (2, 9)),
])
def test_julia_pooling_gather_matches_pytorch_semantics(layer_type, args, shape):
    net = _single_layer_net(layer_type, args, shape)
    x = np.random.default_rng(3).normal(size=shape)
    expected = net({}, x)
    lay = net.layers[0]
    fam, dim, a = lay.kind.family, lay.kind.dim, lay.args
    xs = list(shape) if len(shape) == dim + 2 else [1, *shape]
    S = xs[2:]
    if fam.startswith("adaptive"):
        windows = adaptive_windows(S, a["output_size"])
    else:
        k = list(a["kernel_size"])
        s = k if a["stride"] is None else list(a["stride"])
        pad = [0] * dim if fam == "lppool" else list(a["padding"])
        d = list(a["dilation"]) if fam == "maxpool" else [1] * dim
        windows = fixed_windows(S, k, s, pad, d)
    idx, inside, present = window_index(xs, windows)
    xv = vec_jl(jl_reshape(x.ravel(), jdims(shape)))
    if fam in ("maxpool", "adaptivemaxpool"):
        y = np.concatenate([xv, [-np.inf]])[idx - 1].max(axis=0, keepdims=True)
    elif fam == "lppool":
        y = (np.concatenate([xv, [0.0]])[idx - 1] ** int(a["norm_type"])).sum(axis=0, keepdims=True) ** (
            1 / a["norm_type"])
    else:
        divisor = present if fam == "avgpool" and a["count_include_pad"] else inside
        y = np.concatenate([xv, [0.0]])[idx - 1].sum(axis=0, keepdims=True) / divisor.reshape(1, -1, 1, 1)
    y_jl = jl_reshape(y, jdims(expected.shape))
    np.testing.assert_allclose(_torch_from_julia(y_jl, expected.shape), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layer_type,args,shape", [
    ("BatchNorm2d", {"num_features": 3}, (2, 3, 4, 5)),
    ("BatchNorm1d", {"num_features": 3}, (4, 3)),
    ("InstanceNorm1d", {"num_features": 2, "affine": True}, (2, 6)),
    ("LayerNorm", {"normalized_shape": [3, 4]}, (2, 3, 4)),
])
def test_julia_normalisation_axes_match_pytorch_semantics(layer_type, args, shape):
    net = _single_layer_net(layer_type, args, shape)
    rng = np.random.default_rng(4)
    params = {k: rng.normal(size=s) for k, s in net.shapes()}
    x = rng.normal(size=shape)
    expected = net(params, x)
    lay = net.layers[0]
    fam, dim = lay.kind.family, lay.kind.dim
    xj = jl_reshape(x.ravel(), jdims(shape))
    n = xj.ndim
    if fam == "layernorm":  # graph.jl layer_op, the normalisation branch (1-based axes)
        dims = tuple(range(1, len(lay.args["normalized_shape"]) + 1))
        wdims = jdims(lay.args["normalized_shape"])
    else:
        ch = n - 1 if (fam == "batchnorm" or n == dim + 2) else n
        dims = tuple(j for j in range(1, n + 1) if j != ch) if fam == "batchnorm" else tuple(range(1, ch))
        wdims = tuple(xj.shape[ch - 1] if j == ch else 1 for j in range(1, n + 1))
    ax = tuple(d - 1 for d in dims)
    m = xj.mean(axis=ax, keepdims=True)
    v = ((xj - m) ** 2).mean(axis=ax, keepdims=True)
    y = (xj - m) / np.sqrt(v + lay.args["eps"])
    def jl_broadcastable(a):  # Julia broadcasting aligns leading axes: trailing singleton axes
        return a.reshape(a.shape + (1,) * (n - a.ndim))

    w, b = (jl_broadcastable(jl_reshape(np.ravel(params[f"n.l.{k}"]), wdims)) for k in ("weight", "bias"))
    y = y * w + b
    np.testing.assert_allclose(_torch_from_julia(y, expected.shape), expected, rtol=1e-12, atol=1e-12)


def test_predict_and_rows_read_pyude_jl_layouts(monkeypatch):
    """PyUDE.jl's predict returns H[row, time, condition] and sigma[row, time, condition]
    (noise scales may read the state); the engine hands back (condition, time, row) for
    both; rows passes through."""
    from pyude.engines.julia._engine import JuliaEngine

    monkeypatch.setattr("pyude.engines.julia._engine.require_julia", lambda: None)  # no Julia here
    engine = JuliaEngine()
    n_rows, n_t, n_c = 3, 4, 2
    H = np.arange(n_rows * n_t * n_c, dtype=float).reshape(n_rows, n_t, n_c)
    S = -np.arange(n_rows * n_t * n_c, dtype=float).reshape(n_rows, n_t, n_c)
    replies = {
        "predict": (H, S, [0, 3], [5.0, 2.5], "boom"),
        "rows": ([1.0, 2.0], [0.1, 0.2], [0, 0], [5.0, 5.0], ""),
    }
    monkeypatch.setattr(engine, "_arrays", lambda cm, arrays, mode: None)
    monkeypatch.setattr(engine, "_timed", lambda cm, key, fn, *args: (replies[fn], 1.5, 1.5))
    cm = types.SimpleNamespace(handle=None)
    s = types.SimpleNamespace(solver="Tsit5", rtol=1e-6, atol=1e-8, max_steps=100)
    (h_out, s_out, codes, t_reached), first = engine.predict(cm, s, "nll", np.zeros(2), {})
    assert h_out.shape == (n_c, n_t, n_rows) and s_out.shape == (n_c, n_t, n_rows)
    assert all(h_out[c, t, r] == H[r, t, c] for c in range(n_c) for t in range(n_t) for r in range(n_rows))
    assert all(s_out[c, t, r] == S[r, t, c] for c in range(n_c) for t in range(n_t) for r in range(n_rows))
    assert codes.dtype == np.int64 and list(codes) == [0, 3] and list(t_reached) == [5.0, 2.5]
    assert engine.last_message == "boom" and first == 1.5
    (h, sigma, codes, _), _ = engine.rows(cm, s, "nll", np.zeros(2), {})
    assert list(h) == [1.0, 2.0] and list(sigma) == [0.1, 0.2] and engine.last_message == ""


def test_compound_trigger_reaches_julia_as_min_max():
    """and -> min, or -> max of the parts' g (PyUDE.jl compiles min/max like any call); a
    combination is root-found (state-triggered) even where its parts read only t."""
    model = pyude.Model.from_dict({**EVENTS_MODEL, "events": [
        {"trigger": "and(lt(x, c), or(gt(t, tau), gt(y, 1)))", "assignments": {"y": "y + 1"}}]})
    (ev,) = json.loads(julia_spec_json(model))["events"]
    x, y, t, tau, c = ({"sym": n} for n in ("x", "y", "t", "tau", "c"))
    assert ev["g"] == {"call": "min", "args": [
        {"op": "-", "args": [c, x]},
        {"call": "max", "args": [{"op": "-", "args": [t, tau]}, {"op": "-", "args": [y, {"num": 1.0}]}]}]}
    assert ev["strict"] is True and ev["timed"] is False
