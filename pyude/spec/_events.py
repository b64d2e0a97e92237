"""Events in the spec: discrete assignments to states when a trigger becomes true.

An event ``{trigger: "gt(x, 1)", assignments: {x: "0"}}`` fires at every time the
trigger goes from false to true (SBML semantics); its assignments are evaluated with
the values just before the event and then applied together. A trigger is one comparison
``lt/le/gt/ge(a, b)``: it is true where ``g > 0`` (``gt``, ``ge``: ``g = a - b``;
``lt``, ``le``: ``g = b - a``), so the event fires where ``g`` crosses zero upwards.
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
        a, b = self.trigger.args
        return Op("-", (a, b)) if self.trigger.fn in ("gt", "ge") else Op("-", (b, a))

    @property
    def strict(self) -> bool:
        """``gt``/``lt``: the trigger is false where ``g`` is zero."""
        return self.trigger.fn in ("gt", "lt")

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
    if not (isinstance(trigger, Call) and trigger.fn in TRIGGERS):
        raise SpecError(
            f"{where}.trigger: expected one comparison {'/'.join(TRIGGERS)}(a, b), got {e['trigger']!r} "
            "(eq, ne, and, or and other forms are not supported)"
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
