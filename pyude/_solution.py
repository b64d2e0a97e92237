"""The result of :func:`pyude.solve`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ._errors import DataError


class Solution:
    """A trajectory: ``y[i, j]`` is state ``states[j]`` at time ``t[i]``.

    ``stats`` holds the solver used, accepted and rejected steps, right-hand-side
    evaluations (attempted steps x evaluations per step; ``None`` for Kvaerno5,
    whose Newton iterations diffrax does not count) and Jacobian evaluations, the
    first-call compile time and the solve time (s), and, for ``solver="auto"``,
    the stiffness estimate behind the choice.
    Calling the solution (or :meth:`evaluate`) reads the dense output at any time
    in ``[t0, t[-1]]``.
    """

    def __init__(self, t: np.ndarray, y: np.ndarray, states: list[str], stats: dict[str, Any], t0: float,
                 dense: Callable[[np.ndarray], np.ndarray]):
        self.t = t
        self.y = y
        self.states = list(states)
        self.stats = stats
        self.t0 = t0
        self._dense = dense

    def evaluate(self, t) -> np.ndarray:
        """The dense solution at ``t`` (scalar -> (n_states,), array -> (len(t), n_states))."""
        tt = np.asarray(t, dtype=float)
        flat = np.atleast_1d(tt)
        if not np.all(np.isfinite(flat)):
            raise DataError("evaluation times must be finite")
        lo, hi = self.t0, float(self.t[-1])
        bad = flat[(flat < lo) | (flat > hi)]
        if bad.size:
            raise DataError(f"time {bad[0]:g} is outside the solved interval [{lo:g}, {hi:g}]")
        out = self._dense(flat)
        return out[0] if tt.ndim == 0 else out

    __call__ = evaluate

    def __getitem__(self, state: str) -> np.ndarray:
        """The trajectory of one state by name."""
        try:
            return self.y[:, self.states.index(state)]
        except ValueError:
            raise KeyError(f"no state {state!r}; states are {self.states}") from None

    def to_dataframe(self, tidy: bool = False) -> pd.DataFrame:
        """Wide (``time`` + one column per state) or tidy (``time, observable, value``)."""
        wide = pd.DataFrame(self.y, columns=self.states)
        wide.insert(0, "time", self.t)
        if not tidy:
            return wide
        return wide.melt(id_vars="time", var_name="observable", value_name="value")

    def __repr__(self) -> str:
        return (
            f"Solution({len(self.t)} times in [{self.t[0]:g}, {self.t[-1]:g}], states={self.states}, "
            f"solver={self.stats.get('solver')}, steps={self.stats.get('steps')})"
        )
