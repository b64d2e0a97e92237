"""pyude: universal differential equations from Python.

One model spec (states, parameters, equations or reactions, networks, inputs),
solved and differentiated by the embedded JAX engine (default) or the Julia
SciML engine.
"""

import jax as _jax

# float64 is the field's default; set by the package, not left to the user.
_jax.config.update("jax_enable_x64", True)

from ._errors import DataError, EngineUnavailable, PyudeError, SolverError, SpecError  # noqa: E402
from ._sensitivity import AbstractSensitivity, Adjoint, Checkpoint, Forward  # noqa: E402
from ._solution import Solution  # noqa: E402
from ._solve import solve  # noqa: E402
from ._check_engines import EngineCheck, check_engines  # noqa: E402
from .fitting import LBFGS, Adam, FitResult, MultipleShooting, MultistartResult, fit, fit_multistart  # noqa: E402
from .problem import Problem  # noqa: E402
from .spec import Model  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Model",
    "solve",
    "Solution",
    "Problem",
    "fit",
    "fit_multistart",
    "FitResult",
    "MultistartResult",
    "Adam",
    "LBFGS",
    "MultipleShooting",
    "Checkpoint",
    "Adjoint",
    "Forward",
    "AbstractSensitivity",
    "PyudeError",
    "SpecError",
    "DataError",
    "SolverError",
    "EngineUnavailable",
    "check_engines",
    "EngineCheck",
]
