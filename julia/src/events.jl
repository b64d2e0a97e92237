# The spec's assignments (docs/spec.md "Assignments") and events (docs/spec.md "Events"),
# with the semantics of the JAX engine: pyude/engines/jax/_compile.py (`assignments`) and
# pyude/engines/jax/_events.py.

"""
    compile_assignments(spec, params, networks) -> assign or nothing

`assign(p, θ, chains, states)`: the flat parameter vector `p` with the spec's assignments
applied in order, each reading the parameters and the targets assigned before it (JAX
`CompiledModel.assign`); `θ` carries the network weights. Targets are mechanistic
parameters, `p[1:n_mech]`. `nothing` for a spec without assignments.
"""
function compile_assignments(spec, params::Vector{String}, networks)
    entries = spec["assignments"]
    isempty(entries) && return nothing
    symbols = Dict{String, Any}(p => Expr(:ref, :p, j) for (j, p) in enumerate(params))
    e = Emitter(symbols, networks)
    mech = Any[Expr(:ref, :p, j) for j in eachindex(params)]
    for (k, a) in enumerate(entries)
        j = findfirst(==(a["name"]), params)
        j === nothing && spec_error("assignment target $(repr(a["name"])) is not a parameter")
        name = Symbol("assigned_", k)
        push!(e.body, Expr(:local, Expr(:(=), name, emit(e, a["value"]))))
        symbols[a["name"]] = name  # the Emitter reads this Dict: later assignments see the new value
        mech[j] = name
    end
    n = length(params)
    result = :($(GlobalRef(Base, :vcat))($(Expr(:vect, mech...)), p[$(n + 1):end]))
    return make_function([:p, :θ, :chains, :states], e.body, result)
end

"""`p` with the spec's assignments applied (once per condition, before the solve)."""
assigned(m, p) = m.assign === nothing ? p : m.assign(p, theta_of(m, p), m.chains, m.states)

"""
The spec's events compiled. Per event j: `g[j](u, θ, t, inp, chains, states)`, the trigger
function (the trigger holds where g > 0, or g ≥ 0 unless `strict[j]`; the event fires where
g crosses zero upwards), and `assign[j](u, θ, t, inp, chains, states)`, the new values of its
target states `targets[j]` computed from the state before the event. `timed` are the events
the Python side classified as time-triggered (g affine in t, otherwise parameters only: JAX
`time_triggered`), `state` the others.
"""
struct Events{G, A}
    g::G
    assign::A
    targets::Vector{Vector{Int}}
    strict::Vector{Bool}
    initially::Vector{Bool}  # initial_value false: fires at t0 where the trigger holds there
    timed::Vector{Int}
    state::Vector{Int}
end

function compile_events(spec, dynamic::Dict{String, Any}, networks, states::Vector{String})
    raw = spec["events"]
    args = [:u, :θ, :t, :inp, :chains, :states]
    gs, as, targets = Any[], Any[], Vector{Int}[]
    for ev in raw
        e = Emitter(dynamic, networks)
        g = emit(e, ev["g"])
        push!(gs, make_function(args, e.body, g))
        e = Emitter(dynamic, networks)
        values = Any[emit(e, a["value"]) for a in ev["assignments"]]
        push!(as, make_function(args, e.body, Expr(:vect, values...)))
        idx = Int[something(findfirst(==(a["state"]), states), 0) for a in ev["assignments"]]
        all(>(0), idx) || spec_error("an event assigns a name that is not a state")
        push!(targets, idx)
    end
    timed = Int[j for (j, ev) in enumerate(raw) if ev["timed"]]
    return Events(Tuple(gs), Tuple(as), targets, Bool[ev["strict"] for ev in raw],
        Bool[ev["fires_initially"] for ev in raw], timed, setdiff(1:length(raw), timed))
end

has_events(m) = !isempty(m.events.strict)

# SciMLSensitivity's adjoint replays an affect (and differentiates a condition) on a
# `FakeIntegrator(u, p, t, tprev)` whose `p` may be a plain vector (`[x for x in p]` for
# ReverseDiffVJP: `get_FakeIntegrator`, SciMLSensitivity src/callback_tracking.jl): the same
# numbers as θ's data, so they are viewed through θ's axes again
theta_view(m, p) = p isa ComponentArray ? p : ComponentArray(p, m.axes)

trigger(m, j, u, θ, t, inp) = m.events.g[j](u, θ, t, inp, m.chains, m.states)

function holds(m, j, u, θ, t, inp)
    g = trigger(m, j, u, θ, t, inp)
    return m.events.strict[j] ? g > 0 : g >= 0
end

"""
The firing time of each timed event at θ: g is affine in t, so it crosses zero upwards at
`-g(0) / (g(1) - g(0))` where its slope is positive; `Inf` (never) otherwise (JAX
`CompiledEvents.times`). g reads parameters and t only, so no state or input is passed.
"""
function event_times(m, θ)
    return Float64[begin
        d0 = trigger(m, j, nothing, θ, 0.0, nothing)
        slope = trigger(m, j, nothing, θ, 1.0, nothing) - d0
        slope > 0 ? -d0 / slope : Inf
    end for j in m.events.timed]
end

"""For each state, `(k, l)`: value l of the k-th of the firing events `js` that sets it last, or `(0, 0)`."""
function sources(ev::Events, js::Vector{Int}, n::Int)
    src = fill((0, 0), n)
    for (k, j) in enumerate(js), (l, i) in enumerate(ev.targets[j])
        src[i] = (k, l)
    end
    return src
end

"""
`u` after the events `js` (spec order) fire at time t: every assignment is evaluated at `u`,
the state before, then they apply together, a later event winning on a common target (JAX
`CompiledEvents.assign`). No mutation: Zygote differentiates it at t0.
"""
function fired(m, js::Vector{Int}, u, θ, t, inp)
    isempty(js) && return u
    vals = map(j -> m.events.assign[j](u, θ, t, inp, m.chains, m.states), js)
    src = Zygote.ignore_derivatives(() -> sources(m.events, js, length(u)))
    return [src[i][1] == 0 ? u[i] : vals[src[i][1]][src[i][2]] for i in eachindex(u)]
end

"""
The state at t0 after the events that fire there (JAX `solve_with_events`): those whose
trigger holds at t0 and whose `initial_value` is false, then the strict (gt/lt) timed events
whose time is t0 (their trigger turns true just after t0), each group evaluated at the state
before it. A trigger that holds at t0 otherwise must turn false before its event can fire.
"""
function initial_events(m, y0, θ, t0, inp0, taus)
    ev = m.events
    js = Zygote.ignore_derivatives(() -> Int[j for j in eachindex(ev.strict) if ev.initially[j] && holds(m, j, y0, θ, t0, inp0)])
    y = fired(m, js, y0, θ, t0, inp0)
    ks = Zygote.ignore_derivatives(() -> Int[j for (j, τ) in zip(ev.timed, taus) if τ == t0 && ev.strict[j]])
    return fired(m, ks, y, θ, t0, inp0)
end

"""`affect!` of the events `js`: reads `integrator.u`, `.p` and `.t` only and writes `u` in
place, as SciMLSensitivity's `FakeIntegrator` allows (no `u_modified!`: DiffEqBase's
`apply_callback!`/`apply_discrete_callback!` mark the state modified before calling it)."""
struct EventAffect{M}
    model::M
    js::Vector{Int}
    signals::Vector{Signal}
end

function (a::EventAffect)(integrator)
    m, t = a.model, integrator.t
    integrator.u .= fired(m, a.js, integrator.u, theta_view(m, integrator.p), t, input_values(a.signals, t))
    return nothing
end

"""`condition(u, t, integrator)` of a state-triggered event: its g (a `ContinuousCallback` fires at roots)."""
struct EventCondition{M}
    model::M
    j::Int
    signals::Vector{Signal}
end

(c::EventCondition)(u, t, integrator) =
    trigger(c.model, c.j, u, theta_view(c.model, integrator.p), t, input_values(c.signals, t))

"""`condition(u, t, integrator)` of timed events: true at their time, which is a `tstop`
(OrdinaryDiffEq steps onto a tstop exactly, as DiffEqCallbacks' `PresetTimeCallback` relies on)."""
struct AtTime
    τ::Float64
end

(c::AtTime)(u, t, integrator) = t == c.τ

"""
The solve's event callbacks: a `ContinuousCallback` per state-triggered event, firing at
upward zero crossings of g only (`ContinuousCallback(condition, affect!, nothing)`: SciMLBase
src/callbacks.jl, "pass `nothing` as the `affect_neg!` argument if it should only be called
at upcrossings"), and a `DiscreteCallback` per distinct timed-event time in (t0, t1] firing
every event of that time together. Both keep SciMLBase's default `save_positions = (true,
true)`: the state before and after each event is saved, the setting SciMLSensitivity's
callback tests differentiate with a save time at the event (test/callbacks/
discrete_callbacks.jl); `saved_columns` picks the save times.
"""
function event_callbacks(m, sig::Vector{Signal}, taus::Vector{Float64}, t0, t1)
    ev = m.events
    continuous = [ContinuousCallback(EventCondition(m, j, sig), EventAffect(m, [j], sig), nothing) for j in ev.state]
    times = sort!(unique!(filter(τ -> t0 < τ <= t1, taus)))
    discrete = [DiscreteCallback(AtTime(τ), EventAffect(m, Int[j for (j, s) in zip(ev.timed, taus) if s == τ], sig))
                for τ in times]
    return CallbackSet(continuous..., discrete...)
end

"""
The columns of `sol` at the save times `ts`, or `nothing` if one is missing. An event saves
the state before and after it; at a save time equal to an event time the later column (after
the event) is taken, as the JAX engine reports.
"""
function saved_columns(sol, ts)
    idx = [findlast(==(t), sol.t) for t in ts]
    return any(isnothing, idx) ? nothing : Vector{Int}(idx)
end
