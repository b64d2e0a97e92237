"""
    PyUDE

The Julia engine of pyude: a model spec (as the JSON the Python side writes, every
expression already parsed into a tree by pyude's parser) compiled into an in-place
right-hand side with RuntimeGeneratedFunctions, networks as Lux `Chain`s (multilayer
perceptrons) or compiled forward graphs (PEtab SciML networks, graph.jl), parameters
in a `ComponentArray`; solved with OrdinaryDiffEq and differentiated with
SciMLSensitivity through Zygote. PEtab v1 features: noise models 0-7, per-measurement
parameters, time switches (as `tstops`), preequilibration (to a steady state). The spec's
assignments (parameters computed per condition before the solve) and events (callbacks).

Not executed where pyude is developed (no Julia can be installed there): every call
was checked against the packages' source and documentation only (docs/engines.md).
"""
module PyUDE

using ComponentArrays: ComponentArray, getaxes
using JSON: JSON
using Lux: Lux
using OrdinaryDiffEqBDF: FBDF, QNDF
using OrdinaryDiffEqHighOrderRK: DP8
using OrdinaryDiffEqLowOrderRK: DP5
using OrdinaryDiffEqRosenbrock: Rodas5P, Rosenbrock23
using OrdinaryDiffEqSDIRK: KenCarp4, Kvaerno5
using OrdinaryDiffEqTsit5: AutoTsit5, Tsit5
using Random: Xoshiro
using RuntimeGeneratedFunctions: RuntimeGeneratedFunctions, @RuntimeGeneratedFunction
using SciMLBase: SciMLBase, CallbackSet, ContinuousCallback, DiscreteCallback, ODEProblem, ReturnCode, remake,
    solve, terminate!
using SpecialFunctions: erf
using SciMLSensitivity: EnzymeVJP, ForwardDiffSensitivity, GaussAdjoint, InterpolatingAdjoint,
    ReverseDiffVJP, ZygoteVJP
using Zygote: Zygote

RuntimeGeneratedFunctions.init(@__MODULE__)

include("expressions.jl")
include("graph.jl")
include("model.jl")
include("events.jl")
include("solvers.jl")
include("objective.jl")

export compile_model, solve_model, make_arrays, objective, predict, rows

end
