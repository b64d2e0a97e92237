"""SBML MathML constants and csymbols: what the importer turns into spec expressions, and
what it refuses by name."""

import math

import numpy as np
import pytest

import pyude

libsbml = pytest.importorskip("libsbml", reason="SBML import needs python-libsbml (pip install 'pyude[petab]')")

from pyude.petab import PetabError  # noqa: E402
from pyude.petab._sbml import read_sbml  # noqa: E402


def _sbml(path, initial: str, rate: str) -> str:
    """X (amount, compartment of size 2) starts at ``initial`` and changes at ``rate``."""
    doc = libsbml.SBMLDocument(3, 1)
    m = doc.createModel()
    m.setId("m")
    c = m.createCompartment()
    c.setId("C"), c.setSize(2.0), c.setConstant(True)
    sp = m.createSpecies()
    sp.setId("X"), sp.setCompartment("C"), sp.setInitialAmount(0.0)
    sp.setHasOnlySubstanceUnits(True), sp.setBoundaryCondition(False), sp.setConstant(False)
    p = m.createParameter()
    p.setId("k"), p.setValue(0.5), p.setConstant(True)
    ia = m.createInitialAssignment()
    ia.setSymbol("X"), ia.setMath(libsbml.parseL3Formula(initial))
    rule = m.createRateRule()
    rule.setVariable("X"), rule.setMath(libsbml.parseL3Formula(rate))
    libsbml.writeSBMLToFile(doc, str(path))
    return str(path)


def test_avogadro_pi_and_exponentiale_are_numbers(tmp_path):
    # X(0) = avogadro * 1e-23 + pi; dX/dt = -k X + exponentiale: X(t) = x_inf + (X0 - x_inf) exp(-k t)
    sb = read_sbml(_sbml(tmp_path / "m.xml", "avogadro * 1e-23 + pi", "-k * X + exponentiale"))
    x0 = 6.02214179e23 * 1e-23 + math.pi  # libsbml's avogadro (SBML Level 3 Version 1, CODATA 2006)
    t = np.array([0.0, 1.0, 3.0])
    sol = pyude.solve(sb.spec, t, solver="Tsit5", rtol=1e-12, atol=1e-12)
    x_inf = math.e / 0.5
    np.testing.assert_allclose(sol.y[:, 0], x_inf + (x0 - x_inf) * np.exp(-0.5 * t), rtol=1e-10)


def _two_species(path, rules: dict[str, str], rate_rules: dict[str, str], init: str | None = None) -> str:
    """A -> B at k*A (concentrations, compartment of size 2); extra parameters P (rate rule
    targets) and Q (assignment rule targets)."""
    doc = libsbml.SBMLDocument(3, 2)
    m = doc.createModel()
    m.setId("m")
    c = m.createCompartment()
    c.setId("C"), c.setSize(2.0), c.setConstant(True)
    for sid, c0 in (("A", 1.5), ("B", 0.0)):
        sp = m.createSpecies()
        sp.setId(sid), sp.setCompartment("C"), sp.setInitialConcentration(c0)
        sp.setHasOnlySubstanceUnits(False), sp.setBoundaryCondition(False), sp.setConstant(False)
    for pid, v, const in (("k", 0.7, True), ("P", 0.25, False), ("Q", 0.0, False)):
        p = m.createParameter()
        p.setId(pid), p.setValue(v), p.setConstant(const)
    rx = m.createReaction()
    rx.setId("conv"), rx.setReversible(False)
    for make, sid in ((rx.createReactant, "A"), (rx.createProduct, "B")):
        ref = make()
        ref.setSpecies(sid), ref.setStoichiometry(1.0), ref.setConstant(True)
    rx.createKineticLaw().setMath(libsbml.parseL3Formula("k * A * C"))
    for var, formula in rules.items():
        rule = m.createAssignmentRule()
        rule.setVariable(var), rule.setMath(libsbml.parseL3Formula(formula))
    for var, formula in rate_rules.items():
        rule = m.createRateRule()
        rule.setVariable(var), rule.setMath(libsbml.parseL3Formula(formula))
    if init is not None:
        ia = m.createInitialAssignment()
        ia.setSymbol("P"), ia.setMath(libsbml.parseL3Formula(init))
    libsbml.writeSBMLToFile(doc, str(path))
    return str(path)


def test_rate_of_is_the_right_hand_side():
    """dP/dt = rateOf(B) - 2 rateOf(k): P = P0 + B (B0 = 0; a constant's rate is 0); the
    assignment rule Q = rateOf(A) is -k A, read through the rules (as an observable would)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        sb = read_sbml(_two_species(Path(d) / "m.xml", {"Q": "rateOf(A)"}, {"P": "rateOf(B) - 2 * rateOf(k)"}))
    assert "rateOf" not in str(sb.spec)
    t = np.array([0.5, 2.0])
    sol = pyude.solve(sb.spec, t, solver="Tsit5", rtol=1e-12, atol=1e-12)
    a = 1.5 * np.exp(-0.7 * t)
    np.testing.assert_allclose(sol["B"], 1.5 - a, rtol=1e-10)
    np.testing.assert_allclose(sol["P"], 0.25 + (1.5 - a), rtol=1e-10)
    # Q's rule, evaluated at the solution, is dA/dt
    from pyude.engines.jax._compile import _Evaluator

    q = [float(_Evaluator({"A": ai, "k": 0.7, "C": 2.0}, {})(sb.rules["Q"])) for ai in sol["A"]]
    np.testing.assert_allclose(q, -0.7 * a, rtol=1e-10)


@pytest.mark.parametrize("rules, rate_rules, init, match", [
    ({"Q": "2 * k"}, {"P": "rateOf(Q)"}, None, r"rateOf of an assignment-rule target \('Q'\) is not supported"),
    ({}, {"P": "-rateOf(P)"}, None, r"rateOf cycles \(a rate that reads itself\) \('P'\) is not supported"),
    ({}, {"P": "1"}, "rateOf(A)", r"rateOf in initial values or initial assignments \('P'\) is not supported"),
])
def test_rate_of_refusals(tmp_path, rules, rate_rules, init, match):
    with pytest.raises(PetabError, match=r"m\.xml.*" + match):
        read_sbml(_two_species(tmp_path / "m.xml", rules, rate_rules, init))
