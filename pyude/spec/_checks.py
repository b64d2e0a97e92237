"""Small validation helpers shared by the spec modules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .._errors import SpecError


def check_keys(mapping: Mapping, allowed: Iterable[str], where: str, required: Iterable[str] = ()) -> None:
    """Raise a :class:`SpecError` naming ``where`` for unknown or missing keys."""
    allowed = tuple(allowed)
    unknown = set(mapping) - set(allowed)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(allowed)}")
    for key in required:
        if key not in mapping:
            raise SpecError(f"{where}: missing key {key!r}")
