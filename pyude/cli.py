"""The ``pyude`` command line: ``pyude fit`` (the main job), ``pyude simulate``, ``pyude validate`` and
``pyude check-engines``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from ._errors import PyudeError


def _simulate(args) -> int:
    from . import solve
    from .plotting import plot_solution
    from .spec import Model

    if args.model.endswith((".yaml", ".yml")) and _is_problem_file(args.model):
        return _simulate_problem(args)
    if args.t_end is None:
        print("error: --t-end is required to simulate a model spec (a problem file brings its own times)", file=sys.stderr)
        return 2
    model = Model.from_yaml(args.model) if not args.model.endswith(".json") else Model.from_json(args.model)
    t0 = args.t0
    if args.log_time:
        start = max(args.t_end * 1e-6, 1e-12) if t0 == 0 else t0
        t = np.geomspace(start, args.t_end, args.points)
    else:
        t = np.linspace(t0, args.t_end, args.points)
    sol = solve(model, t, t0=t0, solver=args.solver, rtol=args.rtol, atol=args.atol)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sol.to_dataframe().to_csv(out / "trajectory.csv", index=False)
    png = plot_solution(sol, out / "trajectory.png", title=model.name, log_time=args.log_time)
    st = sol.stats
    print(f"model      {model.name} ({len(model.states)} states)")
    est = "" if st["stiffness_estimate"] is None else f" (auto; stiffness estimate {st['stiffness_estimate']:.3g})"
    print(f"solver     {st['solver']}{est}")
    print(f"steps      {st['steps']} accepted, {st['rejected_steps']} rejected")
    print(f"time       compile {st['compile_time']:.2f} s, solve {st['solve_time'] * 1e3:.2f} ms")
    print("final      " + ", ".join(f"{s}={v:.6g}" for s, v in zip(sol.states, sol.y[-1])))
    print(f"wrote      {out / 'trajectory.csv'}")
    print(f"plot       {png}")
    return 0


def _simulate_problem(args) -> int:
    """A problem file (pyude's or PEtab v1/v2) at its starting (PEtab: nominal) parameters:
    every measurement row with its simulated value, and the loss there."""
    from .problem._file import load_problem_file

    problem, _ = load_problem_file(args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(problem, "measurements"):  # PEtab: the measurement table with a `simulation` column
        frame = problem.simulate()
    else:
        frame = problem.predictions()
    frame.to_csv(out / "simulation.csv", index=False)
    loss = problem.loss()
    print(f"problem    {problem!r}")
    print(f"solver     {problem.solver}, rtol {problem.settings.rtol:g}, atol {problem.settings.atol:g}")
    print(f"loss       {loss:.10g} (negative log-{'posterior' if problem.estimation.prior_index.size else 'likelihood'}"
          f"{'' if problem.mode == 'nll' else '; weighted sum of squares'})")
    print(f"wrote      {out / 'simulation.csv'} ({len(frame)} rows)")
    return 0


def _fit(args) -> int:
    import json

    import pandas as pd

    from .fitting import fit, fit_multistart
    from .problem._file import load_problem_file

    problem, kw = load_problem_file(args.problem)
    multistart = kw.pop("multistart")
    if args.starts is not None:
        multistart = args.starts
    if args.max_iterations is not None:
        if kw.get("polish") is None:
            print("error: --max-iterations caps the L-BFGS-B stage, and this problem's fit has none", file=sys.stderr)
            return 2
        kw["polish"] = dataclasses.replace(kw["polish"], max_iter=args.max_iterations)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"problem    {problem!r}")
    if problem.stiffness is not None:
        print(f"solver     {problem.solver} (auto; stiffness estimate {problem.stiffness.estimate:.3g})")
    if multistart and multistart > 1:
        ms = fit_multistart(problem, multistart, **kw)
        ms.summary.to_csv(out / "multistart.csv", index=False)
        ms.plot_waterfall(out / "waterfall.png")
        result = ms.best
        print(f"starts     {multistart}: {int(ms.summary['success'].sum())} succeeded; waterfall {out / 'waterfall.png'}")
    else:
        result = fit(problem, checkpoint=out / "checkpoint.npz", progress=not args.quiet, **kw)
    params = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in result.params.items()}
    (out / "params.json").write_text(json.dumps(params, indent=1))
    pred = result.predictions
    pred.to_csv(out / "predictions.csv", index=False)
    result.history.to_csv(out / "history.csv", index=False)
    fig = result.plot(out / "fit.png")
    import matplotlib.pyplot as plt

    plt.close(fig)
    est = result.estimates()
    rmse = pred.groupby("observable")["residual"].apply(lambda r: float((r**2).mean() ** 0.5))
    with pd.option_context("display.width", 120, "display.max_columns", 10):
        if len(est):
            print(est.to_string(index=False))
        print(pd.DataFrame({"observable": rmse.index, "rmse": rmse.values}).to_string(index=False))
    print(f"loss       {result.loss:.6g} ({'success' if result.success else 'FAILED'}; {result.wall_time:.1f} s,"
          f" {result.evaluations} evaluations)")
    for m in result.messages:
        print(f"note       {m}")
    print(f"wrote      {out / 'params.json'}, {out / 'predictions.csv'}, {out / 'history.csv'}")
    print(f"plots      {out / 'fit.png'}")
    return 0 if result.success else 1


def _validate(args) -> int:
    from .problem import Problem
    from .spec import Model

    if args.model.endswith((".yaml", ".yml")) and _is_problem_file(args.model):
        from .problem._file import load_problem_file

        problem, _ = load_problem_file(args.model)
        print(f"ok: {problem!r}")
        return 0
    model = Model.from_yaml(args.model) if not args.model.endswith(".json") else Model.from_json(args.model)
    print(f"ok: {model!r}")
    if args.data:
        problem = Problem(model, args.data, args.conditions, t0=args.t0, solver="Tsit5")
        print(f"ok: {len(problem.data.values)} data rows at {len(problem.data.ts)} times, "
              f"{problem.n_conditions} condition(s)")
    return 0


def _check_engines(args) -> int:
    from ._check_engines import check_engines

    result = check_engines(
        args.problem, reference=args.reference, candidate=args.candidate, rtol=args.rtol, atol=args.atol,
        sensitivity=args.sensitivity, tolerance=args.tolerance,
    )
    print(result.table())
    return 0 if result.ok else 1


def _is_problem_file(path: str) -> bool:
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and (("data" in raw and "model" in raw) or "format_version" in raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyude", description="Universal differential equations from Python.")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="solve a model spec and plot its trajectory, or simulate a problem "
                         "file (pyude or PEtab) at its starting parameters")
    sim.add_argument("model", help="model spec (.yaml or .json), or a problem file (pyude or PEtab v1/v2)")
    sim.add_argument("--t-end", type=float, help="end time (model specs only)")
    sim.add_argument("--t0", type=float, default=0.0)
    sim.add_argument("--points", type=int, default=200)
    sim.add_argument("--log-time", action="store_true", help="log-spaced save times and a log time axis")
    sim.add_argument("--solver", default="auto")
    sim.add_argument("--rtol", type=float, default=1e-6)
    sim.add_argument("--atol", type=float, default=1e-8)
    sim.add_argument("--out", default="out")
    val = sub.add_parser("validate", help="check a model spec or problem file (and data) and report the first problem")
    val.add_argument("model", help="model spec (.yaml/.json) or problem file")
    val.add_argument("--data")
    val.add_argument("--conditions")
    val.add_argument("--t0", type=float, default=0.0)
    fit = sub.add_parser("fit", help="fit a problem file: params.json, predictions.csv, history.csv, plots")
    fit.add_argument("problem", help="problem file (.yaml): model, data, conditions, fit settings")
    fit.add_argument("--out", default="out/fit")
    fit.add_argument("--starts", type=int, help="multi-start with this many starts (overrides the file)")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.add_argument("--max-iterations", type=int, help="cap on the L-BFGS-B iterations (overrides the file)")
    chk = sub.add_parser("check-engines", help="solve and differentiate a problem file on two engines and compare "
                         "(exit status 1 beyond tolerance)")
    chk.add_argument("problem", help="problem file (.yaml)")
    chk.add_argument("--reference", default="jax")
    chk.add_argument("--candidate", default="julia")
    chk.add_argument("--rtol", type=float, default=1e-10)
    chk.add_argument("--atol", type=float, default=1e-12)
    chk.add_argument("--sensitivity", default="checkpoint", choices=["checkpoint", "adjoint", "forward"])
    chk.add_argument("--tolerance", type=float, default=1e-6, help="largest relative difference accepted")
    args = parser.parse_args(argv)
    commands = {"simulate": _simulate, "validate": _validate, "fit": _fit, "check-engines": _check_engines}
    try:
        return commands[args.command](args)
    except PyudeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
