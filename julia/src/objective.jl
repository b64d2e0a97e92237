# The objective of pyude's Problem, as pyude/engines/jax/_objective.py computes it:
# z = [p, y0] from theta (log/log10 scales), per-condition overrides of parameters,
# initial states and inputs, observables and noise terms (or the weighted sum of
# squares), priors and l2 on network weights. Masks arrive as 0/1 numbers so that
# every selection is arithmetic on Float64 arrays (plain for Zygote).

const LOG2PI = log(2π)

const LN10 = log(10.0)

"""The data rows of one condition (positions `index` in the data table), split by noise model."""
struct Rows
    index::Vector{Int}          # the rows' positions in the data table
    lin::Vector{Int}            # linear index into H ((n_obs + n_states) × n_times)
    obs::Vector{Int}
    time::Vector{Int}
    value::Vector{Float64}
    sigma_given::Vector{Float64}
    sigma_data::Vector{Float64}
    weight::Vector{Float64}
    lgamma::Vector{Float64}     # log Γ(y + 1) (poisson), from Python
    groups::Vector{Vector{Int}} # positions of noise codes 1..7 (code 0, no noise model, counts as normal)
    per_row::Bool               # per-measurement parameter overrides: h and σ evaluated row by row
    p_src::Matrix{Int}          # n_params × rows: row k's parameters are p_c[p_src[:, k]] .* p_keep[:, k] .+ p_set[:, k]
    p_keep::Matrix{Float64}
    p_set::Matrix{Float64}
end

"""One condition's overrides of parameters and initial states (0/1 masks, 1-based sources)."""
struct Overrides
    p_src::Vector{Int}
    p_keep::Vector{Float64}
    p_set::Vector{Float64}
    y_keep::Vector{Float64}
    y_set::Vector{Float64}
    ysrc::Vector{Int}
    ysrc_use::Vector{Float64}
end

struct Condition{F, P, Q}
    own::Overrides
    pre::Bool                   # preequilibrated: start from the steady state under `pre_over`
    pre_over::Overrides
    reset::Vector{Float64}      # 1 where the condition's own overrides set the state after a preequilibration
    rhs::F
    prob::P
    pre_prob::Q                 # over (t0, t0 + STEADY_STATE_HORIZON)
    signals::Vector{Signal}
    inputs_at::Vector{Vector{Float64}}  # input values at each save time
    rows::Rows
end

struct Arrays{C}
    base_z::Vector{Float64}
    z_keep::Vector{Float64}
    z_est::Vector{Float64}
    z_pos::Vector{Int}
    is_lin::Vector{Float64}
    is_log::Vector{Float64}
    is_log10::Vector{Float64}
    net_idx::Vector{Int}
    l2::Float64
    y0_keep::Vector{Float64}
    y0_set::Vector{Float64}
    y0_est::Vector{Float64}
    t0::Float64
    ts::Vector{Float64}
    n_data::Int
    conditions::Vector{C}
    prior_index::Vector{Int}
    prior_normal::Vector{Int}
    prior_lognormal::Vector{Int}
    prior_mean::Vector{Float64}
    prior_sd::Vector{Float64}
    wss::Bool
end

flag(x) = Float64.(x .!= 0)

function overrides(P, V, S, YF, YV, YS, c)
    return Overrides(S[c, :], 1.0 .- flag(P[c, :]), flag(P[c, :]) .* V[c, :], 1.0 .- flag(YF[c, :]),
        flag(YF[c, :]) .* YV[c, :], max.(YS[c, :], 1), flag(YS[c, :]))
end

"""
The per-row parameter maps of the data rows `r` (JAX `arrays["data"]["row"]`): row k sets
`p[idx[j]]` to `RV[k, j]` where `RF[k, j]`, else to `p[RS[k, j]]` (p of the row's condition).
"""
function row_maps(n_p, r, idx, RF, RV, RS)
    src, keep, set = repeat(collect(1:n_p), 1, length(r)), ones(n_p, length(r)), zeros(n_p, length(r))
    for (k, row) in enumerate(r), (j, i) in enumerate(idx)
        if RF[row, j] != 0
            keep[i, k], set[i, k] = 0.0, RV[row, j]
        else
            src[i, k] = RS[row, j]
        end
    end
    return src, keep, set
end

"""
    make_arrays(m; kwargs...) -> Arrays

The objective's constant data, from the arrays `pyude.Problem` builds (converted by
`pyude.engines.julia._export.objective_kwargs`: indices 1-based, masks 0/1, NaN sigma =
none; `row_*` empty without per-measurement parameters, `pre` all 0 without
preequilibration).
"""
function make_arrays(m::Model; base_z, est_index, scale, is_network, l2, y0_fixed, y0_value, y0_estimated,
        ts, t0, u_times, u_values, u_m, u_len, p_fixed, p_value, p_source, y_fixed, y_value, y_source,
        u_fixed, u_value, pre, pre_p_fixed, pre_p_value, pre_p_source, pre_y_fixed, pre_y_value, pre_y_source,
        d_cond, d_time, d_obs, d_value, d_sigma, d_noise, d_weight, d_lgamma,
        row_index, row_fixed, row_value, row_source,
        prior_index, prior_kind, prior_mean, prior_sd, mode)
    n, n_p = m.n_states, m.n_params
    tsv, t0 = Vector{Float64}(ts), Float64(t0)
    base_z = Vector{Float64}(base_z)
    length(base_z) == n_p + n || spec_error("base_z has $(length(base_z)) entries, expected $(n_p + n)")
    est_index, scale = Vector{Int}(est_index), Vector{Int}(scale)
    z_est = zeros(length(base_z))
    z_pos = ones(Int, length(base_z))
    z_est[est_index] .= 1.0
    z_pos[est_index] = 1:length(est_index)
    base = signals(m, u_times, u_values, u_m, u_len)
    own = (Matrix{Int}(p_fixed), Matrix{Float64}(p_value), Matrix{Int}(p_source), Matrix{Int}(y_fixed),
        Matrix{Float64}(y_value), Matrix{Int}(y_source))
    before = (Matrix{Int}(pre_p_fixed), Matrix{Float64}(pre_p_value), Matrix{Int}(pre_p_source),
        Matrix{Int}(pre_y_fixed), Matrix{Float64}(pre_y_value), Matrix{Int}(pre_y_source))
    UF, UV, PRE = Matrix{Int}(u_fixed), Matrix{Float64}(u_value), Vector{Int}(pre)
    cond, time, obs = Vector{Int}(d_cond), Vector{Int}(d_time), Vector{Int}(d_obs)
    value, sigma, noise = Vector{Float64}(d_value), Vector{Float64}(d_sigma), Vector{Int}(d_noise)
    weight, lgam = Vector{Float64}(d_weight), Vector{Float64}(d_lgamma)
    idx, RF, RV, RS = Vector{Int}(row_index), Matrix{Int}(row_fixed), Matrix{Float64}(row_value), Matrix{Int}(row_source)
    all(in(0:7), noise) || spec_error("noise codes must be 0..7, got $(sort(unique(noise)))")
    n_rows = m.n_obs + n
    θ0 = theta_of(m, zeros(n_p))
    conditions = map(1:size(own[1], 1)) do c
        sig = [UF[c, k] != 0 ? constant_signal(UV[c, k]) : base[k] for k in eachindex(base)]
        rhs = RHS(m, sig)
        prob = ODEProblem{true, SciMLBase.FullSpecialize}(rhs, zeros(n), (t0, tsv[end]), θ0)
        pre_prob = ODEProblem{true, SciMLBase.FullSpecialize}(rhs, zeros(n), (t0, t0 + STEADY_STATE_HORIZON), θ0)
        r = findall(==(c), cond)
        codes = noise[r]
        groups = [findall(k -> max(k, 1) == code, codes) for code in 1:7]
        src, keep, set = row_maps(n_p, r, idx, RF, RV, RS)
        rows = Rows(r, (time[r] .- 1) .* n_rows .+ obs[r], obs[r], time[r], value[r], flag(.!isnan.(sigma[r])),
            map(s -> isnan(s) ? 1.0 : s, sigma[r]), weight[r], lgam[r], groups, !isempty(idx), src, keep, set)
        o = overrides(own..., c)
        Condition(o, PRE[c] != 0, overrides(before..., c), 1.0 .- o.y_keep .* (1.0 .- o.ysrc_use), rhs, prob,
            pre_prob, sig, [input_values(sig, t) for t in tsv], rows)
    end
    fixed = flag(y0_fixed)
    kind = Vector{Int}(prior_kind)
    mode in ("wss", "nll") || spec_error("mode must be \"wss\" or \"nll\", got $(repr(mode))")
    return Arrays(base_z, 1.0 .- z_est, z_est, z_pos, flag(scale .== 0), flag(scale .== 1), flag(scale .== 2),
        findall(!=(0), Vector{Int}(is_network)), Float64(l2), 1.0 .- fixed, fixed .* Vector{Float64}(y0_value),
        flag(y0_estimated), t0, tsv, length(cond), conditions, Vector{Int}(prior_index), findall(==(0), kind),
        findall(==(1), kind), Vector{Float64}(prior_mean), Vector{Float64}(prior_sd), mode == "wss")
end

"""z = [p, y0]: the base vector with the estimated entries taken from theta on their scales."""
function z_of(theta, a::Arrays)
    isempty(theta) && return a.base_z
    # exp of a masked-out entry is exp(0): finite where it is not selected
    lin = a.is_lin .* theta .+ a.is_log .* exp.(a.is_log .* theta) .+ a.is_log10 .* exp10.(a.is_log10 .* theta)
    return a.base_z .* a.z_keep .+ lin[a.z_pos] .* a.z_est
end

params_of(o::Overrides, p) = p[o.p_src] .* o.p_keep .+ o.p_set

"""The initial state at parameters `pc`: the spec's initial values, the problem's fixed and
estimated initial values, then the overrides (JAX `_predict_all.initial`)."""
function start_state(m::Model, a::Arrays, o::Overrides, pc, y0_est)
    y0 = m.initial(pc)
    y0 = y0 .* a.y0_keep .+ a.y0_set
    y0 = y0 .* (1 .- a.y0_est) .+ y0_est .* a.y0_est
    y0 = y0 .* o.y_keep .+ o.y_set
    return y0 .* (1 .- o.ysrc_use) .+ pc[o.ysrc] .* o.ysrc_use
end

"""
`(y, code)`: the steady state reached from the preequilibration's start (JAX
`steady_state`). Where it becomes steady is a threshold decision, found on values only
(as the JAX engine's event, it carries no derivative); the state there is then solved
again from the start over (t0, T) with the problem's sensitivity method, so that it is
differentiated like the main solve. Events do not act during it (as the JAX engine's
`steady_state`, which integrates without them); the spec's assignments do.
"""
function preequilibrate(m::Model, a::Arrays, c::Condition, p, y0_est, s, sensealg)
    pp = assigned(m, params_of(c.pre_over, p))
    y = start_state(m, a, c.pre_over, pp, y0_est)
    θ = theta_of(m, pp)
    T, y_end, code = Zygote.ignore_derivatives() do
        steady_time(c.pre_prob, y, θ, s, stops(m, c.signals, pp, a.t0, a.t0 + STEADY_STATE_HORIZON))
    end
    (code != CODE_SUCCESS || sensealg === nothing) && return y_end, code
    prob, ts_stop = Zygote.ignore_derivatives(() -> (remake(c.pre_prob; tspan = (a.t0, T)), stops(m, c.signals, pp, a.t0, T)))
    sol = solve(prob, s.alg; u0 = y, p = θ, saveat = [T], reltol = s.rtol, abstol = s.atol, maxiters = s.max_steps,
        stop_kw(ts_stop)..., sense_kw(sensealg)...)
    code = status(sol, 1)
    return code == CODE_SUCCESS ? Array(sol)[:, 1] : y, code
end

"""One condition's solve: `(Y, pc, code, t_reached)`, `Y` (states × times) `nothing` unless code
is 0; `pc` the condition's parameters with the spec's assignments applied (JAX `cm.assign`)."""
function condition_solve(m::Model, a::Arrays, c::Condition, p, y0_est, s, sensealg)
    pc = assigned(m, params_of(c.own, p))
    y0 = start_state(m, a, c.own, pc, y0_est)
    if c.pre
        y_ss, code = preequilibrate(m, a, c, p, y0_est, s, sensealg)
        code == CODE_SUCCESS || return nothing, pc, code, a.t0
        y0 = y0 .* c.reset .+ y_ss .* (1 .- c.reset)  # the condition's own state overrides apply after it
    end
    Y, code, t_reached, _ = trajectory(m, c.prob, c.signals, y0, pc, theta_of(m, pc), a.t0, a.ts, s, sensealg)
    return Y, pc, code, t_reached
end

"""Observables then states at one state `y` (time `t`, inputs `inp`), and their noise scales, at parameters `p`."""
function point_outputs(m::Model, p, y, t, inp)
    m.n_obs == 0 && return y, ones(m.n_states)
    θ = theta_of(m, p)
    h = m.observe(y, θ, t, inp, m.chains, m.states)
    return vcat(h, y), vcat(m.sigma(y, θ, t, inp, m.chains, m.states), ones(m.n_states))
end

"""Observables then states (rows) at every save time (columns), and their noise scales."""
function outputs(m::Model, c::Condition, pc, Y, ts)
    m.n_obs == 0 && return Y, ones(m.n_states, length(ts))
    θ = theta_of(m, pc)
    O = reduce(hcat, map(k -> m.observe(Y[:, k], θ, ts[k], c.inputs_at[k], m.chains, m.states), eachindex(ts)))
    Σ = reduce(hcat, map(k -> m.sigma(Y[:, k], θ, ts[k], c.inputs_at[k], m.chains, m.states), eachindex(ts)))
    return vcat(O, Y), vcat(Σ, ones(m.n_states, length(ts)))
end

"""`(h, σ)` of the condition's data rows: gathered from the (row, time) table, or evaluated
row by row at the row's parameters (JAX `_measured`); a σ given in the data wins."""
function measured(m::Model, a::Arrays, c::Condition, Y, pc)
    r = c.rows
    if r.per_row
        hs = map(eachindex(r.obs)) do k
            H, sig = point_outputs(m, pc[r.p_src[:, k]] .* r.p_keep[:, k] .+ r.p_set[:, k], Y[:, r.time[k]],
                a.ts[r.time[k]], c.inputs_at[r.time[k]])
            (H[r.obs[k]], sig[r.obs[k]])
        end
        h, σ_model = map(first, hs), map(last, hs)
    else
        H, sig = outputs(m, c, pc, Y, a.ts)
        h, σ_model = H[r.lin], sig[r.lin]
    end
    return h, r.sigma_given .* r.sigma_data .+ (1 .- r.sigma_given) .* σ_model
end

# -log p(y | h, σ) per measurement, as pyude/engines/jax/_objective.py `nll_terms`
# (log-transformed models include the Jacobian term; logs are natural)
normal_nll(y, h, σ) = 0.5 .* (LOG2PI .+ 2 .* log.(σ)) .+ 0.5 .* abs2.((y .- h) ./ σ)
lognormal_nll(y, h, σ) = 0.5 .* (LOG2PI .+ 2 .* log.(σ) .+ 2 .* log.(y)) .+ 0.5 .* abs2.((log.(y) .- log.(h)) ./ σ)
laplace_nll(y, h, σ) = log.(2 .* σ) .+ abs.(y .- h) ./ σ
log10normal_nll(y, h, σ) = 0.5 .* (LOG2PI .+ 2 .* log.(σ) .+ 2 .* log.(y) .+ 2 * log(LN10)) .+
                           0.5 .* abs2.((log.(y) .- log.(h)) ./ (LN10 .* σ))
loglaplace_nll(y, h, σ) = log.(2 .* σ) .+ log.(y) .+ abs.(log.(y) .- log.(h)) ./ σ
log10laplace_nll(y, h, σ) = log.(2 .* σ) .+ log.(y) .+ log(LN10) .+ abs.(log.(y) .- log.(h)) ./ (LN10 .* σ)

"""Negative log-likelihood of one condition's rows (noise codes as in the JAX engine)."""
function nll(r::Rows, h, σ)
    term(g, f) = isempty(g) ? 0.0 : sum(r.weight[g] .* f(r.value[g], h[g], σ[g]))
    g = r.groups[4]  # poisson: h - y log h + log Γ(y + 1)
    poisson = isempty(g) ? 0.0 : sum(r.weight[g] .* (h[g] .- r.value[g] .* log.(h[g]) .+ r.lgamma[g]))
    return term(r.groups[1], normal_nll) + term(r.groups[2], lognormal_nll) + term(r.groups[3], laplace_nll) +
           poisson + term(r.groups[5], log10normal_nll) + term(r.groups[6], loglaplace_nll) +
           term(r.groups[7], log10laplace_nll)
end

function condition_term(m::Model, a::Arrays, c::Condition, p, y0_est, settings, sensealg)
    Y, pc, code, t_reached = condition_solve(m, a, c, p, y0_est, settings, sensealg)
    code == CODE_SUCCESS || return (Inf, code, t_reached)
    r = c.rows
    h, σ = measured(m, a, c, Y, pc)
    term = a.wss ? sum(r.weight .* abs2.((r.value .- h) ./ σ)) : nll(r, h, σ)
    return (term, code, t_reached)
end

"""-log prior (normal on p, lognormal on log p, with constants), as the JAX engine."""
function prior_term(z, a::Arrays)
    isempty(a.prior_index) && return 0.0
    v, μ, sd = z[a.prior_index], a.prior_mean, a.prior_sd
    total = 0.0
    g = a.prior_normal
    if !isempty(g)
        total += sum(log.(sd[g]) .+ 0.5 * LOG2PI .+ 0.5 .* abs2.((v[g] .- μ[g]) ./ sd[g]))
    end
    g = a.prior_lognormal
    if !isempty(g)
        lv = log.(v[g])
        total += sum(lv .+ log.(sd[g]) .+ 0.5 * LOG2PI .+ 0.5 .* abs2.((lv .- μ[g]) ./ sd[g]))
    end
    return total
end

"""`(loss, data_term, codes, t_reached)` at theta."""
function loss(theta, m::Model, a::Arrays, settings, sensealg)
    z = z_of(theta, a)
    p, y0_est = z[1:m.n_params], z[(m.n_params + 1):end]
    parts = map(c -> condition_term(m, a, c, p, y0_est, settings, sensealg), a.conditions)
    data_term = sum(first, parts)
    reg = isempty(a.net_idx) ? 0.0 : a.l2 * sum(abs2, theta[a.net_idx])
    codes = map(x -> x[2], parts)
    t_reached = map(x -> x[3], parts)
    return (data_term + prior_term(z, a) + reg, data_term, codes, t_reached)
end

settings_of(solver, rtol, atol, max_steps) = (alg = algorithm(solver), rtol = Float64(rtol), atol = Float64(atol),
    max_steps = Int(max_steps))

"""
    objective(m, a, theta, solver, rtol, atol, max_steps, sensitivity, vjp)

`(value, grad, data_term, codes, t_reached, message)`. `sensitivity` is `""` for the
value only. A Julia exception (e.g. a `DomainError` in the right-hand side) is caught
here, outside the differentiated code: code 5 for every condition and its message.
"""
function objective(m::Model, a::Arrays, theta, solver::AbstractString, rtol, atol, max_steps,
        sensitivity_name::AbstractString, vjp::AbstractString)
    θv = Vector{Float64}(theta)
    s = settings_of(solver, rtol, atol, max_steps)
    C = length(a.conditions)
    try
        if isempty(sensitivity_name)
            value, data_term, codes, t_reached = loss(θv, m, a, s, nothing)
            return (value, Float64[], data_term, codes, t_reached, "")
        end
        sensealg = sensitivity(sensitivity_name, vjp)
        res = Zygote.withgradient(x -> loss(x, m, a, s, sensealg), θv)
        value, data_term, codes, t_reached = res.val
        g = res.grad[1] === nothing ? zeros(length(θv)) : Vector{Float64}(res.grad[1])
        return (value, g, data_term, codes, t_reached, "")
    catch err
        err isa InterruptException && rethrow()
        return (NaN, fill(NaN, length(θv)), NaN, fill(CODE_EXCEPTION, C), fill(NaN, C), sprint(showerror, err))
    end
end

"""
    solve_conditions(use, m, a, theta, solver, rtol, atol, max_steps)

Solve every condition at `theta` (no gradient) and call `use(k, c, Y, pc)` for each one
that succeeded; `(codes, t_reached, message)`, the message of an exception ("" if none).
"""
function solve_conditions(use, m::Model, a::Arrays, theta, solver::AbstractString, rtol, atol, max_steps)
    s = settings_of(solver, rtol, atol, max_steps)
    C = length(a.conditions)
    codes, t_reached = zeros(Int, C), fill(NaN, C)
    try
        z = z_of(Vector{Float64}(theta), a)
        p, y0_est = z[1:m.n_params], z[(m.n_params + 1):end]
        for (k, c) in enumerate(a.conditions)
            Y, pc, codes[k], t_reached[k] = condition_solve(m, a, c, p, y0_est, s, nothing)
            Y === nothing || use(k, c, Y, pc)
        end
        return (codes, t_reached, "")
    catch err
        err isa InterruptException && rethrow()
        return (fill(CODE_EXCEPTION, C), t_reached, sprint(showerror, err))
    end
end

"""
    predict(m, a, theta, solver, rtol, atol, max_steps)

`(H, sigma, codes, t_reached, message)`: `H[row, time, condition]` (observables then
states; NaN for a failed condition) and `sigma[row, time, condition]`.
"""
function predict(m::Model, a::Arrays, theta, solver::AbstractString, rtol, atol, max_steps)
    C, n_rows = length(a.conditions), m.n_obs + m.n_states
    H = fill(NaN, n_rows, length(a.ts), C)
    S = fill(NaN, n_rows, length(a.ts), C)
    codes, t_reached, message = solve_conditions(m, a, theta, solver, rtol, atol, max_steps) do k, c, Y, pc
        H[:, :, k], S[:, :, k] = outputs(m, c, pc, Y, a.ts)
    end
    return (H, S, codes, t_reached, message)
end

"""
    rows(m, a, theta, solver, rtol, atol, max_steps)

`(h, sigma, codes, t_reached, message)`: the prediction and noise scale of every data row
(in the data table's order; NaN for the rows of a failed condition).
"""
function rows(m::Model, a::Arrays, theta, solver::AbstractString, rtol, atol, max_steps)
    h, σ = fill(NaN, a.n_data), fill(NaN, a.n_data)
    codes, t_reached, message = solve_conditions(m, a, theta, solver, rtol, atol, max_steps) do k, c, Y, pc
        h[c.rows.index], σ[c.rows.index] = measured(m, a, c, Y, pc)
    end
    return (h, σ, codes, t_reached, message)
end
