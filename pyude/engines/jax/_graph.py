"""JAX evaluation of graph networks (the PEtab SciML layer set and forward graph).

Every function here is a pure function of its arrays, so networks can be jitted,
vmapped and differentiated (float64 when pyude is imported). Layers compute what
the PyTorch module of the same name computes; the spec side
(:mod:`pyude.spec._graph`) has already checked every argument, so only array
shapes are checked here (they are known at trace time).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..._errors import DataError
from ...spec._graph import ACTIVATION_MODULES, LAYER_KINDS, OPS, GraphLayer, GraphNetwork

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_ALPHA_DROPOUT = 1.7580993408473766  # -SELU's negative saturation value, as torch's alpha_dropout


class _ShapeError(Exception):
    """A shape mismatch inside one node; re-raised as DataError naming the node."""


def _relu6(x):
    return jnp.clip(x, 0.0, 6.0)


def _neg_part_expm1(x, scale=1.0):
    # expm1 of the non-positive part only: no overflow, no NaN gradient in the unused branch
    return jnp.expm1(jnp.minimum(x, 0.0) / scale)


def _softplus(x, beta=1.0, threshold=20.0):
    # torch: x where beta*x > threshold (linear regime), else log1p(exp(beta*x))/beta
    bx = beta * x
    safe = jnp.minimum(bx, threshold)
    return jnp.where(bx > threshold, x, jnp.log1p(jnp.exp(safe)) / beta)


def _flatten(x, start_dim: int, end_dim: int):
    if x.ndim == 0:
        return x.reshape(1)
    s, e = start_dim % x.ndim, end_dim % x.ndim
    if s > e:
        raise _ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for a {x.ndim}-d array")
    return x.reshape(x.shape[:s] + (int(np.prod(x.shape[s : e + 1])),) + x.shape[e + 1 :])


def _squeeze(x, dim: int):
    return jnp.squeeze(x, dim) if x.shape[dim] == 1 else x  # torch leaves other sizes alone


# name -> f(x, **constants) for one-tensor functions
_UNARY: dict[str, Callable] = {
    "relu": lambda x: jax.nn.relu(x),
    "relu6": _relu6,
    "elu": lambda x, alpha: jnp.where(x > 0, x, alpha * _neg_part_expm1(x)),
    "selu": lambda x: _SELU_SCALE * jnp.where(x > 0, x, _SELU_ALPHA * _neg_part_expm1(x)),
    "celu": lambda x, alpha: jnp.maximum(x, 0.0) + jnp.minimum(0.0, alpha * _neg_part_expm1(x, alpha)),
    "gelu": lambda x, approximate: jax.nn.gelu(x, approximate=approximate == "tanh"),
    "leaky_relu": lambda x, negative_slope: jnp.where(x >= 0, x, negative_slope * x),
    "hardtanh": lambda x, min_val, max_val: jnp.clip(x, min_val, max_val),
    "hardsigmoid": lambda x: _relu6(x + 3.0) / 6.0,
    "hardswish": lambda x: x * _relu6(x + 3.0) / 6.0,
    "sigmoid": jax.nn.sigmoid,
    "logsigmoid": jax.nn.log_sigmoid,
    "tanh": jnp.tanh,
    "tanhshrink": lambda x: x - jnp.tanh(x),
    "softplus": _softplus,
    "softsign": lambda x: x / (1.0 + jnp.abs(x)),
    "silu": jax.nn.silu,
    "mish": lambda x: x * jnp.tanh(jax.nn.softplus(x)),
    "exp": jnp.exp,
    "log": jnp.log,
    "abs": jnp.abs,
    "sqrt": jnp.sqrt,
    "neg": jnp.negative,
    "softmax": lambda x, dim: jax.nn.softmax(x, axis=dim),
    "log_softmax": lambda x, dim: jax.nn.log_softmax(x, axis=dim),
    "flatten": _flatten,
    "reshape": lambda x, shape: jnp.reshape(x, shape),
    "unsqueeze": lambda x, dim: jnp.expand_dims(x, dim),
    "squeeze": _squeeze,
    "transpose": lambda x, dim0, dim1: jnp.swapaxes(x, dim0, dim1),
}
_BINARY: dict[str, Callable] = {
    "add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "truediv": jnp.divide, "matmul": jnp.matmul,
}
_MULTI: dict[str, Callable] = {
    "cat": lambda xs, dim: jnp.concatenate(xs, axis=dim),
    "stack": lambda xs, dim: jnp.stack(xs, axis=dim),
}
_IGNORED = ("inplace", "_stacklevel", "dtype")


def _call_op(fn: str, bound: Mapping[str, Any], env: Mapping[str, Any]):
    consts = {k: v for k, v in bound.items() if k not in _IGNORED}
    if fn in _MULTI:
        return _MULTI[fn]([env[n] for n in consts.pop("tensors")], **consts)
    if fn in _BINARY:
        a, b = (env[v] if isinstance(v, str) else v for v in (consts["input"], consts["other"]))
        return _BINARY[fn](a, b)
    x = env[consts.pop("input")]
    return _UNARY[fn](x, **consts)


# ------------------------------------------------------------------------ layers
def _batched(x, dim: int, what: str):
    """(x with a batch axis, whether one was added): torch's modules take (C, *spatial)
    or (N, C, *spatial)."""
    if x.ndim == dim + 1:
        return x[None], True
    if x.ndim == dim + 2:
        return x, False
    raise _ShapeError(f"{what} expects a {dim + 1}-d (unbatched) or {dim + 2}-d (batched) array, got shape {x.shape}")


def _channels(x, n: int, what: str) -> None:
    if x.shape[1] != n:
        raise _ShapeError(f"{what} expects {n} channel(s) on axis 1, got shape {x.shape}")


_DN = {1: ("NCH", "OIH", "NCH"), 2: ("NCHW", "OIHW", "NCHW"), 3: ("NCDHW", "OIDHW", "NCDHW")}
_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _conv(x, w, b, a: dict, dim: int):
    x, added = _batched(x, dim, "Conv")
    _channels(x, a["in_channels"], "Conv")
    k, d = a["kernel_size"], a["dilation"]
    if a["padding"] == "valid":
        pads = [(0, 0)] * dim
    elif a["padding"] == "same":  # torch puts the odd element on the right
        tot = [di * (ki - 1) for di, ki in zip(d, k)]
        pads = [(t // 2, t - t // 2) for t in tot]
    else:
        pads = [(p, p) for p in a["padding"]]
    if a["padding_mode"] != "zeros":
        x = jnp.pad(x, [(0, 0), (0, 0)] + pads, mode=_PAD_MODES[a["padding_mode"]])
        pads = [(0, 0)] * dim
    y = lax.conv_general_dilated(x, w, window_strides=a["stride"], padding=pads, rhs_dilation=d,
                                 feature_group_count=a["groups"], dimension_numbers=_DN[dim],
                                 precision=lax.Precision.HIGHEST)
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * dim)
    return y[0] if added else y


def _conv_transpose(x, w, b, a: dict, dim: int):
    """torch's ConvTranspose: the adjoint of a strided convolution, computed as a
    convolution of the stride-dilated input with the flipped, in/out-swapped kernel."""
    x, added = _batched(x, dim, "ConvTranspose")
    _channels(x, a["in_channels"], "ConvTranspose")
    g, cin, cout = a["groups"], a["in_channels"], a["out_channels"]
    k = a["kernel_size"]
    wr = w.reshape((g, cin // g, cout // g) + k).swapaxes(1, 2).reshape((cout, cin // g) + k)
    wr = jnp.flip(wr, axis=tuple(range(2, 2 + dim)))
    lo = [di * (ki - 1) - p for di, ki, p in zip(a["dilation"], k, a["padding"])]
    pads = [(l_, l_ + op) for l_, op in zip(lo, a["output_padding"])]
    y = lax.conv_general_dilated(x, wr, window_strides=(1,) * dim, padding=pads, lhs_dilation=a["stride"],
                                 rhs_dilation=a["dilation"], feature_group_count=g, dimension_numbers=_DN[dim],
                                 precision=lax.Precision.HIGHEST)
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * dim)
    return y[0] if added else y


def _window(x, dim: int, k, s, pads, init, op, dilation=None):
    lead = x.ndim - dim
    return lax.reduce_window(x, init, op, (1,) * lead + tuple(k), (1,) * lead + tuple(s),
                             [(0, 0)] * lead + list(pads), window_dilation=(1,) * lead + tuple(dilation or (1,) * dim))


def _maxpool(x, a: dict, dim: int):
    _batched(x, dim, "MaxPool")
    s = a["stride"] or a["kernel_size"]
    return _window(x, dim, a["kernel_size"], s, [(p, p) for p in a["padding"]], -jnp.inf, lax.max, a["dilation"])


def _avgpool(x, a: dict, dim: int):
    _batched(x, dim, "AvgPool")
    k, s = a["kernel_size"], a["stride"] or a["kernel_size"]
    pads = [(p, p) for p in a["padding"]]
    total = _window(x, dim, k, s, pads, 0.0, lax.add)
    if a.get("divisor_override"):
        return total / a["divisor_override"]
    if a["count_include_pad"] or not any(a["padding"]):
        return total / float(np.prod(k))
    count = _window(jnp.ones(x.shape[-dim:], x.dtype), dim, k, s, pads, 0.0, lax.add)
    return total / count


def _lppool(x, a: dict, dim: int):
    _batched(x, dim, "LPPool")
    p = a["norm_type"]
    k, s = a["kernel_size"], a["stride"] or a["kernel_size"]
    xp = lax.integer_pow(x, int(p)) if float(p).is_integer() else x**p
    total = _window(xp, dim, k, s, [(0, 0)] * dim, 0.0, lax.add)
    return total ** (1.0 / p)


def _adaptive(x, a: dict, dim: int, reduce: Callable):
    """torch's adaptive pooling: output cell i of an axis of length L pools
    [floor(i L / o), ceil((i + 1) L / o)); separable, so one axis at a time."""
    _batched(x, dim, "AdaptivePool")
    for j, o in enumerate(a["output_size"]):
        axis = x.ndim - dim + j
        n = x.shape[axis]
        o = n if o is None else o
        cells = [reduce(lax.slice_in_dim(x, (i * n) // o, -((-(i + 1) * n) // o), axis=axis), axis)
                 for i in range(o)]
        x = jnp.stack(cells, axis=axis)
    return x


def _normalize(x, axes, eps):
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)  # biased, as torch normalises
    return (x - mean) / jnp.sqrt(var + eps)


def _batchnorm(x, w, b, a: dict, dim: int):
    ok = (2, 3) if dim == 1 else (dim + 2,)
    if x.ndim not in ok:
        raise _ShapeError(f"BatchNorm{dim}d expects a {' or '.join(map(str, ok))}-d array (N, C, ...), got {x.shape}")
    _channels(x, a["num_features"], f"BatchNorm{dim}d")
    y = _normalize(x, (0,) + tuple(range(2, x.ndim)), a["eps"])
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return y * w.reshape(shape) + b.reshape(shape) if w is not None else y


def _instancenorm(x, w, b, a: dict, dim: int):
    x, added = _batched(x, dim, f"InstanceNorm{dim}d")
    _channels(x, a["num_features"], f"InstanceNorm{dim}d")
    y = _normalize(x, tuple(range(2, x.ndim)), a["eps"])
    if w is not None:
        shape = (1, -1) + (1,) * dim
        y = y * w.reshape(shape) + b.reshape(shape)
    return y[0] if added else y


def _layernorm(x, w, b, a: dict):
    s = a["normalized_shape"]
    if x.shape[x.ndim - len(s) :] != s:
        raise _ShapeError(f"LayerNorm over {s} expects an array ending in that shape, got {x.shape}")
    y = _normalize(x, tuple(range(x.ndim - len(s), x.ndim)), a["eps"])
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def _dropout(x, a: dict, fam: str, dim: int, key):
    """Identity at inference; with a key, torch's training-mode dropout (inverted
    scaling; feature variants drop whole channels; alpha variants keep SELU statistics)."""
    p = a["p"]
    if key is None or p == 0.0:
        return x
    if fam == "featuredropout":
        xb, added = _batched(x, dim, f"Dropout{dim}d")
        mask_shape = xb.shape[:2] + (1,) * dim
        keep = jax.random.bernoulli(key, 1.0 - p, mask_shape).astype(x.dtype)
        y = xb * keep / (1.0 - p)
        return y[0] if added else y
    if fam == "featurealphadropout":
        if x.ndim < 2:
            raise _ShapeError(f"FeatureAlphaDropout expects at least a 2-d array, got {x.shape}")
        mask_shape = x.shape[:2] + (1,) * (x.ndim - 2)
    else:
        mask_shape = x.shape
    keep = jax.random.bernoulli(key, 1.0 - p, mask_shape).astype(x.dtype)
    if fam == "dropout":
        return x * keep / (1.0 - p)
    al = _ALPHA_DROPOUT
    scale = 1.0 / math.sqrt((al * al * p + 1.0) * (1.0 - p))
    return x * keep * scale + (keep - 1.0) * al * scale + al * scale * p


def _call_layer(layer: GraphLayer, arrays: Mapping[str, Any], prefix: str, xs: Sequence, key):
    if layer.type in ACTIVATION_MODULES:
        return _UNARY[ACTIVATION_MODULES[layer.type]](xs[0], **layer.args)
    kind = LAYER_KINDS[layer.type]
    a, fam, dim = layer.args, kind.family, kind.dim
    names = dict(layer.shapes())
    w = arrays[f"{prefix}.weight"] if "weight" in names else None
    b = arrays[f"{prefix}.bias"] if "bias" in names else None
    for nm, arr in (("weight", w), ("bias", b)):
        if arr is not None and tuple(jnp.shape(arr)) != names[nm]:
            raise _ShapeError(f"parameter {prefix}.{nm} has shape {tuple(jnp.shape(arr))}, expected {names[nm]}")
    x = xs[0]
    if fam == "linear":
        if x.ndim < 1 or x.shape[-1] != a["in_features"]:
            raise _ShapeError(f"Linear expects {a['in_features']} features on the last axis, got shape {x.shape}")
        y = jnp.matmul(x, w.T, precision=lax.Precision.HIGHEST)
        return y + b if b is not None else y
    if fam == "bilinear":
        x2 = xs[1]
        if x.shape[-1] != a["in1_features"] or x2.shape[-1] != a["in2_features"] or x.shape[:-1] != x2.shape[:-1]:
            raise _ShapeError(f"Bilinear expects (..., {a['in1_features']}) and (..., {a['in2_features']}), "
                              f"got {x.shape} and {x2.shape}")
        y = jnp.einsum("...i,kij,...j->...k", x, w, x2, precision=lax.Precision.HIGHEST)
        return y + b if b is not None else y
    if fam == "flatten":
        return _flatten(x, a["start_dim"], a["end_dim"])
    if fam == "identity":
        return x
    if fam == "conv":
        return _conv(x, w, b, a, dim)
    if fam == "convtranspose":
        return _conv_transpose(x, w, b, a, dim)
    if fam == "maxpool":
        return _maxpool(x, a, dim)
    if fam == "avgpool":
        return _avgpool(x, a, dim)
    if fam == "lppool":
        return _lppool(x, a, dim)
    if fam == "adaptiveavgpool":
        return _adaptive(x, a, dim, jnp.mean)
    if fam == "adaptivemaxpool":
        return _adaptive(x, a, dim, jnp.max)
    if fam == "batchnorm":
        return _batchnorm(x, w, b, a, dim)
    if fam == "instancenorm":
        return _instancenorm(x, w, b, a, dim)
    if fam == "layernorm":
        return _layernorm(x, w, b, a)
    if fam in ("dropout", "featuredropout", "alphadropout", "featurealphadropout"):
        return _dropout(x, a, fam, dim, key)
    raise AssertionError(f"layer family {fam!r} has no implementation")  # guarded by a test


IMPLEMENTED_OPS = frozenset(_UNARY) | frozenset(_BINARY) | frozenset(_MULTI)
assert IMPLEMENTED_OPS == frozenset(OPS), sorted(IMPLEMENTED_OPS ^ frozenset(OPS))


# ----------------------------------------------------------------------- graphs
def forward(net: GraphNetwork, params: Mapping[str, Any], inputs: Sequence, key=None):
    """Evaluate ``net``'s forward graph: ``inputs`` fill the placeholders in order;
    ``params`` maps ``<net>.<layer_id>.<array>`` to arrays (only the called layers'
    are read). Returns the output array, or a tuple when the graph returns several.
    A ``key`` puts dropout layers in training mode (one independent draw per node)."""
    placeholders = [n for n in net.nodes if n.op == "placeholder"]
    if len(inputs) != len(placeholders):
        raise DataError(f"network {net.name!r} takes {len(placeholders)} input(s), got {len(inputs)}")
    env: dict[str, Any] = {}
    it = iter(inputs)
    for i, node in enumerate(net.nodes):
        try:
            if node.op == "placeholder":
                env[node.name] = jnp.asarray(next(it))
            elif node.op == "call_module":
                layer = net.layer(node.target)
                sub = None if key is None else jax.random.fold_in(key, i)
                env[node.name] = _call_layer(layer, params, f"{net.name}.{layer.id}",
                                             [env[a] for a in node.bound["inputs"]], sub)
            elif node.op in ("call_function", "call_method"):
                env[node.name] = _call_op(node.fn, node.bound, env)
            else:
                outs = tuple(env[a] for a in node.bound["outputs"])
                return outs if node.bound["tuple"] else outs[0]
        except KeyError as e:
            if node.op == "call_module" and str(e.args[0]).startswith(f"{net.name}."):
                raise DataError(f"network {net.name!r}, node {node.name!r}: missing parameter {e.args[0]!r}") from None
            raise
        except (_ShapeError, TypeError, ValueError) as e:
            what = f"layer {node.target!r} ({net.layer(node.target).type})" if node.op == "call_module" \
                else f"{node.op} {node.target!r}"
            raise DataError(f"network {net.name!r}, node {node.name!r} ({what}): {e}") from None
    raise AssertionError("unreachable: the parser guarantees an output node")


def graph_network_fn(net: GraphNetwork, offset: int) -> Callable:
    """``f(p, x)`` for expression calls: ``p`` the model's flat parameter vector (this
    network's arrays start at ``offset``), ``x`` the concatenated scalar arguments,
    split row-major into the inputs' shapes; returns the flattened output(s)."""
    shapes = net.shapes()
    in_shapes = net.input_shapes

    def f(p, x):
        arrays, off = {}, offset
        for name, shape in shapes:
            size = int(np.prod(shape))
            arrays[name] = p[off : off + size].reshape(shape)
            off += size
        xs, off = [], 0
        for s in in_shapes:
            size = int(np.prod(s))
            xs.append(x[off : off + size].reshape(s))
            off += size
        out = forward(net, arrays, xs)
        outs = out if isinstance(out, tuple) else (out,)
        return jnp.concatenate([o.reshape(-1) for o in outs])

    return f


def flat_forward(net: GraphNetwork, theta, inputs: Sequence, key=None):
    """:func:`forward` with the network's parameters as one flat vector ``theta``
    (layout order, see docs/spec.md): e.g. ``jax.grad`` with respect to all weights."""
    arrays, off = {}, 0
    for name, shape in net.shapes():
        size = int(np.prod(shape))
        arrays[name] = theta[off : off + size].reshape(shape)
        off += size
    if off != jnp.shape(theta)[0]:
        raise DataError(f"network {net.name!r} has {off} parameters, got a vector of length {jnp.shape(theta)[0]}")
    return forward(net, arrays, inputs, key=key)
