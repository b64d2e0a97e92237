"""HDF5 files of PEtab SciML: network parameters and network inputs/outputs.

Layout (as the PEtab SciML test suite writes them): ``parameters/<net>/<layer_id>/<array>``
and ``inputs/<input_id>/data`` or ``outputs/<output_id>/data``; arrays are row-major
in PyTorch axis order, flagged by ``metadata/pytorch_format = 1``. A file flagged 0
(column-major, Julia axis order) is refused rather than guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..._errors import DataError
from ...spec._graph import GraphNetwork


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("reading PEtab SciML HDF5 files needs h5py: pip install 'pyude[petab]'") from None
    return h5py


def _open(path: str | Path):
    h5py = _h5py()
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"cannot read HDF5 file {str(path)!r}: {e}") from None
    flag = f.get("metadata/pytorch_format")
    flag = None if flag is None else int(np.asarray(flag[()]))
    if flag is not None and flag != 1:
        f.close()
        raise DataError(f"{path}: metadata/pytorch_format = {flag}: only row-major arrays in "
                        f"PyTorch axis order (pytorch_format = 1) are supported")
    return f


def read_parameters(path: str | Path, net: GraphNetwork | None = None) -> dict[str, np.ndarray]:
    """``{"<net>.<layer_id>.<array>": float64 array}`` from ``parameters/<net>/<layer_id>/<array>``.

    With ``net``, only that network's group is read and every array must be one of its
    parameters with the right shape (else a DataError naming the file and array)."""
    out: dict[str, np.ndarray] = {}
    with _open(path) as f:
        group = f.get("parameters")
        if group is None:
            raise DataError(f"{path}: no 'parameters' group")
        names = [net.name] if net is not None else list(group)
        for n in names:
            if n not in group:
                raise DataError(f"{path}: no parameters for network {n!r} (found: {', '.join(group)})")
            for lid, layer in group[n].items():
                for arr, data in layer.items():
                    out[f"{n}.{lid}.{arr}"] = np.asarray(data[()], dtype=np.float64)
    if net is not None:
        expected = dict(net.shapes())
        for k, v in out.items():
            if k not in expected:
                raise DataError(f"{path}: {k!r} is not a parameter of network {net.name!r}; "
                                f"its parameters: {', '.join(expected) or 'none'}")
            if v.shape != expected[k]:
                raise DataError(f"{path}: {k!r} has shape {v.shape}, expected {expected[k]} (PyTorch axis order)")
    return out


def read_arrays(path: str | Path, group: str | None = None) -> dict[str, np.ndarray]:
    """``{id: float64 array}`` from ``<group>/<id>/data`` (``group``: 'inputs' or
    'outputs'; default: whichever the file has)."""
    with _open(path) as f:
        if group is None:
            found = [g for g in ("inputs", "outputs") if g in f]
            if len(found) != 1:
                raise DataError(f"{path}: expected one of the groups 'inputs' and 'outputs', found {list(f)}")
            group = found[0]
        g = f.get(group)
        if g is None:
            raise DataError(f"{path}: no {group!r} group")
        out = {}
        for k, v in g.items():
            if "data" not in v:
                raise DataError(f"{path}: {group}/{k} has no 'data' array")
            out[k] = np.asarray(v["data"][()], dtype=np.float64)
        return out


def read_array_file(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """A PEtab SciML problem's array file: ``(parameters, inputs)``.

    ``parameters``: ``{"<net>.<layer_id>.<array>": array}`` from ``parameters/<net>/<layer_id>/<array>``
    (every network in the file); ``inputs``: ``{input_id: {key: array}}`` from
    ``inputs/<input_id>/<key>``, ``key`` being ``"0"`` (all conditions) or a
    ``;``-separated list of condition ids. Either group may be absent."""
    params: dict[str, np.ndarray] = {}
    inputs: dict[str, dict[str, np.ndarray]] = {}
    with _open(path) as f:
        unknown = sorted(set(f) - {"metadata", "parameters", "inputs"})
        if unknown:
            raise DataError(f"{path}: unknown top-level group(s) {unknown}; expected 'metadata', 'parameters', 'inputs'")
        for net, group in (f["parameters"].items() if "parameters" in f else []):
            for lid, layer in group.items():
                for arr, data in layer.items():
                    params[f"{net}.{lid}.{arr}"] = np.asarray(data[()], dtype=np.float64)
        for iid, group in (f["inputs"].items() if "inputs" in f else []):
            h5py = _h5py()
            if isinstance(group, h5py.Dataset):
                raise DataError(f"{path}: inputs/{iid} is an array; expected a group of arrays named '0' "
                                f"or by condition ids")
            inputs[iid] = {k: np.asarray(v[()], dtype=np.float64) for k, v in group.items()}
    return params, inputs


_TARGET = re.compile(r"^(?P<net>[A-Za-z_]\w*)\.parameters(\[(?P<layer>[A-Za-z_]\w*)\](\.(?P<array>[A-Za-z_]\w*))?)?$")


def set_network_parameters(params: Mapping[str, Any], net: GraphNetwork, target: str, value) -> dict[str, Any]:
    """A copy of ``params`` with the network parameters that a PEtab ``modelEntityId``
    names set to ``value`` (a number, broadcast): ``net1.parameters`` (all),
    ``net1.parameters[layer1]`` (the layer's arrays) or ``net1.parameters[layer1].bias``."""
    m = _TARGET.match(target.strip())
    if m is None:
        raise DataError(f"{target!r}: expected <net>.parameters, <net>.parameters[<layer_id>] "
                        f"or <net>.parameters[<layer_id>].<array>")
    if m["net"] != net.name:
        raise DataError(f"{target!r}: refers to network {m['net']!r}, not {net.name!r}")
    prefix = net.name + "." + (m["layer"] + "." if m["layer"] else "")
    names = [n for n, _ in net.shapes() if n.startswith(prefix)]
    if m["array"]:
        names = [n for n in names if n == prefix + m["array"]]
    if not names:
        known = ", ".join(n for n, _ in net.shapes()) or "none"
        raise DataError(f"{target!r}: no such parameter in network {net.name!r}; its parameters: {known}")
    out = dict(params)
    shapes = dict(net.shapes())
    for n in names:
        out[n] = np.full(shapes[n], float(value))
    return out
