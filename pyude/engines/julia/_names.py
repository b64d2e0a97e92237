"""Name maps of the Julia engine: pyude solver and sensitivity names -> SciML (see docs/engines.md).

Kept in step with ``julia/src/solvers.jl`` (tests/test_julia_offline.py compares them).
"""

from __future__ import annotations

import os

from ..._errors import SpecError

# pyude name -> the OrdinaryDiffEq algorithm that julia/src/solvers.jl builds
JULIA_SOLVERS: dict[str, str] = {
    "Tsit5": "Tsit5()",
    "Dopri5": "DP5()",
    "Dopri8": "DP8()",
    "Rodas5P": "Rodas5P()",
    "Rosenbrock23": "Rosenbrock23()",
    "Kvaerno5": "Kvaerno5()",
    "KenCarp4": "KenCarp4()",  # Julia engine only
    "FBDF": "FBDF()",  # Julia engine only
    "QNDF": "QNDF()",  # Julia engine only
}
AUTO = "AutoTsit5(Rodas5P())"

# pyude sensitivity name -> SciMLSensitivity sensealg (``{vjp}`` is the VJP choice below)
JULIA_SENSITIVITIES: dict[str, str] = {
    "adjoint": "GaussAdjoint(autojacvec={vjp})",
    "checkpoint": "InterpolatingAdjoint(autojacvec={vjp}, checkpointing=true)",
    "forward": "ForwardDiffSensitivity()",
}
VJPS: dict[str, str] = {"enzyme": "EnzymeVJP()", "reversediff": "ReverseDiffVJP()", "zygote": "ZygoteVJP()"}
VJP_ENV = "PYUDE_JULIA_VJP"
# ReverseDiffVJP() (uncompiled tape: the generated code may branch in min/max/piecewise):
# the VJP of SciML's in-place Lux UDE showcase and PEtab.jl's adjoint docs; EnzymeVJP on
# the generated right-hand side with a Lux chain was never run (docs/engines.md)
DEFAULT_VJP = "reversediff"


def julia_solver_name(name: str) -> str:
    """The canonical pyude name for the Julia engine (case-insensitive), or ``"auto"``."""
    if not isinstance(name, str):
        raise SpecError(f"solver must be a string, got {name!r}")
    if name.lower() == "auto":
        return "auto"
    for known in JULIA_SOLVERS:
        if name.lower() == known.lower():
            return known
    raise SpecError(f"unknown solver {name!r} for engine='julia'; choose one of: auto, {', '.join(JULIA_SOLVERS)}")


def vjp_choice() -> str:
    """The VJP inside the adjoints: ``$PYUDE_JULIA_VJP`` (enzyme | reversediff | zygote), default reversediff."""
    vjp = os.environ.get(VJP_ENV, DEFAULT_VJP).strip().lower()
    if vjp not in VJPS:
        raise SpecError(f"{VJP_ENV}={vjp!r}: choose one of {', '.join(VJPS)}")
    return vjp


def julia_sensealg(sensitivity: str, vjp: str | None = None) -> str:
    """The SciMLSensitivity expression used for a pyude sensitivity name (for messages and docs)."""
    if sensitivity not in JULIA_SENSITIVITIES:
        raise SpecError(f"unknown sensitivity {sensitivity!r}; choose one of {', '.join(JULIA_SENSITIVITIES)}")
    return JULIA_SENSITIVITIES[sensitivity].format(vjp=VJPS[vjp or vjp_choice()])


def check_event_sensitivity(model, sensitivity: str, vjp: str) -> None:
    """Refuse ``$PYUDE_JULIA_VJP=zygote`` for an adjoint through a model with events.

    SciMLSensitivity differentiates an event's ``affect!`` in the adjoint with ReverseDiff or
    Enzyme only: ``_setup_reverse_callbacks`` (``src/callback_tracking.jl``) raised "Only
    `ReverseDiffVJP` and `EnzymeVJP` are currently compatible with continuous adjoint
    sensitivity methods for hybrid DEs" before newer releases swapped in ``ReverseDiffVJP()``
    with a warning; which release the compat bound resolves to is not known here. ``forward``
    (``ForwardDiffSensitivity``) uses no VJP.
    """
    if getattr(model, "events", None) and sensitivity in ("adjoint", "checkpoint") and vjp == "zygote":
        raise SpecError(
            f"{VJP_ENV}=zygote with events: SciMLSensitivity differentiates an event's assignments with "
            f"ReverseDiff or Enzyme only; unset {VJP_ENV} (reversediff) or set it to enzyme, or use "
            "sensitivity='forward'"
        )
