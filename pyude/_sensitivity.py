"""Sensitivity methods: plain value objects passed as one argument (``sensitivity=``).

Strings are accepted as shorthands: ``"checkpoint"``, ``"adjoint"``, ``"forward"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import SpecError


class AbstractSensitivity:
    """How the gradient of an objective through an ODE solve is computed."""

    name: str = ""


@dataclass(frozen=True)
class Checkpoint(AbstractSensitivity):
    """Reverse-mode differentiation through the solver's own steps ("discretise then
    optimise"), storing only ``checkpoints`` states and recomputing the rest
    (diffrax's ``RecursiveCheckpointAdjoint``; ``None`` = its default, ~log(steps)).

    Exact gradient of the computed solution; memory grows with the checkpoints only.
    """

    checkpoints: int | None = None
    name: str = "checkpoint"


@dataclass(frozen=True)
class Adjoint(AbstractSensitivity):
    r"""Continuous adjoint ("optimise then discretise"), as SciMLSensitivity's
    ``QuadratureAdjoint`` with an interpolated forward solution.

    The forward pass stores its dense output. Backwards from the last data time,

    $$\dot\lambda = -\Big(\frac{\partial f}{\partial y}\Big)^{\!\top}\lambda,\qquad
    \lambda(t_i^-) = \lambda(t_i^+) + \frac{\partial L}{\partial y(t_i)},$$

    is integrated with the problem's solver (a stiff one for stiff problems), with
    ``y(t)`` read from the stored forward solution (never re-integrated backwards,
    which is unstable for stiff models). Then
    $\partial L/\partial p = \int \lambda^\top \partial f/\partial p\,dt$ by
    ``quadrature_nodes``-point Gauss-Legendre on every backward step, and
    $\partial L/\partial y_0 = \lambda(t_0)$. Memory does not grow with the number of
    backward steps.
    """

    quadrature_nodes: int = 5
    name: str = "adjoint"


@dataclass(frozen=True)
class Forward(AbstractSensitivity):
    """Forward sensitivities: forward-mode differentiation of the solve, one tangent
    per parameter (batched). Cheapest for a handful of parameters."""

    name: str = "forward"


_BY_NAME = {"checkpoint": Checkpoint, "adjoint": Adjoint, "forward": Forward}


def as_sensitivity(s: str | AbstractSensitivity) -> AbstractSensitivity:
    if isinstance(s, AbstractSensitivity):
        return s
    if isinstance(s, str) and s.lower() in _BY_NAME:
        return _BY_NAME[s.lower()]()
    raise SpecError(f"unknown sensitivity {s!r}; choose 'checkpoint', 'adjoint', 'forward' or a pyude sensitivity object")
