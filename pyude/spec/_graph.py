"""Graph networks: the PEtab SciML network form (``layers`` + a ``forward`` graph).

A graph network is the PEtab SciML net YAML without its ``nn_model_id`` (the
network's name is its key under ``networks``): a list of ``layers`` (PyTorch
modules by ``layer_type`` with their constructor ``args``) and a ``forward`` list
of torch.fx nodes (``placeholder``, ``call_module``, ``call_function``,
``call_method``, ``output``). Everything is whitelisted here; anything else is
refused with an error naming the layer id or node name and the offending key.

Parameters keep PyTorch's names and axis order: ``<net>.<layer_id>.weight`` and
``<net>.<layer_id>.bias``. Layout in the flat vector (normative, docs/spec.md):
layers in the order of ``layers``, within a layer ``weight`` then ``bias`` (as
PyTorch's ``state_dict``), each flattened row-major.

The JAX evaluation lives in :mod:`pyude.engines.jax._graph`; this module only
parses, validates and describes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import SpecError
from ._checks import check_keys

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REQ = object()  # marks a required argument


# ----------------------------------------------------------------- argument kinds
def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def _conv_arg(kind: str, value, dim: int, where: str):
    """Check and normalise one constant argument; ``dim`` is the layer's spatial dimension."""
    if isinstance(kind, tuple):  # a choice of strings
        if value not in kind:
            raise SpecError(f"{where}: expected one of {', '.join(map(repr, kind))}, got {value!r}")
        return value
    if kind == "ignored":  # no effect on the values (inplace, _stacklevel)
        return value
    bad = SpecError(f"{where}: expected {_KIND_TEXT[kind].format(d=dim)}, got {value!r}")
    if kind == "int":
        if not _is_int(value):
            raise bad
        return int(value)
    if kind == "posint":
        if not _is_int(value) or value < 1:
            raise bad
        return int(value)
    if kind == "float":
        if not _is_num(value):
            raise bad
        return float(value)
    if kind == "float_or_none":
        if value is None:
            return None
        return _conv_arg("float", value, dim, where)
    if kind == "prob":
        if not _is_num(value) or not 0.0 <= value < 1.0:
            raise bad
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if kind in ("tuple", "tuple0", "tuple_or_none"):
        if value is None and kind == "tuple_or_none":
            return None
        lo = 0 if kind == "tuple0" else 1
        if _is_int(value):
            value = [value] * dim
        if not isinstance(value, (list, tuple)) or len(value) != dim or not all(_is_int(v) and v >= lo for v in value):
            raise bad
        return tuple(int(v) for v in value)
    if kind == "output_size":
        if value is None or _is_int(value):
            value = [value] * dim
        if not isinstance(value, (list, tuple)) or len(value) != dim or not all(
            v is None or (_is_int(v) and v >= 1) for v in value
        ):
            raise bad
        return tuple(None if v is None else int(v) for v in value)
    if kind == "shape":  # a non-empty list of positive ints (LayerNorm's normalized_shape)
        if _is_int(value):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value or not all(_is_int(v) and v >= 1 for v in value):
            raise bad
        return tuple(int(v) for v in value)
    if kind == "ints":  # any ints (reshape sizes, -1 allowed)
        if not isinstance(value, (list, tuple)) or not all(_is_int(v) for v in value):
            raise bad
        return tuple(int(v) for v in value)
    if kind == "padding":
        if value in ("valid", "same"):
            return value
        return _conv_arg("tuple0", value, dim, where)
    if kind == "none":
        if value is not None:
            raise bad
        return None
    raise AssertionError(kind)


_KIND_TEXT = {
    "int": "an integer",
    "posint": "a positive integer",
    "float": "a finite number",
    "float_or_none": "a finite number or null",
    "prob": "a probability in [0, 1)",
    "bool": "true or false",
    "tuple": "a positive integer or a list of {d} positive integers",
    "tuple0": "a non-negative integer or a list of {d} non-negative integers",
    "tuple_or_none": "null, a positive integer or a list of {d} positive integers",
    "output_size": "a positive integer (or null) or a list of {d} of them",
    "shape": "a positive integer or a non-empty list of positive integers",
    "ints": "a list of integers",
    "padding": "'valid', 'same', a non-negative integer or a list of {d} of them",
    "none": "null (other values are not supported)",
}


# -------------------------------------------------------------------- layer kinds
@dataclass(frozen=True)
class LayerKind:
    """A whitelisted PyTorch module: its spatial dimension, constructor args
    (name -> (kind, default)), values that are refused, and how many tensors it takes."""

    family: str
    dim: int
    args: dict[str, tuple[Any, Any]]
    refuse: dict[str, Any] = field(default_factory=dict)  # arg -> the only supported value
    n_inputs: int = 1


def _conv_args(transpose: bool) -> dict:
    a = {
        "in_channels": ("posint", _REQ), "out_channels": ("posint", _REQ), "kernel_size": ("tuple", _REQ),
        "stride": ("tuple", 1), "padding": ("tuple0" if transpose else "padding", 0), "dilation": ("tuple", 1),
        "groups": ("posint", 1), "bias": ("bool", True),
        "padding_mode": (("zeros",) if transpose else ("zeros", "reflect", "replicate", "circular"), "zeros"),
    }
    if transpose:
        a["output_padding"] = ("tuple0", 0)
    return a


_DROPOUT_ARGS = {"p": ("prob", 0.5), "inplace": ("ignored", False)}
_NORM_ARGS = {
    "num_features": ("posint", _REQ), "eps": ("float", 1e-5), "momentum": ("float_or_none", 0.1),
    "affine": ("bool", True), "track_running_stats": ("bool", True),
}

LAYER_KINDS: dict[str, LayerKind] = {
    "Linear": LayerKind("linear", 0, {"in_features": ("posint", _REQ), "out_features": ("posint", _REQ),
                                      "bias": ("bool", True)}),
    "Bilinear": LayerKind("bilinear", 0, {"in1_features": ("posint", _REQ), "in2_features": ("posint", _REQ),
                                          "out_features": ("posint", _REQ), "bias": ("bool", True)}, n_inputs=2),
    "Flatten": LayerKind("flatten", 0, {"start_dim": ("int", 1), "end_dim": ("int", -1)}),
    "Identity": LayerKind("identity", 0, {}),
    "LayerNorm": LayerKind("layernorm", 0, {"normalized_shape": ("shape", _REQ), "eps": ("float", 1e-5),
                                            "elementwise_affine": ("bool", True), "bias": ("bool", True)}),
    "Dropout": LayerKind("dropout", 0, _DROPOUT_ARGS),
    "AlphaDropout": LayerKind("alphadropout", 0, _DROPOUT_ARGS),
    "FeatureAlphaDropout": LayerKind("featurealphadropout", 0, _DROPOUT_ARGS),
}
for _d in (1, 2, 3):
    LAYER_KINDS[f"Conv{_d}d"] = LayerKind("conv", _d, _conv_args(False))
    LAYER_KINDS[f"ConvTranspose{_d}d"] = LayerKind("convtranspose", _d, _conv_args(True))
    LAYER_KINDS[f"MaxPool{_d}d"] = LayerKind(
        "maxpool", _d, {"kernel_size": ("tuple", _REQ), "stride": ("tuple_or_none", None), "padding": ("tuple0", 0),
                        "dilation": ("tuple", 1), "return_indices": ("bool", False), "ceil_mode": ("bool", False)},
        refuse={"return_indices": False, "ceil_mode": False})
    _avg = {"kernel_size": ("tuple", _REQ), "stride": ("tuple_or_none", None), "padding": ("tuple0", 0),
            "ceil_mode": ("bool", False), "count_include_pad": ("bool", True)}
    if _d > 1:
        _avg["divisor_override"] = ("float_or_none", None)
    LAYER_KINDS[f"AvgPool{_d}d"] = LayerKind("avgpool", _d, _avg, refuse={"ceil_mode": False})
    LAYER_KINDS[f"LPPool{_d}d"] = LayerKind(
        "lppool", _d, {"norm_type": ("float", _REQ), "kernel_size": ("tuple", _REQ),
                       "stride": ("tuple_or_none", None), "ceil_mode": ("bool", False)}, refuse={"ceil_mode": False})
    LAYER_KINDS[f"AdaptiveAvgPool{_d}d"] = LayerKind("adaptiveavgpool", _d, {"output_size": ("output_size", _REQ)})
    LAYER_KINDS[f"AdaptiveMaxPool{_d}d"] = LayerKind(
        "adaptivemaxpool", _d, {"output_size": ("output_size", _REQ), "return_indices": ("bool", False)},
        refuse={"return_indices": False})
    LAYER_KINDS[f"BatchNorm{_d}d"] = LayerKind("batchnorm", _d, _NORM_ARGS)
    LAYER_KINDS[f"InstanceNorm{_d}d"] = LayerKind(
        "instancenorm", _d, {**_NORM_ARGS, "affine": ("bool", False), "track_running_stats": ("bool", False)})
    LAYER_KINDS[f"Dropout{_d}d"] = LayerKind("featuredropout", _d, _DROPOUT_ARGS)


# ------------------------------------------------------------ functions and methods
# Signatures as torch's: (parameter, kind[, default]). Kinds: "tensor" (a node name),
# "tensors" (a list of node names), "operand" (a node name or a number), "shape..."
# (the rest of the positional args, or one list: ``x.view(2, -1)``); else constants.
def _sig(*params) -> tuple:
    return tuple((p[0], p[1], p[2] if len(p) > 2 else _REQ) for p in params)


_X = ("input", "tensor")
_INPLACE = ("inplace", "ignored", False)
OPS: dict[str, tuple] = {
    "relu": _sig(_X, _INPLACE),
    "relu6": _sig(_X, _INPLACE),
    "elu": _sig(_X, ("alpha", "float", 1.0), _INPLACE),
    "selu": _sig(_X, _INPLACE),
    "celu": _sig(_X, ("alpha", "float", 1.0), _INPLACE),
    "gelu": _sig(_X, ("approximate", ("none", "tanh"), "none")),
    "leaky_relu": _sig(_X, ("negative_slope", "float", 0.01), _INPLACE),
    "hardtanh": _sig(_X, ("min_val", "float", -1.0), ("max_val", "float", 1.0), _INPLACE),
    "hardsigmoid": _sig(_X, _INPLACE),
    "hardswish": _sig(_X, _INPLACE),
    "sigmoid": _sig(_X),
    "logsigmoid": _sig(_X),
    "tanh": _sig(_X),
    "tanhshrink": _sig(_X),
    "softplus": _sig(_X, ("beta", "float", 1.0), ("threshold", "float", 20.0)),
    "softsign": _sig(_X),
    "silu": _sig(_X, _INPLACE),
    "mish": _sig(_X, _INPLACE),
    "exp": _sig(_X),
    "log": _sig(_X),
    "abs": _sig(_X),
    "sqrt": _sig(_X),
    "neg": _sig(_X),
    "softmax": _sig(_X, ("dim", "int"), ("_stacklevel", "ignored", 3), ("dtype", "none", None)),
    "log_softmax": _sig(_X, ("dim", "int"), ("_stacklevel", "ignored", 3), ("dtype", "none", None)),
    "cat": _sig(("tensors", "tensors"), ("dim", "int", 0)),
    "stack": _sig(("tensors", "tensors"), ("dim", "int", 0)),
    "flatten": _sig(_X, ("start_dim", "int", 0), ("end_dim", "int", -1)),
    "reshape": _sig(_X, ("shape", "shape...")),
    "unsqueeze": _sig(_X, ("dim", "int")),
    "squeeze": _sig(_X, ("dim", "int")),
    "transpose": _sig(_X, ("dim0", "int"), ("dim1", "int")),
    "add": _sig(("input", "operand"), ("other", "operand")),
    "sub": _sig(("input", "operand"), ("other", "operand")),
    "mul": _sig(("input", "operand"), ("other", "operand")),
    "truediv": _sig(("input", "operand"), ("other", "operand")),
    "matmul": _sig(_X, ("other", "tensor")),
}
# torch spellings of the same operations
OP_ALIASES = {"concat": "cat", "concatenate": "cat", "view": "reshape", "div": "truediv", "multiply": "mul",
              "subtract": "sub", "negative": "neg"}
# activation modules (``layer_type: ReLU``) evaluate as the function of the same name
ACTIVATION_MODULES: dict[str, str] = {
    "ReLU": "relu", "ReLU6": "relu6", "ELU": "elu", "SELU": "selu", "CELU": "celu", "GELU": "gelu",
    "LeakyReLU": "leaky_relu", "Hardtanh": "hardtanh", "Hardsigmoid": "hardsigmoid", "Hardswish": "hardswish",
    "Sigmoid": "sigmoid", "LogSigmoid": "logsigmoid", "Tanh": "tanh", "Tanhshrink": "tanhshrink",
    "Softplus": "softplus", "Softsign": "softsign", "SiLU": "silu", "Mish": "mish", "Softmax": "softmax",
    "LogSoftmax": "log_softmax",
}
_ACT_MODULE_ARG_DEFAULTS = {"softmax": {"dim": None}, "log_softmax": {"dim": None}}
NODE_OPS = ("placeholder", "call_module", "call_function", "call_method", "output")


# ---------------------------------------------------------------------- data types
@dataclass(frozen=True, eq=False)
class GraphLayer:
    """One module: ``id`` (its PyTorch attribute name), ``type`` (``layer_type``),
    ``args`` (checked, with defaults filled in) and ``raw_args`` (as written)."""

    id: str
    type: str
    args: dict[str, Any]
    raw_args: dict[str, Any]

    @property
    def kind(self) -> LayerKind | None:
        return LAYER_KINDS.get(self.type)

    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """``(array name, shape)`` of this layer's parameters, in PyTorch's state_dict order."""
        a, t = self.args, self.type
        fam = self.kind.family if self.kind else "activation"
        if fam == "linear":
            out = [("weight", (a["out_features"], a["in_features"]))]
            return out + ([("bias", (a["out_features"],))] if a["bias"] else [])
        if fam == "bilinear":
            out = [("weight", (a["out_features"], a["in1_features"], a["in2_features"]))]
            return out + ([("bias", (a["out_features"],))] if a["bias"] else [])
        if fam == "conv":
            w = (a["out_channels"], a["in_channels"] // a["groups"], *a["kernel_size"])
            return [("weight", w)] + ([("bias", (a["out_channels"],))] if a["bias"] else [])
        if fam == "convtranspose":
            w = (a["in_channels"], a["out_channels"] // a["groups"], *a["kernel_size"])
            return [("weight", w)] + ([("bias", (a["out_channels"],))] if a["bias"] else [])
        if fam in ("batchnorm", "instancenorm"):
            n = a["num_features"]
            return [("weight", (n,)), ("bias", (n,))] if a["affine"] else []
        if fam == "layernorm":
            s = a["normalized_shape"]
            if not a["elementwise_affine"]:
                return []
            return [("weight", s)] + ([("bias", s)] if a["bias"] else [])
        del t
        return []

    def init(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """PyTorch's default initialisation (same distributions; numpy's generator)."""
        a = self.args
        fam = self.kind.family if self.kind else "activation"
        shapes = dict(self.shapes())
        if not shapes:
            return {}
        if fam in ("batchnorm", "instancenorm", "layernorm"):
            return {k: (np.ones(s) if k == "weight" else np.zeros(s)) for k, s in shapes.items()}
        # kaiming_uniform(a=sqrt(5)) on the weight = U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the bias the same bound
        w = shapes["weight"]
        if fam == "bilinear":
            fan_in = a["in1_features"]
        else:  # fan_in as torch computes it: weight.shape[1] * prod(kernel)
            fan_in = int(np.prod(w[1:]))
        lim = 1.0 / math.sqrt(fan_in)
        return {k: rng.uniform(-lim, lim, size=s) for k, s in shapes.items()}


@dataclass(frozen=True, eq=False)
class GraphNode:
    """A torch.fx node; ``bound`` holds the call's arguments bound to the op's signature
    (tensor arguments as node names, constants checked)."""

    name: str
    op: str
    target: str
    args: tuple
    kwargs: dict[str, Any]
    bound: dict[str, Any]
    fn: str | None = None  # the canonical function for call_function/call_method


@dataclass(frozen=True, eq=False)
class GraphInput:
    """A network argument: ``input_id`` and, optionally, its array ``shape``."""

    id: str
    shape: tuple[int, ...] | None = None


class GraphNetwork:
    """A network given as PyTorch modules and a torch.fx forward graph (PEtab SciML).

    Evaluated exactly as PyTorch evaluates the module on the given arrays: no batch
    axis is added or assumed (a Linear layer acts on the last axis, a Conv2d takes
    ``(C, H, W)`` or ``(N, C, H, W)``). Normalisation layers use the statistics of the
    array they receive (BatchNorm: batch statistics, as PyTorch in training mode and
    the PEtab SciML references); dropout layers are the identity unless a PRNG key is
    given (training mode).

    In expressions, ``net(a, b, ...)[i]`` concatenates the scalar arguments, fills the
    inputs in order (row-major, each of its ``shape``) and indexes the row-major
    flattened output; this needs every input's shape (given as ``shape``, or inferred
    when the input feeds a Linear or Bilinear layer directly).
    """

    def __init__(self, name: str, inputs: tuple[GraphInput, ...], layers: tuple[GraphLayer, ...],
                 nodes: tuple[GraphNode, ...], source: str):
        self.name = name
        self.input_specs = inputs
        self.layers = layers
        self.nodes = nodes
        self.source = source
        self._layer_by_id = {lay.id: lay for lay in layers}
        self._io: tuple[int, int] | None | bool = False  # False: not computed yet

    # ---------------------------------------------------------------- structure
    def layer(self, layer_id: str) -> GraphLayer:
        return self._layer_by_id[layer_id]

    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """``(parameter name, shape)`` for every array, in layout order."""
        return [(f"{self.name}.{lay.id}.{k}", s) for lay in self.layers for k, s in lay.shapes()]

    def init(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        out = {}
        for lay in self.layers:
            out.update({f"{self.name}.{lay.id}.{k}": v for k, v in lay.init(rng).items()})
        return out

    @property
    def input_shapes(self) -> tuple[tuple[int, ...] | None, ...]:
        return tuple(i.shape for i in self.input_specs)

    def output_shapes(self) -> list[tuple[int, ...]]:
        """The shapes of the outputs at the input shapes (traced, nothing computed); [] while
        an input shape is unknown."""
        if any(s is None for s in self.input_shapes):
            return []
        import jax

        from ..engines.jax._graph import forward

        arrays = {n: jax.ShapeDtypeStruct(s, np.float64) for n, s in self.shapes()}
        xs = [jax.ShapeDtypeStruct(s, np.float64) for s in self.input_shapes]
        try:
            out = jax.eval_shape(lambda a, x: forward(self, a, x), arrays, xs)
        except SpecError:
            raise
        except Exception as e:  # a shape mismatch inside the graph
            raise SpecError(f"{self.source}: the forward graph fails on inputs of shape(s) "
                            f"{list(self.input_shapes)}: {e}") from None
        outs = out if isinstance(out, tuple) else (out,)
        return [tuple(o.shape) for o in outs]

    def _sizes(self) -> tuple[int, int] | None:
        if self._io is False:
            self._io = None
            if all(s is not None for s in self.input_shapes):
                n_in = sum(int(np.prod(s)) for s in self.input_shapes)
                self._io = (n_in, sum(int(np.prod(o)) for o in self.output_shapes()))
        return self._io

    @property
    def inputs(self) -> int | None:
        """Number of scalar arguments in an expression call (None: input shapes unknown)."""
        io = self._sizes()
        return None if io is None else io[0]

    @property
    def outputs(self) -> int | None:
        """Length of the row-major flattened output (None: input shapes unknown)."""
        io = self._sizes()
        return None if io is None else io[1]

    # --------------------------------------------------------------- evaluation
    def apply(self, params: Mapping[str, Any], *inputs, key=None):
        """The network's output (a JAX array; a tuple for several outputs) on ``inputs``
        (arrays in PyTorch axis order), with ``params`` a dict name -> array
        (``<net>.<layer_id>.weight`` ...). Pure JAX: jit/vmap/grad through it.
        ``key`` (a ``jax.random`` key) switches dropout layers to training mode."""
        from ..engines.jax._graph import forward

        return forward(self, params, inputs, key=key)

    def __call__(self, params: Mapping[str, Any], *inputs) -> np.ndarray:
        """:meth:`apply` in inference mode, as a numpy array (float64)."""
        out = self.apply({k: np.asarray(v, dtype=float) for k, v in params.items()},
                         *[np.asarray(x, dtype=float) for x in inputs])
        return tuple(np.asarray(o) for o in out) if isinstance(out, tuple) else np.asarray(out)

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        inputs = []
        for i in self.input_specs:
            d: dict[str, Any] = {"input_id": i.id}
            if i.shape is not None:
                d["shape"] = list(i.shape)
            inputs.append(d)
        layers = [{"layer_id": lay.id, "layer_type": lay.type, "args": dict(lay.raw_args)} for lay in self.layers]
        forward = [{"name": n.name, "op": n.op, "target": n.target, "args": list(n.args), "kwargs": dict(n.kwargs)}
                   for n in self.nodes]
        return {"inputs": inputs, "layers": layers, "forward": forward}

    def with_input_shapes(self, shapes: Sequence[Sequence[int] | None]) -> "GraphNetwork":
        """A copy whose inputs have the given shapes (e.g. from a PEtab problem's mapping)."""
        d = self.to_dict()
        if len(shapes) != len(d["inputs"]):
            raise SpecError(f"{self.source}: {len(d['inputs'])} input(s), got {len(shapes)} shape(s)")
        for entry, s in zip(d["inputs"], shapes):
            entry.pop("shape", None)
            if s is not None:
                entry["shape"] = list(s)
        return parse_graph_network(self.name, d, self.source)

    def __repr__(self) -> str:
        return f"GraphNetwork({self.name!r}, layers={[lay.type for lay in self.layers]})"


# -------------------------------------------------------------------------- parsing
def is_graph_network(spec) -> bool:
    return isinstance(spec, Mapping) and "forward" in spec


def _check_id(value, where: str) -> str:
    if not isinstance(value, str) or not _IDENT.match(value):
        raise SpecError(f"{where}: {value!r} is not a valid id (letters, digits and '_', not starting with a digit)")
    return value


def _parse_args(kind_name: str, kind: LayerKind, raw, where: str) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: expected a mapping of constructor arguments")
    unknown = [k for k in raw if k not in kind.args]
    if unknown:
        raise SpecError(f"{where}: unsupported argument(s) {unknown} for {kind_name}; "
                        f"supported: {', '.join(kind.args) or 'none'}")
    out = {}
    for name, (k, default) in kind.args.items():
        if name not in raw:
            if default is _REQ:
                raise SpecError(f"{where}: missing argument {name!r} of {kind_name}")
            value = default
        else:
            value = raw[name]
        out[name] = _conv_arg(k, value, kind.dim, f"{where}.{name}")
        if name in kind.refuse and out[name] != kind.refuse[name]:
            raise SpecError(f"{where}.{name}: {name}={out[name]!r} is not supported for {kind_name} "
                            f"(only {kind.refuse[name]!r})")
    return out


def _check_layer(t: str, a: dict, where: str) -> None:
    fam = LAYER_KINDS[t].family
    if fam in ("conv", "convtranspose"):
        for key in ("in_channels", "out_channels"):
            if a[key] % a["groups"]:
                raise SpecError(f"{where}.groups: {key}={a[key]} is not divisible by groups={a['groups']}")
        if a.get("padding") == "same" and any(s != 1 for s in a["stride"]):
            raise SpecError(f"{where}.padding: padding='same' needs stride 1 (as in PyTorch)")


def _parse_layer(raw, i: int, where: str) -> GraphLayer:
    w = f"{where}.layers[{i}]"
    if not isinstance(raw, Mapping):
        raise SpecError(f"{w}: expected a mapping with 'layer_id', 'layer_type' and 'args'")
    check_keys(raw, ("layer_id", "layer_type", "args"), w, required=("layer_id", "layer_type"))
    lid = _check_id(raw["layer_id"], f"{w}.layer_id")
    w = f"{where}.layers[{lid}]"
    t = raw["layer_type"]
    raw_args = raw.get("args") or {}
    if t in ACTIVATION_MODULES:
        fn = ACTIVATION_MODULES[t]
        if not isinstance(raw_args, Mapping):
            raise SpecError(f"{w}.args: expected a mapping of constructor arguments")
        params = {p: (k, _ACT_MODULE_ARG_DEFAULTS.get(fn, {}).get(p, d)) for p, k, d in OPS[fn][1:]}
        args = _bind_constants(fn, params, raw_args, f"{w}.args")
        return GraphLayer(lid, t, args, dict(raw_args))
    if t not in LAYER_KINDS:
        allowed = sorted(LAYER_KINDS) + sorted(ACTIVATION_MODULES)
        raise SpecError(f"{w}.layer_type: unsupported layer type {t!r}; supported: {', '.join(allowed)}")
    kind = LAYER_KINDS[t]
    args = _parse_args(t, kind, raw_args, f"{w}.args")
    _check_layer(t, args, f"{w}.args")
    return GraphLayer(lid, t, args, dict(raw_args))


def _bind_constants(fn: str, params: dict, given: Mapping, where: str) -> dict:
    unknown = [k for k in given if k not in params]
    if unknown:
        raise SpecError(f"{where}: unsupported argument(s) {unknown} of {fn!r}; supported: {', '.join(params)}")
    out = {}
    for p, (k, d) in params.items():
        v = given.get(p, d)
        if v is _REQ or (v is None and k == "int"):
            raise SpecError(f"{where}: missing argument {p!r} of {fn!r}")
        out[p] = _conv_arg(k, v, 1, f"{where}.{p}")
    return out


def _bind_call(node_name: str, fn: str, args: list, kwargs: Mapping, known: set[str], where: str) -> dict:
    """Bind a call's positional and keyword arguments to ``OPS[fn]``; tensor arguments
    must name earlier nodes."""
    sig = OPS[fn]
    bound: dict[str, Any] = {}
    pos = list(args)
    for idx, (p, k, _d) in enumerate(sig):
        if not pos:
            break
        if k == "shape...":
            rest = pos[0] if len(pos) == 1 and isinstance(pos[0], (list, tuple)) else pos
            bound[p] = rest
            pos = []
            break
        bound[p] = pos.pop(0)
    if pos:
        raise SpecError(f"{where}.args: {fn!r} takes at most {len(sig)} argument(s), got {len(args)}")
    names = [p for p, _, _ in sig]
    for p, v in kwargs.items():
        if p not in names:
            raise SpecError(f"{where}.kwargs: unsupported argument {p!r} of {fn!r}; supported: {', '.join(names)}")
        if p in bound:
            raise SpecError(f"{where}.kwargs: argument {p!r} of {fn!r} given twice")
        bound[p] = v
    out: dict[str, Any] = {}
    for p, k, d in sig:
        w = f"{where}: argument {p!r}"
        if p not in bound:
            if d is _REQ:
                raise SpecError(f"{where}: missing argument {p!r} of {fn!r}")
            out[p] = d
            continue
        v = bound[p]
        if k in ("tensor", "operand"):
            if isinstance(v, str):
                if v not in known:
                    raise SpecError(f"{w} refers to {v!r}, which is not an earlier node")
                out[p] = v
            elif k == "operand" and _is_num(v):
                out[p] = float(v)
            else:
                raise SpecError(f"{w}: expected the name of an earlier node{' or a number' if k == 'operand' else ''}, "
                                f"got {v!r}")
        elif k == "tensors":
            if not isinstance(v, (list, tuple)) or not v:
                raise SpecError(f"{w}: expected a non-empty list of node names, got {v!r}")
            for x in v:
                if not isinstance(x, str) or x not in known:
                    raise SpecError(f"{w} refers to {x!r}, which is not an earlier node")
            out[p] = tuple(v)
        elif k == "shape...":
            out[p] = _conv_arg("ints", v, 1, f"{where}.{p}")
            if sum(1 for s in out[p] if s == -1) > 1 or any(s < -1 or s == 0 for s in out[p]):
                raise SpecError(f"{where}.{p}: expected positive sizes and at most one -1, got {list(out[p])}")
        else:
            if isinstance(v, str) and v in known and k not in ("ignored",) and not isinstance(k, tuple):
                raise SpecError(f"{w}: {p!r} must be a constant, not the node {v!r} (data-dependent values are "
                                f"not supported)")
            out[p] = _conv_arg(k, v, 1, f"{where}.{p}")
    return out


def _parse_node(raw, i: int, where: str, known: set[str], layers: dict[str, GraphLayer]) -> GraphNode:
    w = f"{where}.forward[{i}]"
    if not isinstance(raw, Mapping):
        raise SpecError(f"{w}: expected a mapping with 'name', 'op', 'target', 'args' and 'kwargs'")
    check_keys(raw, ("name", "op", "target", "args", "kwargs"), w, required=("name", "op", "target"))
    name = _check_id(raw["name"], f"{w}.name")
    w = f"{where}.forward[{name}]"
    if name in known:
        raise SpecError(f"{w}: duplicate node name {name!r}")
    op, target = raw["op"], raw["target"]
    args = raw.get("args") or []
    kwargs = raw.get("kwargs") or {}
    if op not in NODE_OPS:
        raise SpecError(f"{w}.op: unsupported node op {op!r}; supported: {', '.join(NODE_OPS)}")
    if not isinstance(target, str):
        raise SpecError(f"{w}.target: expected a string, got {target!r}")
    if not isinstance(args, (list, tuple)):
        raise SpecError(f"{w}.args: expected a list")
    if not isinstance(kwargs, Mapping):
        raise SpecError(f"{w}.kwargs: expected a mapping")
    bound: dict[str, Any] = {}
    fn = None
    if op == "placeholder":
        if args or kwargs:
            raise SpecError(f"{w}: a placeholder takes no args or kwargs (default values are not supported)")
    elif op == "call_module":
        if target not in layers:
            raise SpecError(f"{w}.target: {target!r} is not a layer id; layers: {', '.join(layers)}")
        if kwargs:
            raise SpecError(f"{w}.kwargs: module calls take no keyword arguments, got {sorted(kwargs)}")
        lay = layers[target]
        n_in = lay.kind.n_inputs if lay.kind else 1
        if len(args) != n_in:
            raise SpecError(f"{w}.args: layer {target!r} ({lay.type}) takes {n_in} input(s), got {len(args)}")
        for a in args:
            if not isinstance(a, str) or a not in known:
                raise SpecError(f"{w}.args: {a!r} is not an earlier node")
        bound = {"inputs": tuple(args)}
    elif op in ("call_function", "call_method"):
        fn = OP_ALIASES.get(target, target)
        if fn not in OPS:
            allowed = sorted(set(OPS) | set(OP_ALIASES))
            raise SpecError(f"{w}.target: unsupported {op} target {target!r}; supported: {', '.join(allowed)}")
        bound = _bind_call(name, fn, list(args), kwargs, known, w)
    else:  # output
        if kwargs or len(args) != 1:
            raise SpecError(f"{w}.args: an output node takes one argument (a node name or a list of them)")
        ret = args[0]
        outs = tuple(ret) if isinstance(ret, (list, tuple)) else (ret,)
        if not outs:
            raise SpecError(f"{w}.args: the output is empty")
        for a in outs:
            if not isinstance(a, str) or a not in known:
                raise SpecError(f"{w}.args: {a!r} is not an earlier node")
        bound = {"outputs": outs, "tuple": isinstance(ret, (list, tuple))}
    return GraphNode(name, op, target, tuple(args), dict(kwargs), bound, fn)


def _infer_input_shapes(inputs: list[GraphInput], nodes: tuple[GraphNode, ...],
                        layers: dict[str, GraphLayer]) -> list[GraphInput]:
    """An input without ``shape`` that feeds only Linear/Bilinear layers is a vector of
    their ``in_features``."""
    placeholders = [n.name for n in nodes if n.op == "placeholder"]
    out = []
    for inp, ph in zip(inputs, placeholders):
        if inp.shape is not None:
            out.append(inp)
            continue
        sizes, other = set(), False
        for n in nodes:
            used = [v for v in n.bound.values() if v == ph or (isinstance(v, tuple) and ph in v)]
            if not used:
                continue
            lay = layers.get(n.target) if n.op == "call_module" else None
            if lay is not None and lay.type == "Linear":
                sizes.add(lay.args["in_features"])
            elif lay is not None and lay.type == "Bilinear":
                for j, a in enumerate(n.bound["inputs"]):
                    if a == ph:
                        sizes.add(lay.args["in1_features" if j == 0 else "in2_features"])
            else:
                other = True
        out.append(GraphInput(inp.id, (sizes.pop(),)) if len(sizes) == 1 and not other else inp)
    return out


def parse_graph_network(name: str, spec, where: str) -> GraphNetwork:
    """Validate a graph network spec (``inputs``, ``layers``, ``forward``)."""
    if not isinstance(spec, Mapping):
        raise SpecError(f"{where}: expected a mapping with 'inputs', 'layers' and 'forward'")
    if "nn_model_id" in spec:
        raise SpecError(f"{where}: 'nn_model_id' is not part of a pyude network (its name is its key under "
                        f"'networks'); load PEtab SciML files with pyude.io.petab_sciml.load_net")
    check_keys(spec, ("inputs", "layers", "forward"), where, required=("layers", "forward"))
    raw_layers = spec.get("layers") or []
    if not isinstance(raw_layers, list):
        raise SpecError(f"{where}.layers: expected a list of layers")
    layers: dict[str, GraphLayer] = {}
    for i, raw in enumerate(raw_layers):
        lay = _parse_layer(raw, i, where)
        if lay.id in layers:
            raise SpecError(f"{where}.layers[{i}]: duplicate layer_id {lay.id!r}")
        layers[lay.id] = lay
    raw_nodes = spec["forward"]
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise SpecError(f"{where}.forward: expected a non-empty list of nodes")
    known: set[str] = set()
    nodes = []
    for i, raw in enumerate(raw_nodes):
        node = _parse_node(raw, i, where, known, layers)
        known.add(node.name)
        nodes.append(node)
    outputs = [n for n in nodes if n.op == "output"]
    if len(outputs) != 1 or nodes[-1].op != "output":
        raise SpecError(f"{where}.forward: expected exactly one 'output' node, as the last node")
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if not placeholders:
        raise SpecError(f"{where}.forward: no 'placeholder' node (the network has no input)")
    raw_inputs = spec.get("inputs")
    if raw_inputs is None:
        raw_inputs = [{"input_id": n.name} for n in placeholders]
    if not isinstance(raw_inputs, list):
        raise SpecError(f"{where}.inputs: expected a list of {{input_id[, shape]}}")
    if len(raw_inputs) != len(placeholders):
        raise SpecError(f"{where}.inputs: {len(raw_inputs)} input(s) declared but the forward graph has "
                        f"{len(placeholders)} placeholder(s) ({', '.join(n.name for n in placeholders)})")
    inputs = []
    for i, raw in enumerate(raw_inputs):
        w = f"{where}.inputs[{i}]"
        if not isinstance(raw, Mapping):
            raise SpecError(f"{w}: expected a mapping with 'input_id' and optional 'shape'")
        check_keys(raw, ("input_id", "shape"), w, required=("input_id",))
        shape = raw.get("shape")
        if shape is not None:
            shape = _conv_arg("ints", shape, 1, f"{w}.shape")
            if any(s < 1 for s in shape):
                raise SpecError(f"{w}.shape: expected positive sizes, got {list(shape)}")
        inputs.append(GraphInput(_check_id(raw["input_id"], f"{w}.input_id"), shape))
    inputs = _infer_input_shapes(inputs, tuple(nodes), layers)
    return GraphNetwork(name, tuple(inputs), tuple(layers.values()), tuple(nodes), where)
