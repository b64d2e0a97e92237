"""Solver registry of the JAX engine: names -> diffrax solvers and step-size controllers."""

from __future__ import annotations

import diffrax

from ...._errors import SpecError
from ._explicit import Dopri5, Tsit5
from ._linalg import UNROLL_LIMIT
from ._rosenbrock import Rodas5P, Rosenbrock23, RosenbrockInterpolation

STIFF = ("Rodas5P", "Rosenbrock23", "Kvaerno5")
NONSTIFF = ("Tsit5", "Dopri5", "Dopri8")
NAMES = NONSTIFF + STIFF
# evaluations of f per attempted step (FSAL stages counted once; Rosenbrock: plus one
# Jacobian). Kvaerno5's count depends on its Newton iterations, which diffrax does not report.
RHS_EVALS_PER_STEP = {"Tsit5": 6, "Dopri5": 6, "Dopri8": 13, "Rodas5P": 8, "Rosenbrock23": 3, "Kvaerno5": None}


def canonical_name(name: str) -> str:
    for known in NAMES:
        if name.lower() == known.lower():
            return known
    raise SpecError(f"unknown solver {name!r}; choose one of: auto, {', '.join(NAMES)}")


def make_solver(name: str, rtol: float, atol: float, *, forward_mode: bool = False, n_states: int = 0):
    """The diffrax solver for ``name``; ``forward_mode``: to be differentiated in forward mode
    (:class:`diffrax.ForwardMode`), which a Rosenbrock method with more states than stage
    solves does through second-order products (``tangent_products``, same values): measured
    2026-12-03, forward-mode gradients at rtol 1e-8 Lucarelli_CellSystems2018 (33 states)
    39.4 -> 6.7 s, Zheng_PNAS2012 (15) 27.3 -> 21.4 ms, Brannmark_JBC2010 (9) 24.0 -> 20.5
    ms, but Boehm_JProteomeRes2014 (8 states, Rodas5P's 8 solves) 5.4 -> 10.5 ms. (The same
    rule transposed in reverse mode, one product per solve, gained nothing: Lucarelli 1.37 s
    either way.)

    In reverse mode, a model past ``UNROLL_LIMIT`` states (where the LU is LAPACK's) takes
    ``reverse_products`` (:func:`~._rosenbrock._reverse_products_step`): measured
    2026-12-04, checkpoint gradients at rtol 1e-8, Lucarelli (33 states) 1,340-1,364 ->
    904-946 ms (medians of 5 calls, A/B); below it the Jacobian's own reverse pass was faster
    (Zheng 5.4 against 9.2 ms, Boehm 1.5 against 2.3 ms)."""
    if name in ("Rodas5P", "Rosenbrock23"):
        cls = Rodas5P if name == "Rodas5P" else Rosenbrock23
        return cls(
            tangent_products=forward_mode and n_states > cls.stage_solves,
            reverse_products=not forward_mode and n_states > UNROLL_LIMIT,
        )
    if name == "Tsit5":
        return Tsit5()
    if name == "Dopri5":
        return Dopri5()
    if name == "Dopri8":
        return diffrax.Dopri8()
    if name == "Kvaerno5":
        # With diffrax's defaults Kvaerno5 rejects half its steps on Robertson (630
        # accepted, 625 rejected at rtol 1e-8). Chord tolerances 10x tighter than the
        # controller's with a relaxed convergence rate (kappa) plus the PI controller
        # below: 424 accepted, 141 rejected, 2.3x faster, error still below rtol.
        return diffrax.Kvaerno5(root_finder=diffrax.VeryChord(rtol=rtol / 10, atol=atol / 10, kappa=0.5))
    raise SpecError(f"unknown solver {name!r}")


def make_controller(name: str, rtol: float, atol: float, jump_ts=None, step_ts=None, norm=None):
    """Step-size controller: the classic I controller for the explicit solvers and the
    Rosenbrock methods (for these with safety factor 0.95), a PI controller for Kvaerno5
    (smoother step sequences, fewer rejected Newton iterations).

    The Rosenbrock methods had Kvaerno5's PI controller (pcoeff 0.3, icoeff 0.4, safety 0.9)
    until 2026-12-04. Measured then, Rodas5P at rtol 1e-8, PI -> I with safety 0.95:
    Robertson 277 / 3 -> 210 / 11 steps / rejected (error at t_end 3e-9 -> 1.1e-8), HIRES
    376 / 36 -> 319 / 72 (1.8e-8 -> 5.4e-8); benchmark-model checkpoint gradients
    Lucarelli 1,049 -> 872 ms, Zheng 9.7 -> 6.0 ms, Brannmark 17.6 -> 14.3 ms, the others
    unchanged within noise, log-likelihoods the same to 1e-9 relative. Kvaerno5 got worse
    with it (Robertson 424 / 141 -> 537 / 483) and keeps the PI controller."""
    if name in ("Rodas5P", "Rosenbrock23"):
        ctrl = dict(pcoeff=0.0, icoeff=1.0, factormin=0.2, factormax=6.0, safety=0.95)
    elif name in STIFF:
        ctrl = dict(pcoeff=0.3, icoeff=0.4, factormin=0.2, factormax=6.0, safety=0.9)
    else:
        ctrl = dict(pcoeff=0.0, icoeff=1.0)
    if jump_ts is not None and len(jump_ts):
        ctrl["jump_ts"] = jump_ts
    if step_ts is not None:
        ctrl["step_ts"] = step_ts
    if norm is not None:
        ctrl["norm"] = norm
    return diffrax.PIDController(rtol=rtol, atol=atol, **ctrl)


__all__ = ["Tsit5", "Dopri5", "Rodas5P", "Rosenbrock23", "RosenbrockInterpolation", "make_solver", "make_controller", "canonical_name"]
