# Expression trees of the spec -> Julia `Expr`.
#
# A tree node is a JSON object with exactly one kind key: {"num": v}, {"sym": name},
# {"op": "+"|"-"|"*"|"/"|"^"|"neg", "args": [...]}, {"call": fn, "args": [...]} or
# {"net": name, "index": i, "args": [...]} (docs/spec.md). Only these kinds, the
# operators and the functions below become code; a name becomes an indexing
# expression (`u[i]`, `θ.mech[j]`, ...), so no string of the spec is ever code.

sigmoid(x) = one(x) / (one(x) + exp(-x))
softplus(x) = x > zero(x) ? x + log1p(exp(-x)) : log1p(exp(x))
pow(a, b) = a^b
hill(x, K, n) = x^n / (K^n + x^n)
# comparisons and logic give 1.0 or 0.0 (no derivative); a value is true where it is non-zero
truth(x) = !iszero(x)
lt(a, b) = Float64(a < b)
le(a, b) = Float64(a <= b)
gt(a, b) = Float64(a > b)
ge(a, b) = Float64(a >= b)
eq(a, b) = Float64(a == b)
ne(a, b) = Float64(a != b)
not(x) = Float64(iszero(x))
and(xs...) = Float64(all(truth, xs))
or(xs...) = Float64(any(truth, xs))

# name in the spec => (function, number of arguments); must equal pyude.spec._expr.FUNCTIONS
# (checked in tests/test_julia_offline.py)
const FUNCTIONS = Dict{String, Tuple{GlobalRef, Int}}(
    "exp" => (GlobalRef(Base, :exp), 1),
    "log" => (GlobalRef(Base, :log), 1),
    "log10" => (GlobalRef(Base, :log10), 1),
    "sqrt" => (GlobalRef(Base, :sqrt), 1),
    "abs" => (GlobalRef(Base, :abs), 1),
    "sin" => (GlobalRef(Base, :sin), 1),
    "cos" => (GlobalRef(Base, :cos), 1),
    "tan" => (GlobalRef(Base, :tan), 1),
    "tanh" => (GlobalRef(Base, :tanh), 1),
    "sinh" => (GlobalRef(Base, :sinh), 1),
    "cosh" => (GlobalRef(Base, :cosh), 1),
    "sigmoid" => (GlobalRef(@__MODULE__, :sigmoid), 1),
    "softplus" => (GlobalRef(@__MODULE__, :softplus), 1),
    "min" => (GlobalRef(Base, :min), 2),
    "max" => (GlobalRef(Base, :max), 2),
    "pow" => (GlobalRef(@__MODULE__, :pow), 2),
    "hill" => (GlobalRef(@__MODULE__, :hill), 3),
    "lt" => (GlobalRef(@__MODULE__, :lt), 2),
    "le" => (GlobalRef(@__MODULE__, :le), 2),
    "gt" => (GlobalRef(@__MODULE__, :gt), 2),
    "ge" => (GlobalRef(@__MODULE__, :ge), 2),
    "eq" => (GlobalRef(@__MODULE__, :eq), 2),
    "ne" => (GlobalRef(@__MODULE__, :ne), 2),
    "not" => (GlobalRef(@__MODULE__, :not), 1),
    "floor" => (GlobalRef(Base, :floor), 1),
    "ceil" => (GlobalRef(Base, :ceil), 1),
    "asin" => (GlobalRef(Base, :asin), 1),
    "acos" => (GlobalRef(Base, :acos), 1),
    "atan" => (GlobalRef(Base, :atan), 1),
)

# functions of any number of arguments => the least number; must equal pyude.spec._expr.VARIADIC
const VARIADIC = Dict{String, Int}(
    "piecewise" => 1,
    "and" => 1,
    "or" => 1,
)

const OPERATORS = Dict{String, Tuple{GlobalRef, Int}}(
    "+" => (GlobalRef(Base, :+), 2),
    "-" => (GlobalRef(Base, :-), 2),
    "*" => (GlobalRef(Base, :*), 2),
    "/" => (GlobalRef(Base, :/), 2),
    "^" => (GlobalRef(Base, :^), 2),
    "neg" => (GlobalRef(Base, :-), 1),
)

const NODE_KINDS = ("num", "sym", "op", "call", "net")

"""
    Emitter(symbols, networks)

Turns trees into `Expr`s. `symbols` maps a spec name to the expression that reads it;
`networks` maps a network name to `(position, inputs, outputs)`. A network call is
evaluated once per distinct call: its output vector is bound to a fresh local in
`body` (before the statement that uses it) and read by index.
"""
struct Emitter
    symbols::Dict{String, Any}
    networks::Dict{String, Tuple{Int, Int, Int}}
    body::Vector{Any}
    calls::Dict{Any, Symbol}
end
Emitter(symbols, networks) = Emitter(symbols, networks, Any[], Dict{Any, Symbol}())

spec_error(msg) = throw(ArgumentError("PyUDE spec: " * msg))

function node_kind(node)
    node isa AbstractDict || spec_error("expression node must be an object, got $(typeof(node))")
    kinds = [k for k in NODE_KINDS if haskey(node, k)]
    length(kinds) == 1 || spec_error("expression node needs exactly one of $(NODE_KINDS), got keys $(collect(keys(node)))")
    return only(kinds)
end

function emit_args(e::Emitter, node, n::Int, what)
    args = node["args"]
    args isa AbstractVector && length(args) == n || spec_error("$what takes $n argument(s)")
    return Any[emit(e, a) for a in args]
end

"""The `Expr` (or number/symbol) computing `node`; may push network-call bindings to `e.body`."""
function emit(e::Emitter, node)
    kind = node_kind(node)
    if kind == "num"
        v = node["num"]
        v isa Real && !(v isa Bool) && isfinite(v) || spec_error("number node must be finite, got $(repr(v))")
        return Float64(v)
    elseif kind == "sym"
        name = node["sym"]
        haskey(e.symbols, name) || spec_error("unknown symbol $(repr(name))")
        return e.symbols[name]
    elseif kind == "op"
        op = node["op"]
        haskey(OPERATORS, op) || spec_error("unknown operator $(repr(op))")
        f, n = OPERATORS[op]
        args = emit_args(e, node, n, "operator $(repr(op))")
        if op == "^" && args[2] isa Float64 && isinteger(args[2]) && 0 <= args[2] <= 4
            args[2] = Int(args[2])  # small integer powers as products (as the JAX engine)
        end
        return Expr(:call, f, args...)
    elseif kind == "call"
        fn = node["call"]
        haskey(VARIADIC, fn) && return emit_variadic(e, node, fn)
        haskey(FUNCTIONS, fn) || spec_error("unknown function $(repr(fn))")
        f, n = FUNCTIONS[fn]
        return Expr(:call, f, emit_args(e, node, n, "function $(repr(fn))")...)
    else
        name = node["net"]
        haskey(e.networks, name) || spec_error("unknown network $(repr(name))")
        k, n_in, n_out = e.networks[name]
        index = node["index"]
        index isa Integer && 0 <= index < n_out || spec_error("output index $(repr(index)) of network $(repr(name))")
        args = emit_args(e, node, n_in, "network $(repr(name))")
        key = (k, args)
        out = get(e.calls, key, nothing)
        if out === nothing
            out = Symbol("net_out_", length(e.calls) + 1)
            e.calls[key] = out
            call = Expr(:call, GlobalRef(@__MODULE__, :netcall), Expr(:ref, :chains, k),
                Expr(:., :θ, QuoteNode(Symbol("net_", k))), Expr(:ref, :states, k), Expr(:vect, args...))
            push!(e.body, Expr(:local, Expr(:(=), out, call)))
        end
        return Expr(:ref, out, index + 1)  # spec indices are 0-based
    end
end

"""`piecewise(v1, c1, ..., [otherwise])` as nested `ifelse` (the first v_i whose c_i is
non-zero; `otherwise`, or NaN without one), and `and`/`or` of any number of arguments."""
function emit_variadic(e::Emitter, node, fn::String)
    args = node["args"]
    args isa AbstractVector && length(args) >= VARIADIC[fn] ||
        spec_error("function $(repr(fn)) takes at least $(VARIADIC[fn]) argument(s)")
    xs = Any[emit(e, a) for a in args]
    fn == "piecewise" || return Expr(:call, GlobalRef(@__MODULE__, Symbol(fn)), xs...)
    result = isodd(length(xs)) ? pop!(xs) : NaN
    for k in (length(xs) - 1):-2:1
        result = Expr(:call, GlobalRef(Base, :ifelse), Expr(:call, GlobalRef(@__MODULE__, :truth), xs[k + 1]), xs[k],
            result)
    end
    return result
end

"""`first(chain(x, ps, st))`: a Lux layer returns `(output, state)`."""
netcall(chain, ps, st, x) = first(chain(x, ps, st))

"""A function `(args...) -> begin body...; result end` from statements and a result."""
function make_function(args::Vector{Symbol}, body::Vector{Any}, result)
    ex = Expr(:->, Expr(:tuple, args...), Expr(:block, body..., result))
    return @RuntimeGeneratedFunction(ex)
end
