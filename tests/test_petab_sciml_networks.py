"""PEtab SciML networks: the ml_model_import and initialization conformance cases,
the graph-network spec (errors), expression calls, and gradients."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import yaml

import pyude
from pyude import DataError, Model, SpecError
from pyude.engines.jax._compile import compile_model
from pyude.engines.jax._graph import flat_forward
from pyude.io.petab_sciml import load_net, net_from_dict, read_arrays, read_parameters, set_network_parameters
from pyude.io.petab_sciml._suite import check_ml_model_case
from pyude.spec import LAYER_KINDS, OPS

SUITE = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "petab-sciml"
ML_CASES = sorted(p.name for p in (SUITE / "ml_model_import").iterdir()) if (SUITE / "ml_model_import").is_dir() else []
INIT_CASES = sorted(p.name for p in (SUITE / "initialization").iterdir()) if (SUITE / "initialization").is_dir() else []
NO_SUITE = f"conformance folder {SUITE} is absent (CI places ../shared beside the checkout)"


# ------------------------------------------------------------------ conformance
@pytest.mark.skipif(not ML_CASES, reason=NO_SUITE)
@pytest.mark.parametrize("case", ML_CASES or ["none"])
def test_ml_model_import_case(case):
    res = check_ml_model_case(SUITE / "ml_model_import" / case)
    assert res.passed, f"case {case} ({res.layers}, {res.ops}): errors {res.errors} > tol {res.tol} {res.note}"


@pytest.mark.skipif(not INIT_CASES, reason=NO_SUITE)
@pytest.mark.parametrize("case", INIT_CASES or ["none"])
def test_initialization_case(case):
    """The parameter table sets part of a network (a layer, or one of its arrays) to a
    value; the rest comes from the network's array file (reference: net1_ref.hdf5)."""
    d = SUITE / "initialization" / case
    sol = yaml.safe_load((d / "solutions.yaml").read_text())
    problem = yaml.safe_load((d / "petab" / "problem.yaml").read_text())
    sciml = problem["extensions"]["sciml"]
    mapping = pd.read_csv(d / "petab" / "mapping.tsv", sep="\t")
    table = pd.read_csv(d / "petab" / "parameters.tsv", sep="\t", dtype={"nominalValue": str})
    entity = dict(zip(mapping.petabEntityId, mapping.modelEntityId))
    for name, ref_file in sol["parameter_files"].items():
        net = load_net(d / "petab" / sciml["neural_nets"][name]["location"])
        params: dict = {}
        for f in sciml["array_files"]:
            params.update(read_parameters(d / "petab" / f, net))
        # whole-network entries first, then layers, then single arrays: the more specific wins
        rows = [(entity[r.parameterId], r.nominalValue) for r in table.itertuples() if r.parameterId in entity
                and entity[r.parameterId].startswith(f"{name}.parameters[")]
        for target, value in sorted(rows, key=lambda tv: tv[0].count(".")):
            params = set_network_parameters(params, net, target, float(value))
        ref = read_parameters(d / ref_file, net)
        assert sorted(params) == sorted(ref)
        for k in ref:
            np.testing.assert_allclose(params[k], ref[k], atol=sol["tol"], rtol=0, err_msg=k)


# ------------------------------------------------------------ spec and errors
LINEAR_NET = {
    "inputs": [{"input_id": "x"}],
    "layers": [{"layer_id": "l1", "layer_type": "Linear", "args": {"in_features": 2, "out_features": 3}},
               {"layer_id": "l2", "layer_type": "Linear", "args": {"in_features": 3, "out_features": 2}}],
    "forward": [
        {"name": "x", "op": "placeholder", "target": "x", "args": [], "kwargs": {}},
        {"name": "h", "op": "call_module", "target": "l1", "args": ["x"], "kwargs": {}},
        {"name": "a", "op": "call_function", "target": "tanh", "args": ["h"], "kwargs": {}},
        {"name": "o", "op": "call_module", "target": "l2", "args": ["a"], "kwargs": {}},
        {"name": "output", "op": "output", "target": "output", "args": ["o"], "kwargs": {}},
    ],
}


def _edited(path, value):
    """LINEAR_NET with one entry replaced (path: keys/indices; value None deletes)."""
    d = yaml.safe_load(yaml.safe_dump(LINEAR_NET))
    node = d
    for k in path[:-1]:
        node = node[k]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return d


@pytest.mark.parametrize("path, value, message", [
    (("layers", 0, "layer_type"), "Embedding", r"layers\[l1\]\.layer_type: unsupported layer type 'Embedding'"),
    (("layers", 0, "args", "weird"), 1, r"layers\[l1\]\.args: unsupported argument\(s\) \['weird'\] for Linear"),
    (("layers", 0, "args", "in_features"), -2, r"layers\[l1\]\.args\.in_features: expected a positive integer"),
    (("layers", 1, "layer_id"), "l1", r"duplicate layer_id 'l1'"),
    (("layers", 0, "layer_id"), "1bad", r"layers\[0\]\.layer_id: '1bad' is not a valid id"),
    (("forward", 2, "target"), "erf", r"forward\[a\]\.target: unsupported call_function target 'erf'"),
    (("forward", 2, "kwargs"), {"alpha": 2}, r"forward\[a\]\.kwargs: unsupported argument 'alpha' of 'tanh'"),
    (("forward", 2, "op"), "get_attr", r"forward\[a\]\.op: unsupported node op 'get_attr'"),
    (("forward", 3, "args"), ["zz"], r"forward\[o\]\.args: 'zz' is not an earlier node"),
    (("forward", 1, "target"), "l9", r"forward\[h\]\.target: 'l9' is not a layer id"),
    (("forward", 4), {"name": "o2", "op": "call_function", "target": "relu", "args": ["o"]},
     r"exactly one 'output' node"),
    (("inputs",), [{"input_id": "x"}, {"input_id": "y"}], r"2 input\(s\) declared but the forward graph has 1"),
    (("nn_model_id",), "net0", r"'nn_model_id' is not part of a pyude network"),
])
def test_graph_network_errors_name_the_place(path, value, message):
    spec = {"states": ["u", "v"], "networks": {"nn": _edited(path, value)},
            "equations": {"u": "nn(u, v)[0]", "v": "nn(u, v)[1]"}}
    with pytest.raises(SpecError, match=r"networks\.nn.*" + message if "nn_model_id" not in message else message):
        Model.from_dict(spec)


def test_refused_values_and_ops_by_name(tmp_path):
    net = yaml.safe_load(yaml.safe_dump(LINEAR_NET))
    net["layers"].append({"layer_id": "pool", "layer_type": "MaxPool1d", "args": {"kernel_size": 2, "ceil_mode": True}})
    with pytest.raises(SpecError, match=r"layers\[pool\]\.args\.ceil_mode: ceil_mode=True is not supported"):
        net_from_dict(net, "nn", "net.yaml")
    net = yaml.safe_load(yaml.safe_dump(LINEAR_NET))
    net["forward"][2]["target"] = "softmax"  # softmax needs its dim
    with pytest.raises(SpecError, match=r"forward\[a\]: missing argument 'dim' of 'softmax'"):
        net_from_dict(net, "nn", "net.yaml")
    net["forward"][2]["kwargs"] = {"dim": 0, "dtype": "float32"}
    with pytest.raises(SpecError, match=r"forward\[a\]\.dtype: expected null"):
        net_from_dict(net, "nn", "net.yaml")
    # a YAML file with a python tag is refused by the safe loader, naming the file
    bad = tmp_path / "evil.yaml"
    bad.write_text("nn_model_id: !!python/object/apply:os.system ['echo hi']\nlayers: []\nforward: []\n")
    with pytest.raises(SpecError, match=r"evil\.yaml: invalid YAML"):
        load_net(bad)


def test_expression_call_needs_input_shapes():
    net = {"inputs": [{"input_id": "x"}], "layers": [],
           "forward": [{"name": "x", "op": "placeholder", "target": "x"},
                       {"name": "h", "op": "call_function", "target": "relu", "args": ["x"]},
                       {"name": "output", "op": "output", "target": "output", "args": ["h"]}]}
    spec = {"states": ["u", "v"], "networks": {"nn": net}, "equations": {"u": "nn(u, v)[0]", "v": "u"}}
    with pytest.raises(SpecError, match=r"network 'nn' cannot be called with scalars.*give 'shape'"):
        Model.from_dict(spec)
    net["inputs"] = [{"input_id": "x", "shape": [2]}]
    m = Model.from_dict(spec)
    assert (m.networks["nn"].inputs, m.networks["nn"].outputs) == (2, 2)


def test_hdf5_errors_name_file_and_array(tmp_path):
    import h5py

    net = net_from_dict(LINEAR_NET, "nn")
    f = tmp_path / "ps.hdf5"
    with h5py.File(f, "w") as h:
        h["metadata/pytorch_format"] = np.uint8(1)
        h["parameters/nn/l1/weight"] = np.zeros((2, 3))  # transposed
    with pytest.raises(DataError, match=r"ps\.hdf5: 'nn\.l1\.weight' has shape \(2, 3\), expected \(3, 2\)"):
        read_parameters(f, net)
    with h5py.File(f, "w") as h:
        h["metadata/pytorch_format"] = np.uint8(0)
        h["parameters/nn/l1/weight"] = np.zeros((3, 2))
    with pytest.raises(DataError, match=r"pytorch_format = 0"):
        read_parameters(f, net)
    with pytest.raises(DataError, match=r"no such parameter in network 'nn'"):
        set_network_parameters({}, net, "nn.parameters[l3]", 0.0)


# ------------------------------------------------- engine wiring and round trips
def test_graph_network_in_a_model_matches_direct_evaluation():
    """A PEtab network in the right-hand side: layout, names, compiled rhs, solve."""
    spec = {"states": ["u", "v"], "parameters": {"k": 0.3}, "networks": {"nn": LINEAR_NET},
            "equations": {"u": "-k*u + nn(u, v)[0]", "v": "nn(u, v)[1]"}, "initial": {"u": 1.0, "v": 0.5}}
    m = Model.from_dict(spec)
    assert m == Model.from_dict(m.to_dict())
    assert [(n, s) for n, s, _ in m.parameter_layout] == [
        ("k", ()), ("nn.l1.weight", (3, 2)), ("nn.l1.bias", (3,)), ("nn.l2.weight", (2, 3)), ("nn.l2.bias", (2,))]
    params = m.init_params(seed=1)
    p = m.flatten(params)
    assert np.array_equal(m.flatten(m.unflatten(p)), p)
    y = np.array([0.7, -0.2])
    rhs = compile_model(m).rhs(0.0, jnp.asarray(y), (jnp.asarray(p), ()))
    direct = m.networks["nn"](params, y)
    np.testing.assert_allclose(np.asarray(rhs), [-0.3 * 0.7 + direct[0], direct[1]], rtol=1e-14)
    sol = pyude.solve(m, np.linspace(0, 1, 5), params=params)
    assert np.all(np.isfinite(sol.to_dataframe()[["u", "v"]].to_numpy()))
    from pyude.engines.julia._export import julia_spec

    (net,) = julia_spec(m)["networks"]  # the Julia engine takes graph networks too (docs/engines.md)
    assert net["kind"] == "graph" and net["offset"] == 1 and net["size"] == 6 + 3 + 6 + 2


@pytest.mark.skipif(not ML_CASES, reason=NO_SUITE)
def test_two_input_network_as_expression_call():
    """Case 053 (cat of two 10-vectors): the scalar arguments fill the inputs in order."""
    d = SUITE / "ml_model_import" / "053"
    net = load_net(d / "net.yaml").with_input_shapes([(10,), (10,)])
    params = read_parameters(d / "net_ps_1.hdf5", net)
    x1 = read_arrays(d / "net_input_1_arg0.hdf5")["input0"]
    x2 = read_arrays(d / "net_input_1_arg1.hdf5")["input0"]
    ref = read_arrays(d / "net_output_1.hdf5")["output0"]
    states = [f"s{i}" for i in range(20)]
    args = ", ".join(states)
    spec = {"states": states, "networks": {"net0": net.to_dict()},
            "equations": {s: f"net0({args})[0]" for s in states}}
    m = Model.from_dict(spec)
    p = m.flatten(params)
    rhs = compile_model(m).rhs(0.0, jnp.asarray(np.concatenate([x1, x2])), (jnp.asarray(p), ()))
    np.testing.assert_allclose(np.asarray(rhs), np.full(20, ref[0]), atol=1e-6)


def _smoke_args(kind_name):
    """Minimal constructor args and an input for every whitelisted layer kind."""
    k = LAYER_KINDS[kind_name]
    dim = max(k.dim, 1)
    spatial = (6,) * dim
    fam = k.family
    if fam == "linear":
        return {"in_features": 3, "out_features": 2}, [(4, 3)]
    if fam == "bilinear":
        return {"in1_features": 3, "in2_features": 2, "out_features": 2}, [(4, 3), (4, 2)]
    if fam in ("conv", "convtranspose"):
        return {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "stride": 2, "groups": 2,
                "dilation": 1}, [(2, 2) + spatial]
    if fam in ("maxpool", "avgpool"):
        return {"kernel_size": 3, "stride": 2, "padding": 1}, [(2,) + spatial]
    if fam == "lppool":
        return {"norm_type": 2, "kernel_size": 2}, [(2,) + spatial]
    if fam in ("adaptiveavgpool", "adaptivemaxpool"):
        return {"output_size": 4}, [(2,) + spatial]
    if fam in ("batchnorm", "instancenorm"):
        return {"num_features": 2, "affine": True}, [(3, 2) + spatial]
    if fam == "layernorm":
        return {"normalized_shape": [6]}, [(3, 6)]
    if fam in ("featuredropout",):
        return {"p": 0.3}, [(2, 3) + spatial]
    return {}, [(2, 3, 4)]


@pytest.mark.parametrize("kind_name", sorted(LAYER_KINDS))
def test_every_layer_kind_evaluates_and_differentiates(kind_name):
    args, in_shapes = _smoke_args(kind_name)
    names = [f"x{i}" for i in range(len(in_shapes))]
    net = net_from_dict({
        "inputs": [{"input_id": n, "shape": list(s)} for n, s in zip(names, in_shapes)],
        "layers": [{"layer_id": "m", "layer_type": kind_name, "args": args}],
        "forward": [{"name": n, "op": "placeholder", "target": n} for n in names]
        + [{"name": "y", "op": "call_module", "target": "m", "args": names},
           {"name": "output", "op": "output", "target": "output", "args": ["y"]}],
    }, "nn")
    rng = np.random.default_rng(0)
    params = net.init(rng)
    xs = [rng.normal(size=s) for s in in_shapes]
    y = net(params, *xs)
    assert np.all(np.isfinite(y)) and y.size == net.outputs
    theta = jnp.concatenate([jnp.ravel(params[n]) for n, _ in net.shapes()]) if params else jnp.zeros(0)
    g = jax.grad(lambda th, x: jnp.sum(jnp.sin(flat_forward(net, th, x))), argnums=(0, 1))(theta, xs)
    assert all(np.all(np.isfinite(np.asarray(a))) for a in jax.tree_util.tree_leaves(g))


def test_every_function_is_implemented():
    from pyude.engines.jax._graph import IMPLEMENTED_OPS

    assert IMPLEMENTED_OPS == frozenset(OPS)


# -------------------------------------------------------------------- gradients
@pytest.mark.skipif(not ML_CASES, reason=NO_SUITE)
@pytest.mark.parametrize("case", ["007", "043", "047", "015"])  # ConvTranspose2d, BatchNorm1d, Conv2d+InstanceNorm2d, LPPool3d
def test_gradient_matches_finite_differences(case):
    d = SUITE / "ml_model_import" / case
    sol = yaml.safe_load((d / "solutions.yaml").read_text())
    net = load_net(d / "net.yaml")
    params = read_parameters(d / sol["net_ps"][0], net) if "net_ps" in sol else {}
    x = jnp.asarray(read_arrays(d / sol["net_input"][0])["input0"])
    rng = np.random.default_rng(3)
    theta = jnp.asarray(np.concatenate([params[n].ravel() for n, _ in net.shapes()])) if params else None
    out_w = None

    def f(th, xx):
        y = flat_forward(net, th, [xx]) if th is not None else net.apply({}, xx)
        return jnp.sum(jnp.tanh(y) * out_w)

    out_w = jnp.asarray(rng.normal(size=np.shape(net(params, x))))
    g_th, g_x = jax.grad(f, argnums=(0, 1))(theta, x) if theta is not None else (None, jax.grad(f, 1)(None, x))
    h = 1e-6
    for which, arr, g in (("theta", theta, g_th), ("input", x, g_x)):
        if arr is None:
            continue
        flat = np.asarray(arr).ravel()
        for j in rng.choice(flat.size, size=min(8, flat.size), replace=False):
            e = np.zeros(flat.size)
            e[j] = h
            up, dn = (jnp.asarray((flat + s * e).reshape(np.shape(arr))) for s in (1, -1))
            fd = (f(up, x) - f(dn, x)) / (2 * h) if which == "theta" else (f(theta, up) - f(theta, dn)) / (2 * h)
            assert abs(float(np.asarray(g).ravel()[j]) - float(fd)) <= 1e-6 * (1 + abs(float(fd))), (which, j)


# ------------------------------------------------ PyTorch references (float64)
TORCH_DATA = Path(__file__).parent / "data"
TORCH_NETS = yaml.safe_load((TORCH_DATA / "torch_refs.yaml").read_text())


@pytest.fixture(scope="module")
def torch_arrays():
    with np.load(TORCH_DATA / "torch_refs.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("case", sorted(TORCH_NETS))
def test_matches_pytorch_float64(case, torch_arrays):
    """Layer configurations and functions beyond the suite's cases (strides, dilation,
    groups, padding modes, output_padding, count_include_pad, adaptive max, Bilinear,
    every activation), against PyTorch in float64 (tools/torch_layer_refs.py)."""
    net = net_from_dict(TORCH_NETS[case], "nn", f"torch_refs.yaml:{case}")
    prefix = f"{case}/params/"
    params = {k[len(prefix):]: v for k, v in torch_arrays.items() if k.startswith(prefix)}
    xs = [torch_arrays[f"{case}/input{i}"] for i in range(len(net.input_specs))]
    y = net(params, *xs)
    ref = torch_arrays[f"{case}/output"]
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)


def test_graph_network_gradient_through_a_solve():
    """A loss through the ODE solve: gradient w.r.t. a PEtab-named weight vs finite differences."""
    spec = {"states": ["u", "v"], "parameters": {"k": 0.3}, "networks": {"nn": LINEAR_NET},
            "equations": {"u": "-k*u + nn(u, v)[0]", "v": "nn(u, v)[1]"}, "initial": {"u": 1.0, "v": 0.5}}
    m = Model.from_dict(spec)
    params = m.init_params(seed=2)
    data = pd.DataFrame({"time": [0.5, 1.0, 1.5], "observable": ["u", "v", "u"], "value": [0.8, 0.4, 0.6]})
    problem = pyude.Problem(m, data, rtol=1e-10, atol=1e-12)
    loss, grad = problem.value_and_grad(params)
    w = params["nn.l1.weight"].copy()
    h = 1e-6
    for i, j in [(0, 0), (2, 1)]:
        up, dn = w.copy(), w.copy()
        up[i, j] += h
        dn[i, j] -= h
        fd = (problem.loss({**params, "nn.l1.weight": up}) - problem.loss({**params, "nn.l1.weight": dn})) / (2 * h)
        assert abs(grad["nn.l1.weight"][i, j] - fd) <= 1e-5 * (1 + abs(fd))
