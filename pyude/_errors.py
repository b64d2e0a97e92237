"""The exceptions pyude raises for bad input and failed solves."""

from __future__ import annotations


class PyudeError(Exception):
    """Base class of every error pyude raises on purpose."""


class SpecError(PyudeError, ValueError):
    """A model spec is invalid. The message names the key and the offending symbol."""


class DataError(PyudeError, ValueError):
    """Data, times or parameters passed to pyude are invalid."""


class SolverError(PyudeError, RuntimeError):
    """The ODE solver did not reach the final time.

    Attributes:
        code: the solver's result code (a short string such as ``"max_steps_reached"``).
        t_reached: the time the integration stopped at (``nan`` if unknown).
        hint: what to try instead.
    """

    def __init__(self, message: str, *, code: str, t_reached: float, hint: str = ""):
        full = message if not hint else f"{message}\nHint: {hint}"
        super().__init__(full)
        self.code = code
        self.t_reached = t_reached
        self.hint = hint


class EngineUnavailable(PyudeError, RuntimeError):
    """The requested engine cannot run on this machine; the message says how to install it."""
