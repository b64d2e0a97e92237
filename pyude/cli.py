"""The ``pyude`` command line: ``pyude simulate`` and ``pyude validate``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ._errors import PyudeError


def _simulate(args) -> int:
    from . import solve
    from .plotting import plot_solution
    from .spec import Model

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


def _validate(args) -> int:
    from .problem import measurements
    from .spec import Model

    model = Model.from_yaml(args.model) if not args.model.endswith(".json") else Model.from_json(args.model)
    print(f"ok: {model!r}")
    if args.data:
        m = measurements(args.data, model.states, args.t0)
        print(f"ok: {len(m.values)} data rows at {len(m.ts)} times")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyude", description="Universal differential equations from Python.")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="solve a model spec and plot its trajectory")
    sim.add_argument("model", help="model spec (.yaml or .json)")
    sim.add_argument("--t-end", type=float, required=True)
    sim.add_argument("--t0", type=float, default=0.0)
    sim.add_argument("--points", type=int, default=200)
    sim.add_argument("--log-time", action="store_true", help="log-spaced save times and a log time axis")
    sim.add_argument("--solver", default="auto")
    sim.add_argument("--rtol", type=float, default=1e-6)
    sim.add_argument("--atol", type=float, default=1e-8)
    sim.add_argument("--out", default="out")
    val = sub.add_parser("validate", help="check a model spec (and data) and report the first problem")
    val.add_argument("model")
    val.add_argument("--data")
    val.add_argument("--t0", type=float, default=0.0)
    args = parser.parse_args(argv)
    try:
        return {"simulate": _simulate, "validate": _validate}[args.command](args)
    except PyudeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
