"""Graph (PEtab SciML) networks as PyUDE.jl reads them (``julia/src/graph.jl``).

The JSON lists the layers (type, family, spatial dimension, checked arguments, and
where each parameter array starts inside the network's block of the flat vector)
and the forward graph's nodes in order, each with the PyTorch shape of its output.
The shapes are computed here by tracing the JAX evaluation (nothing is computed):
Julia needs them at compile time to build the gather indices of convolutions and
pooling windows, and for every reshape-like node (Flatten, flatten, reshape,
unsqueeze, squeeze, Identity, dropout), which on Julia's side is a ``reshape``.

Layout (normative for ``graph.jl``): a PyTorch array of shape ``(d1, ..., dn)``
stored row-major is, in Julia, the column-major array of size ``(dn, ..., d1)`` with
the same memory (``reshape(block, reverse(shape)...)``, no copy). So the network's
block of the flat vector is used as it is: ``julia_layout`` leaves it in place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._errors import SpecError
from ...spec._graph import ACTIVATION_MODULES, LAYER_KINDS, GraphNetwork

# layer families PyUDE.jl implements (graph.jl); every other family is refused by name
JULIA_FAMILIES = (
    "linear", "bilinear", "flatten", "identity", "conv", "maxpool", "avgpool", "lppool", "adaptiveavgpool",
    "adaptivemaxpool", "batchnorm", "instancenorm", "layernorm", "dropout", "featuredropout", "alphadropout",
    "featurealphadropout",
)
# functions and methods PyUDE.jl implements (graph.jl, `UNARY` and `graph_op`); equal to pyude.spec.OPS
JULIA_OPS = (
    "relu", "relu6", "elu", "selu", "celu", "gelu", "leaky_relu", "hardtanh", "hardsigmoid", "hardswish", "sigmoid",
    "logsigmoid", "tanh", "tanhshrink", "softplus", "softsign", "silu", "mish", "exp", "log", "abs", "sqrt", "neg",
    "softmax", "log_softmax", "cat", "stack", "flatten", "reshape", "unsqueeze", "squeeze", "transpose", "add", "sub",
    "mul", "truediv", "matmul",
)
# the unary (elementwise) functions, with the constants graph.jl reads
UNARY = {
    "relu": (), "relu6": (), "elu": ("alpha",), "selu": (), "celu": ("alpha",), "gelu": ("approximate",),
    "leaky_relu": ("negative_slope",), "hardtanh": ("min_val", "max_val"), "hardsigmoid": (), "hardswish": (),
    "sigmoid": (), "logsigmoid": (), "tanh": (), "tanhshrink": (), "softplus": ("beta", "threshold"),
    "softsign": (), "silu": (), "mish": (), "exp": (), "log": (), "abs": (), "sqrt": (), "neg": (),
}
RESHAPES = ("flatten", "reshape", "unsqueeze", "squeeze")  # row-major memory order unchanged: a reshape
BINARY = ("add", "sub", "mul", "truediv")
_IGNORED = ("inplace", "_stacklevel", "dtype")


def _node_shapes(net: GraphNetwork) -> dict[str, tuple[int, ...]]:
    """The PyTorch shape of every node's output at the network's input shapes (traced with
    ``jax.eval_shape`` through the JAX engine's layer and op functions, nothing computed)."""
    import jax

    from ..jax._graph import _call_layer, _call_op

    def run(arrays, xs):
        env: dict[str, Any] = {}
        it = iter(xs)
        for node in net.nodes:
            if node.op == "placeholder":
                env[node.name] = next(it)
            elif node.op == "call_module":
                layer = net.layer(node.target)
                env[node.name] = _call_layer(layer, arrays, f"{net.name}.{layer.id}",
                                             [env[a] for a in node.bound["inputs"]], None)
            elif node.op in ("call_function", "call_method"):
                env[node.name] = _call_op(node.fn, node.bound, env)
        return env

    arrays = {n: jax.ShapeDtypeStruct(s, np.float64) for n, s in net.shapes()}
    xs = [jax.ShapeDtypeStruct(s, np.float64) for s in net.input_shapes]
    try:
        env = jax.eval_shape(run, arrays, xs)
    except Exception as e:  # a shape mismatch inside the graph
        raise SpecError(f"{net.source}: the forward graph fails on inputs of shape(s) {list(net.input_shapes)}: "
                        f"{e}") from None
    return {name: tuple(int(d) for d in v.shape) for name, v in env.items()}


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def check_graph_supported(net: GraphNetwork) -> None:
    """Raise :class:`SpecError` naming the layer or node that PyUDE.jl does not implement."""
    for lay in net.layers:
        if lay.type in ACTIVATION_MODULES:
            continue
        fam = LAYER_KINDS[lay.type].family
        if fam not in JULIA_FAMILIES:
            raise SpecError(f"the Julia engine does not implement layer type {lay.type!r} (network {net.name!r}, "
                            f"layer {lay.id!r}); use engine='jax'")
    for node in net.nodes:
        if node.op in ("call_function", "call_method") and node.fn not in JULIA_OPS:
            raise SpecError(f"the Julia engine does not implement {node.op} {node.target!r} (network {net.name!r}, "
                            f"node {node.name!r}); use engine='jax'")


def graph_json(net: GraphNetwork, offset: int) -> dict[str, Any]:
    """Graph network ``net`` (its parameters start at ``offset`` of the flat vector) as
    PyUDE.jl's ``build_graph`` reads it. Offsets inside are 0-based, relative to the
    network's block; shapes are PyTorch's (row-major)."""
    check_graph_supported(net)
    if net.inputs is None:
        raise SpecError(f"the Julia engine needs the input shapes of network {net.name!r} (give 'shape' in its "
                        "'inputs')")
    shapes = _node_shapes(net)
    for node in net.nodes:
        if node.op in ("call_function", "call_method") and node.fn == "matmul":
            dims = [len(shapes[node.bound[k]]) for k in ("input", "other")]
            if not all(1 <= d <= 2 for d in dims):
                raise SpecError(f"the Julia engine implements matmul of 1-d and 2-d arrays only (network "
                                f"{net.name!r}, node {node.name!r}: {dims[0]}-d and {dims[1]}-d); use engine='jax'")
    layers, off = [], 0
    for lay in net.layers:
        params = []
        for name, shape in lay.shapes():
            params.append({"name": name, "offset": off, "shape": list(shape)})
            off += int(np.prod(shape))
        if lay.type in ACTIVATION_MODULES:
            fn = ACTIVATION_MODULES[lay.type]
            family, dim = "activation", 0
            args = {"fn": fn, **{k: _jsonable(v) for k, v in lay.args.items() if k not in _IGNORED}}
        else:
            kind = LAYER_KINDS[lay.type]
            family, dim = kind.family, kind.dim
            args = {k: _jsonable(v) for k, v in lay.args.items() if k not in _IGNORED}
        layers.append({"id": lay.id, "type": lay.type, "family": family, "dim": dim, "args": args, "params": params})
    nodes = []
    for node in net.nodes:
        if node.op == "output":
            nodes.append({"name": node.name, "op": "output", "inputs": list(node.bound["outputs"])})
            continue
        entry: dict[str, Any] = {"name": node.name, "shape": list(shapes[node.name])}
        if node.op == "placeholder":
            entry.update(op="placeholder", inputs=[])
        elif node.op == "call_module":
            entry.update(op="module", layer=node.target, inputs=list(node.bound["inputs"]))
        else:
            b = {k: v for k, v in node.bound.items() if k not in _IGNORED}
            if node.fn in BINARY:
                operands = [{"node": b[k]} if isinstance(b[k], str) else {"num": float(b[k])} for k in ("input", "other")]
                entry.update(op="function", fn=node.fn, inputs=[o["node"] for o in operands if "node" in o],
                             operands=operands, args={})
            elif node.fn in ("cat", "stack"):
                entry.update(op="function", fn=node.fn, inputs=list(b["tensors"]), args={"dim": b["dim"]})
            elif node.fn == "matmul":
                entry.update(op="function", fn="matmul", inputs=[b["input"], b["other"]], args={})
            else:
                consts = {k: _jsonable(v) for k, v in b.items() if k != "input"}
                entry.update(op="function", fn=node.fn, inputs=[b["input"]], args=consts)
        nodes.append(entry)
    n_out = sum(int(np.prod(shapes[o])) for o in net.nodes[-1].bound["outputs"])
    return {
        "name": net.name,
        "kind": "graph",
        "inputs": int(net.inputs),
        "outputs": n_out,
        "offset": offset,
        "size": off,
        "input_shapes": [list(s) for s in net.input_shapes],
        "layers": layers,
        "nodes": nodes,
    }
