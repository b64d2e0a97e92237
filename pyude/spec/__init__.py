"""The model spec: parse, validate and serialize (the contract between the engines)."""

from ._expr import FUNCTIONS, parse, to_json, to_string
from ._graph import LAYER_KINDS, OPS, GraphNetwork
from ._events import Event
from ._model import Input, Model, Parameter, Reaction, as_model
from ._networks import ACTIVATIONS, Layer, Network

__all__ = [
    "Model", "Parameter", "Reaction", "Input", "Network", "Layer", "GraphNetwork", "LAYER_KINDS", "OPS",
    "Event", "as_model", "parse", "to_json", "to_string", "FUNCTIONS", "ACTIVATIONS",
]
