"""Events in the spec: discrete assignments to states when a trigger becomes true.

An event ``{trigger: "gt(x, 1)", assignments: {x: "0"}}`` fires at every time the
trigger goes from false to true (SBML semantics); its assignments are evaluated with
the values just before the event and then applied together. A trigger is one comparison
``lt/le/gt/ge(a, b)``: it is true where ``g > 0`` (``gt``, ``ge``: ``g = a - b``;
``lt``, ``le``: ``g = b - a``), so the event fires where ``g`` crosses zero upwards.
Comparisons combine with ``and``/``or`` (nested as deep as needed): ``and`` holds where
every part's ``g`` is positive, i.e. where ``g = min(g_1, ..., g_k) > 0``, ``or`` where
``g = max(g_1, ..., g_k) > 0``; the combined ``g`` is continuous, and it crosses zero
upwards exactly when the combination turns true (an ``and`` when its last part turns
true while the others hold). Its parts must agree in strictness (all ``gt``/``lt`` or all
``ge``/``le``), so that whether the trigger holds where ``g = 0`` is one rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import SpecError
from . import _expr
from ._checks import check_keys
from ._expr import Call, Expr, Op

EVENT_KEYS = ("id", "trigger", "assignments", "initial_value")
TRIGGERS = ("lt", "le", "gt", "ge")
COMBINATIONS = {"and": "min", "or": "max"}  # the combined trigger function of the parts'


def trigger_function(node: Expr) -> Expr:
    """``g`` of a trigger (a comparison, or and/or of triggers): it holds where ``g > 0``."""
    if node.fn in COMBINATIONS:
        parts = [trigger_function(a) for a in node.args]
        out = parts[0]
        for g in parts[1:]:
            out = Call(COMBINATIONS[node.fn], (out, g))
        return out
    a, b = node.args
    return Op("-", (a, b)) if node.fn in ("gt", "ge") else Op("-", (b, a))


def comparisons(node: Expr) -> list[Call]:
    """The comparisons of a trigger, left to right."""
    return [c for a in node.args for c in comparisons(a)] if node.fn in COMBINATIONS else [node]


def trigger_problem(node: Expr) -> str | None:
    """Why ``node`` is not a trigger (None if it is one)."""
    if not isinstance(node, Call):
        return "expected a comparison"
    if node.fn in COMBINATIONS:
        if not node.args:
            return f"{node.fn}() with no parts"
        for a in node.args:
            why = trigger_problem(a)
            if why is not None:
                return why
        if len({c.fn in ("gt", "lt") for c in comparisons(node)}) > 1:
            return "its comparisons mix strict (gt, lt) and non-strict (ge, le) ones"
        return None
    return None if node.fn in TRIGGERS else f"{_expr.to_string(node)!r} is not a comparison"
# SBML event features the spec does not implement: refused by name, never ignored
_REFUSED = {
    "delay": "delayed events are not supported",
    "priority": "event priorities are not supported (simultaneous events apply in spec order)",
}


@dataclass(frozen=True)
class Event:
    """A discrete event: when ``trigger`` goes from false to true, each state in
    ``assignments`` is set to its expression, evaluated at the state just before.

    ``initial_value`` is the trigger's value just before the start time (SBML's
    ``initialValue``): with ``False`` an event whose trigger is true at ``t0`` fires at ``t0``.
    """

    trigger: Call
    assignments: tuple[tuple[str, Expr], ...]
    trigger_text: Any
    assignment_text: dict[str, Any]
    initial_value: bool | None = None
    id: str | None = None

    @property
    def fires_initially(self) -> bool:
        """True if a trigger that holds at ``t0`` fires there (``initial_value`` false)."""
        return self.initial_value is False

    @property
    def g(self) -> Expr:
        """The trigger function: the trigger is true where it is positive (or zero for ge/le)."""
        return trigger_function(self.trigger)

    @property
    def strict(self) -> bool:
        """``gt``/``lt``: the trigger is false where ``g`` is zero."""
        return comparisons(self.trigger)[0].fn in ("gt", "lt")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        out["trigger"] = self.trigger_text
        out["assignments"] = dict(self.assignment_text)
        if self.initial_value is not None:
            out["initial_value"] = self.initial_value
        return out


def parse_events(raw, states: list[str], parameters: set[str], names: set[str], nets: dict) -> list[Event]:
    """Validate the ``events`` list: ``names`` are the symbols expressions may use."""
    if not isinstance(raw, list):
        raise SpecError("events: expected a list of {trigger, assignments[, initial_value, id]}")
    return [_parse_event(i, e, states, parameters, names, nets) for i, e in enumerate(raw)]


def _parse_event(i: int, e, states, parameters, names, nets) -> Event:
    where = f"events[{i}]"
    if not isinstance(e, Mapping):
        raise SpecError(f"{where}: expected a mapping with 'trigger' and 'assignments'")
    ident = e.get("id")
    if ident is not None and not isinstance(ident, str):
        raise SpecError(f"{where}.id: expected a string, got {ident!r}")
    if ident is not None:
        where = f"events[{i}] ({ident!r})"
    for key, why in _REFUSED.items():
        if key in e:
            raise SpecError(f"{where}.{key}: {why}")
    check_keys(e, EVENT_KEYS, where, required=("trigger", "assignments"))
    trigger = _expr.parse(e["trigger"], f"{where}.trigger")
    _expr.check(trigger, f"{where}.trigger", names, nets)
    why = trigger_problem(trigger)
    if why is not None:
        raise SpecError(
            f"{where}.trigger: {why}; expected a comparison {'/'.join(TRIGGERS)}(a, b) or and/or of comparisons, "
            f"got {e['trigger']!r} (eq, ne, not and other forms are not supported)"
        )
    raw_assign = e["assignments"]
    if not isinstance(raw_assign, Mapping) or not raw_assign:
        raise SpecError(f"{where}.assignments: expected a non-empty mapping state -> expression")
    assignments = []
    for target, text in raw_assign.items():
        aw = f"{where}.assignments.{target}"
        if target in parameters:
            raise SpecError(
                f"{aw}: {target!r} is a parameter; events assign states only (make {target!r} a state with equation 0)"
            )
        if target not in states:
            raise SpecError(f"{aw}: {target!r} is not a state")
        node = _expr.parse(text, aw)
        _expr.check(node, aw, names, nets)
        assignments.append((target, node))
    init = e.get("initial_value")
    if init is not None and not isinstance(init, bool):
        raise SpecError(f"{where}.initial_value: expected true or false, got {init!r}")
    return Event(trigger, tuple(assignments), e["trigger"], dict(raw_assign), init, ident)
