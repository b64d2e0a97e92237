"""Events: time- and state-triggered, against analytic solutions; gradients (checkpoint,
forward and the continuous adjoint) against central finite differences, in the event time
and in the assignments; SBML events imported with python-libsbml; spec errors by name."""

import numpy as np
import pandas as pd
import pytest

import pyude
from pyude.petab import PetabError

TIGHT = {"rtol": 1e-10, "atol": 1e-12, "solver": "Tsit5"}

# x grows until it exceeds c, then halves (state-triggered, event times log(c)/r + n log(2)/r);
# y decays and gets a bolus d at t = tau (time-triggered) and e*x at every halving of x
MODEL = {
    "states": ["x", "y"],
    "parameters": {"r": 0.7, "c": 2.0, "k": 0.3, "tau": 1.4, "d": 0.5, "e": 0.2},
    "equations": {"x": "r*x", "y": "-k*y"},
    "initial": {"x": 1.0, "y": 1.0},
    "events": [
        {"id": "halve", "trigger": "gt(x, c)", "assignments": {"x": "x/2", "y": "y + e*x"}},
        {"id": "bolus", "trigger": "ge(t, tau)", "assignments": {"y": "y + d"}},
    ],
}


def exact(t, r=0.7, c=2.0, k=0.3, tau=1.4, d=0.5, e=0.2):
    """x and y at the times t (after the events at an event time)."""
    fires = sorted([(np.log(c) / r + n * np.log(2) / r, "halve") for n in range(50)] + [(tau, "bolus")])
    x, y, s = 1.0, 1.0, 0.0
    out = []
    for ti in t:
        while fires and fires[0][0] <= ti:
            te, kind = fires.pop(0)
            x, y, s = x * np.exp(r * (te - s)), y * np.exp(-k * (te - s)), te
            if kind == "halve":
                x, y = x / 2, y + e * x  # both from the values before the event
            else:
                y = y + d
        out.append((x * np.exp(r * (ti - s)), y * np.exp(-k * (ti - s))))
        x, y, s = out[-1][0], out[-1][1], ti
    return np.array(out)


TS = np.array([0.5, 1.4, 2.0, 2.9, 3.5])


def test_time_and_state_events_match_the_analytic_solution():
    sol = pyude.solve(MODEL, TS, **TIGHT)
    # events at 0.990 (halve), 1.4 (bolus, a save time: the value after it), 1.980, 2.971
    assert np.allclose(sol.y, exact(TS), rtol=1e-8, atol=1e-10)
    # dense output re-solves with the events at any times, in any order
    tq = np.array([3.2, 0.2, 1.7])
    assert np.allclose(sol(tq), exact(np.sort(tq))[[2, 0, 1]], rtol=1e-8)


def test_too_many_state_events_is_an_error():
    with pytest.raises(pyude.SolverError, match="too_many_events"):
        pyude.solve(MODEL, TS, params={"r": 40.0}, **TIGHT)


@pytest.mark.parametrize("sens", ["checkpoint", "forward", "adjoint"])
def test_gradients_match_finite_differences(sens):
    data = pd.DataFrame({
        "time": [0.5, 1.4, 2.0, 2.9, 3.5, 1.0, 2.0, 3.5],
        "observable": ["x"] * 5 + ["y"] * 3,
        "value": [1.1, 1.3, 1.2, 1.0, 1.7, 0.8, 1.4, 1.2],
    })
    pr = pyude.Problem(MODEL, data, **TIGHT)
    p = {"tau": 1.3}  # not at a data time: the loss is smooth in tau there
    _, g = pr.value_and_grad(p, sens)
    base = {**MODEL["parameters"], **p}
    for name in base:
        h = 1e-6 * max(1.0, abs(base[name]))
        fd = (pr.loss({**p, name: base[name] + h}) - pr.loss({**p, name: base[name] - h})) / (2 * h)
        assert g[name] == pytest.approx(fd, rel=1e-5, abs=1e-8), name


# a dose at t0 (initial_value false), a switch of the right-hand side at ts with a dose at
# the same time, and a state event whose assignment reads t: every kind of jump the adjoint
# crosses, on a stiff solver
JUMPS = {
    "states": ["a", "b"],
    "parameters": {"k": 0.4, "t_on": 0.0, "d": 0.7, "ts": 1.3, "thr": 0.75, "q": 0.3},
    "equations": {"a": "-k*a + piecewise(q, gt(t, ts), 0)", "b": "k*a - 0.2*b"},
    "initial": {"a": 1.0, "b": 0.2},
    "events": [
        {"trigger": "ge(t, t_on)", "assignments": {"a": "a + d*b"}, "initial_value": False},
        {"trigger": "lt(a, thr)", "assignments": {"b": "b*q + t"}},
        {"trigger": "gt(t, ts)", "assignments": {"b": "b + d*a"}},
    ],
}


def test_adjoint_crosses_doses_switches_and_state_events():
    data = pd.DataFrame({
        "time": [0.5, 1.0, 2.0, 3.0, 4.0, 1.5, 3.5],
        "observable": ["a"] * 5 + ["b"] * 2,
        "value": [1.0, 0.9, 0.7, 0.5, 0.4, 0.3, 0.5],
    })
    pr = pyude.Problem(JUMPS, data, rtol=1e-10, atol=1e-12, solver="Rodas5P")
    b = pyude.solve(JUMPS, np.array([1.0, 2.0]), rtol=1e-10, atol=1e-12).y[:, 1]
    assert b[1] > 1.0 > b[0]  # the state event fired between the two (b jumped to b*q + t)
    _, g = pr.value_and_grad({}, "adjoint")
    base = JUMPS["parameters"]
    for name in ("k", "d", "ts", "thr", "q"):  # t_on = t0: the dose's time is not differentiable there
        h = 1e-6 * max(1.0, abs(base[name]))
        fd = (pr.loss({name: base[name] + h}) - pr.loss({name: base[name] - h})) / (2 * h)
        assert g[name] == pytest.approx(fd, rel=1e-5), name
    # through the dose at t0 to the initial state
    _, g_adj = pr.value_and_grad({}, "adjoint", initial_states=True)
    _, g_ck = pr.value_and_grad({}, "checkpoint", initial_states=True)
    for name in ("initial.a", "initial.b"):
        assert g_adj[name] == pytest.approx(g_ck[name], rel=1e-6), name
    assert abs(g_adj["initial.b"]) > 0.1


def test_adjoint_with_events_over_vmapped_conditions():
    # two conditions with their events at different times, solved in one vmapped call
    conditions = pd.DataFrame({"condition": ["c1", "c2"], "r": [0.7, 0.9], "tau": [1.3, 2.2]})
    data = pd.DataFrame({
        "time": [0.5, 1.4, 2.0, 2.9, 3.5, 1.0, 2.0, 3.5] * 2,
        "observable": (["x"] * 5 + ["y"] * 3) * 2,
        "value": [1.1, 1.3, 1.2, 1.0, 1.7, 0.8, 1.4, 1.2] * 2,
        "condition": ["c1"] * 8 + ["c2"] * 8,
    })
    pr = pyude.Problem(MODEL, data, conditions=conditions, batching="vectorized", **TIGHT)
    _, g = pr.value_and_grad({}, "adjoint")
    for name in ("c", "d"):  # the halving's threshold, the dose's size
        h = 1e-6 * MODEL["parameters"][name]
        fd = (pr.loss({name: MODEL["parameters"][name] + h}) - pr.loss({name: MODEL["parameters"][name] - h})) / (2 * h)
        assert g[name] == pytest.approx(fd, rel=1e-5), name


def test_multiple_shooting_refuses_events_by_name():
    data = pd.DataFrame({"time": [1.0], "observable": ["x"], "value": [1.0]})
    pr = pyude.Problem(MODEL, data, **TIGHT)
    with pytest.raises(pyude.DataError, match="multiple shooting of a model with events"):
        pr.shooting_start(pr.theta0(), pyude.MultipleShooting(segments=2))


def test_initial_value_and_strictness_at_t0():
    m = {
        "states": ["a", "b", "c", "d"],
        "parameters": {"t_on": 0.0},
        "equations": {"a": "0", "b": "0", "c": "0", "d": "0"},
        "events": [
            {"trigger": "ge(t, t_on)", "assignments": {"a": "a + 1"}, "initial_value": False},  # true at t0: fires
            {"trigger": "ge(t, t_on)", "assignments": {"b": "b + 1"}},  # true at t0, initial_value true: never
            {"trigger": "gt(t, t_on)", "assignments": {"c": "c + 1"}},  # false at t0, true just after: fires
            {"trigger": "lt(t, t_on)", "assignments": {"d": "d + 1"}},  # never becomes true
        ],
    }
    sol = pyude.solve(m, np.array([0.0, 1.0]), **TIGHT)
    assert sol.y.tolist() == [[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]]


# ------------------------------------------------------------------- spec
def test_compound_triggers_fire_when_the_combination_turns_true():
    """a = t: and/or of comparisons, nested, fire when the combination turns true (an and
    when its last part does), and an and that never holds never fires."""
    m = {
        "states": ["a", "b"],
        "equations": {"a": "1", "b": "0"},
        "events": [
            {"trigger": "and(gt(a, 1), gt(t, 2))", "assignments": {"b": "b + 1"}},  # t = 2
            {"trigger": "or(gt(a, 3), lt(a, -1))", "assignments": {"b": "b + 10"}},  # t = 3
            {"trigger": "and(gt(a, 0.5), lt(a, 0.2))", "assignments": {"b": "b + 100"}},  # never
            {"trigger": "and(ge(a, 4), or(ge(t, 1), ge(a, 100)))", "assignments": {"b": "b + 1000"}},  # t = 4
        ],
    }
    sol = pyude.solve(m, np.array([1.5, 2.5, 3.5, 4.5]), **TIGHT)
    assert sol.y[:, 1].tolist() == [0.0, 1.0, 11.0, 1011.0]
    assert pyude.Model.from_dict(pyude.Model.from_dict(m).to_dict()) == pyude.Model.from_dict(m)


# two state events whose crossings lie 0.02 apart, the later one listed first: both fall
# in one solver step; each records its firing time
CLOSE = {
    "states": ["x", "b", "c"],
    "parameters": {"k": 0.5},
    "equations": {"x": "-k*x", "b": "0", "c": "0"},
    "initial": {"x": 1.0},
    "events": [{"trigger": "lt(x, 0.5)", "assignments": {"b": "t"}},
               {"trigger": "lt(x, 0.505)", "assignments": {"c": "t"}}],
}


@pytest.mark.parametrize("sens", ["checkpoint", "forward", "adjoint"])
def test_state_events_crossing_in_one_step_fire_in_time_order(sens):
    """x = exp(-k t) falls below 0.505 at 2 ln(1/0.505) = 1.3664 and below 0.5 at 2 ln 2 =
    1.3863 (k = 0.5). The earlier crossing used to be stepped over when a later-listed
    event crossed in the same step (c stayed 0). Also the gradient of the firing times."""
    tb, tc = np.log(2.0) / 0.5, np.log(1 / 0.505) / 0.5
    for tol in (1e-3, 1e-10):
        y = pyude.solve(CLOSE, np.array([3.0]), solver="Tsit5", rtol=tol, atol=tol * 1e-2).y[0]
        assert y[1:] == pytest.approx([tb, tc], rel=max(tol, 1e-9))
    data = pd.DataFrame({"time": [3.0, 3.0], "observable": ["b", "c"], "value": [0.0, 0.0]})
    pr = pyude.Problem(CLOSE, data, **TIGHT)
    loss, g = pr.value_and_grad({}, sens)
    assert loss == pytest.approx(tb**2 + tc**2, rel=1e-8)
    assert g["k"] == pytest.approx(-2 * (tb**2 + tc**2) / 0.5, rel=1e-6)  # firing times ~ 1/k


def test_a_trigger_true_at_the_start_fires_after_it_went_false():
    """x = cos t: gt(x, 0.5) holds at t0 (initial_value true: no firing there), goes false at
    pi/3 (the event is re-armed) and fires at 5 pi/3 and 5 pi/3 + 2 pi."""
    m = {"states": ["x", "v", "c", "n"], "equations": {"x": "v", "v": "-x", "c": "0", "n": "0"}, "initial": {"x": 1.0},
         "events": [{"trigger": "gt(x, 0.5)", "assignments": {"c": "t", "n": "n + 1"}}]}
    y = pyude.solve(m, np.array([6.0, 12.0]), **TIGHT).y
    np.testing.assert_allclose(y[:, 2:], [[5 * np.pi / 3, 1.0], [5 * np.pi / 3 + 2 * np.pi, 2.0]], rtol=1e-9)


@pytest.mark.parametrize("sens", ["checkpoint", "forward", "adjoint"])
def test_gradient_through_re_armed_firings(sens):
    """x = cos(w t) starts above thr (no firing at t0), goes below (re-armed) and fires at
    w t = 2 pi - acos(thr) and 4 pi - acos(thr); c sums the firing times:
    c = (6 pi - 2 acos(thr)) / w, loss c^2, gradient analytic."""
    m = {"states": ["x", "s", "c"], "parameters": {"w": 1.3, "thr": 0.4},
         "equations": {"x": "-w*s", "s": "w*x", "c": "0"}, "initial": {"x": 1.0},
         "events": [{"trigger": "gt(x, thr)", "assignments": {"c": "c + t"}}]}
    w, thr = 1.3, 0.4
    c = (6 * np.pi - 2 * np.arccos(thr)) / w
    pr = pyude.Problem(m, pd.DataFrame({"time": [12.0], "observable": ["c"], "value": [0.0]}), **TIGHT)
    loss, g = pr.value_and_grad({}, sens)
    assert loss == pytest.approx(c**2, rel=1e-8)
    assert g["thr"] == pytest.approx(2 * c * 2 / (w * np.sqrt(1 - thr**2)), rel=1e-6)
    assert g["w"] == pytest.approx(-2 * c**2 / w, rel=1e-6)


# x decays; a dose when x is below thr after t_on: the time part decides with t_on = 1.5
# (x < thr from t = ln 2), the state part with t_on = 0.3; x falls below thr again later
# and the dose repeats
COMPOUND = {
    "states": ["x"],
    "parameters": {"k": 1.0, "thr": 0.5, "t_on": 1.5, "d": 0.8},
    "equations": {"x": "-k*x"},
    "initial": {"x": 1.0},
    "events": [{"trigger": "and(lt(x, thr), gt(t, t_on))", "assignments": {"x": "x + d"}}],
}


@pytest.mark.parametrize("t_on", [1.5, 0.3])
@pytest.mark.parametrize("sens", ["checkpoint", "forward", "adjoint"])
def test_compound_trigger_gradients_match_finite_differences(sens, t_on):
    x_dose = np.exp(-1.5) + 0.8  # t_on = 1.5: the dose at 1.5; the next when x = 0.5 again, at 1.5 + ln(x_dose / 0.5)
    sol = pyude.solve(COMPOUND, np.array([2.0]), params={"t_on": 1.5}, **TIGHT)
    assert sol.y[0, 0] == pytest.approx(x_dose * np.exp(-0.5), rel=1e-9)
    data = pd.DataFrame({"time": [0.5, 1.0, 2.0, 2.5, 3.0], "observable": ["x"] * 5,
                         "value": [0.6, 0.9, 0.7, 0.8, 0.5]})
    pr = pyude.Problem(COMPOUND, data, **TIGHT)
    p = {"t_on": t_on}
    _, g = pr.value_and_grad(p, sens)
    base = {**COMPOUND["parameters"], **p}
    for name in base:
        h = 1e-6 * max(1.0, abs(base[name]))
        fd = (pr.loss({**p, name: base[name] + h}) - pr.loss({**p, name: base[name] - h})) / (2 * h)
        assert g[name] == pytest.approx(fd, rel=1e-5, abs=1e-8), (name, t_on)
    # which part decides shows in the gradient: t_on's is zero where the state part does
    assert (abs(g["t_on"]) > 1e-3) == (t_on == 1.5)


def test_spec_round_trip_and_errors():
    m = pyude.Model.from_dict(MODEL)
    assert pyude.Model.from_dict(m.to_dict()) == m
    assert m.to_dict()["events"] == MODEL["events"]
    assert pyude.Model.from_dict(yaml_round_trip(m)) == m

    def bad(event, match):
        with pytest.raises(pyude.SpecError, match=match):
            pyude.Model.from_dict({**MODEL, "events": [event]})

    bad({"trigger": "gt(x, 1)", "assignments": {"k": "1"}}, r"events\[0\].assignments.k: 'k' is a parameter")
    bad({"trigger": "gt(x, 1)", "assignments": {"z": "1"}}, r"'z' is not a state")
    bad({"trigger": "gt(x, 1)", "assignments": {"x": "q"}}, r"events\[0\].assignments.x: unknown symbol 'q'")
    bad({"trigger": "and(gt(x, 1), le(t, 2))", "assignments": {"x": "0"}},
        r"events\[0\].trigger: its comparisons mix strict \(gt, lt\) and non-strict \(ge, le\) ones")
    bad({"trigger": "eq(x, 1)", "assignments": {"x": "0"}}, r"trigger: 'eq\(x, 1.0\)' is not a comparison; expected a comparison lt/le/gt/ge\(a, b\) or and/or")
    bad({"trigger": "or(gt(x, 1), not(gt(t, 2)))", "assignments": {"x": "0"}}, r"'not\(.*\)' is not a comparison")
    bad({"trigger": "x", "assignments": {"x": "0"}}, r"trigger: expected a comparison")
    bad({"id": "e1", "trigger": "gt(x, 1)", "assignments": {"x": "0"}, "delay": 1}, r"events\[0\] \('e1'\).delay: delayed")
    bad({"trigger": "gt(x, 1)", "assignments": {"x": "0"}, "priority": 1}, r"priorities are not supported")
    bad({"trigger": "gt(x, 1)", "assignments": {"x": "0"}, "initial_value": "no"}, r"initial_value: expected true or false")
    bad({"trigger": "gt(x, 1)", "assignments": {}}, r"assignments: expected a non-empty mapping")
    bad({"trigger": "gt(x, 1)", "assign": {"x": "0"}}, r"unknown key\(s\) \['assign'\]")
    with pytest.raises(pyude.SpecError, match="events: expected a list"):
        pyude.Model.from_dict({**MODEL, "events": {"trigger": "gt(x, 1)"}})


def yaml_round_trip(m):
    import yaml

    return yaml.safe_load(m.to_yaml())


# ------------------------------------------------------------------- SBML
def _sbml(tmp_path, extra=None):
    """X decays (k) in a compartment of size 2, gets a bolus at tau (time event); when X falls
    below thr, the non-constant parameter s is set to 1 (state event) and Y grows at rate s."""
    libsbml = pytest.importorskip("libsbml")
    doc = libsbml.SBMLDocument(3, 2)
    m = doc.createModel()
    m.setId("events_model")
    c = m.createCompartment()
    c.setId("C"), c.setSize(2.0), c.setConstant(True)
    for sid, c0 in (("X", 1.0), ("Y", 0.0)):
        sp = m.createSpecies()
        sp.setId(sid), sp.setCompartment("C"), sp.setInitialConcentration(c0)
        sp.setHasOnlySubstanceUnits(False), sp.setBoundaryCondition(False), sp.setConstant(False)
    for pid, v, const in (("k", 0.5, True), ("tau", 2.0, True), ("dose", 1.0, True), ("thr", 0.3, True), ("s", 0.0, False)):
        p = m.createParameter()
        p.setId(pid), p.setValue(v), p.setConstant(const)

    def reaction(rid, reactant, product, law):
        rx = m.createReaction()
        rx.setId(rid), rx.setReversible(False)
        if reactant:
            ref = rx.createReactant()
            ref.setSpecies(reactant), ref.setStoichiometry(1.0), ref.setConstant(True)
        if product:
            ref = rx.createProduct()
            ref.setSpecies(product), ref.setStoichiometry(1.0), ref.setConstant(True)
        rx.createKineticLaw().setMath(libsbml.parseL3Formula(law))

    reaction("decay", "X", None, "k * X * C")
    reaction("grow", None, "Y", "s * C")

    def event(eid, trigger, assignments, initial=True):
        ev = m.createEvent()
        ev.setId(eid), ev.setUseValuesFromTriggerTime(True)
        tr = ev.createTrigger()
        tr.setMath(libsbml.parseL3Formula(trigger)), tr.setInitialValue(initial), tr.setPersistent(True)
        for var, formula in assignments.items():
            ea = ev.createEventAssignment()
            ea.setVariable(var), ea.setMath(libsbml.parseL3Formula(formula))
        return ev

    event("bolus", "time >= tau", {"X": "X + dose"})
    event("switch_on", "X < thr", {"s": "1"})
    if extra:
        extra(m, event, libsbml)
    path = tmp_path / "model.xml"
    libsbml.writeSBMLToFile(doc, str(path))
    return path


def test_sbml_events_are_imported_and_solved(tmp_path):
    from pyude.petab._sbml import read_sbml

    sb = read_sbml(_sbml(tmp_path))
    assert sb.states == ["X", "Y", "s"] and sb.event_parameters == {"s"}
    model = pyude.Model.from_dict(sb.spec)
    assert [e.id for e in model.events] == ["bolus", "switch_on"]
    ts = np.array([1.0, 2.0, 3.0, 6.0, 8.0])
    sol = pyude.solve(model, ts, **TIGHT)
    k, tau, dose, thr = 0.5, 2.0, 1.0, 0.3
    x = np.where(ts < tau, np.exp(-k * ts), (np.exp(-k * tau) + dose) * np.exp(-k * (ts - tau)))
    t_on = tau + np.log((np.exp(-k * tau) + dose) / thr) / k  # X falls below thr (after the bolus)
    assert np.allclose(sol.y[:, 0], x, rtol=1e-8)
    assert np.allclose(sol.y[:, 1], np.maximum(ts - t_on, 0.0), atol=1e-8)
    assert np.allclose(sol.y[:, 2], (ts > t_on).astype(float))


def test_sbml_compound_trigger_is_imported(tmp_path):
    """``(time > 5) && (X < 0.5)``: X is below 0.5 from t = 4.01 on, so the and turns
    true with its time part, at t = 5; Y gains 10 there and nothing else changes."""
    from pyude.petab._sbml import read_sbml

    with_and = read_sbml(_sbml(tmp_path, lambda m, event, L: event("late_low", "(time > 5) && (X < 0.5)", {"Y": "Y + 10"})))
    (ev,) = [e for e in with_and.spec["events"] if e["id"] == "late_low"]
    assert ev["trigger"] == "and(gt(t, 5.0), lt(X, 0.5))"
    (tmp_path / "plain").mkdir()
    plain = read_sbml(_sbml(tmp_path / "plain"))
    t = np.array([4.9, 6.0])
    y_and = pyude.solve(pyude.Model.from_dict(with_and.spec), t, **TIGHT).y
    y_plain = pyude.solve(pyude.Model.from_dict(plain.spec), t, **TIGHT).y
    ix, iy = with_and.states.index("X"), with_and.states.index("Y")
    np.testing.assert_allclose(y_and[:, ix], y_plain[:, ix], rtol=1e-8)  # solves cut at different times
    np.testing.assert_allclose(y_and[:, iy] - y_plain[:, iy], [0.0, 10.0], atol=1e-9)


def test_sbml_event_priorities_order_simultaneous_events(tmp_path):
    from pyude.petab._sbml import read_sbml

    def extra(m, event, L):
        # at t = 1 both set X: SBML runs "high" first, so "low" runs last and its value stays
        for eid, value, prio in (("high", "5", "10"), ("low", "7", "1")):
            event(eid, "time >= 1", {"X": value}).createPriority().setMath(L.parseL3Formula(prio))
        for e, prio in zip(m.getListOfEvents(), ("3", "2")):  # bolus, switch_on
            if not e.isSetPriority():
                e.createPriority().setMath(L.parseL3Formula(prio))

    sb = read_sbml(_sbml(tmp_path, extra))
    assert [e["id"] for e in sb.spec["events"]] == ["high", "bolus", "switch_on", "low"]
    x = pyude.solve(pyude.Model.from_dict(sb.spec), np.array([1.0, 1.5]), **TIGHT).y[:, 0]
    assert x == pytest.approx([7.0, 7.0 * np.exp(-0.5 * 0.5)], rel=1e-8)


@pytest.mark.parametrize(
    "extra, match",
    [
        (lambda m, event, L: event("late", "time >= 5", {"X": "0"}).createDelay().setMath(L.parseL3Formula("1")),
         r"event delays \('late'\) is not supported"),
        (lambda m, event, L: event("both", "(time > 1) && (X <= 2)", {"X": "0"}),
         r"a trigger other than comparisons .* combined by and/or \(its comparisons mix strict .*\('both'\) is not supported"),
        (lambda m, event, L: event("equal", "X == 2", {"X": "0"}),
         r"a trigger other than comparisons .*'eq\(X, 2.0\)' is not a comparison.*\('equal'\) is not supported"),
        (lambda m, event, L: event("prio", "time > 1", {"X": "0"}).createPriority().setMath(L.parseL3Formula("1")),
         r"event priorities that are not constant numbers .* \('bolus'\) is not supported"),
        (lambda m, event, L: [e.createPriority().setMath(L.parseL3Formula("k")) for e in m.getListOfEvents()],
         r"event priorities that are not constant numbers"),
        (lambda m, event, L: event("comp", "time > 1", {"C": "3"}),
         r"compartments"),
    ],
)
def test_sbml_event_refusals(tmp_path, extra, match):
    from pyude.petab._sbml import read_sbml

    with pytest.raises(PetabError, match=match):
        read_sbml(_sbml(tmp_path, extra))


def _petab(tmp_path, parameters="k\tlog10\t0.01\t10\t0.5\t1\n", pre=""):
    """A PEtab v1 problem around the SBML model above: X and Y measured, k estimated."""
    _sbml(tmp_path)
    (tmp_path / "parameters.tsv").write_text(
        "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate\n" + parameters
    )
    (tmp_path / "observables.tsv").write_text(
        "observableId\tobservableFormula\tnoiseFormula\nobs_x\tX\t0.1\nobs_y\tY\t0.1\n"
    )
    (tmp_path / "conditions.tsv").write_text("conditionId\tdose\nc1\t1.0\nc2\t2.0\n")
    (tmp_path / "measurements.tsv").write_text(
        "observableId\tpreequilibrationConditionId\tsimulationConditionId\ttime\tmeasurement\n"
        f"obs_x\t{pre}\tc1\t3.0\t0.8\nobs_y\t\tc1\t8.0\t2.9\nobs_x\t\tc2\t3.0\t1.4\n"
    )
    (tmp_path / "problem.yaml").write_text(
        "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n"
        "  - sbml_files: [model.xml]\n    observable_files: [observables.tsv]\n"
        "    condition_files: [conditions.tsv]\n    measurement_files: [measurements.tsv]\n"
    )
    return tmp_path / "problem.yaml"


def test_petab_problem_with_events(tmp_path):
    pr = pyude.petab.load(_petab(tmp_path), solver="Tsit5", rtol=1e-10, atol=1e-12)
    sim = pr.simulate(pr.nominal_params())["simulation"].to_numpy()
    k, tau, thr = 0.5, 2.0, 0.3
    x3 = [(np.exp(-k * tau) + dose) * np.exp(-k * 1.0) for dose in (1.0, 2.0)]
    t_on = tau + np.log((np.exp(-k * tau) + 1.0) / thr) / k
    assert np.allclose(sim, [x3[0], 8.0 - t_on, x3[1]], rtol=1e-8)


def test_petab_table_sets_the_initial_value_of_an_event_assigned_parameter(tmp_path):
    # s is 0 in the SBML file and set to 1 by the event switch_on; the table starts it at 0.25
    table = "k\tlog10\t0.01\t10\t0.5\t1\ns\tlin\t0\t10\t0.25\t1\n"
    pr = pyude.petab.load(_petab(tmp_path, parameters=table), solver="Tsit5", rtol=1e-10, atol=1e-12)
    assert "s" in pr.model.parameters and "s_state" in pr.model.states and "s" in pr.estimation.names
    k, tau, thr = 0.5, 2.0, 0.3
    t_on = tau + np.log((np.exp(-k * tau) + 1.0) / thr) / k
    y8 = 0.25 * t_on + (8.0 - t_on)  # Y grows at rate s: 0.25 until the event, then 1
    sim = pr.simulate(pr.nominal_params())["simulation"].to_numpy()
    assert sim[1] == pytest.approx(y8, rel=1e-8)
    _, grad = pr.value_and_grad(pr.nominal_params())
    assert grad["s"] == pytest.approx(-(2.9 - y8) / 0.1**2 * t_on, rel=1e-6)  # dY(8)/ds = t_on


def test_petab_refusals_with_events(tmp_path):
    with pytest.raises(PetabError, match=r"preequilibration \('c2'\) of a model with events is not supported"):
        pyude.petab.load(_petab(tmp_path, pre="c2"))
