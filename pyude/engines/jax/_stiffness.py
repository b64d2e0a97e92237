"""``solver="auto"``: choose a stiff or a non-stiff solver from the Jacobian's spectrum.

The estimate is ``max |Re(lambda)| * (t1 - t0)`` over the eigenvalues ``lambda`` of
``df/dy``: how many of the fastest decay time-constants fit in the time span.
An explicit method needs at least about that many steps for stability alone.
The Jacobian is taken at the initial state and at three probe states a little
along the initial flow, ``y0 + tau f(t0, y0)``, because biochemical models often
start where the stiff reactions are still switched off (Robertson starts with
two species at zero).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ._compile import CompiledModel, jit

STIFF_THRESHOLD = 1e3
STIFF_SOLVER = "Rodas5P"
NONSTIFF_SOLVER = "Tsit5"
_EIG_LIMIT = 256


@dataclass(frozen=True)
class StiffnessEstimate:
    estimate: float  # max |Re(lambda)| * span
    spread: float  # max |Re(lambda)| / min nonzero |Re(lambda)|
    stiff: bool

    @property
    def solver(self) -> str:
        return STIFF_SOLVER if self.stiff else NONSTIFF_SOLVER


def _jacobian_fn(cm: CompiledModel):
    fn = cm.cache.get("jacobian")
    if fn is None:

        @jit
        def fn(t, y, args):
            return cm.rhs(t, y, args), jax.jacfwd(lambda z: cm.rhs(t, z, args))(y)

        cm.cache["jacobian"] = fn
    return fn


def _real_parts(J: np.ndarray) -> np.ndarray:
    n = J.shape[0]
    if n <= _EIG_LIMIT:
        return np.abs(np.linalg.eigvals(J).real)
    # large systems: power iteration for the dominant eigenvalue magnitude
    rng = np.random.default_rng(0)
    v = rng.standard_normal(n)
    lam = 0.0
    for _ in range(50):
        w = J @ v
        lam = float(np.linalg.norm(w))
        if lam == 0.0:
            break
        v = w / lam
    return np.array([lam])


def estimate_stiffness(cm: CompiledModel, t0: float, t1: float, y0, args) -> StiffnessEstimate:
    span = float(abs(t1 - t0)) or 1.0
    jac = _jacobian_fn(cm)
    f0, J0 = jac(jnp.asarray(t0), y0, args)
    f0 = np.asarray(f0)
    y0n = np.asarray(y0)
    points = [J0]
    scale = max(float(np.max(np.abs(y0n))), 1.0) if y0n.size else 1.0
    fmax = float(np.max(np.abs(f0))) if f0.size else 0.0
    if fmax > 0 and np.isfinite(fmax):
        for frac in (1e-3, 1e-2, 1e-1):
            tau = min(frac * scale / fmax, span)
            points.append(jac(jnp.asarray(t0), jnp.asarray(y0n + tau * f0), args)[1])
    fastest, spread = 0.0, 1.0
    for J in points:
        J = np.asarray(J)
        if not np.all(np.isfinite(J)):
            continue
        re = _real_parts(J)
        if re.size == 0:
            continue
        fastest = max(fastest, float(re.max()))
        nz = re[re > 1e-12 * max(re.max(), 1e-300)]
        if nz.size:
            spread = max(spread, float(nz.max() / nz.min()))
    est = fastest * span
    return StiffnessEstimate(est, spread, est > STIFF_THRESHOLD)
