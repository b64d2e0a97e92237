"""Compile a :class:`~pyude.Model` into JAX functions: ``rhs(t, y, args)`` and ``y0(p)``.

``args = (p, u)``: the flat parameter vector and the input signals' knot data, so
that new parameter values or new input data reuse the compiled code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...spec import _expr
from ...spec._expr import Call, Expr, Num, Op, Sym
from ...spec._function import FunctionModel
from ...spec._graph import GraphNetwork
from ...spec._model import Input, Model
from ._graph import graph_network_fn
from ._inputs import InputData, evaluate_input, input_data

_UNARY: dict[str, Callable] = {
    "exp": jnp.exp,
    "log": jnp.log,
    "log10": jnp.log10,
    "sqrt": jnp.sqrt,
    "abs": jnp.abs,
    "sin": jnp.sin,
    "cos": jnp.cos,
    "tan": jnp.tan,
    "tanh": jnp.tanh,
    "sinh": jnp.sinh,
    "cosh": jnp.cosh,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "floor": jnp.floor,
    "ceil": jnp.ceil,
    "asin": jnp.arcsin,
    "acos": jnp.arccos,
    "atan": jnp.arctan,
    "not": lambda a: jnp.where(a == 0, 1.0, 0.0),
}


def _hill(x, k, n):
    xn = x**n
    return xn / (k**n + xn)


def _truth(x) -> Any:
    return jnp.where(x, 1.0, 0.0)


def _piecewise(*a):
    # the first value whose condition holds: built from the last piece backwards
    out = a[-1] if len(a) % 2 == 1 else jnp.asarray(jnp.nan)
    for v, c in reversed(list(zip(a[0:-1:2], a[1::2]))):
        out = jnp.where(c != 0, v, out)
    return out


def _stack(values: list) -> jax.Array:
    """``jnp.stack`` of values that may differ in batch shape: a constant term (``-k``) beside
    terms of states that carry trailing batch axes (states of shape (n_states, *batch))."""
    return jnp.stack(jnp.broadcast_arrays(*values))


_NARY: dict[str, Callable] = {
    "min": jnp.minimum,
    "max": jnp.maximum,
    "pow": jnp.power,
    "hill": _hill,
    "lt": lambda a, b: _truth(a < b),
    "le": lambda a, b: _truth(a <= b),
    "gt": lambda a, b: _truth(a > b),
    "ge": lambda a, b: _truth(a >= b),
    "eq": lambda a, b: _truth(a == b),
    "ne": lambda a, b: _truth(a != b),
    "and": lambda *a: _truth(jnp.all(_stack([x != 0 for x in a]), axis=0)),
    "or": lambda *a: _truth(jnp.any(_stack([x != 0 for x in a]), axis=0)),
    "piecewise": _piecewise,
}

ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
    # tanh approximation, as NNlib's `gelu` in the Julia engine
    "gelu": lambda x: jax.nn.gelu(x, approximate=True),
    "identity": lambda x: x,
}


class _LazyEnv(dict):
    """Names -> traced values, each looked up on first use: a right-hand side reads only the
    parameters it uses (a model with many parameters, e.g. array inputs, stays small to trace)."""

    def __init__(self, value: Callable[[str], Any]):
        super().__init__()
        self._value = value

    def __missing__(self, name: str):
        out = self[name] = self._value(name)
        return out


class _Evaluator:
    """Evaluates expression trees once per trace; equal subtrees (e.g. repeated
    network calls) are computed once, so the traced graph has no duplicates."""

    def __init__(self, env: dict[str, Any], nets: dict[str, Callable], gather: Callable | None = None):
        self.env = env
        self.nets = nets
        # names -> their parameter values in one gather (None if one is not a plain parameter):
        # a network called on many parameters (array inputs) then differentiates as one scatter
        self.gather = gather
        self.cache: dict[Expr, Any] = {}
        self.net_cache: dict[tuple, Any] = {}

    def __call__(self, node: Expr):
        hit = self.cache.get(node)
        if hit is not None:
            return hit
        if isinstance(node, Num):
            out = jnp.asarray(node.value)
        elif isinstance(node, Sym):
            out = self.env[node.name]
        elif isinstance(node, Op):
            a = [self(x) for x in node.args]
            if node.op == "neg":
                out = -a[0]
            elif node.op == "+":
                out = a[0] + a[1]
            elif node.op == "-":
                out = a[0] - a[1]
            elif node.op == "*":
                out = a[0] * a[1]
            elif node.op == "/":
                out = a[0] / a[1]
            else:
                out = _power(node.args[1], a[0], a[1])
        elif isinstance(node, Call):
            a = [self(x) for x in node.args]
            out = _UNARY[node.fn](a[0]) if node.fn in _UNARY else _NARY[node.fn](*a)
        else:
            key = (node.net, node.args)
            y = self.net_cache.get(key)
            if y is None:
                x = None
                if self.gather is not None and all(isinstance(a, Sym) for a in node.args):
                    x = self.gather([a.name for a in node.args])
                y = self.nets[node.net](x if x is not None else _stack([self(a) for a in node.args]))
                self.net_cache[key] = y
            out = y[node.index]
        self.cache[node] = out
        return out


def _power(exponent: Expr, base, exp):
    # integer powers as repeated products: exact, and defined for negative bases
    if isinstance(exponent, Num) and exponent.value == int(exponent.value) and 0 <= exponent.value <= 4:
        return jax.lax.integer_pow(base, int(exponent.value))
    return base**exp


def _network_fn(net, offset: int) -> Callable:
    shapes = net.shapes()

    def forward(p, x):
        off = offset
        h = x
        arrays = {}
        for name, shape in shapes:
            size = int(np.prod(shape))
            arrays[name] = p[off : off + size].reshape(shape)
            off += size
        for i, layer in enumerate(net.layers):
            h = jnp.tensordot(arrays[f"{net.name}.{i}.weight"], h, axes=1)
            if layer.bias:
                b = arrays[f"{net.name}.{i}.bias"]
                h = h + b.reshape(b.shape + (1,) * (h.ndim - 1))  # inputs may carry trailing batch axes
            h = ACTIVATIONS[layer.activation](h)
        return h

    return forward


@dataclass
class CompiledModel:
    """A model as JAX functions, with per-model caches of jitted solve/gradient functions."""

    model: Model
    rhs: Callable  # (t, y, args) -> dy/dt
    initial: Callable  # p -> y0
    inputs: tuple[InputData, ...]
    jump_ts: np.ndarray  # input knots: the step-size controller must not step over them
    observe: Callable | None = None  # (t, y, args) -> declared observables h, in spec order
    sigma: Callable | None = None  # (t, y, args) -> their noise scales (1 where none is declared)
    cache: dict = field(default_factory=dict)
    # p -> times where the right-hand side switches (piecewise on t), or None: jump times too
    breakpoints: Callable | None = None
    events: Any = None  # the spec's events (a _events.CompiledEvents), or None
    # p -> p with the spec's assignments evaluated (once per condition, before the solve); None: none
    assignments: Callable | None = None
    # some noise scale reads a state, t, an input or a network: evaluated at every time point
    sigma_varies: bool = False

    def assign(self, p):
        """``p`` with every assigned parameter set (the identity for a model without assignments)."""
        return p if self.assignments is None else self.assignments(p)

    def jumps(self, p):
        """Every jump time for parameters ``p`` (None if there are none): input knots and switch times."""
        static = self.jump_ts if self.jump_ts.size else None
        if self.breakpoints is None:
            return static
        dynamic = self.breakpoints(p)
        return dynamic if static is None else jnp.concatenate([jnp.asarray(static, dynamic.dtype), dynamic])

    @property
    def states(self) -> list[str]:
        return self.model.states

    def input_args(self, overrides: dict[str, Input] | None = None) -> tuple[InputData, ...]:
        if not overrides:
            return self.inputs
        return tuple(
            input_data(overrides[name]) if name in overrides else self.inputs[i]
            for i, name in enumerate(self.model.inputs)
        )


class MassAction:
    r"""The monomial terms of a large right-hand side, evaluated as arrays.

    Every term of the form :math:`c \prod_k v_{F_k} / \prod_k v_{G_k}` (``v`` the states,
    then the parameters, then a 1 that pads short products; mass-action rates, SBML's
    ``compartment * k * A * B / compartment``) is one of the distinct monomials
    :math:`m_j = \prod_k v_{F_{jk}} / \prod_k v_{G_{jk}}`, and those terms together are
    :math:`C m`, with the coefficients and stoichiometry in ``C`` (n_states x n_monomials).
    Traced term by term, hundreds of reactions make thousands of scalar XLA ops, and the
    stiff solvers repeat the right-hand side in every stage (compile time ~30 s at 300
    species); as two gathers, two products and one matrix product it is a handful of ops
    whatever the size. Right-hand sides with fewer than :attr:`MIN_TERMS` distinct
    monomials stay scalar code, which is faster per evaluation at that size and whose
    reverse pass has no scatter.
    """

    MIN_TERMS = 32

    def __init__(self, C: np.ndarray, num: np.ndarray, den: np.ndarray, slot: dict[str, int]):
        self.C = jnp.asarray(C)
        self.num = num  # (n_monomials, K) indices into [y, p, 1]
        self.den = den
        self.slot = slot  # state and parameter names -> their index in [y, p, 1]

    @classmethod
    def split(cls, terms, state_index: dict[str, int], param_index: dict[str, int], n_params: int,
              min_terms: int | None = None) -> tuple["MassAction | None", list]:
        """``(MassAction or None, the other terms)`` from ``(column, expression)`` pairs,
        a term contributing ``column * expression`` to dy/dt; None (every term left as
        is) below ``min_terms`` distinct monomials."""
        n = len(state_index)
        slot = {**state_index, **{k: n + i for k, i in param_index.items()}}
        parsed = [_monomial(e, slot) for _, e in terms]
        # (numerator, denominator) slots identify a monomial; equal ones share a column of C
        term_keys = [None if m is None else (tuple(sorted(m[1])), tuple(sorted(m[2]))) for m in parsed]
        keys: dict[tuple, int] = {}
        for k in term_keys:
            if k is not None:
                keys.setdefault(k, len(keys))
        if len(keys) < (cls.MIN_TERMS if min_terms is None else min_terms):
            return None, list(terms)
        C = np.zeros((n, len(keys)))
        for (col, _), m, k in zip(terms, parsed, term_keys):
            if m is not None:
                C[:, keys[k]] += m[0] * np.asarray(col, dtype=float)
        one = n + n_params

        def table(part: int) -> np.ndarray:
            width = max(1, max(len(k[part]) for k in keys))
            out = np.full((len(keys), width), one, dtype=np.int64)
            for k, j in keys.items():
                out[j, : len(k[part])] = k[part]
            return out

        rest = [t for t, m in zip(terms, parsed) if m is None]
        return cls(C, table(0), table(1), slot), rest

    @staticmethod
    def values(y, p):
        """``v = [y, p, 1]`` (n_states + n_params + 1, *batch), the vector the slots index."""
        batch = y.shape[1:]
        rest = jnp.concatenate([p, jnp.ones((1,), y.dtype)]).astype(y.dtype)
        return jnp.concatenate([y, jnp.broadcast_to(rest.reshape(rest.shape + (1,) * len(batch)), rest.shape + batch)])

    def __call__(self, v):
        """The monomial terms' sum, given :meth:`values`."""
        return jnp.tensordot(self.C, jnp.prod(v[self.num], axis=1) / jnp.prod(v[self.den], axis=1), axes=1)


def _monomial(node: Expr, slot: dict[str, int]) -> tuple[float, list[int], list[int]] | None:
    """``(c, numerator slots, denominator slots)`` if ``node`` is a product or quotient of
    numbers, states and parameters (integer powers 0..4), else None."""
    if isinstance(node, Num):
        return float(node.value), [], []
    if isinstance(node, Sym):
        return (1.0, [slot[node.name]], []) if node.name in slot else None
    if isinstance(node, Op) and node.op == "neg":
        a = _monomial(node.args[0], slot)
        return None if a is None else (-a[0], a[1], a[2])
    if isinstance(node, Op) and node.op in ("*", "/"):
        a, b = _monomial(node.args[0], slot), _monomial(node.args[1], slot)
        if a is None or b is None:
            return None
        if node.op == "*":
            return a[0] * b[0], a[1] + b[1], a[2] + b[2]
        if b[0] == 0:
            return None
        return a[0] / b[0], a[1] + b[2], a[2] + b[1]
    if isinstance(node, Op) and node.op == "^" and isinstance(node.args[1], Num):
        k = node.args[1].value
        a = _monomial(node.args[0], slot)
        if a is None or k != int(k) or not 0 <= k <= 4:
            return None
        return a[0] ** int(k), a[1] * int(k), a[2] * int(k)
    return None


def _signed_terms(node: Expr, sign: float = 1.0) -> list[tuple[float, Expr]]:
    """``node`` as a sum of signed terms (through top-level ``+``, ``-`` and negation)."""
    if isinstance(node, Op) and node.op == "+":
        return _signed_terms(node.args[0], sign) + _signed_terms(node.args[1], sign)
    if isinstance(node, Op) and node.op == "-":
        return _signed_terms(node.args[0], sign) + _signed_terms(node.args[1], -sign)
    if isinstance(node, Op) and node.op == "neg":
        return _signed_terms(node.args[0], -sign)
    return [(sign, node)]


def _shape(node: Expr, leaves: list[str]) -> tuple | None:
    """``node``'s structure with every name abstracted (names appended to ``leaves`` in
    order); None where it calls a network (not evaluated elementwise over a group)."""
    if isinstance(node, Sym):
        leaves.append(node.name)
        return ("sym",)
    if isinstance(node, Num):
        return ("num", node.value)
    if isinstance(node, (Op, Call)):
        parts = [_shape(a, leaves) for a in node.args]
        if any(x is None for x in parts):
            return None
        return (type(node).__name__, node.op if isinstance(node, Op) else node.fn, *parts)
    return None


def _template(node: Expr, counter: list[int]) -> Expr:
    """``node`` with its names replaced, in order, by slots ``#0, #1, ...`` (not spec names)."""
    if isinstance(node, Sym):
        counter[0] += 1
        return Sym(f"#{counter[0] - 1}")
    if isinstance(node, Op):
        return Op(node.op, tuple(_template(a, counter) for a in node.args))
    if isinstance(node, Call):
        return Call(node.fn, tuple(_template(a, counter) for a in node.args))
    return node


class _TermGroups:
    r"""Terms :math:`\sum_j c_j e_j` whose expressions have the same structure and differ only
    in the names they read (SBML's twelve gene-expression laws
    ``(turn + act1 A + act2 B + act3 C) / (inh1 A + inh2 B + inh3 C + 1)`` with their own
    parameters, in Lucarelli_CellSystems2018) evaluated as one expression over vectors of
    those names: :math:`R\,e(v_1, ..., v_k)` with :math:`v_i` the names in slot ``i``.

    Scalar code would trace each term apart; the stiff solvers' Jacobian (33 forward-mode
    lanes) and its reverse pass then multiply every scalar op, and on CPU each op is a kernel
    dispatch: Lucarelli's Rodas5P step VJP compiled to 1,399 fusions and 141 reductions,
    grouped to 450 and 20; its checkpoint gradient compiles 2-3x and runs 1.4-1.8x faster
    (docs/benchmarks.md).
    Terms that call a network, or whose structure no other term shares, stay scalar code.
    """

    def __init__(self, terms: list[tuple[np.ndarray, Expr]], slot_of: dict[str, int]):
        """``slot_of``: state and parameter names -> their index in :meth:`MassAction.values`."""
        by_shape: dict[tuple, list] = {}
        single: list[tuple[np.ndarray, Expr]] = []
        for col, e in terms:
            leaves: list[str] = []
            key = _shape(e, leaves)
            if key is None or not leaves:
                single.append((col, e))
            else:
                by_shape.setdefault(key, []).append((col, e, leaves))
        self.groups: list[tuple[jax.Array, Expr, list[tuple[str, ...]]]] = []
        for members in by_shape.values():
            if len(members) == 1:
                single.append(members[0][:2])
                continue
            R = jnp.asarray(np.stack([col for col, _, _ in members], axis=1))
            slots = list(zip(*[leaves for _, _, leaves in members]))
            self.groups.append((R, _template(members[0][1], [0]), slots))
        self.single_R = jnp.asarray(np.stack([col for col, _ in single], axis=1)) if single else None
        self.single = [e for _, e in single]
        # the slots that read only states and parameters, as one gather from [y, p, 1]
        # (:meth:`MassAction.values`): read name by name, each read's cotangent is a pad to
        # the whole parameter vector, and the reverse pass summed ~750 of them per step in
        # one O(reads x parameters) kernel (Lucarelli's checkpoint gradient 924 -> ~500 ms)
        self.gathered: dict[tuple[int, int], tuple[int, int]] = {}
        index: list[int] = []
        for g, (_, _, slots) in enumerate(self.groups):
            for k, names in enumerate(slots):
                if all(n in slot_of for n in names):
                    self.gathered[g, k] = (len(index), len(index) + len(names))
                    index += [slot_of[n] for n in names]
        self.index = np.asarray(index, dtype=np.int64)

    def __call__(self, ev: "_Evaluator", v, batch_ndim: int = 0):
        """The terms' sum (n_states, *batch), names read from ``v`` (:meth:`MassAction.values`)
        where the slots were gathered, else through ``ev``'s environment; ``batch_ndim``
        trailing batch axes of the states (a parameter has none)."""

        def lift(x):  # (G, ...) -> (G, *batch) or with the batch axes as ones
            return x.reshape(x.shape + (1,) * (batch_ndim + 1 - x.ndim))

        read = v[self.index] if len(self.index) else None
        out = 0.0
        if self.single:
            out = jnp.tensordot(self.single_R, lift(_stack([ev(e) for e in self.single])), axes=1)
        for g, (R, template, slots) in enumerate(self.groups):
            env = {}
            for k, names in enumerate(slots):
                span = self.gathered.get((g, k))
                env[f"#{k}"] = read[span[0] : span[1]] if span else lift(_stack([ev.env[name] for name in names]))
            out = out + jnp.tensordot(R, lift(jnp.asarray(_Evaluator(env, {})(template))), axes=1)
        return out


def _with_mass_action(mass_action: MassAction, rest, env_of, bound_nets, gatherer) -> Callable:
    """The right-hand side: the monomials as arrays, the ``(column, expression)`` terms
    in ``rest`` grouped by structure (:class:`_TermGroups`)."""
    groups = _TermGroups(rest, mass_action.slot) if rest else None

    def rhs(t, y, args):
        p, u = args
        v = mass_action.values(y, p)
        out = mass_action(v)
        if groups is not None:
            out = out + groups(_Evaluator(env_of(t, y, p, u), bound_nets(p), gatherer(p)), v, y.ndim - 1)
        return out.astype(y.dtype)

    return rhs


def compile_function_model(model: FunctionModel) -> CompiledModel:
    def rhs(t, y, args):
        p, _ = args
        return jnp.asarray(model.f(t, y, model.unravel(p)), dtype=y.dtype)

    def initial(p):
        return jnp.zeros((model.n_states,), p.dtype)

    def observe(t, y, args):
        return jnp.zeros((0,), y.dtype)

    def sigma(t, y, args):
        return jnp.zeros((0,), y.dtype)

    return CompiledModel(model, _traced_once(rhs), initial, (), np.zeros((0,)), observe, sigma)


def xla_options() -> dict[str, str]:
    """XLA options of every program the engine compiles.

    On CPU, loops vectorised 512 bits wide where the processor has them (AVX-512; elsewhere
    the compiler caps the width at what the processor has). XLA's CPU default is 256 bits.
    The elementwise transcendental functions gain most: measured on a 2-core AVX-512 Xeon
    (2026-12-03), ``tanh`` of 32,000 float64 values 26.8 -> 18.8 µs, and the neural-ODE
    benchmark's training step 12.7 -> 11.4 ms (docs/benchmarks.md); stiff models with few
    states were unchanged. A width set in ``XLA_FLAGS`` is left to rule."""
    if jax.default_backend() != "cpu" or "xla_cpu_prefer_vector_width" in os.environ.get("XLA_FLAGS", ""):
        return {}
    return {"xla_cpu_prefer_vector_width": "512"}


def jit(fn: Callable) -> Callable:
    """``jax.jit`` with the engine's XLA options (:func:`xla_options`)."""
    return jax.jit(fn, compiler_options=xla_options())


def _traced_once(rhs: Callable) -> Callable:
    """``rhs`` under ``jax.jit``: a solver calls the right-hand side at many sites of one
    program (every stage, the Jacobian, dense output, the recomputed steps of the backward
    pass), and jit traces it once per argument shape and reuses that jaxpr (and its
    transformed forms) at every site instead of re-running the expression evaluator.
    XLA inlines the call, so the compiled program is the same; tracing Elowitz's
    checkpoint gradient took 5.1 s instead of 10.6."""
    return jax.jit(rhs)


def compile_model(model: Model | FunctionModel) -> CompiledModel:
    if isinstance(model, FunctionModel):
        return compile_function_model(model)
    layout = {name: off for name, _, off in model.parameter_layout}
    nets = {}
    for name, net in model.networks.items():
        shapes = net.shapes()
        offset = layout[shapes[0][0]] if shapes else 0  # a parameter-free network reads no weights
        nets[name] = graph_network_fn(net, offset) if isinstance(net, GraphNetwork) else _network_fn(net, offset)
    param_index = {name: layout[name] for name in model.parameters}
    state_index = {s: i for i, s in enumerate(model.states)}
    input_names = list(model.inputs)

    input_index = {name: k for k, name in enumerate(input_names)}

    def params_env(p) -> "_LazyEnv":
        return _LazyEnv(lambda name: p[param_index[name]])

    def env_of(t, y, p, u):
        def value(name):
            if name in state_index:
                return y[state_index[name]]
            if name in input_index:
                return evaluate_input(u[input_index[name]], t)
            return p[param_index[name]]

        env = _LazyEnv(value)
        env[_expr.TIME] = t
        return env

    bound_nets = lambda p: {n: (lambda x, f=f: f(p, x)) for n, f in nets.items()}  # noqa: E731

    def gatherer(p, exclude=frozenset()):
        def gather(names):
            if any(n not in param_index or n in exclude for n in names):
                return None
            return p[np.asarray([param_index[n] for n in names])]

        return gather

    if model.equations is not None:
        eqs = [model.equations[s] for s in model.states]
        unit = np.eye(len(eqs))
        terms = [(sign * unit[i], e) for i, eq in enumerate(eqs) for sign, e in _signed_terms(eq)]
        mass_action, rest = MassAction.split(terms, state_index, param_index, model.n_params)
        if mass_action is None:

            def rhs(t, y, args):
                p, u = args
                ev = _Evaluator(env_of(t, y, p, u), bound_nets(p), gatherer(p))
                return _stack([ev(e) for e in eqs]).astype(y.dtype)

        else:
            rhs = _with_mass_action(mass_action, rest, env_of, bound_nets, gatherer)
    else:
        S = model.stoichiometric_matrix()
        # one column per rate term: a reversible reaction's reverse rate enters with -S[:, j]
        terms = [(S[:, j], r.rate) for j, r in enumerate(model.reactions)]
        terms += [(-S[:, j], r.reverse_rate) for j, r in enumerate(model.reactions) if r.reverse_rate is not None]
        mass_action, rest = MassAction.split(terms, state_index, param_index, model.n_params)
        if mass_action is None:
            S = jnp.asarray(S)
            rates = [(r.rate, r.reverse_rate) for r in model.reactions]

            def rhs(t, y, args):
                p, u = args
                ev = _Evaluator(env_of(t, y, p, u), bound_nets(p), gatherer(p))
                r = _stack([ev(f) - ev(b) if b is not None else ev(f) for f, b in rates])
                return jnp.tensordot(S, r, axes=1).astype(y.dtype)

        else:
            rhs = _with_mass_action(mass_action, rest, env_of, bound_nets, gatherer)

    assignments = None
    if getattr(model, "assignments", None):
        targets = [(param_index[name], node) for name, node in model.assignments.items()]

        def assignments(p):
            # in order: a later assignment reads the earlier ones' values from env
            env = params_env(p)
            ev = _Evaluator(env, bound_nets(p), gatherer(p, frozenset(model.assignments)))
            values = []
            for (i, node), name in zip(targets, model.assignments):
                v = ev(node)
                env[name] = v
                values.append(v)
            idx = jnp.asarray([i for i, _ in targets])
            return jnp.asarray(p).at[idx].set(jnp.stack(values).astype(jnp.asarray(p).dtype))

    init_exprs = [model.initial.get(s) for s in model.states]

    def initial(p):
        ev = _Evaluator(params_env(p), {})
        return jnp.stack([ev(e) if e is not None else jnp.zeros((), p.dtype) for e in init_exprs]).astype(p.dtype)

    obs = list(model.observables.values())

    def observe(t, y, args):
        p, u = args
        ev = _Evaluator(env_of(t, y, p, u), bound_nets(p), gatherer(p))
        return jnp.stack([ev(o.formula) for o in obs]).astype(y.dtype) if obs else jnp.zeros((0,), y.dtype)

    def sigma(t, y, args):
        p, u = args
        ev = _Evaluator(env_of(t, y, p, u), bound_nets(p), gatherer(p))
        return jnp.stack([ev(o.sigma) if o.sigma is not None else jnp.ones((), y.dtype) for o in obs]).astype(
            y.dtype
        ) if obs else jnp.zeros((0,), y.dtype)

    params = set(model.parameters)
    sigma_varies = any(
        o.sigma is not None and (bool(_expr.symbols(o.sigma) - params) or bool(_expr.net_calls(o.sigma))) for o in obs
    )

    inputs = tuple(input_data(u) for u in model.inputs.values())
    knots = [u.times for u in model.inputs.values()]
    jump_ts = np.unique(np.concatenate(knots)) if knots else np.zeros((0,))
    rhs_exprs = list(model.equations.values()) if model.equations is not None else [
        e for r in model.reactions for e in (r.rate, r.reverse_rate) if e is not None
    ]
    switches = _time_switches(rhs_exprs, params)
    breakpoints = None
    if switches:

        def breakpoints(p):
            # d(t) = a - b is affine in t: its root is -d(0) / (d(1) - d(0))
            at = [_Evaluator(params_env(p), {}) for _ in (0.0, 1.0)]
            for ev, v in zip(at, (0.0, 1.0)):
                ev.env[_expr.TIME] = jnp.asarray(v, p.dtype)
            d0 = jnp.stack([at[0](d) for d in switches])
            d1 = jnp.stack([at[1](d) for d in switches])
            slope = d1 - d0
            tau = -d0 / jnp.where(slope == 0, 1.0, slope)
            return jnp.where((slope != 0) & jnp.isfinite(tau), tau, jnp.inf).astype(p.dtype)

    events = None
    if model.events:
        from ._events import compile_events

        events = compile_events(model, env_of, bound_nets, _Evaluator)
    # initial, assignments jitted: called on the host for every loss/gradient (initial values
    # at the given parameters), where op-by-op dispatch of the expression trees cost ~1 ms
    # per call; rhs: see _traced_once
    return CompiledModel(
        model, _traced_once(rhs), jax.jit(initial), inputs, jump_ts, observe, sigma, breakpoints=breakpoints,
        assignments=None if assignments is None else jax.jit(assignments), events=events,
        sigma_varies=sigma_varies,
    )


_COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne")


def _time_switches(exprs: list[Expr], params: set[str]) -> list[Expr]:
    """``a - b`` for every comparison ``cmp(a, b)`` that depends on time ``t`` affinely and
    otherwise on parameters only: the right-hand side switches where it is zero, so
    its root is a jump time of the step-size controller (a switch is never stepped over).
    Comparisons of other forms (on states, or not affine in t) get no jump time."""
    out: list[Expr] = []

    def visit(node: Expr) -> None:
        if isinstance(node, Call) and node.fn in _COMPARISONS:
            d = Op("-", (node.args[0], node.args[1]))
            names = _expr.symbols(d)
            if _expr.TIME in names and names <= params | {_expr.TIME} and _affine_in_t(d) and d not in out:
                out.append(d)
        if isinstance(node, (Op, Call, _expr.NetCall)):
            for a in node.args:
                visit(a)

    for e in exprs:
        visit(e)
    return out


def _affine_in_t(node: Expr) -> bool:
    """True if ``node`` is ``c1 * t + c0`` with c0, c1 free of t (checked on the tree's form)."""
    has_t = _expr.TIME in _expr.symbols(node)
    if not has_t:
        return True
    if isinstance(node, Sym):
        return True
    if isinstance(node, Op):
        if node.op in ("+", "-"):
            return all(_affine_in_t(a) for a in node.args)
        if node.op == "neg":
            return _affine_in_t(node.args[0])
        if node.op == "*":
            free = [_expr.TIME not in _expr.symbols(a) for a in node.args]
            return any(free) and all(_affine_in_t(a) for a in node.args)
        if node.op == "/":
            return _expr.TIME not in _expr.symbols(node.args[1]) and _affine_in_t(node.args[0])
    return False
