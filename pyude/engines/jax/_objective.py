r"""The batched objective: all conditions solved in one vmapped call, then the
negative log-likelihood of the data (or the weighted sum of squares).

Noise models, for a measurement $y$ of an observable with prediction $h$ and scale $\sigma$:

* normal: $\tfrac12\log(2\pi\sigma^2) + \tfrac12\big((y-h)/\sigma\big)^2$
* lognormal: $\tfrac12\log(2\pi\sigma^2 y^2) + \tfrac12\big((\log y-\log h)/\sigma\big)^2$
* laplace: $\log(2\sigma) + |y-h|/\sigma$
* poisson: $h - y\log h + \log\Gamma(y+1)$

Without any noise model the objective is $\sum_k ((y_k-h_k)/\sigma_k)^2$ (``mode="wss"``).
Priors add $-\log\pi(p)$ (normal on $p$, lognormal on $\log p$, with constants), and
``l2`` adds $\lambda\sum w^2$ over the estimated network weights and biases.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp

from ..._sensitivity import AbstractSensitivity, Checkpoint, Forward
from ._compile import CompiledModel
from ._gradient import _trajectory
from ._inputs import InputData
from ._integrate import Settings

NOISE_CODES = {None: 0, "normal": 1, "lognormal": 2, "laplace": 3, "poisson": 4}
_LOG_2PI = float(jnp.log(2 * jnp.pi))


def nll_terms(code, y, h, sigma):
    """Per-measurement negative log-likelihood (code 0 counts as normal)."""
    positive = (code == 2) | (code == 4)
    # keep the log branches finite where they are not selected: NaN * 0 is NaN in the gradient
    h_log = jnp.log(jnp.where(positive, h, 1.0))
    y_log = jnp.log(jnp.where(code == 2, y, 1.0))
    r = (y - h) / sigma
    normal = 0.5 * (_LOG_2PI + 2 * jnp.log(sigma)) + 0.5 * r**2
    lognormal = 0.5 * (_LOG_2PI + 2 * jnp.log(sigma) + 2 * y_log) + 0.5 * ((y_log - h_log) / sigma) ** 2
    laplace = jnp.log(2 * sigma) + jnp.abs(r)
    poisson = jnp.where(positive, h, 0.0) - y * h_log + jsp.gammaln(y + 1)
    return jnp.select([code == 2, code == 3, code == 4], [lognormal, laplace, poisson], normal)


def _from_scale(theta, scale):
    # each branch gets finite input where it is not selected (NaN * 0 is NaN in gradients)
    from_log = jnp.exp(jnp.where(scale == 1, theta, 0.0))
    from_log10 = 10.0 ** jnp.where(scale == 2, theta, 0.0)
    return jnp.where(scale == 1, from_log, jnp.where(scale == 2, from_log10, theta))


def _override_inputs(u: tuple[InputData, ...], fixed, value) -> tuple[InputData, ...]:
    out = []
    for i, d in enumerate(u):
        out.append(
            InputData(
                d.times,
                jnp.where(fixed[i], value[i], d.values),
                jnp.where(fixed[i], 0.0, d.m),
                d.kind,
            )
        )
    return tuple(out)


def _z_of(theta, a):
    """``[p, y0]``: the base vector with the estimated entries set from their scales."""
    return a["base_z"].at[a["index"]].set(_from_scale(theta, a["scale"]))


def _predict_all(cm: CompiledModel, trajectory: Callable):
    """``(z, a) -> (H (C, T, n_obs), sigma (C, n_obs), codes (C,), t_reached (C,))``."""
    n_p = cm.model.n_params

    def per_condition(p, y0_est, c, a):
        p_c = jnp.where(c["p_fixed"], c["p_value"], p[c["p_source"]])
        y0 = cm.initial(p_c)
        y0 = jnp.where(a["y0_fixed"], a["y0_value"], y0)
        y0 = jnp.where(a["y0_estimated"], y0_est, y0)
        y0 = jnp.where(c["y_fixed"], c["y_value"], y0)
        y0 = jnp.where(c["y_source"] >= 0, p_c[jnp.maximum(c["y_source"], 0)], y0)
        u_c = _override_inputs(a["u"], c["u_fixed"], c["u_value"])
        ys, code, t_reached = trajectory(a["ts"], a["t0"], y0, p_c, u_c)
        H = jax.vmap(lambda t, y: jnp.concatenate([cm.observe(t, y, (p_c, u_c)), y]))(a["ts"], ys)
        sig = jnp.concatenate([cm.sigma(p_c), jnp.ones_like(y0)])
        return H, sig, code, t_reached

    def predict(z, a):
        p, y0_est = z[:n_p], z[n_p:]
        if a["cond"]["p_fixed"].shape[0] == 1:  # one condition: no batched loops to compile
            single = jax.tree.map(lambda x: x[0], a["cond"])
            return jax.tree.map(lambda x: x[None], per_condition(p, y0_est, single, a))
        return jax.vmap(per_condition, in_axes=(None, None, 0, None))(p, y0_est, a["cond"], a)

    return predict


def _objective(cm: CompiledModel, trajectory: Callable, mode: str):
    predict = _predict_all(cm, trajectory)

    def objective(theta, a):
        z = _z_of(theta, a)
        H, SIG, codes, t_reached = predict(z, a)
        d = a["data"]
        h = H[d["cond"], d["time"], d["obs"]]
        sigma = jnp.where(jnp.isnan(d["sigma"]), SIG[d["cond"], d["obs"]], d["sigma"])
        if mode == "wss":
            data_term = jnp.sum(d["weight"] * ((d["value"] - h) / sigma) ** 2)
        else:
            data_term = jnp.sum(d["weight"] * nll_terms(d["noise"], d["value"], h, sigma))
        pr = a["priors"]
        v = z[pr["index"]]
        sd = pr["sd"]
        const = jnp.log(sd) + 0.5 * _LOG_2PI
        log_v = jnp.log(jnp.where(pr["kind"] == 1, v, 1.0))
        prior = jnp.where(
            pr["kind"] == 1, log_v + const + 0.5 * ((log_v - pr["mean"]) / sd) ** 2, const + 0.5 * ((v - pr["mean"]) / sd) ** 2
        )
        reg = a["l2"] * jnp.sum(jnp.where(a["is_network"], theta, 0.0) ** 2)
        return data_term + jnp.sum(prior) + reg, (data_term, codes, t_reached)

    return objective


def objective_fns(cm: CompiledModel, s: Settings, sens: AbstractSensitivity | None, mode: str) -> dict[str, Callable]:
    """Jitted functions of ``(theta, arrays)``, cached per model, settings, sensitivity and mode:

    ``value`` -> (loss, (data_term, codes, t_reached)); ``value_and_grad`` -> (that, grad);
    ``predict`` -> (H, sigma, codes, t_reached) (``sens`` None: no gradient function).
    """
    key = ("objective", s, sens, mode)
    fns = cm.cache.get(key)
    if fns is not None:
        return fns
    no_grad = _trajectory(cm, s, Checkpoint())
    predict = _predict_all(cm, no_grad)
    fns = {
        "value": jax.jit(_objective(cm, no_grad, mode)),
        "predict": jax.jit(lambda theta, a: predict(_z_of(theta, a), a)),
    }
    if sens is not None:
        objective = _objective(cm, _trajectory(cm, s, sens), mode)
        if isinstance(sens, Forward):

            def vg(theta, a):
                def f(th):
                    value, aux = objective(th, a)
                    return value, (value, aux)

                grad, out = jax.jacfwd(f, has_aux=True)(theta)
                return out, grad

        else:
            vg = jax.value_and_grad(objective, has_aux=True)
        fns["value_and_grad"] = jax.jit(vg)
    cm.cache[key] = fns
    return fns
