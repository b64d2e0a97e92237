# Graph (PEtab SciML) networks: the forward graph that pyude.engines.julia._graph_export writes,
# compiled to straight-line code (one RuntimeGeneratedFunction per network) and evaluated on one
# input, as the JAX engine's pyude/engines/jax/_graph.py (no batch axis added; BatchNorm with the
# statistics of the array it receives; dropout the identity: there is no training mode here).
#
# Layout. A PyTorch array of shape (d1, ..., dn), stored row-major, is here the column-major
# array of size (dn, ..., d1): the same memory, so `reshape(block, reverse(shape)...)` reads a
# parameter without copying and the spec's flat vector needs no permutation (julia_layout leaves
# these blocks alone). PyTorch axis a (0-based) of an n-d array is Julia axis n - a; a row-major
# reshape (flatten, view, unsqueeze, squeeze) is a Julia `reshape` to the reversed size; numpy
# broadcasting (trailing axes aligned) is Julia broadcasting (leading axes aligned). PEtab.jl's
# Lux import does the same reversal (sebapersson/PEtab.jl ext/PEtabLuxExtension/netinfo.jl:
# CONV2D_MAP reverses all four axes of a Conv weight, (out, in, H, W) -> (W, H, in, out), and
# parse.jl reverses kernel_size, stride, pad and dilation "to store the images in memory order").
#
# Convolutions and pooling gather their windows with integer indices built here at compile time
# (from the shapes Python traced) and multiply or reduce: PyTorch's cross-correlation by
# construction, every padding mode an index map, and only getindex, `*`, broadcasting, sum,
# maximum, reshape and cat in the differentiated code (no mutation), so Zygote, ForwardDiff and
# ReverseDiff see ordinary array code. (NNlib's `conv` would need `flipped = true` for PyTorch's
# convention: `kproj(k, _, ::Val{true}) = k` in NNlib src/impl/conv_direct.jl; its docstring had
# it backwards, FluxML/NNlib.jl#755, fixed in #759.) tests/test_julia_offline.py mirrors the
# index maths below in NumPy and checks it against the JAX engine.

"""Julia size of a PyTorch shape (row-major (d1, ..., dn) -> column-major (dn, ..., d1))."""
jdims(shape) = Tuple(reverse(Int[Int(d) for d in shape]))

"""Julia axis of PyTorch axis `a` (0-based, negative counts from the end) of an `n`-d array."""
jaxis(a::Integer, n::Integer) = n - mod(a, n)

"""The PyTorch multi-indices (0-based) of `shape` in row-major (memory) order."""
rowmajor(shape) = [reverse(Tuple(c)) .- 1 for c in vec(CartesianIndices(jdims(shape)))]

"""Row-major flat position (0-based) of multi-index `q` in `shape`."""
flatindex(q, shape) = foldl((acc, qs) -> acc * qs[2] + qs[1], zip(q, shape); init = 0)

"""A parameter array of the network's block `ps`: `n` entries from `off` (0-based), Julia size `dims`."""
param(ps, off::Int, dims::Tuple) = reshape(ps[(off + 1):(off + prod(dims))], dims)

shape_error(msg) = throw(DimensionMismatch("PyUDE graph network: " * msg))

# ------------------------------------------------------------------ elementwise functions
# the JAX engine's formulas (pyude/engines/jax/_graph.py `_UNARY`, jax.nn)
const SELU_ALPHA = 1.6732632423543772848170429916717
const SELU_SCALE = 1.0507009873554804934193349852946

relu(x) = ifelse(x > zero(x), x, zero(x))
relu6(x) = min(max(x, zero(x)), oftype(x, 6))
logaddexp0(x) = max(x, zero(x)) + log1p(exp(-abs(x)))  # jax.nn.softplus
struct Elu
    alpha::Float64
end
(f::Elu)(x) = ifelse(x > zero(x), x, f.alpha * expm1(min(x, zero(x))))
selu(x) = SELU_SCALE * ifelse(x > zero(x), x, SELU_ALPHA * expm1(min(x, zero(x))))
struct Celu
    alpha::Float64
end
(f::Celu)(x) = max(x, zero(x)) + min(zero(x), f.alpha * expm1(min(x, zero(x)) / f.alpha))
gelu_erf(x) = x * (erf(x / sqrt(2.0)) + 1) / 2
gelu_tanh(x) = x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))) / 2
struct LeakyRelu
    slope::Float64
end
(f::LeakyRelu)(x) = ifelse(x >= zero(x), x, f.slope * x)
struct Hardtanh
    lo::Float64
    hi::Float64
end
(f::Hardtanh)(x) = min(max(x, oftype(x, f.lo)), oftype(x, f.hi))
hardsigmoid(x) = relu6(x + 3) / 6
hardswish(x) = x * relu6(x + 3) / 6
logsigmoid(x) = -logaddexp0(-x)
tanhshrink(x) = x - tanh(x)
struct Softplus  # torch's: linear where beta x > threshold
    beta::Float64
    threshold::Float64
end
(f::Softplus)(x) = ifelse(f.beta * x > f.threshold, x, log1p(exp(min(f.beta * x, oftype(x, f.threshold)))) / f.beta)
softsign(x) = x / (1 + abs(x))
silu(x) = x * sigmoid(x)
mish(x) = x * tanh(logaddexp0(x))

"""The elementwise function `fn` with its constants `a` (the node's or layer's arguments)."""
function unary_function(fn::String, a)
    fn == "relu" && return relu
    fn == "relu6" && return relu6
    fn == "elu" && return Elu(Float64(a["alpha"]))
    fn == "selu" && return selu
    fn == "celu" && return Celu(Float64(a["alpha"]))
    fn == "gelu" && return a["approximate"] == "tanh" ? gelu_tanh : gelu_erf
    fn == "leaky_relu" && return LeakyRelu(Float64(a["negative_slope"]))
    fn == "hardtanh" && return Hardtanh(Float64(a["min_val"]), Float64(a["max_val"]))
    fn == "hardsigmoid" && return hardsigmoid
    fn == "hardswish" && return hardswish
    fn == "sigmoid" && return sigmoid
    fn == "logsigmoid" && return logsigmoid
    fn == "tanh" && return tanh
    fn == "tanhshrink" && return tanhshrink
    fn == "softplus" && return Softplus(Float64(a["beta"]), Float64(a["threshold"]))
    fn == "softsign" && return softsign
    fn == "silu" && return silu
    fn == "mish" && return mish
    fn == "exp" && return exp
    fn == "log" && return log
    fn == "abs" && return abs
    fn == "sqrt" && return sqrt
    fn == "neg" && return -
    return nothing
end

# names that are elementwise functions; must equal pyude.engines.julia._graph_export.UNARY
const UNARY = ("relu", "relu6", "elu", "selu", "celu", "gelu", "leaky_relu", "hardtanh", "hardsigmoid",
    "hardswish", "sigmoid", "logsigmoid", "tanh", "tanhshrink", "softplus", "softsign", "silu", "mish", "exp", "log",
    "abs", "sqrt", "neg")

# ------------------------------------------------------------------------- node operations
"""Placeholder: entries `range` of the call's scalar arguments, as an array of Julia size `dims`."""
struct InputOp{N}
    range::UnitRange{Int}
    dims::NTuple{N, Int}
end
apply_node(o::InputOp, ps, x) = reshape(x[o.range], o.dims)

"""Anything that keeps the row-major memory order (Flatten, flatten, reshape/view, unsqueeze,
squeeze, Identity, dropout at inference): a reshape to the traced output size."""
struct ReshapeOp{N}
    dims::NTuple{N, Int}
end
function apply_node(o::ReshapeOp, ps, x)
    length(x) == prod(o.dims) || shape_error("cannot reshape $(size(x)) to $(o.dims)")
    return reshape(x, o.dims)
end

struct UnaryOp{F}
    f::F
end
apply_node(o::UnaryOp, ps, x) = o.f.(x)

"""add/sub/mul/truediv; `a` or `b` is the constant operand where one is a number."""
struct BinaryOp{F}
    f::F
    a::Union{Nothing, Float64}
    b::Union{Nothing, Float64}
end
apply_node(o::BinaryOp, ps) = fill(o.f(o.a, o.b))
apply_node(o::BinaryOp, ps, x) = o.a === nothing ? o.f.(x, o.b) : o.f.(o.a, x)
apply_node(o::BinaryOp, ps, x, y) = o.f.(x, y)

"""softmax / log_softmax along Julia axis `dim`, shifted by the maximum (as jax.nn)."""
struct SoftmaxOp
    dim::Int
    log::Bool
end
function apply_node(o::SoftmaxOp, ps, x)
    z = x .- maximum(x; dims = o.dim)
    s = sum(exp.(z); dims = o.dim)
    return o.log ? z .- log.(s) : exp.(z) ./ s
end

struct CatOp
    dim::Int
end
apply_node(o::CatOp, ps, xs...) = cat(xs...; dims = o.dim)

"""stack: each input reshaped to its size with the new axis (`dims`), then concatenated along it."""
struct StackOp{N}
    dims::NTuple{N, Int}
    dim::Int
end
apply_node(o::StackOp, ps, xs...) = cat(map(x -> reshape(x, o.dims), xs)...; dims = o.dim)

struct PermuteOp{N}
    perm::NTuple{N, Int}
end
apply_node(o::PermuteOp, ps, x) = permutedims(x, o.perm)

"""matmul of 1-d and 2-d arrays: with reversed axes, PyTorch's A·B is Julia's Bᵀ-side product."""
struct MatmulOp
    kind::Tuple{Int, Int}  # PyTorch ndims of the two operands
end
function apply_node(o::MatmulOp, ps, a, b)
    o.kind == (1, 1) && return reshape(sum(a .* b; dims = 1), ())  # a 0-d array, as torch.matmul
    o.kind == (1, 2) && return b * a        # (k) · (k, m): Julia (m, k) * (k)
    o.kind == (2, 1) && return transpose(a) * b  # (n, k) · (k): Julia (k, n)ᵀ * (k)
    return b * a                            # (n, k) · (k, m): Julia (m, k) * (k, n) = (m, n)
end

"""Linear: weight (out, in) is Julia `W` (in, out) with `W[i, j] = weight[j, i]`; acts on the last
PyTorch axis, the first Julia one."""
struct LinearOp
    w::Int
    b::Int  # -1: no bias
    nin::Int
    nout::Int
end
function apply_node(o::LinearOp, ps, x)
    size(x, 1) == o.nin || shape_error("Linear expects $(o.nin) features, got Julia size $(size(x))")
    W = param(ps, o.w, (o.nin, o.nout))
    y = transpose(W) * reshape(x, o.nin, :)
    if o.b >= 0
        y = y .+ param(ps, o.b, (o.nout,))
    end
    return reshape(y, (o.nout, Base.tail(size(x))...))
end

"""Bilinear: y_k = Σ_ij x1_i weight[k, i, j] x2_j + bias_k; weight (out, in1, in2) is Julia (in2, in1, out)."""
struct BilinearOp
    w::Int
    b::Int
    n1::Int
    n2::Int
    nout::Int
end
function apply_node(o::BilinearOp, ps, x1, x2)
    X1, X2 = reshape(x1, o.n1, :), reshape(x2, o.n2, :)
    nb = size(X1, 2)
    W = param(ps, o.w, (o.n2, o.n1 * o.nout))
    Z = reshape(transpose(W) * X2, o.n1, o.nout, nb)  # Z[i, k, b] = Σ_j weight[k, i, j] x2[j, b]
    y = reshape(sum(reshape(X1, o.n1, 1, nb) .* Z; dims = 1), o.nout, nb)
    if o.b >= 0
        y = y .+ param(ps, o.b, (o.nout,))
    end
    return reshape(y, (o.nout, Base.tail(size(x1))...))
end

"""Convolution as gather + matrix product: `cols = [vec(x); 0][idx]` has size (L, Kr, G, N):
window position l (row-major over the output's spatial positions), row r (row-major over
(in_channel within the group, kernel offsets)), group g, sample n; the extra 0 is the zero
padding. Weight (out, in/G, k...) is Julia `W` (Kr, out) with `W[r, c] = weight[c, r...]`."""
struct ConvOp{N}
    idx::Array{Int, 4}
    nx::Int
    w::Int
    b::Int
    cout::Int
    groups::Int
    out::NTuple{N, Int}
end
function apply_node(o::ConvOp, ps, x)
    length(x) == o.nx || shape_error("convolution expects $(o.nx) input entries, got Julia size $(size(x))")
    cols = vcat(vec(x), [0.0])[o.idx]
    kr, og = size(o.idx, 2), o.cout ÷ o.groups
    W = param(ps, o.w, (kr, o.cout))
    y = cat([reduce(hcat, [cols[:, :, g, n] * W[:, ((g - 1) * og + 1):(g * og)] for g in 1:o.groups])
             for n in 1:size(o.idx, 4)]...; dims = 3)  # (L, out, N): PyTorch (N, out, spatial) row-major
    if o.b >= 0
        y = y .+ reshape(param(ps, o.b, (o.cout,)), 1, o.cout)
    end
    return reshape(y, o.out)
end

"""Pooling as gather + reduction over windows: `[vec(x); pad][idx]` has size (K, L, C, N): window
offset k, output position l, channel c, sample n; positions outside the input read `pad`
(-Inf for max, 0 otherwise). avg divides by `divisor[l]`; lp takes (Σ x^p)^(1/p)."""
struct PoolOp{N}
    idx::Array{Int, 4}
    nx::Int
    kind::Symbol  # :max, :avg, :lp
    divisor::Matrix{Float64}  # (1, L)
    p::Float64
    out::NTuple{N, Int}
end
function apply_node(o::PoolOp, ps, x)
    length(x) == o.nx || shape_error("pooling expects $(o.nx) input entries, got Julia size $(size(x))")
    if o.kind === :max
        y = maximum(vcat(vec(x), [-Inf])[o.idx]; dims = 1)
    elseif o.kind === :avg
        y = sum(vcat(vec(x), [0.0])[o.idx]; dims = 1) ./ o.divisor
    else
        g = vcat(vec(x), [0.0])[o.idx]
        y = sum(isinteger(o.p) ? g .^ Int(o.p) : g .^ o.p; dims = 1) .^ (1 / o.p)
    end
    return reshape(y, o.out)
end

"""Normalisation over Julia axes `dims` with the biased variance (BatchNorm: all but the channel
axis, the batch statistics; InstanceNorm: the spatial axes; LayerNorm: the normalised axes), then
`weight`/`bias` of Julia size `wdims` (broadcast) where the layer has them."""
struct NormOp{D, W}
    dims::D
    count::Int
    eps::Float64
    w::Int
    b::Int
    wdims::W
end
function apply_node(o::NormOp, ps, x)
    m = sum(x; dims = o.dims) ./ o.count
    v = sum(abs2.(x .- m); dims = o.dims) ./ o.count
    y = (x .- m) ./ sqrt.(v .+ o.eps)
    if o.w >= 0
        y = y .* param(ps, o.w, o.wdims)
    end
    if o.b >= 0
        y = y .+ param(ps, o.b, o.wdims)
    end
    return y
end

# --------------------------------------------------------------------------- index building
"""(lo, hi) padding per spatial axis (PyTorch order) of a convolution's `padding` argument."""
function conv_padding(padding, k, d)
    padding == "valid" && return zeros(Int, length(k)), zeros(Int, length(k))
    if padding == "same"  # PyTorch puts the odd element on the right
        tot = [d[j] * (k[j] - 1) for j in eachindex(k)]
        return tot .÷ 2, tot .- tot .÷ 2
    end
    p = Int[Int(v) for v in padding]
    return p, p
end

"""Coordinate `q` on an axis of length `s` under a padding mode; `nothing`: a zero-padding position."""
function padded(q::Int, s::Int, mode::String)
    0 <= q < s && return q
    mode == "zeros" && return nothing
    mode == "replicate" && return clamp(q, 0, s - 1)
    mode == "circular" && return mod(q, s)
    r = q < 0 ? -q : 2 * (s - 1) - q  # reflect (PyTorch: padding must be smaller than the size)
    0 <= r < s || spec_error("reflect padding wider than the input (length $s)")
    return r
end

"""Gather indices of a convolution on input of PyTorch shape `xs` = (N, C, S...)."""
function conv_index(xs::Vector{Int}, a, dim::Int)
    N, C, S = xs[1], xs[2], xs[3:end]
    k, s, d = Int.(a["kernel_size"]), Int.(a["stride"]), Int.(a["dilation"])
    lo, hi = conv_padding(a["padding"], k, d)
    P = [(S[j] + lo[j] + hi[j] - d[j] * (k[j] - 1) - 1) ÷ s[j] + 1 for j in 1:dim]
    all(>(0), P) || spec_error("convolution output would be empty (input $S, kernel $k)")
    G = Int(a["groups"])
    ig = C ÷ G
    mode = String(a["padding_mode"])
    offsets, positions = rowmajor(k), rowmajor(P)
    zero_at = N * C * prod(S) + 1  # the appended 0
    idx = Array{Int}(undef, length(positions), ig * length(offsets), G, N)
    for n in 1:N, g in 1:G, i in 1:ig, (kk, kq) in enumerate(offsets), (l, p) in enumerate(positions)
        q = [padded(p[j] * s[j] - lo[j] + kq[j] * d[j], S[j], mode) for j in 1:dim]
        c = (g - 1) * ig + (i - 1)
        idx[l, (i - 1) * length(offsets) + kk, g, n] =
            any(isnothing, q) ? zero_at : flatindex((n - 1, c, q...), (N, C, S...)) + 1
    end
    return idx
end

"""Gather indices of pooling windows: `windows[j][p + 1]` lists the input coordinates (PyTorch,
0-based, possibly outside the input) pooled into output position p on spatial axis j. Returns
(idx, number of window positions inside the input, number of window positions) per output."""
function window_index(xs::Vector{Int}, windows::Vector{Vector{Vector{Int}}})
    N, C, S = xs[1], xs[2], xs[3:end]
    dim = length(S)
    kmax = [maximum(length, w) for w in windows]
    offsets, positions = rowmajor(kmax), rowmajor([length(w) for w in windows])
    pad_at = N * C * prod(S) + 1
    idx = Array{Int}(undef, length(offsets), length(positions), C, N)
    inside = zeros(Int, length(positions))
    present = zeros(Int, length(positions))
    for n in 1:N, c in 1:C, (l, p) in enumerate(positions), (kk, kq) in enumerate(offsets)
        lists = [windows[j][p[j] + 1] for j in 1:dim]
        ispresent = all(kq[j] < length(lists[j]) for j in 1:dim)
        q = ispresent ? [lists[j][kq[j] + 1] for j in 1:dim] : Int[]
        isinside = ispresent && all(0 <= q[j] < S[j] for j in 1:dim)
        idx[kk, l, c, n] = isinside ? flatindex((n - 1, c - 1, q...), (N, C, S...)) + 1 : pad_at
        if n == 1 && c == 1
            inside[l] += isinside
            present[l] += ispresent
        end
    end
    return idx, inside, present
end

"""Fixed windows: output p of an axis pools p·s - pad + k·d, k = 0..K-1 (PyTorch's floor mode)."""
function fixed_windows(S::Vector{Int}, k, s, pad, d)
    return [[[p * s[j] - pad[j] + q * d[j] for q in 0:(k[j] - 1)]
             for p in 0:((S[j] + 2 * pad[j] - d[j] * (k[j] - 1) - 1) ÷ s[j])] for j in eachindex(S)]
end

"""Adaptive windows: output i of o on an axis of length L pools [floor(iL/o), ceil((i+1)L/o))."""
function adaptive_windows(S::Vector{Int}, sizes)
    return [begin
        o = sizes[j] === nothing ? S[j] : Int(sizes[j])
        [collect(((i * S[j]) ÷ o):(cld((i + 1) * S[j], o) - 1)) for i in 0:(o - 1)]
    end for j in eachindex(S)]
end

"""The input's PyTorch shape with a batch axis: (N, C, S...) from (C, S...) or (N, C, S...)."""
function batched_shape(s::Vector{Int}, dim::Int, what)
    length(s) == dim + 1 && return vcat(1, s)
    length(s) == dim + 2 && return s
    spec_error("$what expects a $(dim + 1)-d or $(dim + 2)-d input, got shape $s")
end

function pool_op(fam::String, a, dim::Int, xin::Vector{Int}, out::Vector{Int})
    xs = batched_shape(xin, dim, fam)
    S = xs[3:end]
    if fam in ("adaptiveavgpool", "adaptivemaxpool")
        windows = adaptive_windows(S, a["output_size"])
    else
        k = Int.(a["kernel_size"])
        s = a["stride"] === nothing ? k : Int.(a["stride"])
        pad = fam == "lppool" ? zeros(Int, dim) : Int.(a["padding"])
        d = fam == "maxpool" ? Int.(a["dilation"]) : ones(Int, dim)
        windows = fixed_windows(S, k, s, pad, d)
    end
    idx, inside, present = window_index(xs, windows)
    kind = fam in ("maxpool", "adaptivemaxpool") ? :max : fam == "lppool" ? :lp : :avg
    override = fam == "avgpool" ? get(a, "divisor_override", nothing) : nothing
    divisor = if override !== nothing && override != 0  # as the JAX engine: a zero override is unset
        fill(Float64(override), length(inside))
    elseif fam == "avgpool" && a["count_include_pad"]
        Float64.(present)  # the whole window, padding included (= prod(kernel_size))
    else
        Float64.(inside)   # adaptive windows, or padding excluded
    end
    p = fam == "lppool" ? Float64(a["norm_type"]) : 1.0
    prod(size(idx)[2:4]) == prod(out) || spec_error("$fam: traced output shape $out does not match the windows")
    return PoolOp(idx, prod(xin), kind, reshape(divisor, 1, :), p, jdims(out))
end

"""A layer's operation at its input shapes (PyTorch's) and traced output shape."""
function layer_op(l, ins::Vector{Vector{Int}}, out::Vector{Int})
    fam, a, dim = String(l["family"]), l["args"], Int(l["dim"])
    offs = Dict{String, Int}(String(q["name"]) => Int(q["offset"]) for q in l["params"])
    w, b = get(offs, "weight", -1), get(offs, "bias", -1)
    if fam == "activation"
        f = unary_function(String(a["fn"]), a)
        f === nothing || return UnaryOp(f)
        a["fn"] in ("softmax", "log_softmax") && return SoftmaxOp(jaxis(Int(a["dim"]), length(ins[1])), a["fn"] == "log_softmax")
    elseif fam in ("flatten", "identity", "dropout", "featuredropout", "alphadropout", "featurealphadropout")
        return ReshapeOp(jdims(out))
    elseif fam == "linear"
        return LinearOp(w, b, Int(a["in_features"]), Int(a["out_features"]))
    elseif fam == "bilinear"
        return BilinearOp(w, b, Int(a["in1_features"]), Int(a["in2_features"]), Int(a["out_features"]))
    elseif fam == "conv"
        xs = batched_shape(ins[1], dim, "Conv$(dim)d")
        idx = conv_index(xs, a, dim)
        size(idx, 1) * Int(a["out_channels"]) * xs[1] == prod(out) || spec_error("Conv: traced output shape $out")
        return ConvOp(idx, prod(ins[1]), w, b, Int(a["out_channels"]), Int(a["groups"]), jdims(out))
    elseif fam in ("maxpool", "avgpool", "lppool", "adaptiveavgpool", "adaptivemaxpool")
        return pool_op(fam, a, dim, ins[1], out)
    elseif fam in ("batchnorm", "instancenorm", "layernorm")
        x = jdims(ins[1])
        n = length(x)
        if fam == "layernorm"
            k = length(a["normalized_shape"])
            dims = Tuple(1:k)
            wdims = jdims(a["normalized_shape"])
        else
            ch = fam == "batchnorm" || n == dim + 2 ? n - 1 : n  # channel axis (Julia)
            dims = fam == "batchnorm" ? Tuple(j for j in 1:n if j != ch) : Tuple(1:(ch - 1))
            wdims = ntuple(j -> j == ch ? x[ch] : 1, n)
        end
        count = prod(x[j] for j in dims)
        return NormOp(dims, count, Float64(a["eps"]), w, b, wdims)
    end
    spec_error("layer $(repr(l["id"])) of family $(repr(fam)) is not implemented by the Julia engine")
end

"""A function node's operation at its input shapes and traced output shape."""
function function_op(node, ins::Vector{Vector{Int}}, out::Vector{Int})
    fn, a = String(node["fn"]), node["args"]
    f = unary_function(fn, a)
    f === nothing || return UnaryOp(f)
    fn in ("flatten", "reshape", "unsqueeze", "squeeze") && return ReshapeOp(jdims(out))
    fn in ("softmax", "log_softmax") && return SoftmaxOp(jaxis(Int(a["dim"]), length(ins[1])), fn == "log_softmax")
    if fn in ("add", "sub", "mul", "truediv")
        ops = Dict("add" => +, "sub" => -, "mul" => *, "truediv" => /)
        v = [haskey(x, "num") ? Float64(x["num"]) : nothing for x in node["operands"]]
        return BinaryOp(ops[fn], v[1], v[2])
    end
    fn == "cat" && return CatOp(jaxis(Int(a["dim"]), length(ins[1])))
    if fn == "stack"
        n = length(ins[1]) + 1
        d = mod(Int(a["dim"]), n)
        return StackOp(jdims(vcat(ins[1][1:d], 1, ins[1][(d + 1):end])), jaxis(d, n))
    end
    if fn == "transpose"
        n = length(ins[1])
        n == 0 && return ReshapeOp(())
        i, j = jaxis(Int(a["dim0"]), n), jaxis(Int(a["dim1"]), n)
        return PermuteOp(ntuple(k -> k == i ? j : k == j ? i : k, n))
    end
    fn == "matmul" && return MatmulOp((length(ins[1]), length(ins[2])))
    spec_error("function $(repr(fn)) (node $(repr(node["name"]))) is not implemented by the Julia engine")
end

# ------------------------------------------------------------------------------ the network
"""A graph network compiled: `f(ps, x, ops)` is the forward graph as straight-line code
(`v_i = apply_node(ops[i], ps, inputs...)`), `ps` the network's block of θ (row-major
PyTorch arrays), `x` the call's scalar arguments; returns the output(s) flattened row-major."""
struct GraphNet{F, O}
    name::String
    f::F
    ops::O
    n_in::Int
    n_out::Int
    n_params::Int
end
(g::GraphNet)(ps, x) = g.f(ps, x, g.ops)
netcall(g::GraphNet, ps, st, x) = g(ps, x)

"""Compile the JSON of one graph network (`pyude.engines.julia._graph_export.graph_json`)."""
function build_graph(net)
    name = String(net["name"])
    layers = Dict{String, Any}(String(l["id"]) => l for l in net["layers"])
    syms, shapes = Dict{String, Symbol}(), Dict{String, Vector{Int}}()
    ops, body = Any[], Any[]
    result, start = nothing, 0
    for (i, node) in enumerate(net["nodes"])
        ins = String[String(n) for n in node["inputs"]]
        all(haskey(syms, n) for n in ins) || spec_error("network $(repr(name)): node $(repr(node["name"])) reads an unknown node")
        if node["op"] == "output"
            result = Expr(:call, GlobalRef(Base, :vcat), [Expr(:call, GlobalRef(Base, :vec), syms[n]) for n in ins]...)
            break
        end
        shape = Int[Int(d) for d in node["shape"]]
        in_shapes = [shapes[n] for n in ins]
        if node["op"] == "placeholder"
            n = prod(shape)
            push!(ops, InputOp((start + 1):(start + n), jdims(shape)))
            start += n
            args = Any[:x]
        elseif node["op"] == "module"
            push!(ops, layer_op(layers[String(node["layer"])], in_shapes, shape))
            args = Any[syms[n] for n in ins]
        elseif node["op"] == "function"
            push!(ops, function_op(node, in_shapes, shape))
            args = Any[syms[n] for n in ins]
        else
            spec_error("network $(repr(name)): unknown node op $(repr(node["op"]))")
        end
        s = Symbol("v_", i)
        call = Expr(:call, GlobalRef(@__MODULE__, :apply_node), Expr(:ref, :ops, length(ops)), :ps, args...)
        push!(body, Expr(:(=), s, call))
        syms[String(node["name"])], shapes[String(node["name"])] = s, shape
    end
    result === nothing && spec_error("network $(repr(name)) has no output node")
    start == Int(net["inputs"]) || spec_error("network $(repr(name)): inputs take $start scalars, the spec says $(net["inputs"])")
    f = make_function([:ps, :x, :ops], body, result)
    return GraphNet(name, f, Tuple(ops), Int(net["inputs"]), Int(net["outputs"]), Int(net["size"]))
end
