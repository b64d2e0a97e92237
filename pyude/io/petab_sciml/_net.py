"""Read a PEtab SciML net YAML (``nn_model_id``, ``inputs``, ``layers``, ``forward``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from ..._errors import SpecError
from ...spec._graph import GraphNetwork, parse_graph_network


def net_from_dict(data, name: str | None = None, source: str = "<net>") -> GraphNetwork:
    """A :class:`GraphNetwork` from the parsed YAML mapping; ``name`` defaults to its
    ``nn_model_id``. Errors name ``source``, the layer id or node name and the key."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}: expected a mapping with 'nn_model_id', 'inputs', 'layers' and 'forward'")
    data = dict(data)
    model_id = data.pop("nn_model_id", None)
    if name is None:
        if not isinstance(model_id, str):
            raise SpecError(f"{source}: missing 'nn_model_id' (the network's id)")
        name = model_id
    return parse_graph_network(name, data, source)


def load_net(path: str | Path, name: str | None = None) -> GraphNetwork:
    """Read a net YAML file (safe loading: plain data only)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError(f"cannot read network file {str(path)!r}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: invalid YAML: {e}") from None
    return net_from_dict(data, name, str(path))
