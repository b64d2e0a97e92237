"""PEtab benchmark models: pyude vs AMICI (CVODES), side by side in one process.

For each problem in ``../shared/conformance/benchmark-models`` (7 PEtab v1 problems of
the Benchmark-Models-PEtab collection), at the nominal parameters:

pyude (``pyude.petab.load``, solver Rodas5P)
    * simulation: ``problem.loss(params)`` (negative log-likelihood, no gradient);
    * gradient: ``problem.value_and_grad(params, mode, scaled=True)`` for each mode
      ``checkpoint``, ``adjoint``, ``forward`` (gradient in the estimated parameters on
      their PEtab scales, as AMICI's ``sllh``);
    * compile time of each: first call minus the median steady call.

AMICI (``amici.importers.petab.v1.import_petab_problem``, CVODES BDF)
    * compile time: the import (SBML -> sympy -> C++ -> compiled extension);
    * the ``ExpData`` objects (one per simulation condition, nominal parameters filled
      in) are built once by ``simulate_petab``; the timed call is
      ``amici.sim.sundials.run_simulations`` on them (C++ only, reporting mode
      ``likelihood``), sensitivity order 0 (simulation) and 1 with method forward and
      adjoint, with 1 and 2 OpenMP threads (over conditions; AMICI's best is reported).
      This is a lower bound on what a fitting loop pays with AMICI (pyPESTO adds the
      parameter mapping and gradient aggregation in Python); pyude's times include its
      Python overhead.

Same tolerances for both: rtol 1e-8, atol 1e-10 (absolute and relative, per state,
weighted RMS norm in both tools), max 100,000 steps. AMICI's backward-problem and
forward-sensitivity tolerances default to the forward ones; its quadrature and
steady-state tolerances are AMICI's defaults (printed in the JSON).

Honesty checks, both in the output: |llh_pyude - llh_AMICI| and the relative norm
difference of the gradients (pyude's adjoint vs AMICI's forward).

Timing: every timed function is called once per round, the rounds interleave all
functions of a model (pyude and AMICI alternate), medians over the rounds; wall time
and process CPU time (all threads) per call. The machine is shared (2 cores): read
ratios, not digits.

Run (AMICI lives in a separate venv, never a dependency of pyude; the install steps and
the one pitfall, SWIG versions, are in benchmarks/amici_venv.sh):

    bash benchmarks/amici_venv.sh                     # once, ~15 min
    PATH=/work/.venv-amici/bin:$PATH /work/.venv-amici/bin/python benchmarks/petab_vs_amici.py

Options: ``--models A B`` (default all), ``--modes checkpoint forward`` (pyude gradient
modes to time; default all three: a mode can be left out where it is slow, as the
continuous adjoint was on Lucarelli and Brannmark before 2026-12-02), ``--batching``
(pyude's ``Problem(batching=...)``; default ``auto``: sequential with Rodas5P on CPU;
results before 2026-12-02, evening, were vectorized), ``--no-amici``
(pyude only), ``--amici-dir``
(compiled AMICI models, reused when ``--reuse-amici`` is given: compile time is then
taken from the previous results file). Results merge into
``benchmarks/results/petab_vs_amici.json`` per model; the table is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT.parent / "shared" / "conformance" / "benchmark-models"
RESULTS = ROOT / "benchmarks" / "results" / "petab_vs_amici.json"
RTOL, ATOL, MAX_STEPS = 1e-8, 1e-10, 100_000
MODES = ("checkpoint", "adjoint", "forward")


def _timed(fn):
    """(result, wall seconds, CPU seconds of the process)."""
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


# ------------------------------------------------------------------ pyude
def pyude_setup(name: str, modes: tuple[str, ...] = MODES, batching: str = "auto") -> dict:
    import pyude
    import pyude.petab
    from pyude import SolverError

    start = time.perf_counter()
    pr = pyude.petab.load(MODELS_DIR / name / f"{name}.yaml", rtol=RTOL, atol=ATOL, max_steps=MAX_STEPS,
                          batching=batching)
    load_s = time.perf_counter() - start
    params = pr.nominal_params()

    def sim():
        return -pr.loss(params), None

    def grad(mode):
        def f():
            try:
                value, g = pr.value_and_grad(params, mode, scaled=True)
            except SolverError as e:  # e.g. a non-finite gradient: timed all the same, reported
                return None, str(e).splitlines()[0]
            return (-value, {k: -v for k, v in g.items()}), None  # llh and its gradient

        return f

    fns = {"pyude sim": sim, **{f"pyude {m}": grad(m) for m in modes}}
    return {"problem": pr, "fns": fns, "load_s": load_s, "version": pyude.__version__}


# ------------------------------------------------------------------ AMICI
def amici_setup(name: str, amici_dir: Path, reuse: bool) -> dict:
    import amici.sim.sundials as asd
    import petab.v1 as petab
    from amici.importers.petab.v1 import import_petab_problem
    from amici.sim.sundials.petab.v1 import simulate_petab

    pp = petab.Problem.from_yaml(MODELS_DIR / name / f"{name}.yaml")
    out_dir = amici_dir / name
    start = time.perf_counter()
    model = import_petab_problem(pp, output_dir=out_dir, compile_=None if reuse else True, verbose=logging.WARNING)
    compile_s = time.perf_counter() - start
    solver = model.create_solver()
    solver.set_relative_tolerance(RTOL)
    solver.set_absolute_tolerance(ATOL)
    solver.set_max_steps(MAX_STEPS)
    solver.set_return_data_reporting_mode(asd.RDataReporting.likelihood)
    # check run: llh and gradient (forward, on the PEtab scales) at the nominal point; builds the ExpData
    s1 = solver.clone()
    s1.set_sensitivity_order(asd.SensitivityOrder.first)
    s1.set_sensitivity_method(asd.SensitivityMethod.forward)
    check = simulate_petab(pp, amici_model=model, solver=s1, scaled_gradients=True)
    edatas = check["edatas"]

    def run(order, method, threads):
        s = solver.clone()
        s.set_sensitivity_order(order)
        s.set_sensitivity_method(method)

        def f():
            rdatas = asd.run_simulations(model, s, edatas, num_threads=threads)
            bad = [asd.simulation_status_to_str(r.status) for r in rdatas if r.status != asd.AMICI_SUCCESS]
            return float(sum(r.llh for r in rdatas)), (bad[0] if bad else None)

        return f

    SO, SM = asd.SensitivityOrder, asd.SensitivityMethod
    fns = {}
    for threads in (1, 2):
        fns[f"amici sim t{threads}"] = run(SO.none, SM.none, threads)
        fns[f"amici forward t{threads}"] = run(SO.first, SM.forward, threads)
        fns[f"amici adjoint t{threads}"] = run(SO.first, SM.adjoint, threads)
    settings = {
        "rtol": solver.get_relative_tolerance(),
        "atol": solver.get_absolute_tolerance(),
        "rtol_quadratures": solver.get_relative_tolerance_quadratures(),
        "atol_quadratures": solver.get_absolute_tolerance_quadratures(),
        "rtol_steady_state": solver.get_relative_tolerance_steady_state(),
        "atol_steady_state": solver.get_absolute_tolerance_steady_state(),
        "max_steps": solver.get_max_steps(),
        "linear_solver": str(solver.get_linear_solver()),
        "openmp": bool(asd.compiled_with_openmp()),
    }
    return {
        "fns": fns,
        "compile_s": compile_s,
        "reused": reuse and compile_s < 30,
        "llh": float(check["llh"]),
        "sllh": {k: float(v) for k, v in (check["sllh"] or {}).items()},
        "status": [asd.simulation_status_to_str(r.status) for r in check["rdatas"]],
        "settings": settings,
        "n_conditions": len(edatas),
    }


# ------------------------------------------------------------------ timing
def measure(fns: dict, budget_s: float, min_rounds: int, max_rounds: int) -> dict:
    """First call of each (compile), then interleaved rounds; medians."""
    first, outs, errors = {}, {}, {}
    for k, f in fns.items():
        try:
            (out, err), wall, _ = _timed(f)
        except Exception as e:  # a failure of one method is a result, not the end of the run
            errors[k] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            traceback.print_exc()
            continue
        first[k], outs[k] = wall, out
        if err:
            errors[k] = err
        print(f"    first call {k}: {wall:.2f} s{'  [' + err + ']' if err else ''}", flush=True)
    live = [k for k in fns if k in first]
    walls = {k: [] for k in live}
    cpus = {k: [] for k in live}
    rounds, spent = 0, 0.0
    while rounds < max_rounds and (rounds < min_rounds or spent < budget_s):
        order = live if rounds % 2 == 0 else live[::-1]
        for k in order:
            _, w, c = _timed(fns[k])
            walls[k].append(w)
            cpus[k].append(c)
            spent += w
        rounds += 1
    res = {}
    for k in live:
        med = statistics.median(walls[k])
        res[k] = {
            "first_s": first[k],
            "compile_s": max(first[k] - med, 0.0),
            "median_ms": 1e3 * med,
            "min_ms": 1e3 * min(walls[k]),
            "cpu_median_ms": 1e3 * statistics.median(cpus[k]),
            "rounds": rounds,
            "error": errors.get(k),
        }
    for k, e in errors.items():
        res.setdefault(k, {"error": e})
    return {"timings": res, "outputs": outs}


def run_model(name: str, args) -> dict:
    print(f"== {name}", flush=True)
    rec: dict = {"model": name}
    am = None
    if not args.no_amici:
        try:
            am = amici_setup(name, args.amici_dir, args.reuse_amici)
        except Exception as e:
            traceback.print_exc()
            rec["amici_error"] = f"{type(e).__name__}: {e}"
        else:
            print(f"  AMICI import+compile {am['compile_s']:.1f} s, llh {am['llh']:.6f}", flush=True)
            rec["amici"] = {k: am[k] for k in ("compile_s", "reused", "llh", "sllh", "status", "settings", "n_conditions")}
    py = pyude_setup(name, tuple(args.modes), args.batching)
    rec["pyude_modes"] = list(args.modes)
    pr = py["problem"]
    rec["pyude"] = {"load_s": py["load_s"], "solver": pr.solver, "batching": pr.settings.batching,
                    "n_conditions": pr.n_conditions,
                    "n_estimated": len(pr.estimation.names)}
    fns = dict(py["fns"])
    if am is not None:
        fns.update(am["fns"])
    m = measure(fns, args.budget, args.min_rounds, args.max_rounds)
    rec["timings"] = m["timings"]
    outs = m["outputs"]
    if "pyude sim" in outs:
        rec["pyude"]["llh"] = outs["pyude sim"]
    grads = {mode: outs.get(f"pyude {mode}") for mode in MODES}
    if am is not None and "pyude sim" in outs:
        rec["llh_diff"] = abs(outs["pyude sim"] - am["llh"])
        ref = am["sllh"]
        rename = getattr(pr, "rename", {})
        errs = {}
        for mode, g in grads.items():
            if g is None or not ref:
                continue
            a = np.array([ref[k] for k in ref])
            b = np.array([g[1].get(rename.get(k, k), np.nan) for k in ref])
            errs[mode] = float(np.linalg.norm(b - a) / np.linalg.norm(a))
        rec["grad_rel_diff_vs_amici_forward"] = errs
    return rec


def table(results: dict) -> str:
    """Markdown: times as ``wall (CPU)`` medians in ms; ratios of the best gradient of each tool."""
    head = ("| model | pyude compile sim / ckpt / adj / fwd (s) | pyude sim (ms) | pyude grad ckpt / adj / fwd (ms) "
            "| AMICI compile (s) | AMICI sim (ms) | AMICI grad fwd / adj (ms) | best grad pyude / AMICI, wall | "
            "same, CPU | llh diff | grad rel. diff ckpt / adj / fwd |")
    lines = [head, "|" + "---|" * 11]

    def cell(rec, keys):
        """``wall (cpu)`` of the fastest (by wall) of ``keys``; '*' marks a failed result (timed anyway)."""
        vals = [rec["timings"][k] for k in keys if "median_ms" in rec.get("timings", {}).get(k, {})]
        if not vals:
            return "fail"
        v = min(vals, key=lambda v: v["median_ms"])
        return f"{v['median_ms']:.1f} ({v['cpu_median_ms']:.1f})" + ("*" if v.get("error") else "")

    def best(rec, keys, field):
        vals = [(rec["timings"][k][field], k) for k in keys
                if "median_ms" in rec.get("timings", {}).get(k, {}) and not rec["timings"][k].get("error")]
        return min(vals) if vals else (None, None)

    for name in sorted(results):
        r = results[name]
        tm = r.get("timings", {})
        timed = r.get("pyude_modes", MODES)

        def compile_cell(k):
            if "compile_s" in tm.get(k, {}):
                return f"{tm[k]['compile_s']:.0f}"
            return "fail" if k == "pyude sim" or k.split()[1] in timed else "not run"

        comp = " / ".join(compile_cell(k) for k in ("pyude sim",) + tuple(f"pyude {m}" for m in MODES))
        grads = " / ".join(cell(r, [f"pyude {m}"]) if m in timed else "not run" for m in MODES)
        am = r.get("amici")
        if not am:
            lines.append(f"| {name} | {comp} | {cell(r, ['pyude sim'])} | {grads} | - | - | - | n/a | n/a | - | - |")
            continue
        ratios = []
        for field in ("median_ms", "cpu_median_ms"):
            pb, pk = best(r, [f"pyude {m}" for m in MODES], field)
            ab, ak = best(r, [f"amici {m} t{n}" for m in ("forward", "adjoint") for n in (1, 2)], field)
            ratios.append(f"{pb / ab:.2f}x ({pk.split()[1]} / {ak.split()[1]} {ak.split()[2]})" if pb and ab else "n/a")
        a_sim = cell(r, [f"amici sim t{n}" for n in (1, 2)])
        a_grad = " / ".join(cell(r, [f"amici {m} t{n}" for n in (1, 2)]) for m in ("forward", "adjoint"))
        gd = r.get("grad_rel_diff_vs_amici_forward", {})
        gds = " / ".join(f"{gd[m]:.0e}" if m in gd else "-" for m in MODES)
        lines.append(f"| {name} | {comp} | {cell(r, ['pyude sim'])} | {grads} | {am['compile_s']:.0f} | {a_sim} | "
                     f"{a_grad} | {ratios[0]} | {ratios[1]} | {r.get('llh_diff', float('nan')):.1e} | {gds} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--no-amici", action="store_true")
    ap.add_argument("--reuse-amici", action="store_true")
    ap.add_argument("--amici-dir", type=Path, default=Path(os.environ.get("AMICI_MODELS", "/tmp/pyude-amici-models")))
    ap.add_argument("--budget", type=float, default=20.0, help="seconds of timed calls per model (at least --min-rounds)")
    ap.add_argument("--min-rounds", type=int, default=5)
    ap.add_argument("--max-rounds", type=int, default=25)
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--modes", nargs="*", choices=MODES, default=list(MODES),
                    help="pyude gradient modes to time (a mode left out is 'not run' in the table)")
    from pyude.engines.jax._integrate import BATCHING

    ap.add_argument("--batching", choices=BATCHING, default="auto",
                    help="how pyude solves the conditions (pyude.Problem's batching)")
    args = ap.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if not args.table_only:
        import jax

        jax.config.update("jax_enable_x64", True)
        models = args.models or sorted(p.name for p in MODELS_DIR.iterdir() if p.is_dir())
        for name in models:
            prev = results.get(name, {}).get("amici")
            rec = run_model(name, args)
            if args.reuse_amici and rec.get("amici", {}).get("reused") and prev and not prev.get("reused"):
                rec["amici"]["compile_s"] = prev["compile_s"]  # the fresh build's time, not the reload's
                rec["amici"]["reused"] = False
            rec["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                              "jax": jax.__version__, "date": time.strftime("%Y-%m-%d %H:%M")}
            # re-read before writing: several runs (model subsets) may share the file
            results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
            results[name] = rec
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            tmp = RESULTS.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(results, indent=1, default=float))
            tmp.replace(RESULTS)
            print(table({name: rec}), flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
