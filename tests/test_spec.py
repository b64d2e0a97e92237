"""The model spec: parsing, validation errors, round trips, parameter layout."""

import json

import numpy as np
import pytest

import pyude
from pyude import DataError, Model, SpecError
from pyude.spec import parse, to_json, to_string
from pyude.spec._expr import Call, NetCall, Num, Op, Sym

UDE = {
    "name": "lv_ude",
    "states": ["x", "y"],
    "parameters": {"a": 1.3, "d": {"value": 1.8, "scale": "log", "bounds": [0.1, 10]}},
    "networks": {"nn": {"inputs": 2, "layers": [{"units": 5, "activation": "tanh"}, {"units": 2, "bias": False}]}},
    "equations": {"x": "a*x + nn(x, y)[0]", "y": "-d*y + nn(x, y)[1]"},
    "initial": {"x": 0.44, "y": "2*a"},
}


def test_parse_precedence_and_power():
    assert parse("-x^2") == Op("neg", (Op("^", (Sym("x"), Num(2.0))),))
    assert parse("2^3^2") == Op("^", (Num(2.0), Op("^", (Num(3.0), Num(2.0)))))
    assert parse("a**2") == parse("a^2")
    assert parse("1 - 2 - 3") == Op("-", (Op("-", (Num(1.0), Num(2.0))), Num(3.0)))
    assert parse("hill(S, K, 2)") == Call("hill", (Sym("S"), Sym("K"), Num(2.0)))
    assert parse("nn(x, 2*y)[1]") == NetCall("nn", (Sym("x"), Op("*", (Num(2.0), Sym("y")))), 1)
    assert parse("1.5e-3") == Num(1.5e-3)


@pytest.mark.parametrize(
    "text", ["-x^2", "(a - b) - (c - d)", "a / (b * c)", "exp(-k*t) * hill(x, K, n)", "nn(x, y)[0] + -2.0", "(-x)^2"]
)
def test_to_string_round_trip(text):
    tree = parse(text)
    assert parse(to_string(tree)) == tree


def test_tree_is_plain_json():
    tree = to_json(parse("max(nn(x)[0], -k*x^2)"))
    assert json.loads(json.dumps(tree)) == tree
    assert tree["call"] == "max"
    assert tree["args"][0] == {"net": "nn", "index": 0, "args": [{"sym": "x"}]}


@pytest.mark.parametrize(
    "text, message",
    [
        ("x +", "expected|unexpected"),
        ("x $ y", "unexpected character '\\$'"),
        ("__import__('os')", "unexpected character|unknown"),
        ("", "empty expression"),
        ("(x", "expected '\\)'"),
        ("nn(x)[a]", "non-negative integer"),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(SpecError, match=message):
        parse(text, "equations.x")


def test_round_trip_lossless(tmp_path):
    m = Model.from_dict(UDE)
    d = m.to_dict()
    assert Model.from_dict(d) == m
    assert Model.from_dict(d).to_dict() == d
    path = tmp_path / "m.yaml"
    m.to_yaml(path)
    assert Model.from_yaml(path).to_dict() == d
    assert Model.from_json(m.to_json()).to_dict() == d
    assert d["parameters"]["d"] == {"value": 1.8, "scale": "log", "bounds": [0.1, 10.0]}
    assert d["initial"]["y"] == "2*a"


def test_parameter_layout_and_flatten():
    m = Model.from_dict(UDE)
    layout = m.parameter_layout
    assert [(n, s) for n, s, _ in layout] == [
        ("a", ()), ("d", ()), ("nn.0.weight", (5, 2)), ("nn.0.bias", (5,)), ("nn.1.weight", (2, 5)),
    ]
    assert [o for _, _, o in layout] == [0, 1, 2, 12, 17]
    assert m.n_params == 27
    p = m.init_params(seed=3)
    vec = m.flatten(p)
    # row-major W
    np.testing.assert_array_equal(vec[2:12], p["nn.0.weight"].reshape(-1))
    np.testing.assert_array_equal(vec[2:4], p["nn.0.weight"][0])
    back = m.unflatten(vec)
    for k in p:
        np.testing.assert_array_equal(back[k], p[k])
    # missing names take nominal values; networks those of seed 0
    v0 = m.flatten({"a": 2.0})
    assert v0[0] == 2.0 and v0[1] == 1.8
    np.testing.assert_array_equal(v0[2:], m.flatten(m.init_params(0))[2:])
    # reproducible initialisation within Glorot-like bounds
    np.testing.assert_array_equal(m.init_params(1)["nn.0.weight"], m.init_params(1)["nn.0.weight"])
    assert np.all(np.abs(m.init_params(1)["nn.0.weight"]) <= 1 / np.sqrt(2))


def test_flatten_errors():
    m = Model.from_dict(UDE)
    with pytest.raises(DataError, match="unknown parameter name.*'b'"):
        m.flatten({"b": 1.0})
    with pytest.raises(DataError, match="'nn.0.weight' has shape \\(2, 5\\), expected \\(5, 2\\)"):
        m.flatten({"nn.0.weight": np.zeros((2, 5))})
    with pytest.raises(DataError, match="shape \\(3,\\), expected \\(27,\\)"):
        m.flatten(np.zeros(3))


def test_reactions_stoichiometry():
    m = Model.from_dict(
        {
            "states": ["A", "B", "C"],
            "parameters": {"k1": 1.0, "k2": 0.5, "km": 0.1},
            "reactions": [
                {"equation": "A + 2 B -> C", "rate": "k1*A*B^2"},
                {"equation": "C <-> A", "rate": "k2*C", "reverse_rate": "km*A"},
                {"equation": "-> B", "rate": "1"},
            ],
        }
    )
    np.testing.assert_array_equal(m.stoichiometric_matrix(), [[-1, 1, 0], [-2, 0, 1], [1, -1, 0]])


SPEC_ERRORS = [
    ({"states": ["x"], "equations": {"x": "-k*x"}}, "equations.x: unknown symbol 'k'"),
    ({"states": ["x"], "equations": {"x": "exp(x, x)"}}, "function 'exp' takes 1 argument"),
    ({"states": ["x"], "equations": {"x": "foo(x)"}}, "unknown function 'foo'"),
    ({"states": ["x", "y"], "equations": {"x": "-x"}}, "state\\(s\\) without equation: \\['y'\\]"),
    ({"states": ["x", "x"], "equations": {"x": "-x"}}, "duplicate name 'x'"),
    ({"states": ["x"], "parameters": {"x": 1}, "equations": {"x": "-x"}}, "duplicate name 'x'"),
    ({"states": ["x"], "equations": {"x": "-x", "z": "1"}}, "equations.z: 'z' is not a state"),
    (
        {"states": ["x"], "networks": {"nn": {"inputs": 1, "layers": [{"units": 2}]}}, "equations": {"x": "nn(x)[2]"}},
        "output index 2 of network 'nn' is out of range \\(it has 2 output",
    ),
    (
        {"states": ["x"], "networks": {"nn": {"inputs": 2, "layers": [{"units": 1}]}}, "equations": {"x": "nn(x)[0]"}},
        "network 'nn' takes 2 input\\(s\\), got 1",
    ),
    (
        {"states": ["x"], "networks": {"nn": {"inputs": 1, "layers": [{"units": 1, "activation": "swish"}]}},
         "equations": {"x": "nn(x)[0]"}},
        "networks.nn.layers\\[0\\].activation: unknown activation 'swish'",
    ),
    ({"states": ["x"], "equations": {"x": "nn(x)[0]"}}, "unknown network 'nn'"),
    ({"states": ["x"], "reactions": [{"equation": "x -> y", "rate": "1"}]}, "reactions\\[0\\]: unknown species 'y'"),
    ({"states": ["x"], "reactions": [{"equation": "x <-> ", "rate": "1"}]}, "needs 'reverse_rate'"),
    ({"states": ["x"], "reactions": [{"equation": "x = 0", "rate": "1"}]}, "has no '->'"),
    ({"states": ["x"], "equations": {"x": "-x"}, "reactions": []}, "exactly one of 'equations' and 'reactions'"),
    ({"states": ["x"], "equations": {"x": "-x"}, "initial": {"x": "x0 * 2"}}, "initial.x: unknown symbol 'x0'"),
    ({"states": ["x"], "equations": {"x": "-x"}, "extra": 1}, "unknown top-level key"),
    ({"states": ["x"], "parameters": {"k": "fast"}, "equations": {"x": "-k*x"}}, "parameters.k: expected a number"),
    ({"states": ["x"], "parameters": {"k": {"value": -1, "scale": "log"}}, "equations": {"x": "-k*x"}},
     "log-scaled parameter needs a positive value"),
    ({"states": ["x"], "parameters": {"k": {"value": 5, "bounds": [0, 1]}}, "equations": {"x": "-k*x"}},
     "outside bounds"),
    ({"states": ["t"], "equations": {"t": "1"}}, "reserved for time"),
    ({"states": ["x"], "inputs": {"u": {"times": [0, 0], "values": [1, 2]}}, "equations": {"x": "u"}},
     "inputs.u.times: must be strictly increasing"),
    ({"states": ["x"], "equations": {"x": "exp"}}, "unknown symbol 'exp' \\(a function needs parentheses\\)"),
]


@pytest.mark.parametrize("spec, message", SPEC_ERRORS)
def test_spec_errors(spec, message):
    with pytest.raises(SpecError, match=message):
        Model.from_dict(spec)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("!!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(SpecError, match="invalid YAML"):
        Model.from_yaml(path)


def test_spec_input_is_not_mutated():
    spec = json.loads(json.dumps(UDE))
    before = json.dumps(spec, sort_keys=True)
    Model.from_dict(spec).to_dict()["states"].append("z")
    assert json.dumps(spec, sort_keys=True) == before


def test_functions_accept_dict_or_model():
    sol_a = pyude.solve(UDE, [0.5], solver="Tsit5")
    sol_b = pyude.solve(Model.from_dict(UDE), [0.5], solver="Tsit5")
    np.testing.assert_array_equal(sol_a.y, sol_b.y)


def test_network_on_trailing_batch_axes_equals_one_state_at_a_time():
    """The compiled right-hand side takes states (n_states, *batch): a network layer is then
    one product over the batch. Values, the VJP in the parameters and the JVP equal those of
    the states taken one at a time."""
    import jax
    import jax.numpy as jnp

    from pyude.engines import get_engine

    model = pyude.Model.from_dict({
        "name": "net_batch", "states": ["x", "y"], "parameters": {"k": 0.5},
        "networks": {"nn": {"inputs": 2, "layers": [{"units": 6, "activation": "tanh"}, {"units": 2}]}},
        "equations": {"x": "nn(x, y)[0] - k * x", "y": "nn(x, y)[1]"}, "initial": {"x": 0.0, "y": 0.0},
    })
    cm = get_engine("jax").compiled(model)
    p = jnp.asarray(model.flatten(model.init_params(seed=2)))
    rng = np.random.default_rng(0)
    Y = jnp.asarray(rng.normal(size=(2, 3, 4)))  # 2 states, batch (3, 4)
    C = jnp.asarray(rng.normal(size=(2, 3, 4)))
    batched = lambda p: cm.rhs(0.0, Y, (p, ()))  # noqa: E731
    one = jax.vmap(jax.vmap(lambda y, p: cm.rhs(0.0, y, (p, ())), (1, None), 1), (1, None), 1)
    np.testing.assert_allclose(batched(p), one(Y, p), rtol=1e-13, atol=1e-15)
    g_batched = jax.vjp(batched, p)[1](C)[0]
    g_one = jax.vjp(lambda p: one(Y, p), p)[1](C)[0]
    np.testing.assert_allclose(g_batched, g_one, rtol=1e-12, atol=1e-14)
    v = jnp.asarray(rng.normal(size=p.shape))
    np.testing.assert_allclose(jax.jvp(batched, (p,), (v,))[1], jax.jvp(lambda p: one(Y, p), (p,), (v,))[1],
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus", "sigmoid", "gelu", "identity"])
def test_network_in_numpy_equals_the_compiled_right_hand_side(activation):
    """``model.networks[name](params, x)`` (numpy, for inspecting learned terms) is the
    function the engine integrates."""
    from pyude.engines import get_engine

    model = pyude.Model.from_dict({
        "name": "net", "states": ["x", "y"],
        "networks": {"nn": {"inputs": 2, "layers": [{"units": 5, "activation": activation},
                                                    {"units": 2, "activation": activation, "bias": False}]}},
        "equations": {"x": "nn(x, y)[0]", "y": "nn(x, y)[1]"}, "initial": {"x": 0.0, "y": 0.0},
    })
    params = model.init_params(seed=3)
    cm = get_engine("jax").compiled(model)
    points = np.array([[0.3, -1.2], [2.0, 0.5], [-0.7, -0.1]])
    expected = np.stack([np.asarray(cm.rhs(0.0, y, (model.flatten(params), cm.input_args({})))) for y in points])
    np.testing.assert_allclose(model.networks["nn"](params, points), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.networks["nn"](params, points[1]), expected[1], rtol=1e-12, atol=1e-14)
    with pytest.raises(pyude.SpecError, match=r"network 'nn' takes 2 inputs: x must have shape \(2,\) or \(n, 2\), got \(3,\)"):
        model.networks["nn"](params, [1.0, 2.0, 3.0])
