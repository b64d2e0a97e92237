"""PEtab noise formulas that read species, time and observables (an absolute plus relative
error), with per-measurement noise parameters: the negative log-likelihood against the
formula written out with numpy, and its gradient against central finite differences."""

import numpy as np
import pytest

import pyude

K, X0, SCALE = 0.4, 2.0, 1.5


def _sbml(path):
    """X decays at rate k in a compartment of size 1."""
    libsbml = pytest.importorskip("libsbml")
    doc = libsbml.SBMLDocument(3, 2)
    m = doc.createModel()
    m.setId("decay")
    c = m.createCompartment()
    c.setId("C"), c.setSize(1.0), c.setConstant(True)
    sp = m.createSpecies()
    sp.setId("X"), sp.setCompartment("C"), sp.setInitialConcentration(X0)
    sp.setHasOnlySubstanceUnits(False), sp.setBoundaryCondition(False), sp.setConstant(False)
    for pid, v in (("k", K), ("scale", SCALE)):
        p = m.createParameter()
        p.setId(pid), p.setValue(v), p.setConstant(True)
    rx = m.createReaction()
    rx.setId("decay"), rx.setReversible(False)
    ref = rx.createReactant()
    ref.setSpecies("X"), ref.setStoichiometry(1.0), ref.setConstant(True)
    rx.createKineticLaw().setMath(libsbml.parseL3Formula("k * X * C"))
    libsbml.writeSBMLToFile(doc, str(path))


# obs_rel: its noise reads its own observable through placeholders set per measurement;
# obs_t: a species and time, with laplace noise
OBSERVABLES = (
    "observableId\tobservableFormula\tnoiseFormula\tnoiseDistribution\n"
    "obs_rel\tobservableParameter1_obs_rel * X\tnoiseParameter1_obs_rel + noiseParameter2_obs_rel * obs_rel\tnormal\n"
    "obs_t\tX\t0.05 * X + 0.01 * time\tlaplace\n"
)
MEASUREMENTS = [  # observable, time, value, observableParameters, noiseParameters
    ("obs_rel", 0.5, 2.4, "scale", "0.1;0.2"),
    ("obs_rel", 2.0, 1.5, "scale", "0.1;0.2"),
    ("obs_rel", 4.0, 0.5, "1", "0.05;0.1"),
    ("obs_t", 1.0, 1.4, "", ""),
    ("obs_t", 3.0, 0.6, "", ""),
]


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    import pyude.petab

    d = tmp_path_factory.mktemp("petab_noise")
    _sbml(d / "model.xml")
    (d / "parameters.tsv").write_text(
        "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate\n"
        f"k\tlog10\t0.01\t10\t{K}\t1\nscale\tlin\t0.1\t10\t{SCALE}\t1\n"
    )
    (d / "observables.tsv").write_text(OBSERVABLES)
    (d / "conditions.tsv").write_text("conditionId\nc1\n")
    rows = "".join(f"{o}\tc1\t{t}\t{v}\t{op}\t{npar}\n" for o, t, v, op, npar in MEASUREMENTS)
    (d / "measurements.tsv").write_text(
        "observableId\tsimulationConditionId\ttime\tmeasurement\tobservableParameters\tnoiseParameters\n" + rows
    )
    (d / "problem.yaml").write_text(
        "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n"
        "  - sbml_files: [model.xml]\n    observable_files: [observables.tsv]\n"
        "    condition_files: [conditions.tsv]\n    measurement_files: [measurements.tsv]\n"
    )
    return pyude.petab.load(d / "problem.yaml", solver="Tsit5", rtol=1e-12, atol=1e-14)


def _nll(k=K, scale=SCALE):
    total = 0.0
    for o, t, y, op, npar in MEASUREMENTS:
        x = X0 * np.exp(-k * t)
        if o == "obs_rel":
            h = (scale if op == "scale" else float(op)) * x
            a, b = map(float, npar.split(";"))
            sigma = a + b * h
            total += 0.5 * np.log(2 * np.pi * sigma**2) + 0.5 * ((y - h) / sigma) ** 2
        else:
            sigma = 0.05 * x + 0.01 * t
            total += np.log(2 * sigma) + abs(y - x) / sigma
    return total


def test_noise_formulas_with_species_time_and_observables(problem):
    spec = problem.model.to_dict()["observables"]
    assert spec["obs_t"]["sigma"].replace(" ", "") == "0.05*X+0.01*t"
    value, grad = problem.value_and_grad(problem.nominal_params())
    np.testing.assert_allclose(value, _nll(), rtol=1e-10)
    for name, nominal in (("k", K), ("scale", SCALE)):
        h = 1e-6
        fd = (_nll(**{name: nominal + h}) - _nll(**{name: nominal - h})) / (2 * h)
        np.testing.assert_allclose(grad[name], fd, rtol=1e-6, err_msg=name)
