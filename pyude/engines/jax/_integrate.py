"""One integration of a compiled model with diffrax: the building block of solve and gradients."""

from __future__ import annotations

from dataclasses import dataclass

import diffrax

from ..._errors import SolverError
from ._compile import CompiledModel
from ._solvers import STIFF, make_controller, make_solver


@dataclass(frozen=True)
class Settings:
    """Solver settings of a solve or a problem: every compiled function is keyed by them."""

    solver: str
    rtol: float
    atol: float
    max_steps: int


def integrate(
    cm: CompiledModel,
    s: Settings,
    ts,
    t0,
    y0,
    p,
    u,
    *,
    dense: bool = False,
    adjoint: diffrax.AbstractAdjoint | None = None,
) -> diffrax.Solution:
    """Solve from ``t0`` and save at ``ts`` (and ``t1`` = where the solve stopped).

    Never raises for a failed solve: the result code is in the solution, and
    :func:`raise_for_result` turns it into a :class:`~pyude.SolverError`.
    """
    term = diffrax.ODETerm(cm.rhs)
    solver = make_solver(s.solver, s.rtol, s.atol)
    controller = make_controller(s.solver, s.rtol, s.atol, cm.jump_ts if cm.jump_ts.size else None)
    saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts), diffrax.SubSaveAt(t1=True)], dense=dense)
    kwargs = {} if adjoint is None else {"adjoint": adjoint}
    return diffrax.diffeqsolve(
        term,
        solver,
        t0=t0,
        t1=ts[-1],
        dt0=None,
        y0=y0,
        args=(p, u),
        saveat=saveat,
        stepsize_controller=controller,
        max_steps=s.max_steps,
        throw=False,
        **kwargs,
    )


_CODE_NAMES = {int(item._value): name for name, item in diffrax.RESULTS._name_to_item.items()}


def result_name(code) -> str:
    return _CODE_NAMES.get(int(code), f"code {int(code)}")


def raise_for_result(code, t_reached: float, t_end: float, solver: str, max_steps: int, y_last=None) -> None:
    """Raise :class:`SolverError` unless ``code`` is success."""
    if int(code) == 0:
        return
    name = result_name(code)
    if name == "max_steps_reached":
        if solver in STIFF:
            hint = f"increase max_steps (now {max_steps}) or loosen rtol/atol"
        else:
            hint = f"the problem looks stiff: try solver='Rodas5P' (or 'Kvaerno5'), or increase max_steps (now {max_steps})"
    elif name in ("dt_min_reached", "nonfinite"):
        hint = (
            "the solution may blow up or become non-finite here (check parameters and initial values); "
            + ("try solver='Rodas5P' if the problem is stiff" if solver not in STIFF else "try tighter tolerances")
        )
    else:
        hint = "try another solver or tighter tolerances"
    raise SolverError(
        f"solver {solver} failed ({name}) at t={t_reached:.6g} of {t_end:.6g}",
        code=name,
        t_reached=float(t_reached),
        hint=hint,
    )


def final_time(sol: diffrax.Solution):
    return sol.ts[1][0]
