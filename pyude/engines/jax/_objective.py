r"""The batched objective: all conditions solved in one compiled call (vmapped, or one
after another: ``Settings.batching``), then the negative log-likelihood of the data (or
the weighted sum of squares).

Noise models, for a measurement $y$ of an observable with prediction $h$ and scale $\sigma$:

* normal: $\tfrac12\log(2\pi\sigma^2) + \tfrac12\big((y-h)/\sigma\big)^2$
* lognormal: $\tfrac12\log(2\pi\sigma^2 y^2) + \tfrac12\big((\log y-\log h)/\sigma\big)^2$
* laplace: $\log(2\sigma) + |y-h|/\sigma$
* poisson: $h - y\log h + \log\Gamma(y+1)$
* log10normal: $\tfrac12\log(2\pi\sigma^2 y^2\ln^2 10) + \tfrac12\big((\log_{10} y-\log_{10} h)/\sigma\big)^2$
* loglaplace: $\log(2\sigma y) + |\log y-\log h|/\sigma$
* log10laplace: $\log(2\sigma y\ln 10) + |\log_{10} y-\log_{10} h|/\sigma$

(the log-transformed models are PEtab's ``observableTransformation`` log/log10 with
normal/laplace noise, Jacobian term included).

Without any noise model the objective is $\sum_k ((y_k-h_k)/\sigma_k)^2$ (``mode="wss"``).
Priors add $-\log\pi(p)$ (normal on $p$, lognormal on $\log p$, uniform on $[a, b]$:
$\log(b - a)$ inside, $+\infty$ outside; with constants), and
``l2`` adds $\lambda\sum w^2$ over the estimated network weights and biases. Under
multiple shooting (``arrays["shooting"]``) theta also carries the segment start states
and the continuity penalty is added (see :class:`pyude.MultipleShooting`).

Optional arrays (absent: the objective is exactly the one without them):

* ``arrays["data"]["row"]``: per-measurement parameter overrides (PEtab's
  ``observableParameters``/``noiseParameters``). ``index`` (R,) are positions in p;
  for data row k, ``p[index[j]]`` is ``value[k, j]`` where ``fixed[k, j]``, else
  ``p[source[k, j]]`` (p of the row's condition). h and sigma are then evaluated per
  data row at that row's state, time and parameters, instead of being gathered from
  the per-(condition, time) table.
* ``arrays["cond"]["pre"]`` (C,) and ``pre_p_fixed, pre_p_value, pre_p_source,
  pre_y_fixed, pre_y_value, pre_y_source`` (same layout as the condition's own
  overrides): preequilibration. Where ``pre``, the model is first run from t0 to a
  steady state under the preequilibration overrides (stopped when
  ``||f|| < atol + rtol ||y||``; failing to get there is an error), and the condition
  starts from that state, except for the states its own overrides set.
* ``arrays["distinct"]``: ``first`` (U,) and ``of`` (C,), where conditions repeat: each
  distinct condition is solved once and its results serve every condition equal to it
  (not under multiple shooting, whose segments start from each condition's own states).
* ``arrays["cond"]["post"]`` (C,): steady-state measurements. Where ``post``, the model
  continues from the last time of ``ts`` to a steady state under the condition's own
  parameters; it is time slot ``T`` (after the T times of ``ts``) of ``H``, evaluated
  at the time the steady state was reached.

Steady states (both kinds) carry the implicit-function derivative, the same for every
sensitivity method (:mod:`._steady_state`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp

from ..._sensitivity import AbstractSensitivity, Checkpoint, Forward
from ._compile import CompiledModel, jit
from ._gradient import _trajectory
from ._inputs import InputData
from ._integrate import Settings
from ._steady_state import steady

NOISE_CODES = {
    None: 0, "normal": 1, "lognormal": 2, "laplace": 3, "poisson": 4,
    "log10normal": 5, "loglaplace": 6, "log10laplace": 7,
}
# noise models whose measurements must be positive
POSITIVE_CODES = (2, 5, 6, 7)
_LOG_2PI = float(jnp.log(2 * jnp.pi))
_LN10 = float(jnp.log(10.0))


def nll_terms(code, y, h, sigma):
    """Per-measurement negative log-likelihood (code 0 counts as normal)."""
    logged = (code == 2) | (code >= 5)
    positive = logged | (code == 4)
    # keep the log branches finite where they are not selected: NaN * 0 is NaN in the gradient
    h_log = jnp.log(jnp.where(positive, h, 1.0))
    y_log = jnp.log(jnp.where(logged, y, 1.0))
    r = (y - h) / sigma
    normal = 0.5 * (_LOG_2PI + 2 * jnp.log(sigma)) + 0.5 * r**2
    lognormal = 0.5 * (_LOG_2PI + 2 * jnp.log(sigma) + 2 * y_log) + 0.5 * ((y_log - h_log) / sigma) ** 2
    laplace = jnp.log(2 * sigma) + jnp.abs(r)
    poisson = jnp.where(positive, h, 0.0) - y * h_log + jsp.gammaln(y + 1)
    log10normal = (
        0.5 * (_LOG_2PI + 2 * jnp.log(sigma) + 2 * y_log + 2 * jnp.log(_LN10))
        + 0.5 * ((y_log - h_log) / (_LN10 * sigma)) ** 2
    )
    loglaplace = jnp.log(2 * sigma) + y_log + jnp.abs(y_log - h_log) / sigma
    log10laplace = jnp.log(2 * sigma) + y_log + jnp.log(_LN10) + jnp.abs(y_log - h_log) / (_LN10 * sigma)
    return jnp.select(
        [code == 2, code == 3, code == 4, code == 5, code == 6, code == 7],
        [lognormal, laplace, poisson, log10normal, loglaplace, log10laplace],
        normal,
    )


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


def _segments(trajectory: Callable, ms, ts, t0, y0, starts, p, u):
    """Multiple shooting: segment k solved from its start state over ``[t_start[k], t_end[k]]``
    (all segments in one vmapped call); the trajectory on ``ts`` pieced together from the
    segments that own each time, and the squared gap at every inner segment start."""
    y_starts = jnp.concatenate([y0[None], starts])
    t_start = ms["t_start"].at[0].set(t0)

    def one(ta, tb, ya):
        # times outside the segment collapse onto its ends: nothing is integrated for them
        return trajectory(jnp.clip(ts, ta, tb), ta, ya, p, u)

    Y, codes, reached = jax.vmap(one)(t_start, ms["t_end"], y_starts)
    ys = Y[ms["owner"], jnp.arange(ts.shape[0])]
    ends = Y[jnp.arange(starts.shape[0]), ms["end_index"]]
    failed = codes != 0
    k = jnp.argmax(failed)
    code = jnp.where(jnp.any(failed), codes[k], 0.0)
    t_reached = jnp.where(jnp.any(failed), reached[k], reached[-1])
    return ys, code, t_reached, jnp.sum((ends - starts) ** 2)


def _predict_all(cm: CompiledModel, s: Settings, trajectory: Callable):
    """``(z, a, starts) -> (H (C, T', n_obs), sigma (C, n_obs) or (C, T', n_obs) where a noise scale
    varies in time (``cm.sigma_varies``), codes (C,), t_reached (C,), gap (C,),
    ys (C, T', n), p (C, n_p), u, ts (C, T'))``: ``ys``, ``p``, ``u`` and ``ts`` are each
    condition's states, parameters, inputs and times (for per-measurement evaluation);
    ``T' = T + 1`` with steady-state measurements (``a["cond"]["post"]``), else ``T``.

    ``starts`` (C, K-1, n_states): the segment start states under multiple shooting, or None.
    """
    n_p = cm.model.n_params

    def initial(p_c, y0_est, a, fixed, value, source):
        y0 = cm.initial(p_c)
        y0 = jnp.where(a["y0_fixed"], a["y0_value"], y0)
        y0 = jnp.where(a["y0_estimated"], y0_est, y0)
        y0 = jnp.where(fixed, value, y0)
        return jnp.where(source >= 0, p_c[jnp.maximum(source, 0)], y0)

    def per_condition(p, y0_est, c, a, starts):
        p_c = cm.assign(jnp.where(c["p_fixed"], c["p_value"], p[c["p_source"]]))
        y0 = initial(p_c, y0_est, a, c["y_fixed"], c["y_value"], c["y_source"])
        u_c = _override_inputs(a["u"], c["u_fixed"], c["u_value"])
        pre_code = jnp.zeros(())
        if "pre" in c:
            p_pre = cm.assign(jnp.where(c["pre_p_fixed"], c["pre_p_value"], p[c["pre_p_source"]]))
            y_pre = initial(p_pre, y0_est, a, c["pre_y_fixed"], c["pre_y_value"], c["pre_y_source"])
            y_ss, pre_code, _ = steady(cm, s, a["t0"], y_pre, p_pre, u_c, c["pre"])
            # the condition's own state overrides are applied after the preequilibration
            reset = c["y_fixed"] | (c["y_source"] >= 0)
            y0 = jnp.where(c["pre"] & ~reset, y_ss, y0)
        if starts is None:
            ys, code, t_reached = trajectory(a["ts"], a["t0"], y0, p_c, u_c)
            gap = jnp.zeros(())
        else:
            ys, code, t_reached, gap = _segments(trajectory, a["shooting"], a["ts"], a["t0"], y0, starts, p_c, u_c)
        ts = a["ts"]
        if "post" in c:  # steady-state measurements: continue from the last time to a steady state
            y_inf, post_code, t_inf = steady(cm, s, ts[-1], ys[-1], p_c, u_c, c["post"] & (code == 0))
            ys, ts = jnp.concatenate([ys, y_inf[None]]), jnp.concatenate([ts, t_inf[None]])
            code = jnp.where(code != 0, code, post_code)
        code = jnp.where(pre_code != 0, pre_code, code)
        t_reached = jnp.where(pre_code != 0, a["t0"], t_reached)
        H = jax.vmap(lambda t, y: jnp.concatenate([cm.observe(t, y, (p_c, u_c)), y]))(ts, ys)
        if cm.sigma_varies:  # (T', rows): at every time point
            sig = jax.vmap(lambda t, y: jnp.concatenate([cm.sigma(t, y, (p_c, u_c)), jnp.ones_like(y)]))(ts, ys)
        else:  # (rows,): of the parameters alone
            sig = jnp.concatenate([cm.sigma(a["t0"], y0, (p_c, u_c)), jnp.ones_like(y0)])
        return H, sig, code, t_reached, gap, ys, p_c, u_c, ts

    def solve_all(p, y0_est, cond, a, starts):
        if cond["p_fixed"].shape[0] == 1:  # one condition: no batched loops to compile
            single = jax.tree.map(lambda x: x[0], cond)
            out = per_condition(p, y0_est, single, a, None if starts is None else starts[0])
            return jax.tree.map(lambda x: x[None], out)
        if s.batching == "sequential":
            xs = (cond, starts)
            return jax.lax.map(lambda x: per_condition(p, y0_est, x[0], a, x[1]), xs)
        return jax.vmap(per_condition, in_axes=(None, None, 0, None, None if starts is None else 0))(
            p, y0_est, cond, a, starts
        )

    def predict(z, a, starts=None):
        p, y0_est = z[:n_p], z[n_p:]
        distinct = a.get("distinct")
        if distinct is None or starts is not None:  # segments start from each condition's own states
            return solve_all(p, y0_est, a["cond"], a, starts)
        # repeated conditions are solved once (Problem's _distinct_arrays)
        cond = jax.tree.map(lambda x: x[distinct["first"]], a["cond"])
        return jax.tree.map(lambda x: x[distinct["of"]], solve_all(p, y0_est, cond, a, None))

    return predict


def _split_shooting(theta, a):
    """``(theta, starts)``: under multiple shooting theta carries every condition's segment
    start states after the estimated entries; ``starts`` are those of the conditions in ``a``."""
    if "shooting" not in a:
        return theta, None
    ms = a["shooting"]
    n_theta, n_seg, n = a["index"].shape[0], ms["end_index"].shape[0], a["y0_value"].shape[0]
    starts = theta[n_theta:].reshape(-1, n_seg, n)[ms["conditions"]]
    return theta[:n_theta], starts


def _measured(cm: CompiledModel, out, a):
    """``(h, sigma)`` of every data row from the output of ``predict``: gathered from the
    (condition, time) table, or evaluated per row with the row's parameter overrides."""
    H, SIG, _, _, _, ys, P, U, TS = out
    d = a["data"]
    if "grid" in d:  # a full block of the table: a slice, whose transpose is cheap (not a scatter)
        g = d["grid"]
        shape = (g["c"].shape[0], g["t"].shape[0], g["o"].shape[0])
        h = jax.lax.dynamic_slice(H, g["start"], shape).reshape(-1)
        if SIG.ndim == 3:
            sigma = jax.lax.dynamic_slice(SIG, g["start"], shape).reshape(-1)
        else:
            sig = jax.lax.dynamic_slice(SIG, (g["start"][0], g["start"][2]), (shape[0], shape[2]))
            sigma = jnp.broadcast_to(sig[:, None, :], shape).reshape(-1)
    elif "row" not in d:
        h = H[d["cond"], d["time"], d["obs"]]
        sigma = SIG[d["cond"], d["time"], d["obs"]] if SIG.ndim == 3 else SIG[d["cond"], d["obs"]]
    else:
        r = d["row"]

        def one(c, i, o, fixed, value, source):
            p = P[c]
            p = p.at[r["index"]].set(jnp.where(fixed, value, p[source]))
            u = jax.tree.map(lambda x: x[c], U)
            y = ys[c, i]
            hs = jnp.concatenate([cm.observe(TS[c, i], y, (p, u)), y])
            sg = jnp.concatenate([cm.sigma(TS[c, i], y, (p, u)), jnp.ones_like(y)])
            return hs[o], sg[o]

        h, sigma = jax.vmap(one)(d["cond"], d["time"], d["obs"], r["fixed"], r["value"], r["source"])
    return h, jnp.where(jnp.isnan(d["sigma"]), sigma, d["sigma"])


def _objective(cm: CompiledModel, s: Settings, trajectory: Callable, mode: str):
    predict = _predict_all(cm, s, trajectory)

    def objective(theta, a):
        theta, starts = _split_shooting(theta, a)
        z = _z_of(theta, a)
        out = predict(z, a, starts)
        _, _, codes, t_reached, gap = out[:5]
        d = a["data"]
        h, sigma = _measured(cm, out, a)
        if mode == "wss":
            data_term = jnp.sum(d["weight"] * ((d["value"] - h) / sigma) ** 2)
        else:
            data_term = jnp.sum(d["weight"] * nll_terms(d["noise"], d["value"], h, sigma))
        prior = _prior_terms(z, a["priors"])
        reg = a["l2"] * jnp.sum(jnp.where(a["is_network"], theta, 0.0) ** 2)
        continuity = 0.0 if starts is None else a["shooting"]["continuity"] * jnp.sum(gap)
        return data_term + jnp.sum(prior) + reg + continuity, (data_term, codes, t_reached)

    return objective


def _prior_terms(z, pr):
    """-log density of each prior (kinds as ``PRIORS``: normal, lognormal, uniform, laplace,
    loglaplace; ``mean``/``sd`` hold each one's two numbers) at ``u`` = the value, its log or
    its log10 (``on``; no Jacobian, as PEtab's parameterScale priors)."""
    v, kind, m, b = z[pr["index"]], pr["kind"], pr["mean"], pr["sd"]
    pos = jnp.where(pr["on"] > 0, v, 1.0)  # no log of a value the prior reads on its own scale (its gradient)
    u = jnp.select([pr["on"] == 1, pr["on"] == 2], [jnp.log(pos), jnp.log10(pos)], v)
    log_kind = (kind == 1) | (kind == 4)
    log_u = jnp.log(jnp.where(log_kind, u, 1.0))  # the log-distributions' variable and Jacobian
    x = jnp.where(log_kind, log_u, u)
    normal = jnp.log(b) + 0.5 * _LOG_2PI + 0.5 * ((x - m) / b) ** 2
    laplace = jnp.log(2.0 * b) + jnp.abs(x - m) / b
    # uniform: m and b are its lower and upper bound; +inf outside
    uniform = jnp.where((u >= m) & (u <= b), jnp.log(jnp.abs(b - m)), jnp.inf)
    base = jnp.select([kind == 2, (kind == 3) | (kind == 4)], [uniform, laplace], normal)
    return base + jnp.where(log_kind, log_u, 0.0)


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
    predict = _predict_all(cm, s, no_grad)

    def rows(theta, a):
        out = predict(_z_of(theta, a), a)
        h, sigma = _measured(cm, out, a)
        return h, sigma, out[2], out[3]

    fns = {
        "value": jit(_objective(cm, s, no_grad, mode)),
        "predict": jit(lambda theta, a: predict(_z_of(theta, a), a)[:4]),
        "rows": jit(rows),
    }
    if sens is not None:
        objective = _objective(cm, s, _trajectory(cm, s, sens), mode)
        if isinstance(sens, Forward):

            def vg(theta, a):
                def f(th):
                    value, aux = objective(th, a)
                    return value, (value, aux)

                grad, out = jax.jacfwd(f, has_aux=True)(theta)
                return out, grad

        else:
            vg = jax.value_and_grad(objective, has_aux=True)
        fns["value_and_grad"] = jit(vg)
    cm.cache[key] = fns
    return fns
