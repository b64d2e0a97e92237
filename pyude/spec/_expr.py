"""The expression language of the spec: a whitelisting parser and its tree.

Grammar (lowest to highest precedence)::

    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := "-" unary | "+" unary | power
    power   := atom (("^" | "**") unary)?          # right-associative, -x^2 == -(x^2)
    atom    := NUMBER | NAME | NAME "(" args ")" | NAME "(" args ")" "[" INT "]"
             | "(" expr ")"

A user string never reaches ``eval``/``exec``: it is tokenised by one regular
expression and every name is checked against the model's symbols and the fixed
function list below. The tree is plain data (``to_json``), so that the Julia
engine builds its code from the same parse.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Union

from .._errors import SpecError

# name -> number of arguments
FUNCTIONS: dict[str, int] = {
    "exp": 1, "log": 1, "log10": 1, "sqrt": 1, "abs": 1,
    "sin": 1, "cos": 1, "tan": 1, "tanh": 1, "sinh": 1, "cosh": 1,
    "sigmoid": 1, "softplus": 1,
    "min": 2, "max": 2, "pow": 2,
    "hill": 3,
    # comparisons and logic give 1.0 (true) or 0.0 (false); a value is true where it is non-zero
    "lt": 2, "le": 2, "gt": 2, "ge": 2, "eq": 2, "ne": 2, "not": 1,
    "floor": 1, "ceil": 1, "asin": 1, "acos": 1, "atan": 1,
}
# name -> least number of arguments, for functions taking any number of arguments
VARIADIC: dict[str, int] = {
    # piecewise(v1, c1, v2, c2, ..., [otherwise]): the first v_i whose c_i is true, else
    # `otherwise` (NaN when it is missing and no condition holds), as SBML's <piecewise>
    "piecewise": 1,
    "and": 1, "or": 1,
}
RESERVED = set(FUNCTIONS) | set(VARIADIC)
BINARY_OPS = ("+", "-", "*", "/", "^")
TIME = "t"


@dataclass(frozen=True)
class Num:
    """A numeric literal."""

    value: float


@dataclass(frozen=True)
class Sym:
    """A name: a state, parameter, input, or the time ``t``."""

    name: str


@dataclass(frozen=True)
class Op:
    """An arithmetic operator: binary ``+ - * / ^`` or unary ``neg``."""

    op: str
    args: tuple["Expr", ...]


@dataclass(frozen=True)
class Call:
    """A call of a function from :data:`FUNCTIONS`."""

    fn: str
    args: tuple["Expr", ...]


@dataclass(frozen=True)
class NetCall:
    """Output ``index`` (0-based) of network ``net`` evaluated at ``args``."""

    net: str
    args: tuple["Expr", ...]
    index: int


Expr = Union[Num, Sym, Op, Call, NetCall]

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|[-+*/^(),\[\]])"
    r")"
)


def _tokenize(text: str, where: str) -> list[tuple[str, str, int]]:
    tokens = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            bad = text[pos:].lstrip()[:1]
            raise SpecError(f"{where}: unexpected character {bad!r} at position {pos} in {text!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    tokens.append(("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str, where: str):
        self.text = text
        self.where = where
        self.tokens = _tokenize(text, where)
        self.i = 0

    def error(self, msg: str) -> SpecError:
        return SpecError(f"{self.where}: {msg} in {self.text!r}")

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        tok = self.tokens[self.i]
        if value is not None and tok[1] != value:
            found = "end of expression" if tok[0] == "end" else repr(tok[1])
            raise self.error(f"expected {value!r} but found {found}")
        self.i += 1
        return tok

    def parse(self) -> Expr:
        if self.peek()[0] == "end":
            raise self.error("empty expression")
        node = self.expr()
        if self.peek()[0] != "end":
            raise self.error(f"unexpected {self.peek()[1]!r}")
        return node

    def expr(self) -> Expr:
        node = self.term()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            op = self.take()[1]
            node = Op(op, (node, self.term()))
        return node

    def term(self) -> Expr:
        node = self.unary()
        while self.peek()[1] in ("*", "/") and self.peek()[0] == "op":
            op = self.take()[1]
            node = Op(op, (node, self.unary()))
        return node

    def unary(self) -> Expr:
        if self.peek()[1] == "-" and self.peek()[0] == "op":
            self.take()
            inner = self.unary()
            if isinstance(inner, Num):
                return Num(-inner.value)
            return Op("neg", (inner,))
        if self.peek()[1] == "+" and self.peek()[0] == "op":
            self.take()
            return self.unary()
        return self.power()

    def power(self) -> Expr:
        base = self.atom()
        if self.peek()[0] == "op" and self.peek()[1] in ("^", "**"):
            self.take()
            return Op("^", (base, self.unary()))
        return base

    def atom(self) -> Expr:
        kind, value, _ = self.take()
        if kind == "num":
            return Num(float(value))
        if kind == "name":
            if self.peek()[1] == "(":
                self.take("(")
                args: list[Expr] = []
                if self.peek()[1] != ")":
                    args.append(self.expr())
                    while self.peek()[1] == ",":
                        self.take(",")
                        args.append(self.expr())
                self.take(")")
                if self.peek()[1] == "[":
                    self.take("[")
                    k, idx, _ = self.take()
                    if k != "num" or not idx.isdigit():
                        raise self.error(f"network output index of {value!r} must be a non-negative integer, got {idx!r}")
                    self.take("]")
                    return NetCall(value, tuple(args), int(idx))
                return Call(value, tuple(args))
            return Sym(value)
        if value == "(":
            node = self.expr()
            self.take(")")
            return node
        found = "end of expression" if kind == "end" else repr(value)
        raise self.error(f"unexpected {found}")


def parse(text: str | int | float, where: str = "expression") -> Expr:
    """Parse an expression string (or a plain number) into a tree. Syntax only."""
    if isinstance(text, bool):
        raise SpecError(f"{where}: expected an expression or a number, got {text!r}")
    if isinstance(text, (int, float)):
        if not math.isfinite(float(text)):
            raise SpecError(f"{where}: number {text!r} is not finite")
        return Num(float(text))
    if not isinstance(text, str):
        raise SpecError(f"{where}: expected an expression string, got {type(text).__name__}")
    return _Parser(text, where).parse()


def symbols(node: Expr) -> set[str]:
    """All names used in ``node`` (not counting function or network names)."""
    out: set[str] = set()
    _walk(node, lambda n: out.add(n.name) if isinstance(n, Sym) else None)
    return out


def net_calls(node: Expr) -> list[NetCall]:
    out: list[NetCall] = []
    _walk(node, lambda n: out.append(n) if isinstance(n, NetCall) else None)
    return out


def _walk(node: Expr, visit) -> None:
    visit(node)
    if isinstance(node, (Op, Call, NetCall)):
        for a in node.args:
            _walk(a, visit)


def check(node: Expr, where: str, names: set[str], networks: dict[str, tuple[int, int]]) -> None:
    """Check every name, arity and network index of ``node``.

    ``networks`` maps a network name to ``(n_inputs, n_outputs)`` (``None`` where unknown).
    """
    if isinstance(node, Sym):
        if node.name not in names:
            hint = " (a function needs parentheses)" if node.name in RESERVED else ""
            raise SpecError(f"{where}: unknown symbol {node.name!r}{hint}")
    elif isinstance(node, Call):
        if node.fn in networks:
            raise SpecError(f"{where}: network {node.fn!r} must be called with an output index, e.g. {node.fn}(...)[0]")
        if node.fn in VARIADIC:
            if len(node.args) < VARIADIC[node.fn]:
                raise SpecError(
                    f"{where}: function {node.fn!r} takes at least {VARIADIC[node.fn]} argument(s), got {len(node.args)}"
                )
        elif node.fn not in FUNCTIONS:
            raise SpecError(f"{where}: unknown function {node.fn!r}; allowed: {', '.join(sorted(RESERVED))}")
        elif len(node.args) != FUNCTIONS[node.fn]:
            raise SpecError(
                f"{where}: function {node.fn!r} takes {FUNCTIONS[node.fn]} argument(s), got {len(node.args)}"
            )
    elif isinstance(node, NetCall):
        if node.net not in networks:
            raise SpecError(f"{where}: unknown network {node.net!r}")
        n_in, n_out = networks[node.net]
        if n_in is None:  # a graph network whose input shapes are not known
            raise SpecError(
                f"{where}: network {node.net!r} cannot be called with scalars: the shapes of its inputs are "
                f"unknown (give 'shape' for each of its inputs)"
            )
        if len(node.args) != n_in:
            raise SpecError(f"{where}: network {node.net!r} takes {n_in} input(s), got {len(node.args)}")
        if node.index >= n_out:
            raise SpecError(
                f"{where}: output index {node.index} of network {node.net!r} is out of range (it has {n_out} output(s))"
            )
    if isinstance(node, (Op, Call, NetCall)):
        for a in node.args:
            check(a, where, names, networks)


def to_json(node: Expr) -> dict[str, Any]:
    """The tree as plain JSON data (the form the Julia engine reads)."""
    if isinstance(node, Num):
        return {"num": node.value}
    if isinstance(node, Sym):
        return {"sym": node.name}
    if isinstance(node, Op):
        return {"op": node.op, "args": [to_json(a) for a in node.args]}
    if isinstance(node, Call):
        return {"call": node.fn, "args": [to_json(a) for a in node.args]}
    return {"net": node.net, "index": node.index, "args": [to_json(a) for a in node.args]}


_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "^": 4}


def to_string(node: Expr) -> str:
    """Print a tree back as an expression string that parses to the same tree."""
    return _fmt(node, 0)


def _fmt(node: Expr, parent: int) -> str:
    if isinstance(node, Num):
        s = repr(node.value)
        return f"({s})" if node.value < 0 and parent > 0 else s
    if isinstance(node, Sym):
        return node.name
    if isinstance(node, Call):
        return f"{node.fn}({', '.join(_fmt(a, 0) for a in node.args)})"
    if isinstance(node, NetCall):
        return f"{node.net}({', '.join(_fmt(a, 0) for a in node.args)})[{node.index}]"
    prec = _PREC[node.op]
    if node.op == "neg":
        s = "-" + _fmt(node.args[0], prec)
    elif node.op == "^":
        s = f"{_fmt(node.args[0], prec + 1)}^{_fmt(node.args[1], prec)}"
    else:
        # left-associative: the right operand needs parentheses at equal precedence
        s = f"{_fmt(node.args[0], prec)} {node.op} {_fmt(node.args[1], prec + 1)}"
    return f"({s})" if prec < parent or (node.op == "^" and parent == prec) else s
