"""Small validation helpers shared by the spec modules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .._errors import PyudeError, SpecError


def read_yaml(path: Path, error: type[PyudeError], what: str) -> Any:
    """``path`` read with YAML's safe loader; an unreadable file or invalid YAML is ``error``."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise error(f"cannot read {what} {str(path)!r}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise error(f"{path}: invalid YAML: {e}") from None


def check_keys(mapping: Mapping, allowed: Iterable[str], where: str, required: Iterable[str] = ()) -> None:
    """Raise a :class:`SpecError` naming ``where`` for unknown or missing keys."""
    allowed = tuple(allowed)
    unknown = set(mapping) - set(allowed)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(allowed)}")
    for key in required:
        if key not in mapping:
            raise SpecError(f"{where}: missing key {key!r}")
