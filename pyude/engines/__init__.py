"""Engines: each implements the spec behind the same small interface.

``jax`` (default) is embedded; ``julia`` drives the SciML core through juliacall.
"""

from __future__ import annotations

from .._errors import EngineUnavailable, SpecError

ENGINES = ("jax", "julia")
_instances: dict[str, object] = {}


def get_engine(name: str = "jax"):
    """The engine instance for ``name`` (created on first use; Julia is never started by import)."""
    if name not in ENGINES:
        raise SpecError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    if name not in _instances:
        if name == "jax":
            from .jax import JaxEngine

            _instances[name] = JaxEngine()
        else:
            from .julia import JuliaEngine

            _instances[name] = JuliaEngine()
    return _instances[name]


__all__ = ["get_engine", "ENGINES", "EngineUnavailable"]
