"""Rosenbrock (linearly implicit) methods as diffrax solvers: Rodas5P and Rosenbrock23.

A Rosenbrock step needs one Jacobian ``J = df/dy`` (from JAX autodiff), one LU
factorisation of ``I/(gamma h) - J`` and one linear solve per stage: no Newton
iteration, so no convergence failures and no rejected steps from it, which is
what makes these methods fast on small stiff biochemical systems.

The solvers work on a 1-D state vector and an ``ODETerm`` (the only form the
pyude engine produces).
"""

from __future__ import annotations

from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from diffrax import AbstractLocalInterpolation
from jaxtyping import Array, Float

from ._linalg import lu_factor, lu_solve
from ._tableaus import RODAS5P


class RosenbrockInterpolation(AbstractLocalInterpolation):
    r"""Dense output of a Rosenbrock step, with $\theta = (t - t_0)/(t_1 - t_0)$:

    $$u(\theta) = (1-\theta)\,y_0 + \theta\,y_1 + \theta(1-\theta)\sum_j \theta^j q_j.$$
    """

    t0: Float[Array, ""]
    t1: Float[Array, ""]
    y0: Float[Array, " n"]
    y1: Float[Array, " n"]
    q: Float[Array, "m n"]

    def _at(self, t):
        # a zero-length step (a finished lane of a vmapped solve steps with t0 == t1) gives
        # theta = 0 with zero gradients, as diffrax's own interpolations: 0/0 would be NaN in
        # the value and, multiplied by the lane's zero cotangent, in the reverse-mode gradient
        same = self.t0 == self.t1
        theta = jnp.where(same, 0.0, t - self.t0) / jnp.where(same, 1.0, self.t1 - self.t0)
        poly = jnp.zeros_like(self.y0)
        for j in range(self.q.shape[0] - 1, -1, -1):
            poly = poly * theta + self.q[j]
        return (1 - theta) * self.y0 + theta * self.y1 + theta * (1 - theta) * poly

    def evaluate(self, t0, t1=None, left: bool = True):
        del left
        if t1 is None:
            return self._at(t0)
        return self._at(t1) - self._at(t0)


def _linearise(terms, t0, t1, y0, args, jacobian: bool = True):
    """F(tau, y) = f(tau, y) * (t1 - t0) (so the step is in units of the step size),
    its Jacobian in y (None without ``jacobian``) and (t1 - t0) * dF/dtau."""
    control = terms.contr(t0, t1)

    def F(tau, y):
        return terms.vf_prod(tau, y, args, control)

    h = t1 - t0
    F0, dT = jax.jvp(lambda tau: F(tau, y0), (t0,), (jnp.ones_like(t0),))
    J = jax.jacfwd(lambda y: F(t0, y))(y0) if jacobian else None
    return F, F0, J, h * dT


def _step_matrix(J, scale: float, c: float):
    """The step's matrix ``W = scale I - c J``."""
    return scale * jnp.eye(J.shape[0], dtype=J.dtype) - c * J


def _jacobian_product(static_terms, dyn_terms, t0, t1, y0, args, x):
    """``J_F x``, the JVP of ``F = h f(t0, .)`` at ``y0`` along ``x``; every traced value an
    argument (custom derivative rules must not close over one)."""
    terms = eqx.combine(dyn_terms, static_terms)
    control = terms.contr(t0, t1)
    return jax.jvp(lambda y: terms.vf_prod(t0, y, args, control), (y0,), (x,))[1]


def _stage_solver(terms, t0, t1, y0, args, J, scale: float, c: float, products: bool):
    r"""``b -> x = W^{-1} b`` for the step's matrix $W = \text{scale}\,I - c\,J_F$ (one
    factorisation for every stage), $J_F = \partial F/\partial y$ at ``(t0, y0)``.

    Differentiated as written, the solve's derivative takes that of the whole Jacobian,
    $dJ_F$: forward mode pushes every tangent through all $n$ columns of
    ``jacfwd``. With ``products`` it is written out instead,
    $$dx = W^{-1}\big(db + c\,(dJ_F)\,x\big),$$
    where $(dJ_F)\,x$ is the directional derivative of $J_F x$ (the JVP of $F$ along $x$)
    in ``(t0, t1, y0, args)``: one second-order product per stage solve instead of one per
    state. The values are the same to rounding; it pays in forward mode when the model has
    more states than the method has stage solves (:func:`make_solver`).
    """
    if not products:
        lu = lu_factor(_step_matrix(J, scale, c))
        return lambda b: lu_solve(lu, b)
    # everything the products differentiate is an explicit argument: a custom_jvp rule must
    # not close over traced values (the terms carry one, the integration's direction)
    dyn_terms, static_terms = eqx.partition(terms, eqx.is_array)
    kind, a, f = lu_factor(_step_matrix(jax.lax.stop_gradient(J), scale, c))  # J's derivative is the rule's

    @jax.custom_jvp
    def solve(dyn_terms, t0, t1, y0, args, factors, b):
        return lu_solve((kind, *factors), b)

    @solve.defjvp
    def solve_jvp(primals, tangents):
        *at, factors, b = primals
        *d_at, _, db = tangents
        x = solve(*primals)
        _, djx = jax.jvp(lambda *a: _jacobian_product(static_terms, *a, x), tuple(at), tuple(d_at))
        return x, solve(*at, factors, db + c * djx)

    factors = jax.lax.stop_gradient((a, f))
    return lambda b: solve(dyn_terms, t0, t1, y0, args, factors, b)


def _reverse_products_step(stages, n_solves: int, terms, t0, t1, y0, args, scale: float, c: float):
    r"""``(y1, err, q)`` of ``stages`` (:func:`_rodas5p_stages`, :func:`_ros23_stages`, with
    ``n_solves`` stage solves) with a reverse pass that never differentiates the Jacobian's
    $n$ columns.

    A stage solve $x_i = W^{-1} b_i$, $W = \text{scale}\,I - c\,J_F$, varies with $J_F$ as
    $dx_i = W^{-1} c\,(dJ_F)\,x_i$, so the Jacobian's share of the cotangents is
    $\sum_i c\,\bar b_i^{\top} (dJ_F)\,x_i$ with $\bar b_i = W^{-\top}\bar x_i$: the reverse
    pass of the JVPs $J_F x_i$, one lane per stage solve, batched. The rest is the reverse pass
    of the step with $J_F$ held fixed, whose $\bar b_i$ are the cotangents of zero-valued shifts
    added to the solves' right-hand sides. The same cotangents to rounding; it pays where the
    reverse pass of the Jacobian (``jacfwd``, $n$ lanes) outweighs the extra recomputation
    (:func:`make_solver`).

    The forward rule linearises the held step as it computes it and keeps that linearisation
    for the backward rule, so the backward pass does not evaluate the stages again.
    """
    # the rules below must close over no traced value (an array made here would be one)
    dyn_terms, static_terms = eqx.partition(terms, eqx.is_array)

    def factor(dyn_terms, t0, t1, y0, args):
        J = _linearise(eqx.combine(dyn_terms, static_terms), t0, t1, y0, args)[2]
        return lu_factor(_step_matrix(J, scale, c))

    def held(lu):
        """The step with ``W`` held fixed (its factors ``lu``): ``((y1, err, q), x)``."""

        def fn(dyn_terms, t0, t1, y0, args, shifts):
            F, F0, _, hdT = _linearise(eqx.combine(dyn_terms, static_terms), t0, t1, y0, args, jacobian=False)
            y1, err, q, xs = stages(F, F0, hdT, y0, t0, t1, lambda b: lu_solve(lu, b), shifts)
            return (y1, err, q), xs

        return fn

    @jax.custom_vjp
    def step(dyn_terms, t0, t1, y0, args):
        primals = (dyn_terms, t0, t1, y0, args)
        return held(factor(*primals))(*primals, None)[0]

    def step_fwd(*primals):
        shifts = jnp.zeros((n_solves,) + primals[3].shape, primals[3].dtype)
        out, vjp, xs = jax.vjp(held(factor(*primals)), *primals, shifts, has_aux=True)
        return out, (primals, vjp, xs)

    def step_bwd(res, cts):
        primals, vjp, xs = res
        *g_held, b_bar = vjp(cts)
        products = lambda *a: jax.vmap(lambda x: _jacobian_product(static_terms, *a, x))(xs)  # noqa: E731
        _, vjp_j = jax.vjp(products, *primals)
        g_j = vjp_j(c * b_bar)
        # integer leaves (an input's interpolation kind) have float0 cotangents: nothing to add
        add = lambda a, b: a if a.dtype == jax.dtypes.float0 else a + b  # noqa: E731
        return tuple(jax.tree.map(add, a, b) for a, b in zip(g_held, g_j))

    step.defvjp(step_fwd, step_bwd)
    return step(dyn_terms, t0, t1, y0, args)


class _AbstractRosenbrock(diffrax.AbstractAdaptiveSolver):
    """``tangent_products`` (forward mode) and ``reverse_products`` (reverse mode):
    differentiate the stage solves through second-order products instead of the Jacobian's
    derivative (:func:`_stage_solver`, :func:`_reverse_products_step`); same values. The
    engine picks them by problem size (:func:`make_solver`)."""

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar = RosenbrockInterpolation
    stage_solves: ClassVar[int]
    tangent_products: bool = eqx.field(static=True, default=False)
    reverse_products: bool = eqx.field(static=True, default=False)

    def init(self, terms, t0, t1, y0, args):
        return None

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


class Rodas5P(_AbstractRosenbrock):
    r"""Rodas5P (Steinebach 2023): a stiffly accurate 5th-order Rosenbrock method
    with an embedded 4th-order error estimate and a 4th-degree dense output.

    With $F = h f$, $J_F = \partial F/\partial y$ and $W = I/\gamma - J_F$, stage $i$ is

    $$W k_i = F\Big(t_0 + c_i h,\ y_0 + \sum_{j<i} a_{ij} k_j\Big) + d_i\,h\,\partial_t F + \sum_{j<i} C_{ij} k_j,$$

    and $y_1 = y_0 + \sum_{j<8} a_{8j} k_j + k_8$, error estimate $k_8$.
    The tableau is OrdinaryDiffEq.jl's ``Rodas5PTableau``.
    """

    stage_solves: ClassVar[int] = 8

    def order(self, terms):
        return 5

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        scale = 1.0 / RODAS5P.gamma
        if self.reverse_products:
            y1, err, q = _reverse_products_step(_rodas5p_stages, self.stage_solves, terms, t0, t1, y0, args, scale, 1.0)
        else:
            F, F0, J, hdT = _linearise(terms, t0, t1, y0, args)
            solve = _stage_solver(terms, t0, t1, y0, args, J, scale, 1.0, self.tangent_products)
            y1, err, q, _ = _rodas5p_stages(F, F0, hdT, y0, t0, t1, solve)
        dense_info = dict(y0=y0, y1=y1, q=q)
        return y1, err, dense_info, None, diffrax.RESULTS.successful


def _rodas5p_stages(F, F0, hdT, y0, t0, t1, solve, shifts=None):
    """Rodas5P's stages: ``(y1, err, q, x)`` with ``x`` (8, n) the stage solves' results;
    ``shifts`` (8, n), zero in value, are added to the solves' right-hand sides (their
    cotangents are those of the right-hand sides, for :func:`_reverse_products_step`)."""
    tab = RODAS5P
    h = t1 - t0
    ks: list = []
    u = y0
    for i in range(tab.stages):
        if i == 0:
            fi = F0
        else:
            u = y0
            for j in range(i):
                if tab.a[i, j] != 0:
                    u = u + tab.a[i, j] * ks[j]
            fi = F(t0 + tab.c[i] * h, u)
        rhs = fi
        if tab.d[i] != 0:
            rhs = rhs + tab.d[i] * hdT
        for j in range(i):
            if tab.C[i, j] != 0:
                rhs = rhs + tab.C[i, j] * ks[j]
        ks.append(solve(rhs if shifts is None else rhs + shifts[i]))
    y1 = u + ks[-1]
    err = ks[-1]
    q = jnp.stack([sum(tab.H[m, j] * ks[j] for j in range(tab.stages) if tab.H[m, j] != 0) for m in range(tab.H.shape[0])])
    return y1, err, q, jnp.stack(ks)


_D23 = 1.0 / (2.0 + np.sqrt(2.0))
_E32 = 6.0 + np.sqrt(2.0)


class Rosenbrock23(_AbstractRosenbrock):
    r"""Shampine's ode23s (Rosenbrock23 in OrdinaryDiffEq.jl): 2nd order, L-stable,
    with a 3rd-order error estimate; for loose tolerances.

    With $d = 1/(2+\sqrt2)$, $W = I - d\,J_F$ and $F = h f$:
    $k_1 = W^{-1}(F_0 + d\,h\,\partial_t F)$,
    $k_2 = W^{-1}(F(y_0 + k_1/2) - k_1) + k_1$, $y_1 = y_0 + k_2$,
    $k_3 = W^{-1}(F(y_1) - (6+\sqrt2)(k_2 - F_1) - 2(k_1 - F_0) + d\,h\,\partial_t F)$,
    error $= (k_1 - 2k_2 + k_3)/6$.
    """

    stage_solves: ClassVar[int] = 3

    def order(self, terms):
        return 2

    def error_order(self, terms):
        return 3

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        if self.reverse_products:
            y1, err, q = _reverse_products_step(_ros23_stages, self.stage_solves, terms, t0, t1, y0, args, 1.0, _D23)
        else:
            F, F0, J, hdT = _linearise(terms, t0, t1, y0, args)
            solve = _stage_solver(terms, t0, t1, y0, args, J, 1.0, _D23, self.tangent_products)
            y1, err, q, _ = _ros23_stages(F, F0, hdT, y0, t0, t1, solve)
        dense_info = dict(y0=y0, y1=y1, q=q)
        return y1, err, dense_info, None, diffrax.RESULTS.successful


def _ros23_stages(F, F0, hdT, y0, t0, t1, solve, shifts=None):
    """Rosenbrock23's stages, as :func:`_rodas5p_stages` (three solves)."""
    s = (lambda i, b: solve(b)) if shifts is None else (lambda i, b: solve(b + shifts[i]))
    h = t1 - t0
    x1 = s(0, F0 + _D23 * hdT)
    k1 = x1
    F1 = F(t0 + 0.5 * h, y0 + 0.5 * k1)
    x2 = s(1, F1 - k1)
    k2 = x2 + k1
    y1 = y0 + k2
    F2 = F(t1, y1)
    x3 = s(2, F2 - _E32 * (k2 - F1) - 2.0 * (k1 - F0) + _D23 * hdT)
    k3 = x3
    err = (k1 - 2.0 * k2 + k3) / 6.0
    q = ((k1 - k2) / (1.0 - 2.0 * _D23))[None, :]
    return y1, err, q, jnp.stack([x1, x2, x3])
