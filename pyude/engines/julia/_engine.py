"""The Julia engine: the same interface as the JAX engine, computed by PyUDE.jl through juliacall.

Julia starts on the first compiled model (never on ``import pyude``); see
:mod:`._detect` for when the engine counts as available.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import numpy as np

from ..._errors import EngineUnavailable, SolverError, SpecError
from ..._sensitivity import AbstractSensitivity
from ...spec._function import FunctionModel
from ...spec._model import Model
from ._detect import INSTALL, require_julia
from ._export import input_arrays, julia_spec_json, objective_kwargs
from ._names import check_event_sensitivity, julia_solver_name, vjp_choice

# result codes of julia/src/solvers.jl -> the codes SolverError carries (as the JAX engine's)
CODES = {
    1: "max_steps_reached",
    2: "dt_min_reached",
    3: "nonfinite",
    4: "solver_failed",
    5: "julia_exception",
    6: "incomplete",
    7: "no_steady_state",
}
STIFF = ("Rodas5P", "Rosenbrock23", "Kvaerno5", "KenCarp4", "FBDF", "QNDF")


class JuliaCompiledModel:
    """A model compiled by PyUDE.jl (``handle``), plus the host-side pieces ``pyude.Problem``
    and ``pyude.solve`` use before any solve (initial values at p, input knot data), taken
    from the JAX compilation of the same spec so both engines start from the same numbers."""

    def __init__(self, model: Model, handle: Any):
        from ..jax._compile import compile_model

        self.model = model
        self.handle = handle
        host = compile_model(model)
        # the spec's assignments at p (pyude.solve applies them on the host; Problem objectives in Julia)
        self.assign = host.assign
        self.initial = host.initial
        self.inputs = host.inputs
        self.input_args = host.input_args
        self.arrays: OrderedDict[tuple[int, str], tuple[Any, Any]] = OrderedDict()
        self.seen: set = set()

    @property
    def states(self) -> list[str]:
        return self.model.states


class JuliaEngine:
    """``engine="julia"``: raises :class:`~pyude.EngineUnavailable` at once where Julia is missing."""

    name = "julia"
    supports_shooting = False  # PyUDE.jl's objective has no segments: Problem refuses

    def __init__(self, max_models: int = 16):
        require_julia()
        self.vjp = vjp_choice()
        self._pyude = None
        self._models: OrderedDict[str, JuliaCompiledModel] = OrderedDict()
        self._max_models = max_models
        self.last_message = ""

    # ------------------------------------------------------------------ Julia
    def julia(self):
        """The PyUDE Julia module (starts Julia and resolves the Julia packages on first use)."""
        if self._pyude is None:
            try:
                import juliacall

                bridge = juliacall.newmodule("PyUDEBridge")
                bridge.seval("using PyUDE")
                self._pyude = bridge.PyUDE
            except Exception as e:  # juliacall raises plain Exceptions when Julia cannot start
                raise EngineUnavailable(f"engine='julia': starting Julia or loading PyUDE failed: {e}\n{INSTALL}") from e
        return self._pyude

    def _call(self, fn: str, *args, **kwargs):
        """Call ``PyUDE.<fn>``; a Julia exception becomes a :class:`SolverError` naming it."""
        try:
            return getattr(self.julia(), fn)(*args, **kwargs)
        except EngineUnavailable:
            raise
        except Exception as e:
            if type(e).__name__ != "JuliaError":
                raise
            raise SolverError(
                f"PyUDE.{fn} raised a Julia exception: {e}",
                code="julia_exception",
                t_reached=float("nan"),
                hint="see the Julia message above; a DomainError usually means log/sqrt of a negative trial state",
            ) from None

    def _timed(self, cm: JuliaCompiledModel, key, fn: str, *args, **kwargs) -> tuple[Any, float, float]:
        """(result, first-call seconds, seconds): Julia compiles on the first call of each method."""
        start = time.perf_counter()
        out = self._call(fn, *args, **kwargs)
        elapsed = time.perf_counter() - start
        first = 0.0 if key in cm.seen else elapsed
        cm.seen.add(key)
        return out, first, elapsed

    # --------------------------------------------------------------- compile
    def compiled(self, model) -> JuliaCompiledModel:
        if isinstance(model, FunctionModel) or not isinstance(model, Model):
            raise SpecError("a model given as a Python function runs on engine='jax' only; give a spec for engine='julia'")
        key = model.fingerprint()
        cm = self._models.get(key)
        if cm is None:
            spec = julia_spec_json(model)
            cm = JuliaCompiledModel(model, self._call("compile_model", spec))
            self._models[key] = cm
            if len(self._models) > self._max_models:
                self._models.popitem(last=False)
        else:
            self._models.move_to_end(key)
        return cm

    def resolve_solver(self, cm, solver: str, t0, t1, y0, p, u) -> tuple[str, None]:
        """The Julia engine leaves ``"auto"`` to OrdinaryDiffEq (``AutoTsit5(Rodas5P())``)."""
        return julia_solver_name(solver), None

    # ----------------------------------------------------------------- solve
    def _solve_raw(self, cm, ts, t0, y0, p, u, name, rtol, atol, max_steps):
        ut, uv, um, ul = input_arrays(u)
        args = (cm.handle, np.ascontiguousarray(ts, dtype=float), float(t0), np.asarray(y0, dtype=float),
                np.asarray(p, dtype=float), ut, uv, um, ul, name, float(rtol), float(atol), int(max_steps))
        return self._timed(cm, ("solve", name), "solve_model", *args)

    def solve(self, cm, ts: np.ndarray, t0: float, y0, p, u, solver: str, rtol, atol, max_steps):
        """``(ys, stats, dense)`` as the JAX engine; ``dense(t)`` re-solves saving at ``t``."""
        name = julia_solver_name(solver)
        out, first, elapsed = self._solve_raw(cm, ts, t0, y0, p, u, name, rtol, atol, max_steps)
        Y, code, retcode, t_reached, n_accept, n_reject, n_f, n_jac = out
        if int(code) != 0:
            self._raise(int(code), float(t_reached), float(ts[-1]), name, int(max_steps), f" (retcode {retcode})")
        ys = np.array(Y, dtype=float).T
        stats = {
            "solver": name,
            "steps": int(n_accept),
            "rejected_steps": int(n_reject),
            "rhs_evals": int(n_f),
            "jacobian_evals": int(n_jac),
            "compile_time": first,  # the first call's time: Julia compiles while it runs
            "solve_time": elapsed,
            "stiffness_estimate": None,
            "stiffness_spread": None,
        }

        def dense(t: np.ndarray) -> np.ndarray:
            tq = np.unique(np.asarray(t, dtype=float))
            if tq[-1] <= t0:
                out_q = np.tile(np.asarray(y0, dtype=float), (tq.size, 1))
            else:
                save = tq[tq > t0] if tq[0] <= t0 else tq
                res = self._solve_raw(cm, save, t0, y0, p, u, name, rtol, atol, max_steps)[0]
                if int(res[1]) != 0:
                    self._raise(int(res[1]), float(res[3]), float(save[-1]), name, int(max_steps), "")
                rows = np.array(res[0], dtype=float).T
                out_q = rows if save.size == tq.size else np.vstack([np.asarray(y0, dtype=float)[None, :], rows])
            return out_q[np.searchsorted(tq, np.asarray(t, dtype=float))]

        return ys, stats, dense

    # ------------------------------------------------------------- objective
    def _arrays(self, cm: JuliaCompiledModel, arrays: dict, mode: str):
        """The Julia ``Arrays`` for this dict (cached by identity: Problem.evaluate reuses one dict)."""
        key = (id(arrays), mode)
        hit = cm.arrays.get(key)
        if hit is not None and hit[0] is arrays:
            return hit[1]
        ja = self._call("make_arrays", cm.handle, **objective_kwargs(arrays, mode, cm.model))
        cm.arrays[key] = (arrays, ja)
        if len(cm.arrays) > 8:
            cm.arrays.popitem(last=False)
        return ja

    def objective(self, cm, s, sens: AbstractSensitivity | None, mode: str, theta, arrays):
        """``((value, grad or None, data_term, codes, t_reached), first-call seconds)``."""
        sens_name = "" if sens is None else sens.name
        check_event_sensitivity(cm.model, sens_name, self.vjp)
        ja = self._arrays(cm, arrays, mode)
        out, first, _ = self._timed(
            cm, ("objective", s, sens_name, mode), "objective", cm.handle, ja, np.asarray(theta, dtype=float),
            s.solver, float(s.rtol), float(s.atol), int(s.max_steps), sens_name, self.vjp,
        )
        value, grad, data_term, codes, t_reached, message = out
        self.last_message = str(message)
        g = None if sens is None else np.array(grad, dtype=float)
        return (float(value), g, float(data_term), np.array(codes, dtype=np.int64), np.array(t_reached, dtype=float)), first

    def _evaluate(self, cm, s, mode: str, fn: str, theta, arrays):
        """PyUDE.jl's ``fn`` (predict or rows) at ``theta``: ``(outputs..., codes, t_reached)`` and first-call seconds."""
        ja = self._arrays(cm, arrays, mode)
        out, first, _ = self._timed(
            cm, (fn, s, mode), fn, cm.handle, ja, np.asarray(theta, dtype=float), s.solver,
            float(s.rtol), float(s.atol), int(s.max_steps),
        )
        *values, codes, t_reached, message = out
        self.last_message = str(message)
        return [np.array(v, dtype=float) for v in values], np.array(codes, dtype=np.int64), np.array(t_reached, dtype=float), first

    def predict(self, cm, s, mode: str, theta, arrays):
        """``((H (C, T, rows), sigma (C, T, rows), codes, t_reached), first-call seconds)``."""
        (H, S), codes, t_reached, first = self._evaluate(cm, s, mode, "predict", theta, arrays)
        return (np.transpose(H, (2, 1, 0)), np.transpose(S, (2, 1, 0)), codes, t_reached), first

    def rows(self, cm, s, mode: str, theta, arrays):
        """``((h, sigma, codes, t_reached), first-call seconds)``: every data row's prediction and noise scale."""
        (h, sigma), codes, t_reached, first = self._evaluate(cm, s, mode, "rows", theta, arrays)
        return (h, sigma, codes, t_reached), first

    # ---------------------------------------------------------------- errors
    def _raise(self, code: int, t_reached: float, t_end: float, solver: str, max_steps: int, extra: str) -> None:
        name = CODES.get(code, f"code {code}")
        if name == "no_steady_state":
            hint = "the preequilibration did not settle within 1e9 time units; check its condition"
        elif name == "max_steps_reached":
            hint = (f"increase max_steps (now {max_steps}) or loosen rtol/atol" if solver in STIFF else
                    f"the problem looks stiff: try solver='Rodas5P' (or 'FBDF'), or increase max_steps (now {max_steps})")
        elif name in ("dt_min_reached", "nonfinite"):
            hint = ("the solution may blow up or become non-finite here (check parameters and initial values); "
                    + ("try tighter tolerances" if solver in STIFF else "try solver='Rodas5P' if the problem is stiff"))
        elif name == "julia_exception":
            hint = f"Julia raised: {self.last_message}"
        else:
            hint = "try another solver or tighter tolerances"
        raise SolverError(f"solver {solver} failed ({name}{extra}) at t={t_reached:.6g} of {t_end:.6g}",
                          code=name, t_reached=float(t_reached), hint=hint)

    def raise_for_result(self, code: int, t_reached: float, t_end: float, s) -> None:
        if int(code) != 0:
            self._raise(int(code), t_reached, t_end, s.solver, s.max_steps, "")


__all__ = ["JuliaEngine", "JuliaCompiledModel", "CODES"]
