"""The embedded JAX engine (diffrax, equinox): the default, and what CI runs."""

from ._engine import JaxEngine
from ._integrate import Settings, resolve_batching
from ._solvers import Rodas5P, Rosenbrock23

__all__ = ["JaxEngine", "Settings", "resolve_batching", "Rodas5P", "Rosenbrock23"]
