# Solver and sensitivity names shared with the Python side (pyude/engines/julia/_names.py).

# pyude name => OrdinaryDiffEq algorithm; must equal the keys of JULIA_SOLVERS on the Python side
const SOLVERS = Dict{String, Any}(
    "Tsit5" => Tsit5,
    "Dopri5" => DP5,
    "Dopri8" => DP8,
    "Rodas5P" => Rodas5P,
    "Rosenbrock23" => Rosenbrock23,
    "Kvaerno5" => Kvaerno5,
    "KenCarp4" => KenCarp4,
    "FBDF" => FBDF,
    "QNDF" => QNDF,
)

"""The algorithm for a pyude solver name; `"auto"` switches between Tsit5 and Rodas5P on stiffness."""
function algorithm(name::AbstractString)
    name == "auto" && return AutoTsit5(Rodas5P())
    haskey(SOLVERS, name) || throw(ArgumentError("unknown solver $(repr(name)); known: auto, $(join(sort!(collect(keys(SOLVERS))), ", "))"))
    return SOLVERS[name]()
end

# the vector-Jacobian product inside the adjoint ODE (SciMLSensitivity's `autojacvec`).
# The default (pyude/engines/julia/_names.py) is ReverseDiffVJP() with an uncompiled tape:
# the in-place Lux UDE recipe of SciML's "missing physics" showcase uses
# `autojacvec = ReverseDiffVJP(true)`, PEtab.jl's adjoint docs call ReverseDiffVJP(true)
# "currently the most stable option"; compiled (true) only for code without branches
# (SciMLSensitivity src/concrete_solve.jl `inplace_vjp` checks `hasbranching` first), and
# the generated code branches in min/max/abs/softplus/piecewise. Enzyme on the generated
# right-hand side with a Lux chain and a ComponentArray was never run: selectable only.
const VJPS = Dict{String, Any}(
    "enzyme" => EnzymeVJP,
    "reversediff" => ReverseDiffVJP,
    "zygote" => ZygoteVJP,
)

"""SciMLSensitivity's `sensealg` for a pyude sensitivity name (docs/engines.md)."""
function sensitivity(name::AbstractString, vjp::AbstractString)
    name == "forward" && return ForwardDiffSensitivity()
    haskey(VJPS, vjp) || throw(ArgumentError("unknown VJP $(repr(vjp)); known: $(join(sort!(collect(keys(VJPS))), ", "))"))
    name == "adjoint" && return GaussAdjoint(autojacvec = VJPS[vjp]())
    name == "checkpoint" && return InterpolatingAdjoint(autojacvec = VJPS[vjp](), checkpointing = true)
    throw(ArgumentError("unknown sensitivity $(repr(name)); known: adjoint, checkpoint, forward"))
end

# result codes read by pyude.engines.julia._engine.CODES
const CODE_SUCCESS = 0
const CODE_MAXITERS = 1
const CODE_DTMIN = 2
const CODE_NONFINITE = 3
const CODE_FAILED = 4
const CODE_EXCEPTION = 5
const CODE_INCOMPLETE = 6
const CODE_NO_STEADY_STATE = 7

"""0 when `sol` succeeded and saved all `n_saved` times, else why not."""
status(sol, n_saved::Int) = status(sol, length(sol.t) == n_saved)

"""0 when `sol` succeeded and `complete` (every save time is there), else why not."""
function status(sol, complete::Bool)
    if SciMLBase.successful_retcode(sol)
        return complete ? CODE_SUCCESS : CODE_INCOMPLETE
    end
    rc = sol.retcode
    rc == ReturnCode.MaxIters && return CODE_MAXITERS
    rc == ReturnCode.DtLessThanMin && return CODE_DTMIN
    (rc == ReturnCode.Unstable || rc == ReturnCode.DtNaN) && return CODE_NONFINITE
    return CODE_FAILED
end

stop_kw(ts) = isempty(ts) ? (;) : (; tstops = ts)
sense_kw(sensealg) = sensealg === nothing ? (;) : (; sensealg = sensealg)
callback_kw(cb) = cb === nothing ? (;) : (; callback = cb)

"""
`(Y, code, t_reached, sol)`: one solve of `prob` from `y0` at `t0`, saved at `ts` (`Y` the
states × times, `nothing` unless `code` is 0), with the model's events: those firing at t0
change `y0` first, the others are callbacks (events.jl). Input knots, switch times and
timed-event times are `tstops`. `p` is the flat parameter vector (assignments applied), `θ`
the same numbers as a ComponentArray; `s` the solver settings; `sensealg` `nothing` for values only.
"""
function trajectory(m::Model, prob, sig::Vector{Signal}, y0, p, θ, t0, ts, s, sensealg)
    t1 = ts[end]
    events = has_events(m)
    taus = events ? Zygote.ignore_derivatives(() -> event_times(m, θ)) : Float64[]
    y0 = events ? initial_events(m, y0, θ, t0, input_values(sig, t0), taus) : y0
    ts_stop, cb = Zygote.ignore_derivatives() do
        stops(m, sig, p, t0, t1, taus), events ? event_callbacks(m, sig, taus, t0, t1) : nothing
    end
    sol = solve(prob, s.alg; u0 = y0, p = θ, saveat = ts, reltol = s.rtol, abstol = s.atol, maxiters = s.max_steps,
        stop_kw(ts_stop)..., callback_kw(cb)..., sense_kw(sensealg)...)
    if events  # events add saved points: the save times are picked from sol.t
        idx = Zygote.ignore_derivatives(() -> saved_columns(sol, ts))
        code = status(sol, idx !== nothing)
        code == CODE_SUCCESS || return nothing, code, Float64(last(sol.t)), sol
        return Array(sol)[:, idx], code, Float64(t1), sol
    end
    code = status(sol, length(ts))
    code == CODE_SUCCESS || return nothing, code, Float64(last(sol.t)), sol
    return Array(sol), code, Float64(t1), sol
end

"""
    solve_model(m, ts, t0, y0, p, u_times, u_values, u_m, u_len, solver, rtol, atol, max_steps)

One solve saved at `ts`: `(Y, code, retcode, t_reached, naccept, nreject, nf, njacs)`
with `Y` the `n_states × length(ts)` trajectory (empty unless `code == 0`). `p` arrives with
the spec's assignments applied (`pyude.solve` applies them on the host, as for `y0`).
"""
function solve_model(m::Model, ts, t0, y0, p, u_times, u_values, u_m, u_len, solver::AbstractString,
        rtol::Real, atol::Real, max_steps::Integer)
    tsv = Vector{Float64}(ts)
    t0 = Float64(t0)
    sig = signals(m, u_times, u_values, u_m, u_len)
    pv = Vector{Float64}(p)
    θ = theta_of(m, pv)
    prob = ODEProblem{true, SciMLBase.FullSpecialize}(RHS(m, sig), Vector{Float64}(y0), (t0, tsv[end]), θ)
    s = settings_of(solver, rtol, atol, max_steps)
    Y, code, t_reached, sol = trajectory(m, prob, sig, Vector{Float64}(y0), pv, θ, t0, tsv, s, nothing)
    st = sol.stats
    return (Y === nothing ? zeros(m.n_states, 0) : Y, code, String(Symbol(sol.retcode)), t_reached, st.naccept,
        st.nreject, st.nf, st.njacs)
end

# how long a preequilibration may run before it counts as failed (as the JAX engine)
const STEADY_STATE_HORIZON = 1e9

rms(x) = sqrt(sum(abs2, x) / length(x))

"""
Stops the solve where `rms(f(u)) < atol + rtol * rms(u)`: diffrax's `steady_state_event`
with the step-size controller's tolerances and rms norm, as the JAX engine's
preequilibration. `DiscreteCallback(condition, terminate!)` is checked after every step;
`terminate!` sets `ReturnCode.Terminated` (SciMLBase).
"""
function steady_callback(atol, rtol)
    function condition(u, t, integrator)
        du = similar(u)
        integrator.f(du, u, integrator.p, t)
        return rms(du) < atol + rtol * rms(u)
    end
    return DiscreteCallback(condition, terminate!; save_positions = (false, false))
end

"""`(T, y, code)`: where (and in which state) the solve from `u0` at `prob.tspan[1]` becomes steady."""
function steady_time(prob, u0, θ, s, tstops)
    sol = solve(prob, s.alg; u0 = u0, p = θ, callback = steady_callback(s.atol, s.rtol), save_everystep = false,
        save_start = false, save_end = true, reltol = s.rtol, abstol = s.atol, maxiters = s.max_steps,
        (isempty(tstops) ? (;) : (; tstops = tstops))...)
    sol.retcode == ReturnCode.Terminated && return Float64(last(sol.t)), Vector{Float64}(sol.u[end]), CODE_SUCCESS
    code = status(sol, length(sol.t))
    # a successful solve that ran to the horizon never became steady
    return NaN, Vector{Float64}(u0), code == CODE_SUCCESS ? CODE_NO_STEADY_STATE : code
end
