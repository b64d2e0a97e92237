"""Trajectories against analytic solutions and published reference values."""

from pathlib import Path

import diffrax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import pyude
from pyude import DataError, SolverError
from pyude.engines.jax import Rodas5P, Rosenbrock23

DECAY = {
    "name": "decay",
    "states": ["x"],
    "parameters": {"k": 0.7},
    "equations": {"x": "-k*x"},
    "initial": {"x": 2.0},
}
OSCILLATOR = {
    "name": "oscillator",
    "states": ["q", "v"],
    "parameters": {"w": 2.0},
    "equations": {"q": "v", "v": "-w^2*q"},
    "initial": {"q": 1.0, "v": 0.0},
}
ROBERTSON = pyude.Model.from_yaml(__import__("pathlib").Path(__file__).parents[1] / "examples/robertson/model.yaml")


@pytest.mark.parametrize("solver", ["Tsit5", "Dopri5", "Dopri8", "Rodas5P", "Rosenbrock23", "Kvaerno5"])
def test_exponential_decay(solver):
    t = np.linspace(0.1, 5.0, 25)
    sol = pyude.solve(DECAY, t, solver=solver, rtol=1e-10, atol=1e-12)
    exact = 2.0 * np.exp(-0.7 * t)
    # Rosenbrock23 is 2nd order; Dopri8 takes few, long steps and saves through its
    # lower-order dense interpolant (diffrax's), which dominates the error here.
    tol = {"Rosenbrock23": 1e-6, "Dopri8": 2e-8, "Kvaerno5": 2e-8}.get(solver, 1e-9)
    np.testing.assert_allclose(sol.y[:, 0], exact, rtol=tol, atol=0)
    assert sol.stats["solver"] == solver
    assert sol.stats["steps"] > 0


@pytest.mark.parametrize("solver", ["Tsit5", "Dopri8", "Rodas5P"])
def test_harmonic_oscillator_tight(solver):
    t = np.linspace(0, 10, 101)[1:]
    sol = pyude.solve(OSCILLATOR, t, solver=solver, rtol=1e-12, atol=1e-12, max_steps=100_000)
    np.testing.assert_allclose(sol["q"], np.cos(2 * t), atol=1e-9)
    np.testing.assert_allclose(sol["v"], -2 * np.sin(2 * t), atol=2e-9)


def test_dense_output_between_save_times():
    sol = pyude.solve(OSCILLATOR, [10.0], solver="Rodas5P", rtol=1e-10, atol=1e-12)
    tq = np.linspace(0, 10, 37)
    np.testing.assert_allclose(sol(tq)[:, 0], np.cos(2 * tq), atol=1e-7)
    np.testing.assert_allclose(sol.evaluate(3.3), [np.cos(6.6), -2 * np.sin(6.6)], atol=1e-7)
    with pytest.raises(DataError, match="outside the solved interval"):
        sol(11.0)


def test_robertson_reference_values():
    """Hairer & Wanner's Robertson problem; reference at t = 1e11 from the IVP Test Set
    (Mazzia & Magherini), and the widely used values at t = 40."""
    sol = pyude.solve(ROBERTSON, [40.0, 1e11], solver="Rodas5P", rtol=1e-10, atol=1e-16, max_steps=50_000)
    np.testing.assert_allclose(sol.y[0], [0.7158270687193135, 9.185534764557763e-06, 0.2841637457459220], rtol=1e-7)
    np.testing.assert_allclose(
        sol.y[1], [0.2083340149701255e-07, 0.8333360770334713e-13, 0.9999999791665050], rtol=1e-5
    )
    assert sol.stats["rejected_steps"] < 0.1 * sol.stats["steps"]


def test_robertson_kvaerno5_and_rosenbrock23():
    ref = [0.7158270687193135, 9.185534764557763e-06, 0.2841637457459220]
    sol = pyude.solve(ROBERTSON, [40.0], solver="Kvaerno5", rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(sol.y[0], ref, rtol=1e-6)
    sol = pyude.solve(ROBERTSON, [40.0], solver="Rosenbrock23", rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(sol.y[0], ref, rtol=1e-4)


def test_auto_picks_by_stiffness():
    stiff = pyude.solve(ROBERTSON, [40.0], rtol=1e-8, atol=1e-12)
    assert stiff.stats["solver"] == "Rodas5P"
    assert stiff.stats["stiffness_estimate"] > 1e3
    smooth = pyude.solve(OSCILLATOR, [10.0])
    assert smooth.stats["solver"] == "Tsit5"
    assert smooth.stats["stiffness_estimate"] < 1e3


def test_compiled_once_per_model():
    t = np.linspace(0.1, 1, 5)
    spec = dict(DECAY, name="decay_cache")
    first = pyude.solve(spec, t, solver="Tsit5")
    second = pyude.solve(spec, t, params={"k": 0.3}, solver="Tsit5")
    assert first.stats["compile_time"] > 0
    assert second.stats["compile_time"] == 0.0
    np.testing.assert_allclose(second["x"], 2 * np.exp(-0.3 * t), rtol=1e-5)


def test_conservation_with_network_rate():
    """dx/dt = S r(x): w.x is conserved to round-off for any rates, also learned ones."""
    spec = {
        "states": ["E", "S", "ES", "P"],
        "parameters": {"kf": 2.0, "kr": 1.0},
        "networks": {"cat": {"inputs": 1, "layers": [{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "softplus"}]}},
        "reactions": [
            {"equation": "E + S <-> ES", "rate": "kf*E*S", "reverse_rate": "kr*ES"},
            {"equation": "ES -> E + P", "rate": "cat(ES)[0]*ES"},
        ],
        "initial": {"E": 1.0, "S": 5.0, "ES": 0.0, "P": 0.0},
    }
    model = pyude.Model.from_dict(spec)
    W = np.array([[1, 0, 1, 0], [0, 1, 1, 1]], float)  # total enzyme, total substrate
    np.testing.assert_allclose(__import__("pyude.spec._reactions", fromlist=["x"]).conservation_laws(
        model.stoichiometric_matrix()).shape, (2, 4))
    for solver in ("Rodas5P", "Tsit5"):
        sol = pyude.solve(model, np.linspace(0.5, 20, 40), params=model.init_params(seed=1), solver=solver)
        drift = sol.y @ W.T - np.array([1.0, 5.0])
        assert np.max(np.abs(drift)) < 1e-13
        assert sol["P"][-1] > 0.1  # the learned rate does act


def _chain(n: int, seed: int = 0) -> dict:
    """X0 <-> X1 <-> ... <-> X{n-1}, mass action: dx/dt = A x, solved exactly by expm(A t) x0."""
    rng = np.random.default_rng(seed)
    kf, kr = rng.uniform(0.5, 2.0, n - 1), rng.uniform(0.5, 2.0, n - 1)
    return {
        "name": "chain",
        "states": [f"X{i}" for i in range(n)],
        "parameters": {**{f"kf{i}": float(v) for i, v in enumerate(kf)}, **{f"kr{i}": float(v) for i, v in enumerate(kr)}},
        "reactions": [{"equation": f"X{i} <-> X{i + 1}", "rate": f"kf{i}*X{i}", "reverse_rate": f"kr{i}*X{i + 1}"}
                      for i in range(n - 1)],
        "initial": {f"X{i}": 1.0 if i == 0 else 0.0 for i in range(n)},
    }


def test_hundreds_of_reactions_against_the_matrix_exponential():
    """200 species, 199 reversible reactions (398 mass-action terms, evaluated as arrays)."""
    from scipy.linalg import expm

    spec = _chain(200)
    n = len(spec["states"])
    A = np.zeros((n, n))
    for i in range(n - 1):
        kf, kr = spec["parameters"][f"kf{i}"], spec["parameters"][f"kr{i}"]
        A[i, i] -= kf
        A[i + 1, i] += kf
        A[i + 1, i + 1] -= kr
        A[i, i + 1] += kr
    t = np.array([1.0, 10.0, 100.0])
    sol = pyude.solve(spec, t, solver="Rodas5P", rtol=1e-10, atol=1e-13)
    exact = np.stack([expm(A * ti)[:, 0] for ti in t])
    np.testing.assert_allclose(sol.y, exact, rtol=1e-6, atol=1e-11)
    np.testing.assert_allclose(sol.y.sum(axis=1), 1.0, rtol=1e-12)
    assert sol.stats["compile_time"] > 0  # reported (docs/benchmarks.md has the numbers)


def test_xla_options_widen_cpu_vectors_unless_xla_flags_set_the_width(monkeypatch):
    """The engine compiles with 512-bit vectors on CPU (docs/engines.md); a width the user
    gives in XLA_FLAGS rules, and the option is a valid compiler option of this jaxlib."""
    import jax

    from pyude.engines.jax._compile import jit, xla_options

    monkeypatch.setenv("XLA_FLAGS", "")
    expected = {"xla_cpu_prefer_vector_width": "512"} if jax.default_backend() == "cpu" else {}
    assert xla_options() == expected
    f = jit(lambda x: jnp.tanh(x) * 2.0)
    x = np.linspace(-3.0, 3.0, 1001)
    np.testing.assert_allclose(np.asarray(f(x)), 2.0 * np.tanh(x), rtol=1e-15, atol=1e-16)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_prefer_vector_width=256")
    assert xla_options() == {}


def _count_equations(jaxpr) -> int:
    """Equations of a jaxpr, those of nested jaxprs (the jitted right-hand side) included."""
    return sum(1 + sum(_count_equations(v) for v in e.params.values() if hasattr(v, "eqns")) for e in jaxpr.eqns)


@pytest.mark.parametrize("form", ["reactions", "equations"])
def test_mass_action_arrays_equal_scalar_code(monkeypatch, form):
    """A right-hand side past MassAction.MIN_TERMS: its monomial terms (products, integer
    powers, quotients such as SBML's compartment * k * A / compartment, zeroth order;
    written as reactions, or as equations that sum signed terms) as arrays, the others
    (Michaelis-Menten, Hill, an input) grouped by structure, one vectorised expression per
    group: the right-hand side, its Jacobian and a VJP equal all-scalar code."""
    import jax

    from pyude.engines.jax._compile import MassAction, _TermGroups, compile_model

    rng = np.random.default_rng(7)
    n = 30
    states = [f"S{i}" for i in range(n)]
    params, reactions = {"V": 2.0, "K": 0.5, "cell": 1.7}, []
    for j in range(140):
        a, b, c = rng.choice(n, 3, replace=False)
        params[f"k{j}"] = float(rng.uniform(0.1, 2.0))
        rate = [f"k{j}*S{a}*S{b}", f"cell*k{j}*S{a}^2/2/cell", f"k{j}*S{a}", f"V*S{a}/(K + S{a})",
                f"hill(S{a}, K, 2)*k{j}", f"k{j}*u", f"k{j}"][j % 7]
        reactions.append((([f"S{a}", f"S{b}"] if j % 7 == 0 else [f"S{a}"]), f"S{c}", rate))
    if form == "reactions":
        body = {"reactions": [{"equation": " + ".join(r) + f" -> {prod}", "rate": rate} for r, prod, rate in reactions]}
    else:
        eqs = {s: "0" for s in states}
        for r, prod, rate in reactions:
            for x in r:
                eqs[x] += f" - ({rate})"
            eqs[prod] += f" + ({rate})"
        body = {"equations": eqs}
    spec = {"name": "net", "states": states, "parameters": params, **body,
            "inputs": {"u": {"times": [0.0, 1.0], "values": [0.3, 0.9], "interpolation": "linear"}},
            "initial": {s: 1.0 for s in states}}
    model = pyude.Model.from_dict(spec)
    vectorised = compile_model(model)
    if form == "reactions":
        split = MassAction.split([(np.ones(n), r.rate) for r in model.reactions], {s: i for i, s in enumerate(states)},
                                 {k: i for i, k in enumerate(params)}, len(params))
        assert split[0] is not None and len(split[1]) == sum(j % 7 in (3, 4, 5) for j in range(140))
        # the other terms: Michaelis-Menten, Hill and k*u laws, each one expression over vectors
        groups = _TermGroups(split[1], split[0].slot)
        assert sorted(len(slots[0]) for _, _, slots in groups.groups) == [20, 20, 20] and not groups.single
        # every slot of states and parameters is read in one gather; the input u is not
        n_slots = sum(len(slots) for _, _, slots in groups.groups)
        assert len(groups.gathered) == n_slots - 1 and len(groups.index) == 20 * (n_slots - 1)
    monkeypatch.setattr(MassAction, "MIN_TERMS", 10**9)
    scalar = compile_model(model)
    y = jnp.asarray(rng.uniform(0.2, 2.0, n))
    p = jnp.asarray(model.flatten(model.init_params()))
    u = tuple(vectorised.inputs)
    f_vec = lambda y, p: vectorised.rhs(0.4, y, (p, u))  # noqa: E731
    f_sca = lambda y, p: scalar.rhs(0.4, y, (p, u))  # noqa: E731
    n_ops = [_count_equations(jax.make_jaxpr(f)(y, p)) for f in (f_vec, f_sca)]
    assert n_ops[0] < 0.6 * n_ops[1], n_ops  # 80 monomials as a few array ops
    w = jnp.asarray(rng.normal(size=n))
    Y = jnp.asarray(rng.uniform(0.2, 2.0, (n, 5)))

    def everything(f):
        # value, Jacobian, VJP, and a batch of states (n_states, 5) directly and column by
        # column: one compiled program per form
        return jax.jit(lambda y, p, Y: (
            f(y, p), jax.jacfwd(f)(y, p), jax.grad(lambda y, p: w @ f(y, p), argnums=(0, 1))(y, p),
            f(Y, p), jax.vmap(f, in_axes=(1, None), out_axes=1)(Y, p),
        ))(y, p, Y)

    (v_vec, J_vec, vjp_vec, B_vec, cols_vec), (v_sca, J_sca, vjp_sca, B_sca, cols_sca) = map(everything, (f_vec, f_sca))
    np.testing.assert_allclose(v_vec, v_sca, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(J_vec, J_sca, rtol=1e-12, atol=1e-13)
    for a, b in zip(vjp_vec, vjp_sca):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    for batch, cols in ((B_vec, cols_vec), (B_sca, cols_sca)):
        np.testing.assert_allclose(batch, cols, rtol=1e-13, atol=1e-14)


def test_right_hand_side_evaluates_a_batch_of_states():
    """States of shape (n_states, *batch): networks take one matrix product per layer, a
    constant equation broadcasts, and/or/piecewise act per batch element; equal to the
    right-hand side of each column (vmap) to round-off."""
    import jax

    from pyude.engines.jax._compile import compile_model

    spec = {
        "name": "batched",
        "states": ["x", "y", "z"],
        "parameters": {"k": 0.3, "c": 1.5},
        "networks": {"nn": {"inputs": 3, "layers": [{"units": 8, "activation": "tanh"}, {"units": 2}]}},
        "equations": {
            "x": "nn(x, y, c)[0] - k*x",
            "y": "nn(x, y, c)[1] + piecewise(1, and(gt(x, 0), lt(y, 0.5)), -1)",
            "z": "-k",  # no state: a scalar beside the batch
        },
    }
    model = pyude.Model.from_dict(spec)
    cm = compile_model(model)
    p = jnp.asarray(model.flatten(model.init_params(seed=3)))
    Y = jnp.asarray(np.random.default_rng(0).uniform(-1.0, 1.0, (3, 4, 6)))
    f = lambda y: cm.rhs(0.2, y, (p, ()))  # noqa: E731
    batched = f(Y)
    assert batched.shape == (3, 4, 6)
    columns = jax.vmap(jax.vmap(f, in_axes=1, out_axes=1), in_axes=2, out_axes=2)(Y)
    np.testing.assert_allclose(batched, columns, rtol=1e-13, atol=1e-14)
    branch = np.where((np.asarray(Y[0]) > 0) & (np.asarray(Y[1]) < 0.5), 1.0, -1.0)
    assert len(np.unique(branch)) == 2  # both branches taken
    np.testing.assert_allclose(np.asarray(batched[2]), -0.3)


def test_inputs_interpolation():
    spec = {
        "states": ["x"],
        "equations": {"x": "u"},
        "inputs": {"u": {"times": [0, 1, 2], "values": [0, 2, 2], "interpolation": "linear"}},
    }
    # x(t) = integral of u: t^2 on [0,1], then 1 + 2(t-1)
    sol = pyude.solve(spec, [0.5, 1.0, 3.0], solver="Tsit5", rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sol["x"], [0.25, 1.0, 5.0], rtol=1e-8)
    zoh = dict(spec, inputs={"u": {"times": [0, 1], "values": [1, 3], "interpolation": "zoh"}})
    sol = pyude.solve(zoh, [1.0, 2.0], solver="Rodas5P", rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sol["x"], [1.0, 4.0], rtol=1e-8)
    # override the signal at solve time without recompiling the model
    sol = pyude.solve(zoh, [2.0], solver="Rodas5P", inputs={"u": ([0, 1], [2, 2])}, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sol["x"], [4.0], rtol=1e-8)


def test_cubic_input_reproduces_a_cubic_free_spline():
    t = np.linspace(0, 2, 9)
    spec = {
        "states": ["x"],
        "equations": {"x": "u"},
        "inputs": {"u": {"times": t.tolist(), "values": (3 * t).tolist(), "interpolation": "cubic"}},
    }
    sol = pyude.solve(spec, [2.0], solver="Tsit5", rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sol["x"], [6.0], rtol=1e-8)  # a natural spline of a line is the line


def test_callable_model():
    def f(t, y, p):
        return jnp.array([y[1], -p["w"] ** 2 * y[0]])

    t = np.linspace(0.5, 3, 6)
    sol = pyude.solve(f, t, y0=[1.0, 0.0], params={"w": 1.5}, solver="Dopri8", rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sol["y0"], np.cos(1.5 * t), atol=1e-8)


def test_tidy_dataframe():
    sol = pyude.solve(OSCILLATOR, [1.0, 2.0], solver="Tsit5")
    wide = sol.to_dataframe()
    assert list(wide.columns) == ["time", "q", "v"]
    tidy = sol.to_dataframe(tidy=True)
    assert list(tidy.columns) == ["time", "observable", "value"] and len(tidy) == 4


# ------------------------------------------------------------------ order of convergence
def _fixed_step_error(solver, n_steps):
    lam = -2.0

    def f(t, y, args):  # y' = lam (y - cos t) - sin t, y(t) = cos t + (y0 - 1) e^{lam t}
        return lam * (y - jnp.cos(t)) - jnp.sin(t)

    T, y0 = 2.0, jnp.array([3.0])
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(f), solver, 0.0, T, T / n_steps, y0, stepsize_controller=diffrax.ConstantStepSize(),
        max_steps=n_steps + 1,
    )
    exact = np.cos(T) + 2.0 * np.exp(lam * T)
    return abs(float(sol.ys[-1, 0]) - exact)


@pytest.mark.parametrize(
    "solver, order, n", [(Rodas5P(), 5, 16), (Rosenbrock23(), 2, 64), (diffrax.Kvaerno5(root_finder=diffrax.VeryChord(rtol=1e-13, atol=1e-13, norm=optx.max_norm)), 5, 16)]
)
def test_order_of_convergence(solver, order, n):
    e1, e2 = _fixed_step_error(solver, n), _fixed_step_error(solver, 2 * n)
    observed = np.log2(e1 / e2)
    assert abs(observed - order) < 0.35, observed


# ------------------------------------------------------------------------- errors
def test_solver_error_carries_code_time_and_hint():
    with pytest.raises(SolverError) as info:
        pyude.solve(ROBERTSON, [1e5], solver="Tsit5", max_steps=200)
    err = info.value
    assert err.code == "max_steps_reached"
    assert 0 < err.t_reached < 1e5
    assert "looks stiff" in str(err) and "Rodas5P" in err.hint


def test_blow_up_is_an_error_not_nan():
    spec = {"states": ["x"], "equations": {"x": "x^2"}, "initial": {"x": 1.0}}
    with pytest.raises(SolverError) as info:
        pyude.solve(spec, [2.0], solver="Tsit5")
    assert info.value.t_reached == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(t=[1.0, 0.5]), "strictly increasing"),
        (dict(t=[1.0, np.nan]), "not finite"),
        (dict(t=[-1.0, 1.0]), "before the initial time"),
        (dict(t=[1.0], y0=[1.0, 2.0]), "y0 has 2 entries"),
        (dict(t=[1.0], y0=[np.inf]), "NaN or inf"),
        (dict(t=[1.0], params={"q": 1.0}), "unknown parameter name"),
        (dict(t=[1.0], params={"k": np.nan}), "NaN or inf"),
    ],
)
def test_solve_input_errors(kwargs, message):
    with pytest.raises(DataError, match=message):
        pyude.solve(DECAY, **kwargs)


def test_unknown_solver_and_engine():
    with pytest.raises(pyude.SpecError, match="unknown solver 'RK45'"):
        pyude.solve(DECAY, [1.0], solver="RK45")
    with pytest.raises(pyude.SpecError, match="unknown engine"):
        pyude.solve(DECAY, [1.0], engine="torch")


def test_julia_engine_is_refused_quickly():
    import time

    start = time.perf_counter()
    with pytest.raises(pyude.EngineUnavailable, match="engine='jax'"):
        pyude.solve(DECAY, [1.0], engine="julia")
    assert time.perf_counter() - start < 1.0


def test_hires_reference_values():
    """HIRES (Hairer & Wanner) at t = 321.8122; reference from the IVP Test Set."""
    spec = __import__("yaml").safe_load((Path(__file__).parents[1] / "examples/hires/model.yaml").read_text())
    sol = pyude.solve(spec, [321.8122], solver="Rodas5P", rtol=1e-10, atol=1e-12, max_steps=50_000)
    ref = [0.7371312573325668e-3, 0.1442485726316185e-3, 0.5888729740967575e-4, 0.1175651343283149e-2,
           0.2386356198831331e-2, 0.6238968252742796e-2, 0.2849998395185769e-2, 0.2850001604814231e-2]
    np.testing.assert_allclose(sol.y[0], ref, rtol=1e-7)


@pytest.mark.parametrize("name", ["Tsit5", "Dopri5"])
def test_unrolled_explicit_solvers_equal_diffrax(name):
    """pyude's explicit solvers unroll diffrax's stage loop: same steps, same solution and
    same reverse-mode gradient as diffrax's own solver, to round-off."""
    import jax

    from pyude.engines.jax import _solvers

    def f(t, y, k):
        return jnp.stack([y[1], -k[0] * y[0] - k[1] * y[1] * (y[0] ** 2 - 1.0)])

    def run(solver, k):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(f), solver, 0.0, 6.0, None, jnp.array([2.0, 0.0]), k,
            saveat=diffrax.SaveAt(ts=jnp.linspace(0.0, 6.0, 13)),
            stepsize_controller=diffrax.PIDController(rtol=1e-7, atol=1e-9), max_steps=10_000,
        )
        return sol.ys, sol.stats["num_accepted_steps"]

    ours, theirs = getattr(_solvers, name)(), getattr(diffrax, name)()
    assert type(ours) is not type(theirs)
    k = jnp.array([1.3, 0.8])
    (y1, n1), (y2, n2) = run(ours, k), run(theirs, k)
    assert int(n1) == int(n2) > 10
    np.testing.assert_allclose(y1, y2, rtol=1e-11, atol=1e-12)
    g1 = jax.grad(lambda k: jnp.sum(run(ours, k)[0] ** 2))(k)
    g2 = jax.grad(lambda k: jnp.sum(run(theirs, k)[0] ** 2))(k)
    np.testing.assert_allclose(g1, g2, rtol=1e-10)
