r"""The PEtab SciML extension of a PEtab v2 problem -> parts of pyude's spec, data and conditions.

* **networks** (``neural_nets`` / ``neural_networks``: ``location``, ``format: YAML``,
  ``pre_initialization`` / ``static``): graph networks of the spec, their input shapes
  fixed from the mapping table and the array files.
* **mapping table** ``petabEntityId -> <net>.inputs[i][j]``, ``<net>.outputs[k][j]``,
  ``<net>.parameters[...]``: which PEtab id is which network input, output or parameter
  array (``[j]`` row-major, several indices ``[j0, j1]`` allowed).
* **network inputs**: an expression from the hybridization table (states, parameters,
  ``time``), a parameter of the parameter table, a value set per condition in the
  condition table, or an array (``targetValue`` ``array``, or the id found in an array
  file): the array's elements become parameters set per condition (``<id>_<k>``,
  row-major), from the file's ``0`` (all conditions) or per-condition entries.
* **dynamic networks** (``pre_initialization: false``): an output id is the network call
  ``net(inputs...)[k]``, evaluated wherever it is used: in the right-hand side (through
  the model parameter the hybridization table replaces with it) and in observables.
* **static networks** (``pre_initialization: true``): an output id is a parameter of the
  spec's ``assignments`` (evaluated once per condition, before the solve); the
  hybridization table's targets are further assignments (a parameter) or initial values
  (a species).
* **network parameters**: parameter-table rows mapped to ``<net>.parameters``,
  ``<net>.parameters[layer]``, ``<net>.parameters[layer].<array>``: nominal value
  ``array`` (or empty: from the array files) or a number; ``estimate`` 0 freezes; priors;
  the more specific row wins. Arrays keep PEtab SciML's names (``net1.layer1.weight``).

Refused by name: other network formats, indices into parameter arrays, finite bounds or
non-linear scales on network parameters, outputs of a static network that feed a
dynamic one's target through the state, network outputs in condition values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import DataError, SpecError
from ..io.petab_sciml import load_net, read_array_file, set_network_parameters
from ..spec import _expr
from ..spec._expr import Expr, NetCall, Sym
from ..spec._graph import GraphNetwork
from ._errors import PetabError
from ._load import _Builder, _empty, _float, petab_prior
from ._load import _tables as tables
from ._sbml import substitute
from ._v2 import _ESTIMATE, where_of

_EXT_KEYS = ("neural_nets", "neural_networks", "hybridization_files", "array_files", "version", "required")
_NET_KEYS = ("location", "format", "pre_initialization", "static")
_IO = re.compile(r"^(?P<net>[A-Za-z_]\w*)\.(?P<kind>inputs|outputs)(\[(?P<arg>\d+)\](\[(?P<idx>\s*\d+(\s*,\s*\d+)*\s*)\])?)?$")
_PARAMS = re.compile(r"^(?P<net>[A-Za-z_]\w*)\.parameters(\[(?P<layer>[A-Za-z_]\w*)\](\.(?P<array>[A-Za-z_]\w*))?)?$")
_NET_PREFIX = re.compile(r"^(?P<net>[A-Za-z_]\w*)\.(inputs|outputs|parameters)")
ARRAY = "array"


@dataclass(frozen=True)
class _Entity:
    """One mapping-table row onto a network."""

    pid: str
    net: str
    kind: str  # inputs | outputs | parameters
    arg: int | None = None
    index: tuple[int, ...] | None = None
    target: str = ""  # modelEntityId (parameters)
    where: str = ""


class SciML:
    """Reads the extension's files and resolves networks, inputs, outputs and parameters."""

    def __init__(self, path: Path, raw, b: _Builder):
        self.path, self.b = path, b
        base = path.parent
        if not isinstance(raw, dict):
            raise PetabError(f"{path}: the SciML extension must be a mapping")
        unknown = sorted(set(raw) - set(_EXT_KEYS))
        if unknown:
            raise PetabError(f"{path}: unsupported SciML extension key(s) {unknown}")
        nets_raw = raw.get("neural_nets", raw.get("neural_networks")) or {}
        if not isinstance(nets_raw, dict):
            raise PetabError(f"{path}: neural_nets must be a mapping network id -> {{location, format, ...}}")
        self.nets: dict[str, GraphNetwork] = {}
        self.static: dict[str, bool] = {}
        for nid, entry in nets_raw.items():
            where = f"{path}: neural_nets.{nid}"
            if not isinstance(entry, dict) or not isinstance(entry.get("location"), str):
                raise PetabError(f"{where}: expected {{location, format, pre_initialization}}")
            bad = sorted(set(entry) - set(_NET_KEYS))
            if bad:
                raise PetabError(f"{where}: unsupported key(s) {bad}")
            fmt = str(entry.get("format", "yaml")).lower()
            if fmt != "yaml":
                raise PetabError(f"{where}: network format {entry.get('format')!r} is not supported (only YAML)")
            flag = entry.get("pre_initialization", entry.get("static"))
            if not isinstance(flag, bool):
                raise PetabError(f"{where}: 'pre_initialization' (or 'static') must be true or false")
            try:
                self.nets[nid] = load_net(base / entry["location"], nid)
            except (SpecError, DataError) as e:
                raise PetabError(f"{where}: {e}") from None
            self.static[nid] = flag
        # array files: network parameters and (per-condition) input arrays
        self.file_params: dict[str, tuple[np.ndarray, str]] = {}
        self.file_inputs: dict[str, dict[str, np.ndarray]] = {}
        self.input_file: dict[str, str] = {}
        for f in raw.get("array_files") or []:
            try:
                params, inputs = read_array_file(base / f)
            except DataError as e:
                raise PetabError(str(e)) from None
            self.file_params.update({k: (v, str(base / f)) for k, v in params.items()})
            for iid, arrays in inputs.items():
                if iid in self.file_inputs:
                    raise PetabError(f"{base / f}: input {iid!r} is also given in {self.input_file[iid]}")
                self.file_inputs[iid], self.input_file[iid] = arrays, str(base / f)
        self.array_conditions = {c.strip() for a in self.file_inputs.values() for k in a if k != "0"
                                 for c in k.split(";")}
        hyb, origin = tables(base, raw.get("hybridization_files"), "hybridization", required=False)
        self.hyb: dict[str, tuple[str, str]] = {}  # targetId -> (targetValue, where)
        if len(hyb):
            for col in ("targetId", "targetValue"):
                if col not in hyb.columns:
                    raise PetabError(f"{origin[0][0]}: missing column {col!r}")
        for k, row in hyb.iterrows():
            tid = "" if _empty(row["targetId"]) else str(row["targetId"]).strip()
            where = where_of(origin, k, tid)
            if not tid or _empty(row["targetValue"]):
                raise PetabError(f"{where}: targetId and targetValue are required")
            if tid in self.hyb:
                raise PetabError(f"{where}: targetId {tid!r} is assigned twice")
            self.hyb[tid] = (str(row["targetValue"]).strip(), where)
        self.entities: dict[str, _Entity] = {}
        # results
        self.replaced: set[str] = set()  # model parameters a network output replaces
        self.assignments: dict[str, Expr] = {}
        self.initial: dict[str, Expr] = {}
        self.substitutions: dict[str, Expr] = {}
        self.array_inputs: dict[str, tuple[list[str], tuple[int, ...]]] = {}
        self.condition_inputs: set[str] = set()
        self.nominal: dict[str, np.ndarray] = {}
        self.estimated: list[str] = []
        self.priors: dict[str, Any] = {}
        self.param_rows: list[tuple[_Entity, Any]] = []
        self.conditions: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ mapping
    def mapping(self, df, origin) -> None:
        if len(df) == 0:
            return
        for col in ("petabEntityId", "modelEntityId"):
            if col not in df.columns:
                raise PetabError(f"{origin[0][0]}: missing column {col!r}")
        sb = self.b.sbml
        model_ids = set(sb.parameters) | set(sb.states) | sb.species | set(sb.rules)
        for k, row in df.iterrows():
            pid = "" if _empty(row["petabEntityId"]) else str(row["petabEntityId"]).strip()
            mid = "" if _empty(row["modelEntityId"]) else str(row["modelEntityId"]).strip()
            where = where_of(origin, k, pid)
            if not pid or not mid:
                raise PetabError(f"{where}: petabEntityId and modelEntityId are required")
            if pid in self.entities:
                raise PetabError(f"{where}: petabEntityId {pid!r} is mapped twice")
            prefix = _NET_PREFIX.match(mid)
            if prefix is None:
                if self.b.name(mid) in model_ids:
                    raise PetabError(f"{where}: mapping PEtab id {pid!r} to model entity {mid!r} (an alias) "
                                     f"is not supported")
                raise PetabError(f"{where}: unknown modelEntityId {mid!r}")
            net = prefix["net"]
            if net not in self.nets:
                raise PetabError(f"{where}: modelEntityId {mid!r} names network {net!r}, which is not in "
                                 f"neural_nets ({', '.join(self.nets) or 'none'})")
            if mid.startswith(f"{net}.parameters"):
                if _PARAMS.match(mid) is None:
                    raise PetabError(f"{where}: {mid!r}: indexing into network parameter arrays is not supported "
                                     f"(use <net>.parameters, <net>.parameters[layer] or <net>.parameters[layer].<array>)")
                self._check_param_target(mid, net, where)
                self.entities[pid] = _Entity(pid, net, "parameters", target=mid, where=where)
                continue
            m = _IO.match(mid)
            if m is None:
                raise PetabError(f"{where}: cannot read modelEntityId {mid!r} (expected <net>.inputs[i][j], "
                                 f"<net>.outputs[k][j] or <net>.parameters...)")
            arg = int(m["arg"]) if m["arg"] is not None else None
            idx = tuple(int(v) for v in m["idx"].split(",")) if m["idx"] is not None else None
            n_args = len(self.nets[net].input_specs) if m["kind"] == "inputs" else None
            if arg is None:
                if n_args is not None and n_args != 1:
                    raise PetabError(f"{where}: {mid!r}: network {net!r} has {n_args} inputs; name one ([i])")
                arg = 0
            if n_args is not None and arg >= n_args:
                raise PetabError(f"{where}: {mid!r}: network {net!r} has {n_args} input(s)")
            self.entities[pid] = _Entity(pid, net, m["kind"], arg, idx, mid, where)

    def _check_param_target(self, target: str, net: str, where: str) -> None:
        try:
            set_network_parameters({}, self.nets[net], target, 0.0)
        except DataError as e:
            raise PetabError(f"{where}: {e}") from None

    def network_parameter_rows(self, df, origin) -> list[int]:
        """Positions of the parameter-table rows that set network parameters (read here)."""
        rows = []
        for k, row in df.iterrows():
            pid = "" if _empty(row.get("parameterId")) else str(row["parameterId"]).strip()
            e = self.entities.get(pid)
            if e is None:
                continue
            where = where_of(origin, k, pid)
            if e.kind == "outputs":
                raise PetabError(f"{where}: {pid!r} is a network output ({e.target}); it cannot be a parameter")
            if e.kind != "parameters":
                continue
            rows.append(k)
            scale = "lin" if _empty(row.get("parameterScale")) else str(row["parameterScale"]).strip()
            if scale != "lin":
                raise PetabError(f"{where}: parameterScale {scale!r} on network parameters is not supported (lin)")
            for col in ("lowerBound", "upperBound"):
                v = row.get(col)
                if not _empty(v) and np.isfinite(_float(v, f"{where}, {col}")):
                    raise PetabError(f"{where}: finite {col} on network parameters is not supported")
            est = "" if _empty(row.get("estimate")) else str(row["estimate"]).strip().lower()
            if est not in _ESTIMATE:
                raise PetabError(f"{where}: estimate must be 0/1 or true/false, got {row.get('estimate')!r}")
            nominal = "" if _empty(row.get("nominalValue")) else str(row["nominalValue"]).strip()
            value = None if nominal in ("", ARRAY) else _float(nominal, f"{where}, nominalValue")
            kind = row.get("priorDistribution", row.get("objectivePriorType"))
            values = row.get("priorParameters", row.get("objectivePriorParameters"))
            prior = None if _empty(kind) else petab_prior(str(kind).strip(), "" if _empty(values) else str(values),
                                                          where)
            self.param_rows.append((e, {"value": value, "estimate": _ESTIMATE[est] == "1", "prior": prior,
                                        "where": where}))
        return rows

    # ------------------------------------------------------------ per condition
    def condition_input(self, target: str) -> bool:
        """Whether the condition table's ``target`` is a network input set per condition."""
        e = self.entities.get(target)
        if e is None or e.kind != "inputs":
            return False
        if target in self.hyb or self.b.name(target) in self.b.params:
            return False
        self.condition_inputs.add(target)
        return True

    def condition_values(self, eid: str, cid: str) -> dict[str, float]:
        """Array-input elements of experiment ``eid`` (its condition ``cid``); checks that
        every network input set by conditions is set in ``cid``."""
        for pid in sorted(self.condition_inputs):
            if pid not in self.conditions.get(cid, {}):
                raise PetabError(f"network input {pid!r} ({self.entities[pid].target}) is set in the condition table, "
                                 f"but not by condition {cid!r} of experiment {eid!r}")
        out: dict[str, float] = {}
        for pid, (names, shape) in self.array_inputs.items():
            arrays = self.file_inputs[pid]
            if "0" in arrays:
                value = arrays["0"]
            else:
                keys = [k for k in arrays if cid and cid in [c.strip() for c in k.split(";")]]
                if len(keys) != 1:
                    raise PetabError(f"{self.input_file[pid]}: input {pid!r} has {len(keys)} arrays for condition "
                                     f"{cid!r} of experiment {eid!r} (expected one, or one named '0' for all)")
                value = arrays[keys[0]]
            if value.shape != shape:
                raise PetabError(f"{self.input_file[pid]}: input {pid!r} has shape {value.shape} for condition "
                                 f"{cid!r}, expected {shape}")
            out.update(zip(names, value.reshape(-1).tolist()))
        return out

    # ------------------------------------------------------------------ resolve
    def resolve(self, conditions: dict[str, dict[str, Any]]) -> None:
        self.conditions = conditions
        b = self.b
        for pid, (_, where) in self.hyb.items():
            e = self.entities.get(pid)
            if e is not None and e.kind != "inputs":
                raise PetabError(f"{where}: targetId {pid!r} is a network {e.kind[:-1]}; only inputs can be targets")
        outputs: dict[str, tuple[str, int]] = {}
        for nid in self.nets:
            self._network(nid, outputs)
        # hybridization targets that are model entities: replaced parameters, assignments, initial values
        for tid, (text, where) in self.hyb.items():
            if tid in self.entities:
                continue
            name = b.name(tid)
            node = b._formula(text, f"{where}, targetValue", {})
            dynamic = bool(_expr.net_calls(node)) or not (_expr.symbols(node) <= set(b.params))
            if name in b.sbml.states or name in b.sbml.species:
                if dynamic:
                    raise PetabError(f"{where}: the initial value of {tid!r} must not depend on states, time or a "
                                     f"network evaluated during the simulation")
                self.initial[name] = node
            elif name in b.params:
                if name in b.estimated:
                    raise PetabError(f"{where}: {tid!r} is estimated; a network output can only set a "
                                     f"non-estimated parameter")
                self.replaced.add(name)
                if dynamic:  # replaced wherever it is used: evaluated at every step
                    self.substitutions[name] = node
                    b.extra[tid] = node
                    del b.params[name]
                else:
                    self.assignments[name] = node
            else:
                raise PetabError(f"{where}: unknown targetId {tid!r} (not a network input, parameter or species)")
        self._network_parameters()

    def _input(self, e: _Entity, static: bool) -> Expr:
        """The expression of one scalar network input."""
        b = self.b
        if e.pid in self.hyb:
            text, where = self.hyb[e.pid]
            if text == ARRAY:
                raise PetabError(f"{where}: {e.pid!r} is one element ({e.target}); an array fills a whole input")
            node = b._formula(text, f"{where}, targetValue", {})
            if static and (_expr.net_calls(node) or not _expr.symbols(node) <= set(b.params)):
                raise PetabError(f"{where}: an input of pre-initialization network {e.net!r} must depend on "
                                 f"parameters only, not on states or time")
            return node
        if b.name(e.pid) in b.params:
            return Sym(b.name(e.pid))
        if e.pid in self.condition_inputs:
            self._new_param(e.pid, e.where)
            return Sym(e.pid)
        raise PetabError(f"{e.where}: network input {e.pid!r} ({e.target}) is not assigned: not in the hybridization, "
                         f"parameter or condition table, nor an array")

    def _new_param(self, name: str, where: str) -> None:
        b = self.b
        taken = set(b.params) | set(b.sbml.states) | b.sbml.species
        if name in taken:
            raise PetabError(f"{where}: {name!r} is also a model id")
        if not re.match(r"^[A-Za-z_]\w*$", name) or name in _expr.RESERVED or name == _expr.TIME:
            raise PetabError(f"{where}: {name!r} cannot be a parameter name of the spec")
        b.params[name] = 0.0  # set per condition, or by an assignment

    def _network(self, nid: str, outputs) -> None:
        b, net, static = self.b, self.nets[nid], self.static[nid]
        ents = [e for e in self.entities.values() if e.net == nid]
        n_args = len(net.input_specs)
        shapes: list[tuple[int, ...] | None] = list(net.input_shapes)
        whole = {e.arg: e for e in ents if e.kind == "inputs" and e.index is None}
        for arg, e in whole.items():
            value = self.hyb.get(e.pid, (ARRAY, ""))[0]
            if value != ARRAY or e.pid not in self.file_inputs:
                raise PetabError(f"{e.where}: input {e.pid!r} ({e.target}) is a whole network input: it must be an "
                                 f"array ('array' in the hybridization table, the array in an array file)")
            found = {a.shape for a in self.file_inputs[e.pid].values()}
            if len(found) != 1:
                raise PetabError(f"{self.input_file[e.pid]}: input {e.pid!r} has arrays of different shapes {found}")
            shapes[arg] = found.pop()
        for arg in range(n_args):  # a shape not inferable from the graph: the extent of the mapped elements
            idx = [e.index for e in ents if e.kind == "inputs" and e.arg == arg and e.index is not None]
            if shapes[arg] is None and idx and len({len(i) for i in idx}) == 1:
                shapes[arg] = tuple(int(v) + 1 for v in np.max(np.array(idx), axis=0))
        try:
            net = net.with_input_shapes(shapes)
            out_shapes = net.output_shapes()
        except SpecError as e:
            raise PetabError(f"network {nid!r}: {e}") from None
        missing = [i for i, s in enumerate(net.input_shapes) if s is None]
        if missing and any(e.kind == "outputs" for e in ents):
            raise PetabError(f"network {nid!r}: the shape of input(s) {missing} is unknown (map each element in the "
                             f"mapping table, or give the input as an array)")
        self.nets[nid] = net
        args: list[Expr] = []
        for arg in range(n_args):
            shape = net.input_shapes[arg]
            n = int(np.prod(shape)) if shape is not None else 0
            if arg in whole:
                pid = whole[arg].pid
                names = [f"{pid}_{i}" for i in range(n)]
                for name in names:
                    self._new_param(name, whole[arg].where)
                self.array_inputs[pid] = (names, tuple(shape))
                args.extend(Sym(name) for name in names)
                continue
            elements: list[Expr | None] = [None] * n
            for e in ents:
                if e.kind != "inputs" or e.arg != arg:
                    continue
                try:
                    flat = int(np.ravel_multi_index(e.index, shape)) if len(e.index) > 1 or len(shape) > 1 \
                        else e.index[0]
                except ValueError:
                    flat = n
                if not 0 <= flat < n:
                    raise PetabError(f"{e.where}: {e.target!r} is outside input {arg} of shape {shape}")
                if elements[flat] is not None:
                    raise PetabError(f"{e.where}: {e.target!r} is mapped twice")
                elements[flat] = self._input(e, static)
            unset = [i for i, x in enumerate(elements) if x is None]
            if unset and any(e.kind == "outputs" for e in ents):
                raise PetabError(f"network {nid!r}: input element(s) {nid}.inputs[{arg}] at flat position(s) {unset} "
                                 f"are not in the mapping table")
            args.extend(x for x in elements if x is not None)
        offsets = np.concatenate([[0], np.cumsum([int(np.prod(s)) for s in out_shapes])])
        for e in ents:
            if e.kind != "outputs":
                continue
            if e.arg >= len(out_shapes):
                raise PetabError(f"{e.where}: {e.target!r}: network {nid!r} has {len(out_shapes)} output(s)")
            shape = out_shapes[e.arg]
            if e.index is None:
                if int(np.prod(shape)) != 1:
                    raise PetabError(f"{e.where}: {e.target!r} is an output of shape {shape}; index one element")
                flat = 0
            else:
                idx = e.index
                if len(idx) == 1 and len(shape) > 1:  # one index into a (1, n) or flattened output
                    flat = idx[0]
                else:
                    try:
                        flat = int(np.ravel_multi_index(idx, shape))
                    except ValueError:
                        flat = -1
                if not 0 <= flat < int(np.prod(shape)):
                    raise PetabError(f"{e.where}: {e.target!r} is outside output {e.arg} of shape {shape}")
            call = NetCall(nid, tuple(args), int(offsets[e.arg] + flat))
            if static:
                self._new_param(e.pid, e.where)
                self.assignments[e.pid] = call
                b.extra[e.pid] = Sym(e.pid)
            else:
                b.extra[e.pid] = call
            outputs[e.pid] = (nid, int(offsets[e.arg] + flat))

    def _network_parameters(self) -> None:
        for nid, net in self.nets.items():
            shapes = dict(net.shapes())
            if not shapes:
                continue
            values: dict[str, np.ndarray] = {}
            for name, (arr, f) in self.file_params.items():
                if not name.startswith(nid + "."):
                    continue
                if name not in shapes:
                    raise PetabError(f"{f}: {name!r} is not a parameter of network {nid!r}; its parameters: "
                                     f"{', '.join(shapes)}")
                if arr.shape != shapes[name]:
                    raise PetabError(f"{f}: {name!r} has shape {arr.shape}, expected {shapes[name]} (PyTorch order)")
                values[name] = arr
            rows = sorted([(e, r) for e, r in self.param_rows if e.net == nid], key=lambda er: er[0].target.count("[")
                          + er[0].target.count("].") )
            if not rows:
                raise PetabError(f"network {nid!r}: its parameters are not in the parameter table (map "
                                 f"{nid}.parameters in the mapping table and list it in the parameter table)")
            setting: dict[str, dict[str, Any]] = {}  # array -> the most specific row
            prior: dict[str, Any] = {}
            for e, r in rows:  # from the whole network to single arrays: the more specific wins
                names = set(set_network_parameters({}, net, e.target, 0.0))
                if r["value"] is not None:
                    values.update({n: v for n, v in set_network_parameters({}, net, e.target, r["value"]).items()})
                for n in names:
                    setting[n] = r
                    if r["prior"] is not None:
                        prior[n] = r["prior"]
            for name in shapes:
                if name not in setting:
                    raise PetabError(f"network {nid!r}: {name!r} is in no parameter-table row (map "
                                     f"{nid}.parameters in the mapping table)")
                if name not in values:
                    raise PetabError(f"{setting[name]['where']}: no value for {name!r}: not in the array files and "
                                     f"no numeric nominalValue")
                self.nominal[name] = np.asarray(values[name], dtype=float)
                if setting[name]["estimate"]:
                    self.estimated.append(name)
                    if name in prior:
                        self.priors[name] = prior[name]

    # --------------------------------------------------------------------- spec
    def spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The SBML-derived spec with networks, assignments, substituted equations and initial values."""
        spec = dict(spec)
        if self.substitutions:
            eqs = {}
            for s, text in spec["equations"].items():
                eqs[s] = _expr.to_string(substitute(_expr.parse(text, f"equation of {s}"), self.substitutions))
            spec["equations"] = eqs
            for s, text in (spec.get("initial") or {}).items():
                used = _expr.symbols(_expr.parse(text, f"initial value of {s}")) & set(self.substitutions)
                if used and s not in self.initial:
                    raise PetabError(f"the initial value of {s!r} uses {sorted(used)}, which a network evaluated "
                                     f"during the simulation replaces")
        if self.initial:
            spec["initial"] = {**(spec.get("initial") or {}), **{s: _expr.to_string(e) for s, e in self.initial.items()}}
        if self.assignments:
            spec["assignments"] = {k: _expr.to_string(v) for k, v in self.assignments.items()}
        if self.nets:
            spec["networks"] = {n: net.to_dict() for n, net in self.nets.items()}
        return spec
