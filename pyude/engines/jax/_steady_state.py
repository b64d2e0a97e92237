r"""Steady states with their implicit-function derivative (preequilibration and
steady-state measurements).

The steady state $x^*$ of $\dot x = f(t, x, p)$ started at $x_s$ is found by simulating
until $\|f\| < \text{atol} + \text{rtol}\,\|x\|$ (:func:`~._integrate.steady_state`).
Differentiating those simulation steps gives the sensitivity of the state where the
simulation stopped, not of $x^*$: the slow modes' sensitivities decay no faster than
the state, so they are off by far more than the tolerance. Here the simulation is not
differentiated at all; the derivative is the implicit one.

Conservation laws make $J = \partial f/\partial x$ singular: with $L$ a basis of its
left null space ($L f \equiv 0$), $x^*$ is fixed by $f(x^*) = 0$ *and* the conserved
totals $L x^* = L x_s$. With $P = L^\top L$ the orthogonal projector onto that null
space ($L$ orthonormal), $x^*$ is the root of

$$R(x; p, x_s) = f(t^*, x, p) + c\,P(p)\,(x - x_s),$$

whose Jacobian $A = J + cP$ is regular when $J$ is regular on the stoichiometric
subspace: $(J + cP)v = 0$ splits into $Jv \in \operatorname{range} J \perp
\operatorname{range} P \ni cPv$, so $Jv = 0$ and $Pv = 0$. (AMICI removes the
conserved moieties from the model instead; the roots and derivatives are the same.)
The returned state is one Newton step from the simulated $\bar x$,

$$x^* = \bar x - A^{-1} R(\bar x; p, x_s), \qquad A,\ \bar x \text{ held constant},$$

so its value is the simulated state polished by Newton's method, and its derivative is
$dx^* = -A^{-1}(\partial_p R\, dp + \partial_{x_s} R\, dx_s)$: the implicit function
theorem's, exact in every differentiation mode (forward, reverse, under ``vmap``).
$c = \sigma_{\max}(J)$ keeps $A$ as well scaled as $J$.

$P(p)$ depends on the parameters when the conserved weights do (species in
compartments of parameter-dependent size). Its derivative at fixed rank is
$dP = -(P\,dJ\,J^+) - (P\,dJ\,J^+)^\top$ with $dJ = \partial_p J$ (perturbation of the
orthogonal projector onto $\operatorname{range}(J)^\perp$); it enters through
$c\,dP\,(x^* - x_s)$.

The null space is numerical: singular values of $J$ below ``NULL_RTOL`` times the
largest. Conservation laws give singular values at rounding level ($10^{-16}$
relative); a stiff but regular $J$ whose smallest singular value falls below
$10^{-10}$ relative would be taken as conserving a quantity that its simulation could
not have equilibrated anyway.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ._compile import CompiledModel
from ._integrate import Settings, steady_state

NULL_RTOL = 1e-10


def _projector(J):
    """``(P, J_pinv, c)``: the orthogonal projector onto the left null space of ``J``
    (singular values <= NULL_RTOL * max), the pseudo-inverse on the complement, and
    ``c`` = the largest singular value (1 for J = 0)."""
    U, S, Vt = jnp.linalg.svd(J)
    smax = S[0]
    null = S <= NULL_RTOL * smax
    Un = jnp.where(null[None, :], U, 0.0)
    P = Un @ Un.T
    s_inv = jnp.where(null, 0.0, 1.0 / jnp.where(null, 1.0, S))
    J_pinv = Vt.T @ (s_inv[:, None] * U.T)
    return P, J_pinv, jnp.where(smax > 0, smax, 1.0)


def newton_ift(cm: CompiledModel, t, x_bar, x_start, p, u, ok):
    """The steady state from the simulated ``x_bar`` (reached at time ``t`` from ``x_start``):
    one Newton step on ``R`` with the implicit derivative in ``p``, ``u`` and ``x_start``
    (see the module docstring). Where ``ok`` is false, ``x_bar`` comes back unchanged."""
    x_bar = lax.stop_gradient(x_bar)
    t = lax.stop_gradient(t)
    p0, u0 = lax.stop_gradient(p), lax.stop_gradient(u)
    J = jax.jacfwd(lambda x: cm.rhs(t, x, (p0, u0)))(x_bar)
    J = jnp.where(ok, J, -jnp.eye(J.shape[0]))  # no NaN from a failed solve's state
    P, J_pinv, c = _projector(J)
    A = J + c * P

    # P(p) at fixed rank: value P, derivative -(M + M^T) with M = P dJ J^+ (zero value)
    J_p = jax.jacfwd(lambda x: cm.rhs(t, x, (p, u0)))(x_bar)
    M = P @ (J_p - lax.stop_gradient(J_p)) @ J_pinv
    P_p = P - M - M.T

    R = cm.rhs(t, x_bar, (p, u)) + c * (P_p @ (x_bar - x_start))
    R = jnp.where(ok, R, 0.0)
    return x_bar - jnp.linalg.solve(A, R)


def steady(cm: CompiledModel, s: Settings, t0, x_start, p, u, active):
    """``(x*, code, t*)``: the steady state run to from ``x_start`` at ``t0`` (value: simulated,
    then one Newton step; derivative: implicit, :func:`newton_ift`), the result code
    (0, or why no steady state was found) and the time it was reached. Where ``active``
    is false nothing is integrated and ``x_start`` comes back (with its derivative)."""
    x_bar, code, t_ss = steady_state(
        cm, s, lax.stop_gradient(t0), lax.stop_gradient(x_start), lax.stop_gradient(p), lax.stop_gradient(u), active
    )
    ok = active & (code == 0)
    x = newton_ift(cm, t_ss, x_bar, x_start, p, u, ok)
    return jnp.where(ok, x, x_start), code, t_ss
