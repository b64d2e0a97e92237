"""Sensitivity methods: plain value objects passed as one argument (``sensitivity=``).

Strings are accepted as shorthands: ``"checkpoint"``, ``"adjoint"``, ``"forward"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._errors import SpecError


class AbstractSensitivity:
    """How the gradient of an objective through an ODE solve is computed."""

    name: str = ""


@dataclass(frozen=True)
class Checkpoint(AbstractSensitivity):
    """Reverse-mode differentiation through the solver's own steps ("discretise then
    optimise"), storing only ``checkpoints`` states and recomputing the rest
    (diffrax's ``RecursiveCheckpointAdjoint``).

    ``checkpoints``: ``None`` for diffrax's default (~sqrt(2 max_steps)); a number; or
    ``"all"``: every step's state stored, with as many checkpoints as steps, which skips
    the online checkpointing's bookkeeping. The solve then runs under an internal bound on
    its steps (64, 512, 4096, within 64 MB of stored states), moving to the next bound
    when a solve reaches one and past the last to ``max_steps`` with diffrax's default;
    each bound compiles once. With Tsit5 or Dopri5 on a model without events, inputs or
    jump times whose right-hand side is costly (a network over many states), every step's
    stages are stored too and the backward pass replays them instead of recomputing each
    step (docs/engines.md). Pays where steps are few and
    their bookkeeping is a large part of them: neural-ODE training (the torchdiffeq
    benchmark's step, docs/benchmarks.md); on plain mechanistic models it gained nothing measurable.

    Exact gradient of the computed solution, the same with any ``checkpoints``; memory
    grows with the checkpoints only.
    """

    checkpoints: int | str | None = None
    name: str = "checkpoint"

    def __post_init__(self) -> None:
        c = self.checkpoints
        if c is None or c == "all":
            return
        if not isinstance(c, (int, np.integer)) or isinstance(c, bool) or c < 1:
            raise SpecError(f"Checkpoint: checkpoints must be a positive integer, None or 'all', got {c!r}")


@dataclass(frozen=True)
class Adjoint(AbstractSensitivity):
    r"""Continuous adjoint ("optimise then discretise") with checkpoints and
    interpolation, as SciMLSensitivity's ``InterpolatingAdjoint(checkpointing=true)``.

    The forward pass keeps only the states at the data times. Backwards from the
    last data time,

    $$\dot\lambda = -\Big(\frac{\partial f}{\partial y}\Big)^{\!\top}\lambda,\qquad
    \lambda(t_i^-) = \lambda(t_i^+) + \frac{\partial L}{\partial y(t_i)},$$

    is integrated with the problem's solver (a stiff one for stiff problems). The
    state ``y(t)`` comes from re-solving each data interval forwards from its
    checkpoint, in chunks of at most ``interval_steps`` steps with dense output
    (never from integrating the state backwards, which is unstable for stiff models).
    $\partial L/\partial p = \int \lambda^\top \partial f/\partial p\,dt$ is
    accumulated by ``quadrature_nodes``-point Gauss-Legendre inside every backward
    step, and $\partial L/\partial y_0 = \lambda(t_0)$.

    Memory: the states at the data times plus one chunk's dense output
    (``interval_steps`` steps), whatever the number of steps. Cost: about two
    forward solves plus the backward solve.
    """

    quadrature_nodes: int = 5
    interval_steps: int = 32
    name: str = "adjoint"

    def __post_init__(self) -> None:
        if int(self.quadrature_nodes) < 1:
            raise SpecError(f"Adjoint: quadrature_nodes must be >= 1, got {self.quadrature_nodes!r}")
        if int(self.interval_steps) < 8:
            raise SpecError(f"Adjoint: interval_steps must be >= 8, got {self.interval_steps!r}")


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
