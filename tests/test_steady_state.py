"""Steady states: preequilibration and steady-state measurements (time inf), against the
analytic steady state, and their gradients (implicit function theorem with a conserved
moiety whose weights are estimated volumes) against central finite differences.

Model: A moves between two compartments of volumes V1, V2 (concentrations Ac, An;
flux k1 V1 Ac - k2 V2 An, so V1 Ac + V2 An is conserved and dJ/dx is singular), and
B is made from Ac and degraded. Steady state from a total T = V1 Ac + V2 An:

    Ac = T / (V1 (1 + k1/k2)),   An = k1 V1 Ac / (k2 V2),   B = s Ac / kd.
"""

import numpy as np
import pandas as pd
import pytest

import pyude

MODEL = {
    "states": ["Ac", "An", "B"],
    "parameters": {"k1": 0.7, "k2": 0.3, "V1": 1.5, "V2": 0.4, "s": 2.0, "kd": 0.5, "A0": 1.0},
    "initial": {"Ac": "A0", "An": "0", "B": "0"},
    "equations": {"Ac": "(-k1*Ac*V1 + k2*An*V2)/V1", "An": "(k1*Ac*V1 - k2*An*V2)/V2", "B": "s*Ac - kd*B"},
}
PARAMS = dict(MODEL["parameters"])
K1_OTHER = 2.0


def analytic(k1, k2, V1, V2, s, kd, A0):
    Ac = V1 * A0 / (V1 * (1 + k1 / k2))
    An = k1 * V1 * Ac / (k2 * V2)
    return {"Ac": Ac, "An": An, "B": s * Ac / kd}


def central_differences(pr, theta, h=1e-5):
    out = []
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h * max(1.0, abs(theta[i]))
        out.append((pr.evaluate(theta + e)["value"] - pr.evaluate(theta - e)["value"]) / (2 * e[i]))
    return np.array(out)


@pytest.fixture(scope="module")
def problem():
    # "main" and "other" start from the steady state of "pre" (k1 = 0.1): the conserved total
    # is the initial one; "main" is also measured on the way there
    data = pd.DataFrame({
        "time": [0.5, 2.0, np.inf, np.inf, 1.0, np.inf],
        "observable": ["B", "Ac", "B", "An", "B", "Ac"],
        "value": [1.0, 0.4, 2.0, 1.5, 1.1, 0.2],
        "condition": ["main"] * 4 + ["other"] * 2,
    })
    conditions = pd.DataFrame({
        "condition": ["main", "pre", "other"], "k1": [np.nan, 0.1, K1_OTHER], "preequilibration": ["pre", None, "pre"],
    })
    return pyude.Problem(MODEL, data, conditions, rtol=1e-10, atol=1e-12, estimate=list(PARAMS))


def test_steady_state_measurements_are_the_analytic_steady_state(problem):
    pred = problem.predictions(PARAMS)
    for _, row in pred[np.isinf(pred["time"])].iterrows():
        k1 = K1_OTHER if row["condition"] == "other" else PARAMS["k1"]
        want = analytic(**{**PARAMS, "k1": k1})[row["observable"]]
        assert row["prediction"] == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("sens", ["checkpoint", "adjoint", "forward"])
def test_steady_state_gradients(problem, sens):
    theta = problem.theta0(PARAMS)
    fd = central_differences(problem, theta)
    out = problem.evaluate(theta, sens)
    assert out["ok"], out["message"]
    g = np.asarray(out["grad"])
    assert np.linalg.norm(g - fd) / np.linalg.norm(fd) < 1e-7, (g, fd)
    # the volumes enter only through the conserved weights of the steady state
    assert abs(g[list(PARAMS).index("V2")]) > 1e-2


def test_only_steady_state_measurements():
    data = pd.DataFrame({"time": [np.inf, np.inf], "observable": ["Ac", "B"], "value": [0.3, 1.0]})
    pr = pyude.Problem(MODEL, data, rtol=1e-10, atol=1e-12)
    pred = pr.predictions(PARAMS)["prediction"].to_numpy()
    want = analytic(**PARAMS)
    assert pred == pytest.approx([want["Ac"], want["B"]], rel=1e-9)


def test_bad_times_and_shooting_refused(problem):
    data = pd.DataFrame({"time": [1.0, -np.inf], "observable": ["Ac", "B"], "value": [0.3, 1.0]})
    with pytest.raises(pyude.DataError, match=r"data row 1: time is -inf"):
        pyude.Problem(MODEL, data)
    with pytest.raises(pyude.DataError, match="multiple shooting with steady-state measurements"):
        problem.evaluate(problem.theta0(), shooting=pyude.MultipleShooting(segments=2))


# ------------------------------------------------------------------------ PEtab
SBML = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1">
  <model id="transport">
    <listOfCompartments>
      <compartment id="cyt" spatialDimensions="3" size="1" constant="true"/>
      <compartment id="nuc" spatialDimensions="3" size="1" constant="true"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="Ac" compartment="cyt" initialConcentration="1" hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/>
      <species id="An" compartment="nuc" initialConcentration="0" hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/>
      <species id="B" compartment="cyt" initialConcentration="0" hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters>
      <parameter id="k1" value="1" constant="true"/>
      <parameter id="k2" value="1" constant="true"/>
      <parameter id="s" value="1" constant="true"/>
      <parameter id="kd" value="1" constant="true"/>
    </listOfParameters>
    <listOfReactions>
      <reaction id="transport" reversible="true" fast="false">
        <listOfReactants><speciesReference species="Ac" stoichiometry="1" constant="true"/></listOfReactants>
        <listOfProducts><speciesReference species="An" stoichiometry="1" constant="true"/></listOfProducts>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML"><apply><minus/>
          <apply><times/><ci> cyt </ci><ci> k1 </ci><ci> Ac </ci></apply>
          <apply><times/><ci> nuc </ci><ci> k2 </ci><ci> An </ci></apply>
        </apply></math></kineticLaw>
      </reaction>
      <reaction id="production" reversible="false" fast="false">
        <listOfProducts><speciesReference species="B" stoichiometry="1" constant="true"/></listOfProducts>
        <listOfModifiers><modifierSpeciesReference species="Ac"/></listOfModifiers>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><ci> cyt </ci><ci> s </ci><ci> Ac </ci></apply>
        </math></kineticLaw>
      </reaction>
      <reaction id="degradation" reversible="false" fast="false">
        <listOfReactants><speciesReference species="B" stoichiometry="1" constant="true"/></listOfReactants>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><ci> cyt </ci><ci> kd </ci><ci> B </ci></apply>
        </math></kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""
PETAB_FILES = {
    "problem.yaml": "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n  - sbml_files: [model.xml]\n"
    "    observable_files: [observables.tsv]\n    condition_files: [conditions.tsv]\n"
    "    measurement_files: [measurements.tsv]\n",
    "parameters.tsv": "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate\n"
    "k1\tlog10\t0.001\t1000\t0.7\t1\nk2\tlog10\t0.001\t1000\t0.3\t1\ns\tlin\t0\t10\t2\t1\n"
    "kd\tlog\t0.001\t1000\t0.5\t1\nV1\tlin\t0.1\t10\t1.5\t1\nV2\tlin\t0.1\t10\t0.4\t1\n",
    "observables.tsv": "observableId\tobservableFormula\tnoiseFormula\n"
    "obs_Ac\tAc\t0.1\nobs_An\tAn\t0.1\nobs_B\tB\t0.1\n",
    # "pre" starts A at 2 in the cytosol and moves it slowly (k1 = 0.1)
    "conditions.tsv": "conditionId\tk1\tAc\tcyt\tnuc\npre\t0.1\t2\tV1\tV2\nmain\t\t\tV1\tV2\n",
    "measurements.tsv": "observableId\tpreequilibrationConditionId\tsimulationConditionId\tmeasurement\ttime\n"
    "obs_B\tpre\tmain\t1.0\t0.5\nobs_Ac\tpre\tmain\t0.4\t2\nobs_B\tpre\tmain\t2.0\tinf\n"
    "obs_An\tpre\tmain\t1.5\tinf\nobs_Ac\t\tmain\t0.3\tinf\n",
}


@pytest.fixture(scope="module")
def petab_problem(tmp_path_factory):
    pytest.importorskip("libsbml", reason="PEtab import needs python-libsbml")
    import pyude.petab

    d = tmp_path_factory.mktemp("petab_steady")
    (d / "model.xml").write_text(SBML)
    for name, text in PETAB_FILES.items():
        (d / name).write_text(text)
    return pyude.petab.load(d / "problem.yaml", rtol=1e-10, atol=1e-12)


def test_petab_v1_priors_of_every_type(petab_problem, tmp_path):
    """objectivePriorType on the parameter table: the loss gains each -log density (PEtab's:
    parameterScale types over the parameter on its parameterScale, no Jacobian)."""
    params = (PETAB_FILES["parameters.tsv"].replace("estimate\n", "estimate\tobjectivePriorType\tobjectivePriorParameters\n")
              .replace("0.7\t1\n", "0.7\t1\tparameterScaleNormal\t0;1\n")
              .replace("0.3\t1\n", "0.3\t1\tparameterScaleLaplace\t-1;0.5\n")
              .replace("\t2\t1\n", "\t2\t1\tlaplace\t2.5;0.5\n")
              .replace("0.5\t1\n", "0.5\t1\tparameterScaleUniform\t-2;1\n")
              .replace("1.5\t1\n", "1.5\t1\tlogLaplace\t0;2\n")
              .replace("0.4\t1\n", "0.4\t1\tuniform\t0.1;10\n"))
    assert params.count("\t1\t") == 6 and params.count(";") == 6
    for name, text in {**PETAB_FILES, "parameters.tsv": params}.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "model.xml").write_text(SBML)
    import pyude.petab

    pr = pyude.petab.load(tmp_path / "problem.yaml", rtol=1e-10, atol=1e-12)
    nominal = petab_problem.nominal_params()
    want = (0.5 * np.log(2 * np.pi) + 0.5 * np.log10(0.7) ** 2  # k1: normal over log10(k1), sd 1
            + np.log(1.0) + abs(np.log10(0.3) + 1) / 0.5  # k2: laplace over log10(k2)
            + np.log(1.0) + abs(2.0 - 2.5) / 0.5  # s: laplace, 2b = 1
            + np.log(3.0)  # kd: uniform over ln(kd) in [-2, 1]
            + np.log(1.5) + np.log(4.0) + abs(np.log(1.5)) / 2  # V1: log-laplace
            + np.log(9.9))  # V2: uniform
    assert pr.loss(nominal) - petab_problem.loss(nominal) == pytest.approx(want, rel=1e-10)


def test_petab_steady_state_measurements(petab_problem):
    sim = petab_problem.simulate(petab_problem.nominal_params())
    p = {k: PARAMS[k] for k in ("k1", "k2", "V1", "V2", "s", "kd")}
    pre = analytic(**p, A0=2.0)  # total from the preequilibration's initial state
    direct = analytic(**p, A0=1.0)  # no preequilibration: the SBML initial value
    want = [pre["B"], pre["An"], direct["Ac"]]
    got = sim.loc[np.isinf(sim["time"].astype(float)), "simulation"].to_numpy()
    assert got == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("sens", ["checkpoint", "adjoint", "forward"])
def test_petab_steady_state_gradients(petab_problem, sens):
    theta = petab_problem.theta0()
    fd = central_differences(petab_problem, theta)
    out = petab_problem.evaluate(theta, sens)
    assert out["ok"], out["message"]
    g = np.asarray(out["grad"])
    assert np.linalg.norm(g - fd) / np.linalg.norm(fd) < 1e-7, (g, fd)


# ------------------------------------------------------------------------ PEtab v2
# The same model as PEtab v2: preequilibration is a period at time -inf, and a condition's
# changes persist into later periods (k1 = 0.1 and the volumes hold on in e1's main period,
# which changes nothing; in v1 the simulation condition starts again from the nominal
# values). Placeholders are declared per observable and may have any id.
V2_FILES = {
    "problem.yaml": "format_version: 2.0.0\nparameter_files: [parameters.tsv]\nmodel_files:\n"
    "  m: {location: model.xml, language: sbml}\nobservable_files: [observables.tsv]\n"
    "condition_files: [conditions.tsv]\nexperiment_files: [experiments.tsv]\nmeasurement_files: [measurements.tsv]\n",
    "parameters.tsv": "parameterId\tlowerBound\tupperBound\tnominalValue\testimate\n"
    "k1\t0.001\t1000\t0.7\ttrue\nk2\t0.001\t1000\t0.3\ttrue\ns\t0\t10\t2\ttrue\nkd\t0.001\t1000\t0.5\ttrue\n"
    "V1\t0.1\t10\t1.5\ttrue\nV2\t0.1\t10\t0.4\ttrue\nsd_B\t0.01\t10\t0.2\tfalse\n",
    "observables.tsv": "observableId\tobservableFormula\tnoiseFormula\tobservablePlaceholders\tnoisePlaceholders\n"
    "obs_B\tscale * B + offset\tnoise\tscale;offset\tnoise\nobs_An\tAn\t0.1\t\t\nobs_Ac\tAc\t0.1\t\t\n",
    "conditions.tsv": "conditionId\ttargetId\ttargetValue\npre\tk1\t0.1\npre\tAc\t2\nvol\tcyt\tV1\nvol\tnuc\tV2\n",
    "experiments.tsv": "experimentId\ttime\tconditionId\ne1\t-inf\tpre\ne1\t-inf\tvol\ne1\t0\t\ne2\t0\tvol\n",
    "measurements.tsv": "observableId\texperimentId\tmeasurement\ttime\tobservableParameters\tnoiseParameters\n"
    "obs_B\te1\t1.0\tinf\t2;0.5\tsd_B\nobs_An\te1\t1.5\tinf\t\t\nobs_Ac\te2\t0.2\tinf\t\t\n",
}


def _write(d, files, sbml=SBML):
    (d / "model.xml").write_text(sbml)
    for name, text in files.items():
        (d / name).write_text(text)
    return d / "problem.yaml"


def test_petab_v2_preequilibration_persistence_and_placeholders(tmp_path):
    pytest.importorskip("libsbml", reason="PEtab import needs python-libsbml")
    import pyude.petab

    pr = pyude.petab.load(_write(tmp_path, V2_FILES), rtol=1e-10, atol=1e-12)
    nominal = pr.nominal_params()
    sim = pr.simulate(nominal)["simulation"].to_numpy()
    p = {k: PARAMS[k] for k in ("k1", "k2", "V1", "V2", "s", "kd")}
    e1 = analytic(**{**p, "k1": 0.1}, A0=2.0)  # k1 of the preequilibration holds on
    e2 = analytic(**p, A0=1.0)
    want = np.array([2.0 * e1["B"] + 0.5, e1["An"], e2["Ac"]])
    assert sim == pytest.approx(want, rel=1e-9)
    sigma = np.array([0.2, 0.1, 0.1])  # obs_B's noise placeholder takes the parameter sd_B
    nll = np.sum(0.5 * np.log(2 * np.pi * sigma**2) + (np.array([1.0, 1.5, 0.2]) - want) ** 2 / (2 * sigma**2))
    assert pr.loss(nominal) == pytest.approx(nll, rel=1e-9)


@pytest.mark.parametrize(
    "table, text, message",
    [
        ("experiments.tsv", "experimentId\ttime\tconditionId\ne1\t0\tpre\ne1\t5\tvol\n",
         r"experiment 'e1', period at time 5.0: changing compartment 'cyt' during a simulation is not supported"),
        ("experiments.tsv", "experimentId\ttime\tconditionId\ne1\t0\tpre\ne1\t0\tk1twice\ne2\t0\tvol\n",
         r"conditions \['pre', 'k1twice'\] applied together both set 'k1'"),
        ("measurements.tsv", "observableId\texperimentId\tmeasurement\ttime\tobservableParameters\tnoiseParameters\n"
         "obs_B\te1\t1.0\tinf\t2\tsd_B\n", "observableParameters gives 1 value\\(s\\) but observable 'obs_B' has 2"),
        ("observables.tsv", "observableId\tobservableFormula\tnoiseFormula\tobservablePlaceholders\tnoisePlaceholders\n"
         "obs_B\tscale * B\t0.1\t2scale\t\n", "observablePlaceholders: '2scale' is not a valid id"),
    ],
)
def test_petab_v2_errors(tmp_path, table, text, message):
    pytest.importorskip("libsbml", reason="PEtab import needs python-libsbml")
    import pyude.petab

    files = {**V2_FILES, table: text,
             "conditions.tsv": V2_FILES["conditions.tsv"] + "k1twice\tk1\t0.5\n"}
    with pytest.raises(pyude.petab.PetabError, match=message):
        pyude.petab.load(_write(tmp_path, files))


# A parameter changed by a later period of a v2 experiment: x' = -k x, k = 0.5 until t = 2
# in e1, then k_late (estimated); e2 keeps k = 0.5 (no later period).
DECAY_SBML = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1">
  <model id="decay">
    <listOfCompartments><compartment id="c" spatialDimensions="3" size="1" constant="true"/></listOfCompartments>
    <listOfSpecies>
      <species id="x" compartment="c" initialConcentration="1" hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters>
      <parameter id="k" value="0.5" constant="true"/><parameter id="k_late" value="1.5" constant="true"/>
    </listOfParameters>
    <listOfReactions>
      <reaction id="decay" reversible="false" fast="false">
        <listOfReactants><speciesReference species="x" stoichiometry="1" constant="true"/></listOfReactants>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><ci> c </ci><ci> k </ci><ci> x </ci></apply>
        </math></kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""
DECAY_FILES = {
    **V2_FILES,
    "parameters.tsv": "parameterId\tlowerBound\tupperBound\tnominalValue\testimate\n"
    "k\t0.01\t10\t0.5\ttrue\nk_late\t0.01\t10\t1.5\ttrue\n",
    "observables.tsv": "observableId\tobservableFormula\tnoiseFormula\nobs_x\tx\t0.1\n",
    "conditions.tsv": "conditionId\ttargetId\ttargetValue\nlate\tk\tk_late\n",
    "experiments.tsv": "experimentId\ttime\tconditionId\ne1\t0\t\ne1\t2\tlate\ne2\t0\t\n",
    "measurements.tsv": "observableId\texperimentId\tmeasurement\ttime\n"
    "obs_x\te1\t0.5\t1\nobs_x\te1\t0.2\t2\nobs_x\te1\t0.1\t3\nobs_x\te1\t0.05\t4\nobs_x\te2\t0.3\t3\n",
}


def test_petab_v2_parameter_changed_by_a_later_period(tmp_path):
    pytest.importorskip("libsbml", reason="PEtab import needs python-libsbml")
    import pyude.petab

    pr = pyude.petab.load(_write(tmp_path, DECAY_FILES, DECAY_SBML), rtol=1e-10, atol=1e-12)
    k, k_late = 0.5, 1.5
    t = np.array([1.0, 2.0, 3.0, 4.0, 3.0])
    late = np.array([0, 1, 1, 1, 0], dtype=bool)  # from t = 2 on in e1 (the change applies at its start time)
    x = np.where(late, np.exp(-2 * k - k_late * (t - 2)), np.exp(-k * t))
    assert pr.simulate(pr.nominal_params())["simulation"].to_numpy() == pytest.approx(x, rel=1e-8)
    y = np.array([0.5, 0.2, 0.1, 0.05, 0.3])
    r = (y - x) / 0.01  # d(loss)/dx = -(y - x) / sigma^2
    dx_dk = np.where(late, -2.0, -t) * x
    dx_dklate = np.where(late, -(t - 2), 0.0) * x
    for sens in ("checkpoint", "forward", "adjoint"):
        _, g = pr.value_and_grad(pr.nominal_params(), sens)
        assert g["k"] == pytest.approx(np.sum(-r * dx_dk), rel=1e-6), sens
        assert g["k_late"] == pytest.approx(np.sum(-r * dx_dklate), rel=1e-6), sens


# A species changed by a later period: x jumps to `dose` (estimated) at t = 2 in e1; e3's
# later period (t = 3) changes only k, so the same slot's event fires there and keeps x;
# e2 has no later period (its event time is t0, where the trigger already holds).
JUMP_FILES = {
    **DECAY_FILES,
    "parameters.tsv": DECAY_FILES["parameters.tsv"] + "dose\t0.1\t10\t2\ttrue\n",
    "conditions.tsv": "conditionId\ttargetId\ttargetValue\nbolus\tx\tdose\nlate\tk\tk_late\n",
    "experiments.tsv": "experimentId\ttime\tconditionId\ne1\t0\t\ne1\t2\tbolus\ne2\t0\t\ne3\t0\t\ne3\t3\tlate\n",
    "measurements.tsv": "observableId\texperimentId\tmeasurement\ttime\n"
    "obs_x\te1\t0.5\t1\nobs_x\te1\t1.5\t2\nobs_x\te1\t1.0\t3\nobs_x\te1\t0.5\t4\nobs_x\te2\t0.3\t3\n"
    "obs_x\te3\t0.1\t2\nobs_x\te3\t0.1\t4\n",
}


def test_petab_v2_species_changed_by_a_later_period(tmp_path):
    pytest.importorskip("libsbml", reason="PEtab import needs python-libsbml")
    import pyude.petab

    sbml = DECAY_SBML.replace('<parameter id="k_late"', '<parameter id="dose" value="2" constant="true"/>'
                              '<parameter id="k_late"')
    problem = _write(tmp_path, JUMP_FILES, sbml)
    pr = pyude.petab.load(problem, rtol=1e-10, atol=1e-12)
    assert [ev["trigger"] for ev in pr.model.to_dict()["events"]] == ["ge(t, period1_start)"]
    k, k_late, dose = 0.5, 1.5, 2.0
    t = np.array([1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 4.0])
    jumped = np.array([0, 1, 1, 1, 0, 0, 0], dtype=bool)  # e1 from t = 2 on (a measurement at 2 sees the jump)
    late = np.array([0, 0, 0, 0, 0, 0, 1], dtype=bool)  # e3 from t = 3 on
    x = np.where(jumped, dose * np.exp(-k * (t - 2)), np.where(late, np.exp(-3 * k - k_late * (t - 3)), np.exp(-k * t)))
    assert pr.simulate(pr.nominal_params())["simulation"].to_numpy() == pytest.approx(x, rel=1e-8)
    y = np.array([0.5, 1.5, 1.0, 0.5, 0.3, 0.1, 0.1])
    r = (y - x) / 0.01  # d(loss)/dx = -(y - x) / sigma^2
    dx = {"k": np.where(jumped, -(t - 2), np.where(late, -3.0, -t)) * x,
          "k_late": np.where(late, -(t - 3), 0.0) * x,
          "dose": np.where(jumped, x / dose, 0.0)}
    for sens in ("checkpoint", "forward", "adjoint"):
        _, g = pr.value_and_grad(pr.nominal_params(), sens)
        for name, d_x in dx.items():
            assert g[name] == pytest.approx(np.sum(-r * d_x), rel=1e-6), (sens, name)
    # events and preequilibration do not go together
    (tmp_path / "experiments.tsv").write_text(JUMP_FILES["experiments.tsv"] + "e4\t-inf\tlate\ne4\t0\t\n")
    (tmp_path / "measurements.tsv").write_text(JUMP_FILES["measurements.tsv"] + "obs_x\te4\t0.1\t1\n")
    with pytest.raises(pyude.petab.PetabError, match=r"experiment 'e4': preequilibration together with species "
                                                    r"changed by a later period \(events\) is not supported"):
        pyude.petab.load(problem)
