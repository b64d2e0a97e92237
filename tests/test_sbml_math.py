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


def test_rate_of_is_refused_by_name(tmp_path):
    with pytest.raises(PetabError, match=r"m\.xml.*rateOf"):
        read_sbml(_sbml(tmp_path / "m.xml", "1", "-k * rateOf(X)"))
