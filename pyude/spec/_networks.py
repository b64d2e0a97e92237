"""Multilayer perceptrons of the spec: shapes, parameter names and initial weights.

Layout (normative, see docs/spec.md): for each network in spec order, for each
layer ``l`` (0-based), ``W`` of shape (out, in) flattened row-major, then ``b``
(out,) if the layer has a bias. Names: ``<net>.<l>.weight`` and ``<net>.<l>.bias``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._errors import SpecError
from ._checks import check_keys

# numpy versions, for evaluating a learned network outside a solve (the engines have their own)
_NUMPY_ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),
    "gelu": lambda x: 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3))),
    "identity": lambda x: x,
}
ACTIVATIONS = tuple(_NUMPY_ACTIVATIONS)


@dataclass(frozen=True)
class Layer:
    units: int
    activation: str = "identity"
    bias: bool = True


@dataclass(frozen=True)
class Network:
    """``y = a_L(W_L ... a_0(W_0 x + b_0) ... + b_L)``: a dense MLP."""

    name: str
    inputs: int
    layers: tuple[Layer, ...]

    @property
    def outputs(self) -> int:
        return self.layers[-1].units

    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """``(parameter name, shape)`` for every array of this network, in layout order."""
        out = []
        n_in = self.inputs
        for i, layer in enumerate(self.layers):
            out.append((f"{self.name}.{i}.weight", (layer.units, n_in)))
            if layer.bias:
                out.append((f"{self.name}.{i}.bias", (layer.units,)))
            n_in = layer.units
        return out

    def init(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases (PyTorch's and equinox's default)."""
        params = {}
        n_in = self.inputs
        for i, layer in enumerate(self.layers):
            lim = 1.0 / np.sqrt(n_in)
            params[f"{self.name}.{i}.weight"] = rng.uniform(-lim, lim, size=(layer.units, n_in))
            if layer.bias:
                params[f"{self.name}.{i}.bias"] = rng.uniform(-lim, lim, size=(layer.units,))
            n_in = layer.units
        return params

    def __call__(self, params, x) -> np.ndarray:
        """The outputs at inputs ``x`` (shape (inputs,) or (n, inputs)) with the arrays in
        ``params`` (a dict like ``model.init_params()``): shape (outputs,) or (n, outputs)."""
        h = np.asarray(x, dtype=float)
        if h.shape[-1:] != (self.inputs,) or h.ndim > 2:
            raise SpecError(f"network {self.name!r} takes {self.inputs} inputs: x must have shape "
                            f"({self.inputs},) or (n, {self.inputs}), got {h.shape}")
        for i, layer in enumerate(self.layers):
            h = h @ np.asarray(params[f"{self.name}.{i}.weight"], dtype=float).T
            if layer.bias:
                h = h + np.asarray(params[f"{self.name}.{i}.bias"], dtype=float)
            h = _NUMPY_ACTIVATIONS[layer.activation](h)
        return h

    def to_dict(self) -> dict:
        layers = []
        for layer in self.layers:
            d = {"units": layer.units, "activation": layer.activation}
            if not layer.bias:
                d["bias"] = False
            layers.append(d)
        return {"inputs": self.inputs, "layers": layers}


def _positive_int(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SpecError(f"{where}: expected a positive integer, got {value!r}")
    return int(value)


def parse_network(name: str, spec, where: str) -> Network:
    if not isinstance(spec, dict):
        raise SpecError(f"{where}: expected a mapping with 'inputs' and 'layers'")
    check_keys(spec, ("inputs", "layers"), where, required=("inputs",))
    n_in = _positive_int(spec["inputs"], f"{where}.inputs")
    raw_layers = spec.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise SpecError(f"{where}.layers: expected a non-empty list of layers")
    layers = []
    for i, lay in enumerate(raw_layers):
        w = f"{where}.layers[{i}]"
        if not isinstance(lay, dict):
            raise SpecError(f"{w}: expected a mapping with 'units' and 'activation'")
        check_keys(lay, ("units", "activation", "bias"), w, required=("units",))
        units = _positive_int(lay["units"], f"{w}.units")
        act = lay.get("activation", "identity")
        if act not in ACTIVATIONS:
            raise SpecError(f"{w}.activation: unknown activation {act!r}; allowed: {', '.join(ACTIVATIONS)}")
        bias = lay.get("bias", True)
        if not isinstance(bias, bool):
            raise SpecError(f"{w}.bias: expected true or false, got {bias!r}")
        layers.append(Layer(units, act, bias))
    return Network(name, n_in, tuple(layers))
