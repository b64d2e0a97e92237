r"""SBML (read with python-libsbml) -> the pyude model spec.

The math of the SBML file is walked node by node into the spec's own expression
trees (:mod:`pyude.spec._expr`); nothing is evaluated. The conversion:

* **states**: species that are not the target of an assignment rule, and
  parameters (or species) with a rate rule. A species in a compartment of size
  $V$ is a concentration $c = n/V$ unless ``hasOnlySubstanceUnits`` (then an amount
  $n$); its symbol in the math means the same quantity, as in SBML.
* **right-hand sides**: $\dot c_i = \tfrac{1}{V_i}\sum_j s_{ij} v_j$ (amount
  species: without $1/V_i$) over the reactions' kinetic laws $v_j$ (amount per
  time; local parameters replaced by their values); a rate rule gives
  $\dot x$ directly; boundary and constant species have $\dot x = 0$.
* **parameters**: constant parameters and compartment sizes (constant).
* **assignment rules** are substituted into every expression that uses their target
  (recursively); **function definitions** are inlined; **initial assignments** and
  initial values become the spec's ``initial`` expressions of parameters (other
  species' initial values and assignment rules at $t = 0$ substituted).

* **events** become the spec's ``events``: the trigger (comparisons combined by and/or, assignment rules
  substituted), ``initialValue`` (default true), and the assignments, evaluated at the
  trigger time (without delays ``useValuesFromTriggerTime`` and ``persistent`` change
  nothing). A parameter assigned by an event becomes a state with $\dot x = 0$ starting
  at its value.

Refused by name (``PetabError`` naming the file and the id): event delays, priorities
that are not constant numbers, triggers other than comparisons combined by and/or, algebraic
rules, delays, non-constant compartments, variable stoichiometry, fast
reactions, ``rateOf`` of an assignment-rule target, in initial values or events, or of
a rate that reads itself, and math the spec cannot express. Other ``rateOf(x)`` become
x's right-hand side (0 for a constant).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from ..spec import _expr
from ..spec._events import trigger_problem
from ..spec._expr import Call, Expr, NetCall, Num, Op, Sym
from ._errors import PetabError

_TIME = Sym(_expr.TIME)


def _libsbml():
    try:
        import libsbml
    except ImportError:  # pragma: no cover - depends on the environment
        raise PetabError(
            "reading SBML needs python-libsbml: pip install 'pyude[petab]'"
        ) from None
    return libsbml


RATE_OF = "rateOf"  # SBML's csymbol rateOf: not a spec function, replaced before the spec is built


def substitute(node: Expr, env: dict[str, Expr]) -> Expr:
    """``node`` with every symbol in ``env`` replaced by its tree (one pass)."""
    if isinstance(node, Sym):
        return env.get(node.name, node)
    if isinstance(node, Op):
        return Op(node.op, tuple(substitute(a, env) for a in node.args))
    if isinstance(node, Call) and node.fn == RATE_OF:
        # the rate OF an id: renaming applies, an assignment rule's expansion does not
        new = env.get(node.args[0].name)
        return Call(RATE_OF, (new,)) if isinstance(new, Sym) else node
    if isinstance(node, Call):
        return Call(node.fn, tuple(substitute(a, env) for a in node.args))
    if isinstance(node, NetCall):
        return NetCall(node.net, tuple(substitute(a, env) for a in node.args), node.index)
    return node


def _map_rate_of(node: Expr, rate_of) -> Expr:
    """``node`` with every ``rateOf(x)`` replaced by ``rate_of(x)``."""
    if isinstance(node, Call) and node.fn == RATE_OF:
        return rate_of(node.args[0].name)
    if isinstance(node, Op):
        return Op(node.op, tuple(_map_rate_of(a, rate_of) for a in node.args))
    if isinstance(node, Call):
        return Call(node.fn, tuple(_map_rate_of(a, rate_of) for a in node.args))
    if isinstance(node, NetCall):
        return NetCall(node.net, tuple(_map_rate_of(a, rate_of) for a in node.args), node.index)
    return node


def _has_rate_of(node: Expr) -> bool:
    if isinstance(node, Call) and node.fn == RATE_OF:
        return True
    return isinstance(node, (Op, Call, NetCall)) and any(_has_rate_of(a) for a in node.args)


def _resolve_rate_of(equations: dict[str, Expr], rules: dict[str, Expr], parameters, r) -> tuple[dict, dict]:
    """``(equations, rules)`` with ``rateOf(x)`` replaced by x's right-hand side: a state's
    equation (itself resolved; a rate that reads itself is a cycle), 0 for a constant
    parameter or compartment. The rate of an assignment-rule target is refused by name."""
    done: dict[str, Expr] = {}
    visiting: set[str] = set()

    def rate_of(name: str) -> Expr:
        if name in done:
            return done[name]
        if name in rules:
            raise r.refuse("rateOf of an assignment-rule target", name)
        if name not in equations:
            if name in parameters:
                return Num(0.0)
            raise PetabError(f"{r.path}: rateOf({name}): {name!r} is not a species, parameter or compartment")
        if name in visiting:
            raise r.refuse("rateOf cycles (a rate that reads itself)", name)
        visiting.add(name)
        out = done[name] = _simplify(_map_rate_of(equations[name], rate_of))
        visiting.discard(name)
        return out

    if not any(_has_rate_of(e) for e in [*equations.values(), *rules.values()]):
        return equations, rules
    return ({s: rate_of(s) for s in equations},
            {k: _simplify(_map_rate_of(v, rate_of)) for k, v in rules.items()})


def _simplify(node: Expr) -> Expr:
    """Fold ``x * 1``, ``x / 1``, ``x + 0`` and numeric subtrees (keeps trees small)."""
    if isinstance(node, Op):
        args = tuple(_simplify(a) for a in node.args)
        if all(isinstance(a, Num) for a in args):
            v = [a.value for a in args]
            try:
                out = {"neg": lambda: -v[0], "+": lambda: v[0] + v[1], "-": lambda: v[0] - v[1],
                       "*": lambda: v[0] * v[1], "/": lambda: v[0] / v[1], "^": lambda: v[0] ** v[1]}[node.op]()
                if isinstance(out, float) and math.isfinite(out):
                    return Num(out)
            except (ZeroDivisionError, OverflowError, TypeError):
                pass
        if node.op == "*":
            if isinstance(args[0], Num) and args[0].value == 1.0:
                return args[1]
            if isinstance(args[1], Num) and args[1].value == 1.0:
                return args[0]
        if node.op == "/" and isinstance(args[1], Num) and args[1].value == 1.0:
            return args[0]
        if node.op == "+" and isinstance(args[1], Num) and args[1].value == 0.0:
            return args[0]
        return Op(node.op, args)
    if isinstance(node, Call):
        return Call(node.fn, tuple(_simplify(a) for a in node.args))
    return node


@dataclass
class SbmlModel:
    """The spec of an SBML model and what PEtab needs to know about its ids."""

    spec: dict
    states: list[str]
    parameters: dict[str, float]  # constant parameters and compartment sizes
    compartments: set[str]
    species: set[str]
    rules: dict[str, Expr]  # assignment rules, fully substituted (may depend on t, states, parameters)
    rename: dict[str, str] = field(default_factory=dict)  # SBML id -> spec name, where they differ
    event_parameters: set[str] = field(default_factory=set)  # SBML parameters made states: events assign them
    # such parameters whose initial value is a parameter of its own (read_sbml's initial_parameters):
    # SBML id -> that parameter's name (the state is renamed <id>_state)
    initial_parameters: dict[str, str] = field(default_factory=dict)

    def name(self, sbml_id: str) -> str:
        return self.rename.get(sbml_id, sbml_id)


class _Reader:
    def __init__(self, path: Path):
        self.path = path
        libsbml = _libsbml()
        self.L = libsbml
        doc = libsbml.readSBMLFromFile(str(path))
        errors = [
            doc.getError(i) for i in range(doc.getNumErrors())
            if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR
        ]
        if errors:
            raise PetabError(f"{path}: invalid SBML: {errors[0].getMessage().strip()}")
        self.model = doc.getModel()
        if self.model is None:
            raise PetabError(f"{path}: the SBML document has no model")
        self.functions: dict[str, tuple[list[str], object]] = {}
        for fd in self.model.getListOfFunctionDefinitions():
            lam = fd.getMath()
            args = [lam.getChild(i).getName() for i in range(lam.getNumBvars())]
            self.functions[fd.getId()] = (args, lam.getChild(lam.getNumChildren() - 1))

    def refuse(self, what: str, ident: str = "") -> PetabError:
        return PetabError(f"{self.path}: {what}{f' ({ident!r})' if ident else ''} is not supported")

    # ------------------------------------------------------------------- math
    def math(self, ast, where: str, local: dict[str, Expr] | None = None) -> Expr:
        if ast is None:
            raise PetabError(f"{self.path}: {where} has no math")
        return _simplify(self._node(ast, where, local or {}))

    def _node(self, a, where: str, local: dict[str, Expr]) -> Expr:  # noqa: C901 - one case per MathML element
        L = self.L
        t = a.getType()
        kids = [self._node(a.getChild(i), where, local) for i in range(a.getNumChildren())]
        if t == L.AST_INTEGER:
            return Num(float(a.getInteger()))
        if t in (L.AST_REAL, L.AST_REAL_E, L.AST_RATIONAL):
            v = a.getReal()
            if not math.isfinite(v):
                raise PetabError(f"{self.path}: {where}: non-finite number {v} is not supported")
            return Num(float(v))
        if t == L.AST_NAME:
            name = a.getName()
            return local.get(name, Sym(name))
        if t == L.AST_NAME_TIME:
            return _TIME
        if t == L.AST_NAME_AVOGADRO:
            return Num(float(a.getReal()))  # libsbml's value of the SBML Level 3 constant
        if t == L.AST_CONSTANT_PI:
            return Num(math.pi)
        if t == L.AST_CONSTANT_E:
            return Num(math.e)
        if t == L.AST_CONSTANT_TRUE:
            return Num(1.0)
        if t == L.AST_CONSTANT_FALSE:
            return Num(0.0)
        if t in (L.AST_PLUS, L.AST_TIMES):
            # MathML's n-ary plus/times; with no operands, the identity
            op, identity = ("+", 0.0) if t == L.AST_PLUS else ("*", 1.0)
            return functools.reduce(lambda a, b: Op(op, (a, b)), kids) if kids else Num(identity)
        if t == L.AST_MINUS:
            return Op("neg", (kids[0],)) if len(kids) == 1 else Op("-", (kids[0], kids[1]))
        if t == L.AST_DIVIDE:
            return Op("/", (kids[0], kids[1]))
        if t in (L.AST_POWER, L.AST_FUNCTION_POWER):
            return Op("^", (kids[0], kids[1]))
        if t == L.AST_FUNCTION_ROOT:
            if len(kids) == 1:
                return Call("sqrt", (kids[0],))
            return Op("^", (kids[1], Op("/", (Num(1.0), kids[0]))))
        if t == L.AST_FUNCTION_LOG:
            if len(kids) == 1:
                return Call("log10", (kids[0],))
            base, x = kids
            if isinstance(base, Num) and base.value == 10.0:
                return Call("log10", (x,))
            return Op("/", (Call("log", (x,)), Call("log", (base,))))
        simple = {
            L.AST_FUNCTION_EXP: "exp", L.AST_FUNCTION_LN: "log", L.AST_FUNCTION_ABS: "abs",
            L.AST_FUNCTION_SIN: "sin", L.AST_FUNCTION_COS: "cos", L.AST_FUNCTION_TAN: "tan",
            L.AST_FUNCTION_SINH: "sinh", L.AST_FUNCTION_COSH: "cosh", L.AST_FUNCTION_TANH: "tanh",
            L.AST_FUNCTION_FLOOR: "floor", L.AST_FUNCTION_CEILING: "ceil",
            L.AST_FUNCTION_ARCSIN: "asin", L.AST_FUNCTION_ARCCOS: "acos", L.AST_FUNCTION_ARCTAN: "atan",
            L.AST_LOGICAL_NOT: "not",
            L.AST_RELATIONAL_LT: "lt", L.AST_RELATIONAL_LEQ: "le", L.AST_RELATIONAL_GT: "gt",
            L.AST_RELATIONAL_GEQ: "ge", L.AST_RELATIONAL_EQ: "eq", L.AST_RELATIONAL_NEQ: "ne",
        }
        if t in simple:
            fn = simple[t]
            if fn in ("lt", "le", "gt", "ge", "eq") and len(kids) > 2:
                # n-ary relation: a < b < c means (a < b) and (b < c)
                return Call("and", tuple(Call(fn, (kids[i], kids[i + 1])) for i in range(len(kids) - 1)))
            return Call(fn, tuple(kids))
        if t in (L.AST_LOGICAL_AND, L.AST_LOGICAL_OR):
            fn = "and" if t == L.AST_LOGICAL_AND else "or"
            if not kids:
                return Num(1.0 if fn == "and" else 0.0)
            return Call(fn, tuple(kids))
        if t == L.AST_FUNCTION_PIECEWISE:
            return Call("piecewise", tuple(kids))
        if t == L.AST_FUNCTION:
            name = a.getName()
            if name not in self.functions:
                raise PetabError(f"{self.path}: {where}: unknown function {name!r}")
            args, body = self.functions[name]
            if len(args) != len(kids):
                raise PetabError(f"{self.path}: {where}: function {name!r} takes {len(args)} argument(s), got {len(kids)}")
            # the body sees only its arguments (SBML function definitions are closed)
            return self._node(body, f"{where} (function {name!r})", dict(zip(args, kids)))
        if t == L.AST_FUNCTION_RATE_OF:
            if len(kids) != 1 or not isinstance(kids[0], Sym):
                raise PetabError(f"{self.path}: {where}: rateOf takes one id")
            return Call(RATE_OF, (kids[0],))  # resolved once the equations are known (_resolve_rate_of)
        if t == L.AST_FUNCTION_DELAY:
            raise self.refuse(f"{where}: delay()")
        names = {v: k for k, v in vars(L).items() if k.startswith("AST_") and isinstance(v, int)}
        raise self.refuse(f"{where}: MathML element {names.get(t, t)} ({a.getName() or ''})")


def _reserved(name: str) -> bool:
    return name == _expr.TIME or name in _expr.RESERVED


def read_sbml(path: str | Path, initial_parameters: Collection[str] = ()) -> SbmlModel:
    """Convert an SBML file into a spec dict (see the module docstring).

    ``initial_parameters``: ids (PEtab's parameter table) whose initial value must stay a
    parameter under its own id where they are SBML parameters that events assign (to fix or
    estimate that value): the time-varying quantity becomes the state ``<id>_state`` (what
    every formula reads), starting from the parameter ``<id>``. Other ids are ignored."""
    path = Path(path)
    if not path.is_file():
        raise PetabError(f"SBML file {str(path)!r} not found")
    r = _Reader(path)
    L, m = r.L, r.model

    if m.getNumConstraints():
        raise r.refuse("constraints", m.getConstraint(0).getMetaId() or "")
    for i in range(m.getNumRules()):
        rule = m.getRule(i)
        if rule.isAlgebraic():
            raise r.refuse("algebraic rules", rule.getMetaId() or f"rule {i}")
    if m.getPlugin("comp") is not None and m.getPlugin("comp").getNumSubmodels():
        raise r.refuse("hierarchical models (comp)")

    rename: dict[str, str] = {}
    used = {c.getId() for c in m.getListOfCompartments()} | {s.getId() for s in m.getListOfSpecies()} | {
        p.getId() for p in m.getListOfParameters()} | {x.getId() for x in m.getListOfReactions()}
    for ident in sorted(used):
        if _reserved(ident):
            new = ident + "_"
            while new in used or _reserved(new):
                new += "_"
            rename[ident] = new

    # the ids that events assign among the plain parameters (as `event_parameters` below)
    rules_of = [m.getRule(i) for i in range(m.getNumRules())]
    assigned_by_events = (
        {ea.getVariable() for ev in m.getListOfEvents() for ea in ev.getListOfEventAssignments()}
        & {p.getId() for p in m.getListOfParameters()}
    ) - {rule.getVariable() for rule in rules_of if rule.isRate() or rule.isAssignment()}
    split: dict[str, str] = {}  # state name -> the parameter holding its initial value
    initial_parameters = sorted(set(initial_parameters) & assigned_by_events)
    for ident in initial_parameters:
        base = rename.get(ident, ident)
        new = base + "_state"
        while new in used or _reserved(new) or new in rename.values():
            new += "_"
        rename[ident] = new
        split[new] = base

    def nm(ident: str) -> str:
        return rename.get(ident, ident)

    def rn(node: Expr) -> Expr:
        return substitute(node, {k: Sym(v) for k, v in rename.items()}) if rename else node

    # --------------------------------------------------------- rules
    assignment: dict[str, Expr] = {}
    rate: dict[str, Expr] = {}
    for i in range(m.getNumRules()):
        rule = m.getRule(i)
        var = rule.getVariable()
        node = rn(r.math(rule.getMath(), f"rule for {var!r}"))
        if rule.isAssignment():
            assignment[nm(var)] = node
        elif rule.isRate():
            rate[nm(var)] = node

    # parameters changed by events are states with derivative 0 (their value is their initial value)
    event_targets = {nm(ea.getVariable()) for ev in m.getListOfEvents() for ea in ev.getListOfEventAssignments()}

    # --------------------------------------------------------- compartments
    compartments: dict[str, float] = {}
    for c in m.getListOfCompartments():
        if not c.getConstant() or nm(c.getId()) in rate:
            raise r.refuse("non-constant compartments", c.getId())
        if nm(c.getId()) in assignment:
            raise r.refuse("compartments set by an assignment rule", c.getId())
        compartments[nm(c.getId())] = c.getSize() if c.isSetSize() else 1.0

    # --------------------------------------------------------- parameters
    parameters: dict[str, float] = dict(compartments)
    param_states: list[str] = []
    for p in m.getListOfParameters():
        pid = nm(p.getId())
        if pid in assignment:
            continue
        if pid in rate or pid in event_targets:
            param_states.append(pid)  # its SBML value is its initial value (set below)
            if pid in split:
                parameters[split[pid]] = float(p.getValue() if p.isSetValue() else 0.0)
        else:
            parameters[pid] = float(p.getValue() if p.isSetValue() else 0.0)

    # --------------------------------------------------------- species
    species_ids: list[str] = []
    amount: dict[str, bool] = {}
    comp_of: dict[str, str] = {}
    init: dict[str, Expr] = {}
    for s in m.getListOfSpecies():
        sid = nm(s.getId())
        species_ids.append(sid)
        amount[sid] = bool(s.getHasOnlySubstanceUnits())
        comp_of[sid] = nm(s.getCompartment())
        V = Sym(comp_of[sid])
        if s.isSetInitialConcentration():
            c0 = Num(float(s.getInitialConcentration()))
            init[sid] = Op("*", (c0, V)) if amount[sid] else c0
        elif s.isSetInitialAmount():
            n0 = Num(float(s.getInitialAmount()))
            init[sid] = n0 if amount[sid] else Op("/", (n0, V))
        else:
            init[sid] = Num(0.0)
    for p in m.getListOfParameters():
        pid = nm(p.getId())
        if pid in rate or pid in event_targets:
            init[pid] = Sym(split[pid]) if pid in split else Num(float(p.getValue() if p.isSetValue() else 0.0))
    for ia in m.getListOfInitialAssignments():
        sym = nm(ia.getSymbol())
        node = rn(r.math(ia.getMath(), f"initial assignment of {ia.getSymbol()!r}"))
        if sym in compartments:
            raise r.refuse("initial assignments to compartments", ia.getSymbol())
        if sym in parameters:
            # a parameter computed from others: an assignment rule at t0 (constant in time)
            assignment[sym] = node
            del parameters[sym]
        else:
            init[sym] = node

    states = [s for s in species_ids if s not in assignment] + param_states
    species_set = set(species_ids)

    # assignment rules substituted into each other until they are closed
    rules = _close(assignment, r)

    # --------------------------------------------------------- reactions
    rhs: dict[str, Expr | None] = {s: None for s in states}

    def add(sid: str, term: Expr) -> None:
        rhs[sid] = term if rhs[sid] is None else Op("+", (rhs[sid], term))

    for rx in m.getListOfReactions():
        rid = rx.getId()
        if rx.isSetFast() and rx.getFast():
            raise r.refuse("fast reactions", rid)
        kl = rx.getKineticLaw()
        if kl is None or kl.getMath() is None:
            raise PetabError(f"{path}: reaction {rid!r} has no kinetic law")
        local = {lp.getId(): Num(float(lp.getValue())) for lp in kl.getListOfLocalParameters()}
        local.update({lp.getId(): Num(float(lp.getValue())) for lp in kl.getListOfParameters()})
        v = rn(r.math(kl.getMath(), f"kinetic law of reaction {rid!r}", local))
        for sign, refs in ((-1.0, rx.getListOfReactants()), (1.0, rx.getListOfProducts())):
            for ref in refs:
                if ref.isSetStoichiometryMath() or (ref.isSetId() and ref.getId()):
                    raise r.refuse("variable stoichiometry", f"{rid}: {ref.getSpecies()}")
                sid = nm(ref.getSpecies())
                sp = m.getSpecies(ref.getSpecies())
                if sp.getBoundaryCondition() or sp.getConstant() or sid in rate or sid in assignment:
                    continue  # not changed by reactions
                coeff = float(ref.getStoichiometry()) if ref.isSetStoichiometry() else 1.0
                term: Expr = v if coeff == 1.0 else Op("*", (Num(coeff), v))
                if not amount[sid]:
                    term = Op("/", (term, Sym(comp_of[sid])))
                add(sid, term if sign > 0 else Op("neg", (term,)))
    for sid, node in rate.items():
        rhs[sid] = node  # on a concentration species: dc/dt directly, as SBML defines it

    equations = {s: _simplify(substitute(rhs[s], rules)) if rhs[s] is not None else Num(0.0) for s in states}
    reading_rates = [k for k, e in init.items() if _has_rate_of(e)]
    if reading_rates:
        raise r.refuse("rateOf in initial values or initial assignments", reading_rates[0])
    equations, rules = _resolve_rate_of(equations, rules, parameters, r)

    # --------------------------------------------------------- initial values
    initial = _initial_values(states, init, rules, parameters, r)

    spec = {
        "name": _safe_name(m.getId() or path.stem),
        "states": states,
        "parameters": dict(parameters),
        "equations": {s: _expr.to_string(e) for s, e in equations.items()},
        "initial": {s: _expr.to_string(e) for s, e in initial.items()},
    }
    events = _events(m, r, rn, nm, rules, set(states), set(compartments))
    if events:
        spec["events"] = events
    return SbmlModel(
        spec, states, dict(parameters), set(compartments), species_set, rules, rename,
        event_parameters=set(param_states) & event_targets - set(rate),
        initial_parameters={sid: split[rename[sid]] for sid in initial_parameters},
    )


def _events(m, r: _Reader, rn, nm, rules: dict[str, Expr], states: set[str], compartments: set[str]) -> list[dict]:
    """SBML events as spec events: a trigger of comparisons combined by and/or, assignments to states
    (species, or parameters made states), evaluated at the trigger time. Delays, other
    triggers and priorities other than constant numbers are refused by name.

    Priorities order simultaneous events: SBML executes them from the highest priority
    down, each with the values at the trigger time, so the lowest priority's assignment to
    a shared target is the one that stays; the spec applies simultaneous events in its
    list order, so the events are listed by decreasing priority."""
    out: list[dict] = []
    priority: list[float] = []
    n = m.getNumEvents()
    prioritised = any(m.getEvent(k).isSetPriority() for k in range(n))
    for k in range(n):
        ev = m.getEvent(k)
        eid = ev.getId() or f"event {k}"
        if ev.isSetDelay():
            raise r.refuse("event delays", eid)
        trig = ev.getTrigger()
        rank = 0.0
        if prioritised and n > 1:
            prio = ev.getPriority() if ev.isSetPriority() else None
            value = None if prio is None or prio.getMath() is None else _simplify(
                substitute(rn(r.math(prio.getMath(), f"priority of event {eid!r}")), rules))
            if not isinstance(value, Num):
                raise r.refuse("event priorities that are not constant numbers (with more than one event, "
                               "every event needs one)", eid)
            if trig is not None and trig.isSetPersistent() and not trig.getPersistent():
                # a higher-priority event could make its trigger false before it executes
                raise r.refuse("non-persistent triggers of prioritised events", eid)
            if not ev.getUseValuesFromTriggerTime():
                # its values would be read after the higher-priority events ran, not at y-
                raise r.refuse("prioritised events with useValuesFromTriggerTime false", eid)
            rank = -value.value
        if trig is None or trig.getMath() is None:
            raise PetabError(f"{r.path}: event {eid!r} has no trigger")
        where = f"trigger of event {eid!r}"
        node = _simplify(substitute(rn(r.math(trig.getMath(), where)), rules))
        if _has_rate_of(node):
            raise r.refuse("rateOf in event triggers", eid)
        why = trigger_problem(node)
        if why is not None:
            raise r.refuse(f"{where}: a trigger other than comparisons (<, <=, >, >=) combined by and/or ({why}): "
                           f"{_expr.to_string(node)!r}", eid)
        assignments: dict[str, str] = {}
        for ea in ev.getListOfEventAssignments():
            target = nm(ea.getVariable())
            if target in compartments:
                raise r.refuse("event assignments to compartments", f"{eid}: {ea.getVariable()}")
            if target not in states:
                raise r.refuse("event assignments to a target that is not a state", f"{eid}: {ea.getVariable()}")
            value = rn(r.math(ea.getMath(), f"assignment to {ea.getVariable()!r} of event {eid!r}"))
            if _has_rate_of(value):
                raise r.refuse("rateOf in event assignments", eid)
            assignments[target] = _expr.to_string(_simplify(substitute(value, rules)))
        if not assignments:
            continue  # an event that assigns nothing changes nothing
        entry: dict = {"id": eid, "trigger": _expr.to_string(node), "assignments": assignments}
        # SBML Level 2 has no initialValue: its triggers cannot fire at the start (as initialValue true)
        entry["initial_value"] = bool(trig.getInitialValue()) if trig.isSetInitialValue() else True
        out.append(entry)
        priority.append(rank)
    if prioritised:
        # stable: events of equal priority keep the file's order (SBML leaves it open)
        order = sorted(range(len(out)), key=lambda i: priority[i])
        out = [out[i] for i in order]
    return out


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name) or "model"


def _resolve_all(names, expand, cycle: str) -> dict[str, Expr]:
    """``{name: expand(name, resolve)}`` for every name, each computed once; ``expand`` calls
    ``resolve`` for the names it depends on, and a dependency cycle raises ``cycle``."""
    done: dict[str, Expr] = {}
    visiting: set[str] = set()

    def resolve(name: str) -> Expr:
        if name in done:
            return done[name]
        if name in visiting:
            raise PetabError(f"{cycle} through {name!r}")
        visiting.add(name)
        done[name] = expand(name, resolve)
        visiting.discard(name)
        return done[name]

    for name in names:
        resolve(name)
    return done


def _close(assignment: dict[str, Expr], r: _Reader) -> dict[str, Expr]:
    """Assignment rules with every rule target substituted (a cycle is an error)."""

    def expand(name: str, resolve) -> Expr:
        node = assignment[name]
        deps = {s: resolve(s) for s in _expr.symbols(node) if s in assignment}
        return _simplify(substitute(node, deps)) if deps else node

    return _resolve_all(assignment, expand, f"{r.path}: assignment rules form a cycle")


def _initial_values(states, init, rules, parameters, r: _Reader) -> dict[str, Expr]:
    """Initial values as expressions of parameters: rules at t = 0, other states' initial values."""
    at0 = {_expr.TIME: Num(0.0)}

    def expand(s: str, resolve) -> Expr:
        node = substitute(substitute(init.get(s, Num(0.0)), rules), at0)
        deps = {x: resolve(x) for x in _expr.symbols(node) if x in init and x not in parameters}
        node = _simplify(substitute(node, deps)) if deps else _simplify(node)
        bad = _expr.symbols(node) - set(parameters)
        if bad:
            raise PetabError(f"{r.path}: the initial value of {s!r} depends on {sorted(bad)}, which are not parameters")
        return node

    return _resolve_all(states, expand, f"{r.path}: initial values form a cycle")
