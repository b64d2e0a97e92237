"""The JAX engine: compiled-model cache, solve, and objective gradients."""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..._errors import SolverError
from ..._sensitivity import AbstractSensitivity, Checkpoint
from ...spec._model import Model
from ._compile import CompiledModel, compile_model, jit
from ._objective import objective_fns
from ._replay import StoredStages, replay_pays, replays
from ._events import solve_with_events
from ._integrate import MAX_STEPS_CODE, Settings, integrate, raise_for_result, trajectory_outputs
from ._solvers import RHS_EVALS_PER_STEP, canonical_name
from ._stiffness import StiffnessEstimate, estimate_stiffness


# Checkpoint(checkpoints="all") tries these bounds on the number of steps, with every step
# stored (JaxEngine._objective_stored_steps), as long as that takes at most
# STORED_STEPS_MEMORY bytes.
STORED_STEP_BOUNDS = (64, 512, 4096)
STORED_STEPS_MEMORY = 64 * 2**20


def _signature(a) -> tuple:
    """Shape and dtype of an argument leaf (Python scalars by type: jit's weak types)."""
    dtype = getattr(a, "dtype", None)
    return (np.shape(a), type(a)) if dtype is None else (a.shape, dtype)


class JaxEngine:
    """Compiles each model once (keyed by its canonical spec) and keeps the jitted
    solve and gradient functions of every solver setting it has seen."""

    name = "jax"
    supports_shooting = True  # the objective understands arrays["shooting"]

    def __init__(self, max_models: int = 64):
        self._models: OrderedDict[str, CompiledModel] = OrderedDict()
        self._max_models = max_models

    def compiled(self, model: Model) -> CompiledModel:
        key = model.fingerprint()
        cm = self._models.get(key)
        if cm is None:
            cm = compile_model(model)
            self._models[key] = cm
            if len(self._models) > self._max_models:
                self._models.popitem(last=False)
        else:
            self._models.move_to_end(key)
        return cm

    # --------------------------------------------------------------- helpers
    @staticmethod
    def call_compiled(cm: CompiledModel, key, fn: Callable, *args) -> tuple[Any, float]:
        """Run ``fn`` ahead-of-time compiled for these argument shapes; return (output, compile seconds).

        The compile time is non-zero only on the first call for a given key and shapes.
        """
        # a training loop calls this every step: read shapes off the leaves, no dtype promotion
        leaves, treedef = jax.tree.flatten(args)
        full_key = (key, treedef, tuple(_signature(a) for a in leaves))
        exe = cm.cache.get(full_key)
        compile_time = 0.0
        if exe is None:
            start = time.perf_counter()
            if hasattr(fn, "lower"):
                # a jitted function keeps this executable in its own cache: later calls take
                # jit's C++ dispatch, which is faster than calling a Compiled object
                fn.lower(*args).compile()
                exe = fn
            else:
                exe = jit(fn).lower(*args).compile()
            compile_time = time.perf_counter() - start
            cm.cache[full_key] = exe
        return exe(*args), compile_time

    def resolve_solver(self, cm: CompiledModel, solver: str, t0, t1, y0, p, u) -> tuple[str, StiffnessEstimate | None]:
        if solver.lower() != "auto":
            return canonical_name(solver), None
        est = estimate_stiffness(cm, t0, t1, jnp.asarray(y0), (cm.assign(jnp.asarray(p)), u))
        return est.solver, est

    # ----------------------------------------------------------------- solve
    def solve(self, cm: CompiledModel, ts: np.ndarray, t0: float, y0, p, u, solver: str, rtol, atol, max_steps):
        """Returns ``(ys, stats, dense)``, ``dense(t_array)`` evaluating the dense output."""
        y0 = jnp.asarray(y0, dtype=jnp.float64)
        p = jnp.asarray(p, dtype=jnp.float64)
        name, est = self.resolve_solver(cm, solver, t0, ts[-1], y0, p, u)
        s = Settings(name, float(rtol), float(atol), int(max_steps))

        def run(ts, t0, y0, p, u):
            if cm.events is not None:
                return solve_with_events(cm, s, ts, t0, y0, p, u)
            sol = integrate(cm, s, ts, t0, y0, p, u)
            return (*trajectory_outputs(sol), sol.stats)

        args = (jnp.asarray(ts), jnp.asarray(t0, dtype=jnp.float64), y0, p, u)
        start = time.perf_counter()
        (ys, code, t_reached, raw_stats), compile_time = self.call_compiled(cm, ("solve", s), run, *args)
        ys = np.asarray(ys)
        elapsed = time.perf_counter() - start - compile_time
        raise_for_result(code, float(t_reached), float(ts[-1]), name, s.max_steps)
        if not np.all(np.isfinite(ys)):
            raise SolverError(
                f"solver {name} returned non-finite values",
                code="nonfinite",
                t_reached=float(t_reached),
                hint="check parameters and initial values; try a stiff solver or tighter tolerances",
            )
        st = {k: int(v) for k, v in raw_stats.items() if k in ("num_steps", "num_accepted_steps", "num_rejected_steps")}
        per_step = RHS_EVALS_PER_STEP[name]
        stats = {
            "solver": name,
            "steps": st["num_accepted_steps"],
            "rejected_steps": st["num_rejected_steps"],
            # attempted steps x evaluations per step, + 2 for the initial step-size guess
            "rhs_evals": None if per_step is None else st["num_steps"] * per_step + 2,
            "jacobian_evals": st["num_steps"] if name in ("Rodas5P", "Rosenbrock23") else None,
            "compile_time": compile_time,
            "solve_time": elapsed,
            "stiffness_estimate": None if est is None else est.estimate,
            "stiffness_spread": None if est is None else est.spread,
        }
        interp: list = []

        def dense(t: np.ndarray) -> np.ndarray:
            if cm.events is not None:
                return self._dense_with_events(cm, s, t, args)
            # the dense output costs a buffer of max_steps steps: built on first use only
            if not interp:

                def run_dense(ts, t0, y0, p, u):
                    return integrate(cm, s, ts, t0, y0, p, u, dense=True).interpolation

                interp.append(self.call_compiled(cm, ("dense", s), run_dense, *args)[0])
            evaluate = cm.cache.get("dense_eval")
            if evaluate is None:
                evaluate = jit(lambda it, tq: jax.vmap(it.evaluate)(tq))
                cm.cache["dense_eval"] = evaluate
            return np.asarray(evaluate(interp[0], jnp.asarray(t, dtype=jnp.float64)))

        return ys, stats, dense

    def _dense_with_events(self, cm: CompiledModel, s: Settings, t: np.ndarray, args) -> np.ndarray:
        """The solution at any times of a model with events: a solve saved at those times
        (sorted; times before t0 take the initial state), in the order asked."""
        t = np.asarray(t, dtype=float)
        flat = t.reshape(-1)
        _, t0, y0, p, u = args
        order = np.argsort(flat, kind="stable")
        tq = np.maximum(flat[order], float(t0))
        # save times must increase strictly: repeated times are solved once
        uniq, inverse = np.unique(tq, return_inverse=True)
        if uniq[-1] == float(t0):
            ys = np.broadcast_to(np.asarray(y0), (uniq.size, y0.shape[0]))
        else:
            run = lambda ts, t0, y0, p, u: solve_with_events(cm, s, ts, t0, y0, p, u)[0]  # noqa: E731
            ys = np.asarray(self.call_compiled(cm, ("dense_events", s), run, jnp.asarray(uniq), t0, y0, p, u)[0])
        out = np.empty((flat.size, y0.shape[0]))
        out[order] = ys[inverse]
        return out.reshape(t.shape + (y0.shape[0],))

    # ------------------------------------------------------------- objective
    def objective(self, cm: CompiledModel, s: Settings, sens: AbstractSensitivity | None, mode: str, theta, arrays):
        """``((value, grad or None, data_term, codes, t_reached), compile seconds)`` of the batched objective."""
        if isinstance(sens, Checkpoint) and sens.checkpoints == "all":
            return self._objective_stored_steps(cm, s, mode, theta, arrays)
        return self._objective(cm, s, sens, mode, theta, arrays)

    def _objective_stored_steps(self, cm: CompiledModel, s: Settings, mode: str, theta, arrays):
        """The checkpointed gradient with every step's state stored (``Checkpoint(checkpoints="all")``).

        diffrax's ``RecursiveCheckpointAdjoint`` stores at most ``checkpoints`` states and
        recomputes the others (online "treeverse"); with as many checkpoints as
        ``max_steps`` its loop skips that bookkeeping. As that stores ``max_steps`` states,
        the solve runs under small bounds on its steps (``STORED_STEP_BOUNDS``, within
        ``STORED_STEPS_MEMORY``), the next one whenever a solve reaches the current one,
        then under the problem's ``max_steps`` with diffrax's default. The steps taken, and
        so the gradient, are the same whatever the bound. The bound that sufficed is kept
        for the next call (it never goes down: no recompilation back and forth).

        With Tsit5 or Dopri5 on a model without events, inputs or jumps whose right-hand
        side is costly enough, every step's stages are stored as well and the backward pass
        replays them (:class:`StoredStages`).
        """
        n_states = np.size(arrays["y0_value"])
        n_cond = np.shape(arrays["cond"]["p_fixed"])[0]
        n_seg = np.size(arrays["shooting"]["t_end"]) + 1 if "shooting" in arrays else 1
        size = n_states * n_cond * n_seg  # states x conditions (x segments: one vmapped call)
        # a step's evaluations cover every member of a vmapped solve
        batch = (n_cond if s.batching == "vectorized" else 1) * n_seg
        replay = replays(cm, s) and replay_pays(cm, n_states, batch)
        # stored per step: with the stages, the dense output's start, end and 7 stages; else the
        # loop's carry (the state, the first-same-as-last evaluation and smaller items)
        states_per_step = 10 if replay else 4
        bounds = [k for k in STORED_STEP_BOUNDS if k < s.max_steps and states_per_step * 8 * k * size <= STORED_STEPS_MEMORY]
        rung_key = ("stored_step_rung", s, mode, replay)  # the replay has its own bounds (memory)
        rung = cm.cache.get(rung_key, 0)
        compile_time = 0.0
        while rung < len(bounds):
            k = bounds[rung]
            sens = StoredStages() if replay else Checkpoint(checkpoints=k)
            out, ct = self._objective(cm, dataclasses.replace(s, max_steps=k), sens, mode, theta, arrays)
            compile_time += ct
            if not np.any(out[3] == MAX_STEPS_CODE):
                cm.cache[rung_key] = rung
                return out, compile_time
            rung += 1
        cm.cache[rung_key] = rung
        out, ct = self._objective(cm, s, Checkpoint(), mode, theta, arrays)
        return out, compile_time + ct

    def _objective(self, cm: CompiledModel, s: Settings, sens: AbstractSensitivity | None, mode: str, theta, arrays):
        fns = objective_fns(cm, s, sens, mode)
        if sens is None:
            (value, (data_term, codes, t_reached)), ct = self.call_compiled(
                cm, ("objective", s, mode), fns["value"], theta, arrays
            )
            grad = None
        else:
            ((value, (data_term, codes, t_reached)), grad), ct = self.call_compiled(
                cm, ("objective_grad", s, sens, mode), fns["value_and_grad"], theta, arrays
            )
            grad = np.asarray(grad)
        return (float(value), grad, float(data_term), np.asarray(codes), np.asarray(t_reached)), ct

    def predict(self, cm: CompiledModel, s: Settings, mode: str, theta, arrays):
        """``((H, sigma, codes, t_reached), compile seconds)``: every observable and state per condition and time."""
        fns = objective_fns(cm, s, None, mode)
        out, ct = self.call_compiled(cm, ("predict", s, mode), fns["predict"], theta, arrays)
        return tuple(np.asarray(x) for x in out), ct

    def rows(self, cm: CompiledModel, s: Settings, mode: str, theta, arrays):
        """``((h, sigma, codes, t_reached), compile seconds)``: prediction and noise scale of every data row."""
        fns = objective_fns(cm, s, None, mode)
        out, ct = self.call_compiled(cm, ("rows", s, mode), fns["rows"], theta, arrays)
        return tuple(np.asarray(x) for x in out), ct

    @staticmethod
    def raise_for_result(code: int, t_reached: float, t_end: float, s: Settings) -> None:
        raise_for_result(code, t_reached, t_end, s.solver, s.max_steps)


__all__ = ["JaxEngine", "Settings"]
