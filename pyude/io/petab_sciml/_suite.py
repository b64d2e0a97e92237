"""Run one case of the PEtab SciML test suite's ``ml_model_import`` folder.

A case holds ``net.yaml``, and per repetition i an input file (``net_input`` or, for
several network arguments, ``net_input_arg<j>``), a parameter file (``net_ps``, absent
when the network has no parameters in use) and the expected output (``net_output``),
listed in ``solutions.yaml``. The tolerance is ``tol`` there, else 1e-3 (the suite's
tolerance for network cases).

Dropout cases (``dropout: N`` in ``solutions.yaml``) hold the mean of N training-mode
evaluations (a Monte Carlo estimate of the expectation, which equals the
inference-mode output), so their tolerance is statistical: per output element,
``max(tol, 5 SE)`` with ``SE = sd / sqrt(N)`` and ``sd`` estimated from pyude's own
training-mode draws. The mean of N training-mode draws of pyude is checked too (against
``max(tol, 5 sqrt(2) SE)``: two independent estimates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..._errors import DataError
from ._hdf5 import read_arrays, read_parameters
from ._net import load_net

DEFAULT_TOL = 1e-3


@dataclass
class CaseResult:
    case: str
    layers: list[str]
    ops: list[str]
    max_error: float
    tol: float
    passed: bool
    note: str = ""
    errors: list[float] = field(default_factory=list)


def _one_array(path: Path, group: str):
    arrays = read_arrays(path, group)
    if len(arrays) != 1:
        raise DataError(f"{path}: expected one array in {group!r}, found {sorted(arrays)}")
    return next(iter(arrays.values()))


def check_ml_model_case(case_dir: str | Path, mc_draws: int = 4000, seed: int = 0) -> CaseResult:
    import jax

    case_dir = Path(case_dir)
    sol = yaml.safe_load((case_dir / "solutions.yaml").read_text())
    tol = float(sol.get("tol", DEFAULT_TOL))
    net = load_net(case_dir / sol["net_file"])
    if "net_input" in sol:
        input_lists = [sol["net_input"]]
    else:
        input_lists = [sol[k] for k in sorted(k for k in sol if k.startswith("net_input_arg"))]
    n_rep = len(sol["net_output"])
    errors, ok, notes = [], True, []
    for i in range(n_rep):
        params = read_parameters(case_dir / sol["net_ps"][i], net) if "net_ps" in sol else {}
        xs = [_one_array(case_dir / files[i], "inputs") for files in input_lists]
        ref = _one_array(case_dir / sol["net_output"][i], "outputs")
        y = net(params, *xs)
        if y.shape != ref.shape:
            errors.append(float("inf"))
            ok = False
            notes.append(f"output shape {y.shape} != reference {ref.shape}")
            continue
        err = np.abs(y - ref)
        errors.append(float(err.max()))
        allowed = np.full(ref.shape, tol)
        if "dropout" in sol:
            n_ref = int(sol["dropout"])
            keys = jax.random.split(jax.random.PRNGKey(seed + i), mc_draws)
            draws = np.asarray(jax.vmap(lambda k: net.apply(params, *xs, key=k))(keys))
            se = draws.std(axis=0) / np.sqrt(n_ref)
            allowed = np.maximum(tol, 5.0 * se)
            keys = jax.random.split(jax.random.PRNGKey(seed + 1000 + i), n_ref)
            mc_mean = np.asarray(jax.vmap(lambda k: net.apply(params, *xs, key=k))(keys)).mean(axis=0)
            ok &= bool(np.all(np.abs(mc_mean - ref) <= np.maximum(tol, 5.0 * np.sqrt(2.0) * se)))
        ok &= bool(np.all(err <= allowed))
    if "dropout" in sol:
        notes.append(f"Monte Carlo reference ({sol['dropout']} draws): per-element tolerance max({tol:g}, 5 SE)")
    ops = sorted({n.fn for n in net.nodes if n.fn})
    return CaseResult(case_dir.name, [lay.type for lay in net.layers], ops, max(errors), tol, ok,
                      "; ".join(notes), errors)


@dataclass
class ProblemCaseResult:
    """One ``sciml_problem_import`` case: the largest absolute errors against the references.

    The suite's comparison (its README; PEtab.jl's ``isapprox(...; atol=tol)``): the
    objective by its absolute difference, simulations and gradients element by element,
    each ``|x - ref| <= tol`` (the max norm of the differences)."""

    case: str
    objective: str  # "llh" or "log_posterior"
    objective_error: float
    simulation_error: float
    gradient_error: float
    tol_objective: float
    tol_simulations: float
    tol_grad: float
    sensitivity: str
    compared: int = 0  # gradient entries compared

    @property
    def passed(self) -> bool:
        return (self.objective_error <= self.tol_objective and self.simulation_error <= self.tol_simulations
                and self.gradient_error <= self.tol_grad)


def check_problem_case(case_dir: str | Path, sensitivity: str = "checkpoint", **load_options) -> ProblemCaseResult:
    """Load ``case_dir/petab/problem.yaml`` with :func:`pyude.petab.load` and compare, at the
    nominal parameters, ``-loss`` (llh or log-posterior), the simulation of every
    measurement and ``-grad`` of the loss (in the estimated parameters: mechanistic ones from
    ``grad_files.mech``, network arrays from the per-network HDF5; arrays a case leaves
    empty there, frozen ones, are not compared)."""
    import pandas as pd

    from ...petab import load

    case_dir = Path(case_dir)
    sol = yaml.safe_load((case_dir / "solutions.yaml").read_text())
    key = "llh" if "llh" in sol else "log_posterior"
    problem = load(case_dir / "petab" / "problem.yaml", **load_options)
    params = problem.nominal_params()
    loss, grad = problem.value_and_grad(params, sensitivity)
    obj_err = abs(-loss - float(sol[key]))
    sim = problem.simulate(params)["simulation"].to_numpy()
    ref_sim = pd.concat([pd.read_csv(case_dir / f, sep="\t") for f in sol["simulation_files"]])["simulation"]
    sim_err = float(np.max(np.abs(sim - ref_sim.to_numpy()))) if len(sim) == len(ref_sim) else float("inf")
    errors, compared = [], 0
    estimated = set(problem.estimation.names)
    files = dict(sol.get("grad_files") or {})
    mech = pd.read_csv(case_dir / files.pop("mech"), sep="\t")
    for pid, value in zip(mech["parameterId"], mech["value"]):
        name = problem.rename.get(pid, pid)
        if name not in estimated:
            raise DataError(f"{case_dir.name}: reference gradient for {pid!r}, which is not estimated")
        errors.append(abs(-float(grad[name]) - float(value)))
        compared += 1
    for net, f in files.items():
        for name, ref in read_parameters(case_dir / f).items():
            if ref.size == 0:  # frozen in the problem: the suite leaves it empty
                continue
            if name not in estimated:
                raise DataError(f"{case_dir.name}: reference gradient for {name!r}, which is not estimated")
            errors.append(float(np.max(np.abs(-np.asarray(grad[name]) - ref))))
            compared += ref.size
    tol_obj = float(sol.get("tol_llh", sol.get("tol_log_posterior", DEFAULT_TOL)))
    return ProblemCaseResult(case_dir.name, key, obj_err, sim_err, max(errors, default=0.0), tol_obj,
                             float(sol["tol_simulations"]), float(sol["tol_grad"]), sensitivity, compared)
