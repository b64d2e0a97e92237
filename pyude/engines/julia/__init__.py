"""The Julia engine (PyUDE.jl: OrdinaryDiffEq, SciMLSensitivity, Lux) through juliacall.

``import pyude`` never starts Julia; ``engine="julia"`` checks within milliseconds
whether Julia is there (:func:`julia_available`) and raises
:class:`~pyude.EngineUnavailable` with install instructions if not.
"""

from ._detect import find_julia, julia_available, require_julia, unavailable_reason
from ._engine import CODES, JuliaCompiledModel, JuliaEngine
from ._export import from_julia_order, julia_layout, julia_spec, julia_spec_json, objective_kwargs, to_julia_order
from ._names import JULIA_SENSITIVITIES, JULIA_SOLVERS, julia_sensealg, julia_solver_name

__all__ = [
    "JuliaEngine",
    "JuliaCompiledModel",
    "CODES",
    "julia_available",
    "unavailable_reason",
    "require_julia",
    "find_julia",
    "julia_spec",
    "julia_spec_json",
    "julia_layout",
    "to_julia_order",
    "from_julia_order",
    "objective_kwargs",
    "JULIA_SOLVERS",
    "JULIA_SENSITIVITIES",
    "julia_solver_name",
    "julia_sensealg",
]
