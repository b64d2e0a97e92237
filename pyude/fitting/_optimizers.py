"""Optimizer settings: plain value objects, as sensitivities are (``adam=``, ``polish=``)."""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import DataError

SCHEDULES = ("constant", "exponential", "cosine")


@dataclass(frozen=True)
class Adam:
    r"""First stage: Adam (optax) on the estimation-scale vector theta, projected onto the bounds.

    Learning rate $\eta_k$ by ``schedule``: ``constant``; ``exponential``
    $\eta\,d^{k/K}$; ``cosine`` from $\eta$ to $d\,\eta$ over the $K$ = ``steps``
    steps, with $d$ = ``decay``. ``batch_size``: conditions per step (mini-batches
    drawn without replacement from ``seed`` and the step number, the data term scaled
    by ``n_conditions / batch_size``); ``None`` uses all. ``patience``: stop when the
    best loss has not improved by a relative ``min_delta`` for that many steps.
    """

    steps: int = 500
    learning_rate: float = 1e-2
    schedule: str = "constant"
    decay: float = 0.1
    batch_size: int | None = None
    patience: int | None = None
    min_delta: float = 1e-4

    def __post_init__(self) -> None:
        if int(self.steps) < 0:
            raise DataError(f"Adam.steps must be >= 0, got {self.steps}")
        if not self.learning_rate > 0:
            raise DataError(f"Adam.learning_rate must be positive, got {self.learning_rate}")
        if self.schedule not in SCHEDULES:
            raise DataError(f"Adam.schedule: unknown {self.schedule!r}; allowed: {', '.join(SCHEDULES)}")
        if not 0 < self.decay <= 1:
            raise DataError(f"Adam.decay must be in (0, 1], got {self.decay}")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise DataError(f"Adam.batch_size must be >= 1, got {self.batch_size}")
        if self.patience is not None and int(self.patience) < 1:
            raise DataError(f"Adam.patience must be >= 1, got {self.patience}")


@dataclass(frozen=True)
class LBFGS:
    """Second stage: quasi-Newton polish with scipy's L-BFGS-B (bounds respected) from Adam's best point."""

    max_iter: int = 200
    gtol: float = 1e-8
    ftol: float = 1e-12

    def __post_init__(self) -> None:
        if int(self.max_iter) < 1:
            raise DataError(f"LBFGS.max_iter must be >= 1, got {self.max_iter}")


@dataclass(frozen=True)
class MultipleShooting:
    r"""Multiple shooting for the Adam stage: the time grid is cut at data times into
    ``segments`` pieces $[\tau_k, \tau_{k+1}]$ of about equal numbers of time points;
    segment $k \ge 1$ starts from its own state $s_k$ (estimated along with theta,
    per condition), and the objective gains the continuity penalty

    $$c \sum_{k=1}^{K-1} \lVert y_{k-1}(\tau_k) - s_k \rVert_2^2, \qquad c = \texttt{continuity},$$

    where $y_{k-1}(\tau_k)$ is where the previous segment ends. All segments of all
    conditions are solved in one batched call. Long or oscillatory series then have
    no far-away data behind a single long integration, which is what traps single
    shooting in local minima. The segment states start from a simulation at the
    starting parameters, replaced by the data where a state is measured directly at
    a segment start. The L-BFGS polish runs on the single-shooting objective, so the
    reported loss and parameters are those of the whole trajectory.
    """

    segments: int = 4
    continuity: float = 100.0

    def __post_init__(self) -> None:
        if isinstance(self.segments, bool) or not isinstance(self.segments, int):
            raise DataError(f"MultipleShooting.segments must be an integer, got {self.segments!r}")
        if not isinstance(self.continuity, (int, float)) or isinstance(self.continuity, bool):
            raise DataError(f"MultipleShooting.continuity must be a number, got {self.continuity!r}")
        if self.segments < 2:
            raise DataError(f"MultipleShooting.segments must be >= 2, got {self.segments}")
        if not self.continuity > 0:
            raise DataError(f"MultipleShooting.continuity must be positive, got {self.continuity}")
