"""``pyude.fit``: the two-stage UDE recipe (Adam, then L-BFGS-B) with checkpoints and early stopping."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import scipy.optimize

from .._errors import DataError
from .._sensitivity import AbstractSensitivity, as_sensitivity
from ._optimizers import LBFGS, Adam, MultipleShooting

HISTORY_COLUMNS = ["step", "phase", "loss", "best_loss", "learning_rate", "seconds"]


@dataclass
class FitResult:
    """The outcome of :func:`fit`.

    ``params``: the best parameters found (a dict like ``model.init_params()``, estimated
    initial states as ``initial.<state>``); ``theta`` the same on the estimation scales;
    ``loss`` the objective there; ``history`` one row per Adam step and L-BFGS
    iteration; ``messages`` what the optimizers said (including divergence);
    ``success``: no stage failed.
    """

    problem: Any
    theta: np.ndarray
    loss: float
    history: pd.DataFrame
    messages: list[str]
    success: bool
    seed: int
    wall_time: float
    evaluations: int
    params: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.params = self.problem.params_of(self.theta)

    @property
    def predictions(self) -> pd.DataFrame:
        """The data with ``prediction`` and ``residual`` columns at the fitted parameters."""
        return self.problem.predictions(self.params)

    def estimates(self) -> pd.DataFrame:
        """The estimated mechanistic parameters and initial states: name, value, scale, bounds."""
        model, rows = self.problem.model, []
        for name in self.problem.estimation.names:
            p = getattr(model, "parameters", {}).get(name)
            if name.startswith("initial.") or p is not None:
                rows.append(
                    {
                        "parameter": name,
                        "estimate": float(self.params[name]),
                        "scale": p.scale if p is not None else "lin",
                        "lower": p.bounds[0] if p is not None and p.bounds else np.nan,
                        "upper": p.bounds[1] if p is not None and p.bounds else np.nan,
                    }
                )
        return pd.DataFrame(rows, columns=["parameter", "estimate", "scale", "lower", "upper"])

    def plot(self, path: str | Path | None = None):
        """Data vs fit per observable and condition, and the loss curve; returns the figure
        (saved as PNG when ``path`` is given)."""
        from ..plotting import plot_fit

        return plot_fit(self, path)

    def __repr__(self) -> str:
        status = "success" if self.success else "FAILED"
        return f"FitResult(loss={self.loss:.6g}, {status}, {len(self.history)} iterations, {self.wall_time:.1f} s)"


class _Progress:
    """A one-line text progress bar on stderr (no dependency)."""

    def __init__(self, total: int, enabled: bool, label: str):
        self.total, self.enabled, self.label = max(total, 1), enabled, label
        self._last = 0.0

    def update(self, step: int, loss: float, best: float, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        done = int(30 * min(step, self.total) / self.total)
        sys.stderr.write(f"\r{self.label} [{'#' * done}{'.' * (30 - done)}] {step}/{self.total} loss {loss:.6g} best {best:.6g}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _schedule(adam: Adam):
    if adam.schedule == "constant":
        return optax.constant_schedule(adam.learning_rate)
    if adam.schedule == "exponential":
        return optax.exponential_decay(adam.learning_rate, transition_steps=max(adam.steps, 1), decay_rate=adam.decay)
    return optax.cosine_decay_schedule(adam.learning_rate, decay_steps=max(adam.steps, 1), alpha=adam.decay)


def _fingerprint(problem, theta0: np.ndarray, adam: Adam, seed: int, sens: AbstractSensitivity, shooting) -> str:
    """What a checkpoint must match to be resumed."""
    h = hashlib.sha256()
    h.update(problem.model.fingerprint().encode())
    h.update(pd.util.hash_pandas_object(problem.data.frame, index=False).values.tobytes())
    h.update(np.asarray(theta0).tobytes())
    h.update(json.dumps([asdict(adam), seed, repr(sens), repr(problem.settings), repr(shooting)], sort_keys=True).encode())
    return h.hexdigest()


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    leaves = jax.tree.leaves(state["opt_state"])
    arrays = {f"opt_{i}": np.asarray(x) for i, x in enumerate(leaves)}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        theta=state["theta"],
        best_theta=state["best_theta"],
        history=np.asarray(state["history"], dtype=float).reshape(-1, len(HISTORY_COLUMNS)),
        meta=np.frombuffer(
            json.dumps(
                {"step": state["step"], "best": state["best"], "since_best": state["since_best"],
                 "evaluations": state["evaluations"], "fingerprint": state["fingerprint"], "n_opt": len(leaves),
                 "stopped": state["stopped"], "messages": state["messages"]}
            ).encode(),
            dtype=np.uint8,
        ),
        **arrays,
    )
    tmp.replace(path)


def _load_checkpoint(path: Path, fingerprint: str, opt_template) -> dict[str, Any] | None:
    if not path.exists():
        return None
    with np.load(path) as f:
        meta = json.loads(bytes(f["meta"]).decode())
        if meta["fingerprint"] != fingerprint:
            raise DataError(
                f"checkpoint {str(path)!r} belongs to a different problem or fit settings; "
                "delete it or pass another checkpoint path"
            )
        treedef = jax.tree.structure(opt_template)
        leaves = [jnp.asarray(f[f"opt_{i}"]) for i in range(meta["n_opt"])]
        return {
            "theta": f["theta"].copy(),
            "best_theta": f["best_theta"].copy(),
            "history": [list(r) for r in f["history"]],
            "opt_state": jax.tree.unflatten(treedef, leaves),
            **{k: meta[k] for k in ("step", "best", "since_best", "evaluations", "stopped", "messages")},
        }


def _starting_theta(problem, init, seed: int) -> np.ndarray:
    """``init`` (params dict or theta vector) or the problem's starting values with the
    networks initialised from ``seed`` (unless the problem was given their weights)."""
    if init is not None:
        if isinstance(init, Mapping):
            return problem.theta0(init)
        theta = np.asarray(init, dtype=float)
        if theta.shape != (problem.estimation.size,):
            raise DataError(f"init has shape {theta.shape}, expected ({problem.estimation.size},) (the estimated entries)")
        return theta
    given = problem._params_arg
    if given is not None and not isinstance(given, Mapping):  # a flat vector fixes everything
        return problem.theta0(given)
    start = dict(given or {})
    if hasattr(problem.model, "init_params"):
        mechanistic = problem.model.parameters
        for name, value in problem.model.init_params(seed).items():
            if name not in mechanistic:
                start.setdefault(name, value)
    return problem.theta0(start)


def fit(
    problem,
    *,
    seed: int = 0,
    adam: Adam | None = Adam(),
    polish: LBFGS | None = LBFGS(),
    sensitivity: str | AbstractSensitivity = "checkpoint",
    shooting: MultipleShooting | None = None,
    init=None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 50,
    progress: bool = False,
) -> FitResult:
    """Fit ``problem``: Adam (``adam``), then L-BFGS-B (``polish``) from Adam's best point.

    ``seed`` initialises the networks (``model.init_params(seed)``) and draws the
    mini-batches, so a fit is reproducible. ``checkpoint``: a file the Adam stage's
    state is written to every ``checkpoint_every`` steps and at its end; a later call
    with the same problem and settings resumes from it, with the same result as an
    uninterrupted run. A step whose solve fails or whose loss is not finite stops the
    stage it is in with a message; the best parameters so far are kept.

    ``shooting``: a :class:`MultipleShooting` for the Adam stage (its history's loss
    then includes the continuity penalty); the polish and the result are single shooting.
    """
    if adam is None and polish is None:
        raise DataError("fit: nothing to do (adam=None and polish=None)")
    sens = as_sensitivity(sensitivity)
    start_time = time.perf_counter()
    theta0 = _starting_theta(problem, init, seed)
    theta0 = problem.estimation.clip(theta0)
    lower, upper = problem.estimation.lower, problem.estimation.upper
    messages: list[str] = []
    success = True
    history: list[list[float]] = []  # HISTORY_COLUMNS; phase 0 adam, 1 lbfgs
    best_theta, best = theta0.copy(), np.inf
    evaluations = 0

    # ------------------------------------------------------------------ Adam
    if adam is not None and adam.steps > 0:
        schedule = _schedule(adam)
        opt = optax.adam(schedule)
        update = jax.jit(
            lambda g, s, th: (lambda u, s2: (optax.apply_updates(th, u), s2))(*opt.update(g, s, th))
        )
        fp = _fingerprint(problem, theta0, adam, seed, sens, shooting)
        n_theta = theta0.size
        start = theta0 if shooting is None else problem.shooting_start(theta0, shooting)
        # segment start states are unbounded
        lo = np.concatenate([lower, np.full(start.size - n_theta, -np.inf)])
        hi = np.concatenate([upper, np.full(start.size - n_theta, np.inf)])
        path = Path(checkpoint) if checkpoint is not None else None
        state = {
            "theta": start.copy(), "best_theta": start.copy(), "best": np.inf, "since_best": 0, "step": 0,
            "opt_state": opt.init(jnp.asarray(start)), "history": [], "evaluations": 0,
            "fingerprint": fp, "stopped": False, "messages": [],
        }
        if path is not None:
            loaded = _load_checkpoint(path, fp, state["opt_state"])
            if loaded is not None:
                state.update(loaded)
                messages.append(f"resumed from {path} at step {state['step']}")
        bar = _Progress(adam.steps, progress, "adam")
        n_cond = problem.n_conditions
        batch_size = None if adam.batch_size is None or adam.batch_size >= n_cond else int(adam.batch_size)
        while state["step"] < adam.steps and not state["stopped"]:
            k = state["step"]
            batch = None
            if batch_size is not None:
                rng = np.random.default_rng([seed, k])
                batch = np.sort(rng.choice(n_cond, size=batch_size, replace=False))
            out = problem.evaluate(state["theta"], sens, batch=batch, shooting=shooting)
            state["evaluations"] += 1
            if not out["ok"]:
                state["messages"].append(f"adam: step {k} failed: {out['message']}; kept the best parameters so far")
                state["stopped"] = True
                break
            value = out["value"]
            improved = not np.isfinite(state["best"]) or value < state["best"] - adam.min_delta * abs(state["best"])
            state["since_best"] = 0 if improved else state["since_best"] + 1
            if value < state["best"]:
                state["best"], state["best_theta"] = value, state["theta"].copy()
            state["history"].append([k, 0, value, state["best"], float(schedule(k)), time.perf_counter() - start_time])
            th, state["opt_state"] = update(jnp.asarray(out["grad"]), state["opt_state"], jnp.asarray(state["theta"]))
            state["theta"] = np.clip(np.asarray(th), lo, hi)
            state["step"] = k + 1
            bar.update(k + 1, value, state["best"])
            if adam.patience is not None and state["since_best"] >= adam.patience:
                state["messages"].append(f"adam: early stop at step {k + 1} (no improvement for {adam.patience} steps)")
                state["stopped"] = True
            if path is not None and (state["step"] % checkpoint_every == 0):
                _save_checkpoint(path, state)
        bar.update(state["step"], state["history"][-1][2] if state["history"] else np.nan, state["best"], force=True)
        bar.close()
        if path is not None:
            _save_checkpoint(path, state)
        messages.extend(state["messages"])
        if any("failed" in m for m in state["messages"]):
            success = False
        history.extend(state["history"])
        best_theta, best = state["best_theta"][:n_theta], state["best"]
        evaluations += state["evaluations"]
        if (batch_size is not None or shooting is not None) and np.isfinite(best):
            # mini-batch and multiple-shooting losses are not the objective: rank the point on it
            full = problem.evaluate(best_theta)
            best = full["value"] if full["ok"] else np.inf
        if not np.isfinite(best):
            best_theta = theta0

    # ---------------------------------------------------------------- L-BFGS
    if polish is not None:
        start = best_theta.copy()
        track = {"best": best, "theta": best_theta.copy(), "n": 0, "failure": ""}
        iteration = [len(history)]

        def fun(theta):
            out = problem.evaluate(theta, sens)
            track["n"] += 1
            if not out["ok"]:
                track["failure"] = out["message"]
                return np.inf, np.zeros_like(theta)
            if out["value"] < track["best"]:
                track["best"], track["theta"] = out["value"], np.asarray(theta).copy()
            return out["value"], np.asarray(out["grad"], dtype=float)

        def callback(intermediate_result):
            history.append([iteration[0], 1, float(intermediate_result.fun), track["best"], np.nan,
                            time.perf_counter() - start_time])
            iteration[0] += 1

        bounds = problem.estimation.bounds if np.isfinite(lower).any() or np.isfinite(upper).any() else None
        res = scipy.optimize.minimize(
            fun, start, jac=True, method="L-BFGS-B", bounds=bounds, callback=callback,
            options={"maxiter": int(polish.max_iter), "gtol": polish.gtol, "ftol": polish.ftol},
        )
        evaluations += track["n"]
        msg = res.message if isinstance(res.message, str) else str(res.message)
        messages.append(f"lbfgs: {msg} ({res.nit} iterations)")
        if track["failure"]:
            messages.append(f"lbfgs: a solve failed during the line search ({track['failure']}); kept the best point")
        best, best_theta = track["best"], track["theta"]
        if not np.isfinite(best):
            success = False
            messages.append("lbfgs: no finite objective value was found")
    if not np.isfinite(best):
        success = False
    frame = pd.DataFrame(np.asarray(history, dtype=float).reshape(-1, len(HISTORY_COLUMNS)), columns=HISTORY_COLUMNS)
    frame["phase"] = np.where(frame["phase"] == 0, "adam", "lbfgs")
    frame["step"] = np.arange(len(frame))
    return FitResult(
        problem, np.asarray(best_theta), float(best), frame, messages, success, seed,
        time.perf_counter() - start_time, evaluations,
    )
