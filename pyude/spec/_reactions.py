"""Reaction equations ("A + 2 B -> C") and the stoichiometric matrix."""

from __future__ import annotations

import re

import numpy as np

from .._errors import SpecError

_TERM = re.compile(r"^\s*(?:(\d+(?:\.\d*)?)\s*\*?\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*$")
_EMPTY = {"", "0", "∅", "null", "nothing"}


def parse_side(side: str, where: str, states: list[str]) -> dict[str, float]:
    """``"A + 2 B"`` -> ``{"A": 1.0, "B": 2.0}``; an empty side (``""``, ``0``, ``∅``) is a source or sink."""
    out: dict[str, float] = {}
    if side.strip() in _EMPTY:
        return out
    for term in side.split("+"):
        m = _TERM.match(term)
        if m is None:
            raise SpecError(f"{where}: cannot read reaction term {term.strip()!r} (expected e.g. 'A' or '2 A')")
        coeff = float(m.group(1)) if m.group(1) else 1.0
        name = m.group(2)
        if name not in states:
            raise SpecError(f"{where}: unknown species {name!r} (not in 'states')")
        out[name] = out.get(name, 0.0) + coeff
    return out


def parse_equation(equation: str, where: str, states: list[str]) -> tuple[dict[str, float], dict[str, float], bool]:
    """Split a reaction equation into reactants, products and whether it is reversible."""
    if not isinstance(equation, str):
        raise SpecError(f"{where}.equation: expected a string like 'A + B -> C'")
    if "<->" in equation:
        lhs, rhs = equation.split("<->", 1)
        reversible = True
    elif "->" in equation:
        lhs, rhs = equation.split("->", 1)
        reversible = False
    else:
        raise SpecError(f"{where}.equation: {equation!r} has no '->' or '<->'")
    if "->" in rhs:
        raise SpecError(f"{where}.equation: {equation!r} has more than one arrow")
    return parse_side(lhs, where, states), parse_side(rhs, where, states), reversible


def stoichiometry(reactions: list[dict], states: list[str]) -> np.ndarray:
    """Matrix S (n_states x n_reactions): product minus reactant coefficients.

    A reversible reaction contributes one column and its net rate ``rate - reverse_rate``.
    """
    S = np.zeros((len(states), len(reactions)))
    index = {s: i for i, s in enumerate(states)}
    for j, rx in enumerate(reactions):
        reactants, products, _ = parse_equation(rx["equation"], f"reactions[{j}]", states)
        for name, c in reactants.items():
            S[index[name], j] -= c
        for name, c in products.items():
            S[index[name], j] += c
    return S


def conservation_laws(S: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """A basis (rows) of the left null space of S: each row w gives a conserved w·x."""
    if S.size == 0:
        return np.eye(S.shape[0])
    u, s, _ = np.linalg.svd(S)
    rank = int(np.sum(s > tol * max(1.0, s.max() if s.size else 0.0)))
    return u[:, rank:].T
