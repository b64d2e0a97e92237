# The compiled model: generated functions, Lux chains, the ComponentArray layout of θ.

const FORMAT = "pyude-julia-spec/1"

const ACTIVATIONS = Dict{String, Any}(
    "tanh" => tanh,
    "relu" => Lux.relu,
    "softplus" => Lux.softplus,
    "sigmoid" => Lux.sigmoid,
    "gelu" => Lux.gelu,  # NNlib's gelu: the tanh approximation, as the JAX engine
    "identity" => identity,
)

"""An input signal u(t) given at knots (docs/spec.md "Inputs"); the end values hold outside."""
struct Signal
    times::Vector{Float64}
    values::Vector{Float64}
    m::Vector{Float64}  # natural cubic spline second derivatives (from Python), else zeros
    kind::Symbol        # :linear, :zoh or :cubic
end

constant_signal(v) = Signal([0.0], [Float64(v)], [0.0], :zoh)

function (s::Signal)(t)
    n = length(s.times)
    n == 1 && return s.values[1]
    if s.kind === :linear
        t <= s.times[1] && return s.values[1]
        t >= s.times[n] && return s.values[n]
        i = searchsortedlast(s.times, t)
        w = (t - s.times[i]) / (s.times[i + 1] - s.times[i])
        return s.values[i] + w * (s.values[i + 1] - s.values[i])
    elseif s.kind === :zoh
        return s.values[clamp(searchsortedlast(s.times, t), 1, n)]
    end
    tc = clamp(t, s.times[1], s.times[n])
    i = clamp(searchsortedlast(s.times, tc), 1, n - 1)
    h = s.times[i + 1] - s.times[i]
    a = (s.times[i + 1] - tc) / h
    b = 1 - a
    return a * s.values[i] + b * s.values[i + 1] + ((a^3 - a) * s.m[i] + (b^3 - b) * s.m[i + 1]) * h^2 / 6
end

"""
A model compiled from the spec. `rhs!(du, u, θ, t, inp, chains, states)`,
`observe(u, θ, t, inp, chains, states)` (declared observables), `initial(p)`,
`sigma(u, θ, t, inp, chains, states)` (their noise scales), `switches(p, t)` and `assign(p, θ, chains, states)` (the spec's assignments,
`nothing` without) are RuntimeGeneratedFunctions; `p` is the flat vector in the spec's
layout, `θ = ComponentArray(p[perm], axes)` the same numbers as the ODE parameter.
`events` holds the spec's events (events.jl).
"""
struct Model{R, O, I, S, W, C, T, A, P, E}
    name::String
    n_states::Int
    n_params::Int
    n_obs::Int
    rhs!::R
    observe::O
    initial::I
    sigma::S
    switches::W  # d(p, t) = a - b of every comparison cmp(a, b) of t in the right-hand side
    chains::C   # Tuple of Lux.Chain or GraphNet
    states::T   # Tuple of their Lux states (empty for Dense layers)
    axes::A     # getaxes of θ
    perm::Vector{Int}
    inputs::Vector{Signal}
    assign::P
    events::E
end

theta_of(m::Model, p::AbstractVector) = ComponentArray(p[m.perm], m.axes)

"""The ODE right-hand side `f!(du, u, θ, t)` for one set of input signals."""
struct RHS{M <: Model}
    model::M
    inputs::Vector{Signal}
end

# typed by t: a stiff solver's time derivative (OrdinaryDiffEq's `calc_tderivative!`) calls
# the right-hand side with a ForwardDiff.Dual t, which a Float64 vector could not hold
input_values(signals::Vector{Signal}, t) = typeof(float(t))[s(t) for s in signals]

function (f::RHS)(du, u, θ, t)
    m = f.model
    m.rhs!(du, u, θ, t, input_values(f.inputs, t), m.chains, m.states)
    return nothing
end

function build_chain(net)
    layers = map(net["layers"]) do l
        act = l["activation"]
        haskey(ACTIVATIONS, act) || spec_error("unknown activation $(repr(act))")
        Lux.Dense(Int(l["in"]) => Int(l["out"]), ACTIVATIONS[act]; use_bias = Bool(l["bias"]))
    end
    return Lux.Chain(layers...)
end

"""Network k of the spec JSON: a Lux `Chain` (multilayer perceptron) or a `GraphNet` (graph.jl)."""
build_network(net) = get(net, "kind", "mlp") == "graph" ? build_graph(net) : build_chain(net)

# θ.net_k: Lux's parameters of a chain; a graph network's block as it is (row-major, graph.jl)
net_parameters(c) = first(Lux.setup(Xoshiro(0), c))
net_parameters(g::GraphNet) = zeros(g.n_params)
net_state(c) = last(Lux.setup(Xoshiro(0), c))
net_state(::GraphNet) = NamedTuple()

"""θ's layout: `mech` (the mechanistic parameters) then `net_k` (network k's parameters)."""
function theta_prototype(n_mech::Int, chains)
    names = Symbol[]
    values = Any[]
    if n_mech > 0
        push!(names, :mech)
        push!(values, zeros(n_mech))
    end
    for (k, chain) in enumerate(chains)
        push!(names, Symbol("net_", k))
        push!(values, net_parameters(chain))
    end
    return ComponentArray{Float64}(NamedTuple{Tuple(names)}(Tuple(values)))
end

"""
    compile_model(json::AbstractString) -> Model

Read the spec JSON written by `pyude.engines.julia.julia_spec` and compile it.
"""
function compile_model(json::AbstractString)
    spec = JSON.parse(json; dicttype = Dict{String, Any})
    get(spec, "format", nothing) == FORMAT || spec_error("expected format $(repr(FORMAT)), got $(repr(get(spec, "format", nothing)))")
    states = String.(spec["states"])
    params = String.(spec["parameters"])
    input_names = String[u["name"] for u in spec["inputs"]]
    n, n_mech, n_params = length(states), length(params), Int(spec["n_params"])
    n_params > 0 || spec_error("the Julia engine needs at least one parameter")

    chains = Tuple(build_network(net) for net in spec["networks"])
    lux_states = Tuple(net_state(c) for c in chains)
    proto = theta_prototype(n_mech, chains)
    perm = Vector{Int}(spec["julia_layout"])
    length(proto) == n_params || spec_error("θ has $(length(proto)) entries, the spec's layout $n_params")
    sort(perm) == 1:n_params || spec_error("julia_layout is not a permutation of 1:$n_params")

    networks = Dict{String, Tuple{Int, Int, Int}}(
        net["name"] => (k, Int(net["inputs"]), Int(net["outputs"])) for (k, net) in enumerate(spec["networks"]))
    # the right-hand side and observables read states, parameters (through θ), inputs and t
    dynamic = Dict{String, Any}("t" => :t)
    for (i, s) in enumerate(states)
        dynamic[s] = Expr(:ref, :u, i)
    end
    for (j, p) in enumerate(params)
        dynamic[p] = Expr(:ref, Expr(:., :θ, QuoteNode(:mech)), j)
    end
    for (k, name) in enumerate(input_names)
        dynamic[name] = Expr(:ref, :inp, k)
    end
    # initial values read parameters only, from the flat vector p
    static = Dict{String, Any}(p => Expr(:ref, :p, j) for (j, p) in enumerate(params))

    rhs = Emitter(dynamic, networks)
    if spec["rhs"]["kind"] == "equations"
        eqs = spec["rhs"]["equations"]
        length(eqs) == n || spec_error("expected $n equations, got $(length(eqs))")
        for (i, eq) in enumerate(eqs)
            value = emit(rhs, eq)
            push!(rhs.body, Expr(:(=), Expr(:ref, :du, i), value))
        end
    elseif spec["rhs"]["kind"] == "reactions"
        S = spec["rhs"]["stoichiometry"]  # n rows of one coefficient per reaction
        rates, reverse = spec["rhs"]["rates"], spec["rhs"]["reverse_rates"]
        length(S) == n && all(length(row) == length(rates) for row in S) || spec_error("stoichiometry must be $n × $(length(rates))")
        for (j, rate) in enumerate(rates)
            forward = emit(rhs, rate)
            value = reverse[j] === nothing ? forward : Expr(:call, GlobalRef(Base, :-), forward, emit(rhs, reverse[j]))
            push!(rhs.body, Expr(:local, Expr(:(=), Symbol("rate_", j), value)))
        end
        for i in 1:n
            terms = Any[Expr(:call, GlobalRef(Base, :*), Float64(c), Symbol("rate_", j)) for (j, c) in enumerate(S[i]) if c != 0]
            value = isempty(terms) ? :(zero(eltype(du))) : length(terms) == 1 ? only(terms) : Expr(:call, GlobalRef(Base, :+), terms...)
            push!(rhs.body, Expr(:(=), Expr(:ref, :du, i), value))
        end
    else
        spec_error("rhs.kind must be \"equations\" or \"reactions\"")
    end
    rhs! = make_function([:du, :u, :θ, :t, :inp, :chains, :states], rhs.body, :nothing)

    obs = Emitter(dynamic, networks)
    obs_values = Any[emit(obs, o["formula"]) for o in spec["observables"]]
    observe = make_function([:u, :θ, :t, :inp, :chains, :states], obs.body, Expr(:vect, obs_values...))

    init = Emitter(static, Dict{String, Tuple{Int, Int, Int}}())
    y0 = Any[x === nothing ? :(zero(eltype(p))) : emit(init, x) for x in spec["initial"]]
    length(y0) == n || spec_error("expected $n initial values, got $(length(y0))")
    initial = make_function([:p], init.body, Expr(:vect, y0...))

    # noise scales read what observables read (an absolute plus relative error reads a state)
    sig = Emitter(dynamic, networks)
    sigmas = Any[o["sigma"] === nothing ? :(one(eltype(u))) : emit(sig, o["sigma"]) for o in spec["observables"]]
    sigma = make_function([:u, :θ, :t, :inp, :chains, :states], sig.body, Expr(:vect, sigmas...))

    # d(p, t) is affine in t (checked on the Python side, pyude.engines.jax._compile._time_switches)
    sw = Emitter(merge(static, Dict{String, Any}("t" => :t)), Dict{String, Tuple{Int, Int, Int}}())
    ds = Any[emit(sw, d) for d in spec["switches"]]
    switches = make_function([:p, :t], sw.body, Expr(:vect, ds...))

    kinds = Symbol[Symbol(u["interpolation"]) for u in spec["inputs"]]
    all(in((:linear, :zoh, :cubic)), kinds) || spec_error("input interpolation must be linear, zoh or cubic")
    inputs = Signal[Signal(Float64[], Float64[], Float64[], kind) for kind in kinds]
    # assignments read parameters (and network weights through θ); events what the right-hand side reads
    assign = compile_assignments(spec, params, networks)
    events = compile_events(spec, dynamic, networks, states)
    return Model(String(spec["name"]), n, n_params, length(obs_values), rhs!, observe, initial, sigma,
        switches, chains, lux_states, getaxes(proto), perm, inputs, assign, events)
end

"""The input signals from flat knot data (`len[k]` knots of input k, concatenated)."""
function signals(m::Model, times, values, ms, len)
    out = Signal[]
    start = 1
    for (k, l) in enumerate(Vector{Int}(len))
        r = start:(start + l - 1)
        push!(out, Signal(Vector{Float64}(times[r]), Vector{Float64}(values[r]), Vector{Float64}(ms[r]), m.inputs[k].kind))
        start += l
    end
    length(out) == length(m.inputs) || spec_error("got $(length(out)) input signals, the model has $(length(m.inputs))")
    return out
end

"""
The times where the right-hand side switches for parameters `p`: the root
`τ = -d(0) / (d(1) - d(0))` of each affine `d(p, t)` (none where d does not move with t),
as the JAX engine's `breakpoints`.
"""
function switch_times(m::Model, p)
    d0, d1 = m.switches(p, 0.0), m.switches(p, 1.0)
    return Float64[-a / (b - a) for (a, b) in zip(d0, d1) if b != a && isfinite(-a / (b - a))]
end

"""Input knots, switch times and the times in `extra` (timed events) strictly inside (t0, t1):
the solver must step onto them, not over them."""
function stops(m::Model, signals::Vector{Signal}, p, t0, t1, extra = Float64[])
    ts = vcat(Float64[t for s in signals for t in s.times], switch_times(m, p), extra)
    return sort!(unique!(filter(t -> t0 < t < t1, ts)))
end
