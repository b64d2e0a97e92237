# The objective of pyude's Problem, as pyude/engines/jax/_objective.py computes it:
# z = [p, y0] from theta (log/log10 scales), per-condition overrides of parameters,
# initial states and inputs, observables and noise terms (or the weighted sum of
# squares), priors and l2 on network weights. Masks arrive as 0/1 numbers so that
# every selection is arithmetic on Float64 arrays (plain for Zygote).

const LOG2PI = log(2π)

"""The data rows of one condition, split by noise model (positions into these rows)."""
struct Rows
    lin::Vector{Int}            # linear index into H ((n_obs + n_states) × n_times)
    obs::Vector{Int}
    value::Vector{Float64}
    sigma_given::Vector{Float64}
    sigma_data::Vector{Float64}
    weight::Vector{Float64}
    lgamma::Vector{Float64}     # log Γ(y + 1) (poisson), from Python
    normal::Vector{Int}
    lognormal::Vector{Int}
    laplace::Vector{Int}
    poisson::Vector{Int}
end

struct Condition{F, P}
    p_src::Vector{Int}
    p_keep::Vector{Float64}
    p_set::Vector{Float64}
    y_keep::Vector{Float64}
    y_set::Vector{Float64}
    ysrc::Vector{Int}
    ysrc_use::Vector{Float64}
    rhs::F
    prob::P
    tstops::Vector{Float64}
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
    ts::Vector{Float64}
    conditions::Vector{C}
    prior_index::Vector{Int}
    prior_normal::Vector{Int}
    prior_lognormal::Vector{Int}
    prior_mean::Vector{Float64}
    prior_sd::Vector{Float64}
    wss::Bool
end

flag(x) = Float64.(x .!= 0)

"""
    make_arrays(m; kwargs...) -> Arrays

The objective's constant data, from the arrays `pyude.Problem` builds (converted by
`pyude.engines.julia._engine.julia_arrays`: indices 1-based, masks 0/1, NaN sigma = none).
"""
function make_arrays(m::Model; base_z, est_index, scale, is_network, l2, y0_fixed, y0_value, y0_estimated,
        ts, t0, u_times, u_values, u_m, u_len, p_fixed, p_value, p_source, y_fixed, y_value, y_source,
        u_fixed, u_value, d_cond, d_time, d_obs, d_value, d_sigma, d_noise, d_weight, d_lgamma,
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
    P, V, Src = Matrix{Int}(p_fixed), Matrix{Float64}(p_value), Matrix{Int}(p_source)
    YF, YV, YS = Matrix{Int}(y_fixed), Matrix{Float64}(y_value), Matrix{Int}(y_source)
    UF, UV = Matrix{Int}(u_fixed), Matrix{Float64}(u_value)
    cond, time, obs = Vector{Int}(d_cond), Vector{Int}(d_time), Vector{Int}(d_obs)
    value, sigma, noise = Vector{Float64}(d_value), Vector{Float64}(d_sigma), Vector{Int}(d_noise)
    weight, lgam = Vector{Float64}(d_weight), Vector{Float64}(d_lgamma)
    n_rows = m.n_obs + n
    θ0 = theta_of(m, zeros(n_p))
    conditions = map(1:size(P, 1)) do c
        sig = [UF[c, k] != 0 ? constant_signal(UV[c, k]) : base[k] for k in eachindex(base)]
        rhs = RHS(m, sig)
        prob = ODEProblem{true, SciMLBase.FullSpecialize}(rhs, zeros(n), (t0, tsv[end]), θ0)
        r = findall(==(c), cond)
        codes = noise[r]
        rows = Rows((time[r] .- 1) .* n_rows .+ obs[r], obs[r], value[r], flag(.!isnan.(sigma[r])),
            map(s -> isnan(s) ? 1.0 : s, sigma[r]), weight[r], lgam[r],
            findall(k -> k == 0 || k == 1, codes), findall(==(2), codes), findall(==(3), codes), findall(==(4), codes))
        Condition(Src[c, :], 1.0 .- flag(P[c, :]), flag(P[c, :]) .* V[c, :], 1.0 .- flag(YF[c, :]),
            flag(YF[c, :]) .* YV[c, :], max.(YS[c, :], 1), flag(YS[c, :]), rhs, prob, knots(sig, t0, tsv[end]),
            [input_values(sig, t) for t in tsv], rows)
    end
    fixed = flag(y0_fixed)
    kind = Vector{Int}(prior_kind)
    mode in ("wss", "nll") || spec_error("mode must be \"wss\" or \"nll\", got $(repr(mode))")
    return Arrays(base_z, 1.0 .- z_est, z_est, z_pos, flag(scale .== 0), flag(scale .== 1), flag(scale .== 2),
        findall(!=(0), Vector{Int}(is_network)), Float64(l2), 1.0 .- fixed, fixed .* Vector{Float64}(y0_value),
        flag(y0_estimated), tsv, conditions, Vector{Int}(prior_index), findall(==(0), kind), findall(==(1), kind),
        Vector{Float64}(prior_mean), Vector{Float64}(prior_sd), mode == "wss")
end

"""z = [p, y0]: the base vector with the estimated entries taken from theta on their scales."""
function z_of(theta, a::Arrays)
    isempty(theta) && return a.base_z
    # exp of a masked-out entry is exp(0): finite where it is not selected
    lin = a.is_lin .* theta .+ a.is_log .* exp.(a.is_log .* theta) .+ a.is_log10 .* exp10.(a.is_log10 .* theta)
    return a.base_z .* a.z_keep .+ lin[a.z_pos] .* a.z_est
end

"""Observables then states (rows) at every save time (columns), and their noise scales."""
function outputs(m::Model, c::Condition, pc, θ, Y, ts)
    m.n_obs == 0 && return Y, ones(m.n_states)
    sig = vcat(m.sigma(pc), ones(m.n_states))
    O = reduce(hcat, map(k -> m.observe(Y[:, k], θ, ts[k], c.inputs_at[k], m.chains, m.states), eachindex(ts)))
    return vcat(O, Y), sig
end

"""One condition's solve: `(H, sigma, code, t_reached)`; `H` is `nothing` unless code is 0."""
function condition_outputs(m::Model, a::Arrays, c::Condition, p, y0_est, settings, sensealg)
    pc = p[c.p_src] .* c.p_keep .+ c.p_set
    y0 = m.initial(pc)
    y0 = y0 .* a.y0_keep .+ a.y0_set
    y0 = y0 .* (1 .- a.y0_est) .+ y0_est .* a.y0_est
    y0 = y0 .* c.y_keep .+ c.y_set
    y0 = y0 .* (1 .- c.ysrc_use) .+ pc[c.ysrc] .* c.ysrc_use
    θ = theta_of(m, pc)
    kw = isempty(c.tstops) ? (;) : (; tstops = c.tstops)
    kw = sensealg === nothing ? kw : (; kw..., sensealg = sensealg)
    sol = solve(c.prob, settings.alg; u0 = y0, p = θ, saveat = a.ts, reltol = settings.rtol,
        abstol = settings.atol, maxiters = settings.max_steps, kw...)
    code = status(sol, length(a.ts))
    code == CODE_SUCCESS || return nothing, nothing, code, Float64(last(sol.t))
    H, sig = outputs(m, c, pc, θ, Array(sol), a.ts)
    return H, sig, code, a.ts[end]
end

"""Negative log-likelihood of one condition's rows (noise codes as in the JAX engine)."""
function nll(r::Rows, h, σ)
    total = zero(eltype(h))
    g = r.normal
    if !isempty(g)
        res = (r.value[g] .- h[g]) ./ σ[g]
        total += sum(r.weight[g] .* (0.5 .* (LOG2PI .+ 2 .* log.(σ[g])) .+ 0.5 .* abs2.(res)))
    end
    g = r.lognormal
    if !isempty(g)
        ly = log.(r.value[g])
        res = (ly .- log.(h[g])) ./ σ[g]
        total += sum(r.weight[g] .* (0.5 .* (LOG2PI .+ 2 .* log.(σ[g]) .+ 2 .* ly) .+ 0.5 .* abs2.(res)))
    end
    g = r.laplace
    if !isempty(g)
        total += sum(r.weight[g] .* (log.(2 .* σ[g]) .+ abs.(r.value[g] .- h[g]) ./ σ[g]))
    end
    g = r.poisson
    if !isempty(g)
        total += sum(r.weight[g] .* (h[g] .- r.value[g] .* log.(h[g]) .+ r.lgamma[g]))
    end
    return total
end

function condition_term(m::Model, a::Arrays, c::Condition, p, y0_est, settings, sensealg)
    H, sig, code, t_reached = condition_outputs(m, a, c, p, y0_est, settings, sensealg)
    code == CODE_SUCCESS || return (Inf, code, t_reached)
    r = c.rows
    h = H[r.lin]
    σ = r.sigma_given .* r.sigma_data .+ (1 .- r.sigma_given) .* sig[r.obs]
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
    predict(m, a, theta, solver, rtol, atol, max_steps)

`(H, sigma, codes, t_reached, message)`: `H[row, time, condition]` (observables then
states; NaN for a failed condition) and `sigma[row, condition]`.
"""
function predict(m::Model, a::Arrays, theta, solver::AbstractString, rtol, atol, max_steps)
    θv = Vector{Float64}(theta)
    s = settings_of(solver, rtol, atol, max_steps)
    C, rows = length(a.conditions), m.n_obs + m.n_states
    H = fill(NaN, rows, length(a.ts), C)
    S = fill(NaN, rows, C)
    codes, t_reached = zeros(Int, C), fill(NaN, C)
    try
        z = z_of(θv, a)
        p, y0_est = z[1:m.n_params], z[(m.n_params + 1):end]
        for (k, c) in enumerate(a.conditions)
            h, sig, codes[k], t_reached[k] = condition_outputs(m, a, c, p, y0_est, s, nothing)
            if h !== nothing
                H[:, :, k] = h
                S[:, k] = sig
            end
        end
        return (H, S, codes, t_reached, "")
    catch err
        err isa InterruptException && rethrow()
        return (H, S, fill(CODE_EXCEPTION, C), t_reached, sprint(showerror, err))
    end
end
