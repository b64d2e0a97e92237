"""Rosenbrock tableaus in the "W-transformed" form used by OrdinaryDiffEq.jl.

Rodas5P: Steinebach, G. (2023), "Construction of Rosenbrock-Wanner method Rodas5P
and numerical benchmarks within the Julia Differential Equations package",
BIT Numerical Mathematics 63, 27. Coefficients as in OrdinaryDiffEq.jl's
``Rodas5PTableau`` (OrdinaryDiffEqRosenbrock, rosenbrock_tableaus.jl).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RosenbrockTableau:
    """Stage i: ``u_i = y0 + sum_j a[i,j] k_j``; ``(I/gamma - J_F) k_i = F(t0 + c_i h, u_i)
    + d_i h dF/dt + sum_j C[i,j] k_j``; dense-output coefficients ``q_m = sum_j H[m,j] k_j``."""

    gamma: float
    a: np.ndarray
    C: np.ndarray
    c: np.ndarray
    d: np.ndarray
    H: np.ndarray

    @property
    def stages(self) -> int:
        return self.a.shape[0]


def _rodas5p() -> RosenbrockTableau:
    gamma = 0.21193756319429014
    a = np.zeros((8, 8))
    a[1, 0] = 3.0
    a[2, :2] = [2.849394379747939, 0.45842242204463923]
    a[3, :3] = [-6.954028509809101, 2.489845061869568, -10.358996098473584]
    a[4, :4] = [2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641]
    a[5, :5] = [-7.502846399306121, 2.561846144803919, -11.627539656261098, -0.18268767659942256,
                0.030198172008377946]
    # stiffly accurate: stages 7 and 8 start from the previous stage's value plus its k
    a[6, :5] = a[5, :5]
    a[6, 5] = 1.0
    a[7, :6] = a[6, :6]
    a[7, 6] = 1.0
    C = np.zeros((8, 8))
    C[1, 0] = -14.155112264123755
    C[2, :2] = [-17.97296035885952, -2.859693295451294]
    C[3, :3] = [147.12150275711716, -1.41221402718213, 71.68940251302358]
    C[4, :4] = [165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306]
    C[5, :5] = [24.854864614690072, -3.0009227002832186, 47.4931110020768, 5.5814197821558125,
                -0.6610691825249471]
    C[6, :6] = [30.91273214028599, -3.1208243349937974, 77.79954646070892, 34.28646028294783,
                -19.097331116725623, -28.087943162872662]
    C[7, :7] = [37.80277123390563, -3.2571969029072276, 112.26918849496327, 66.9347231244047,
                -40.06618937091002, -54.66780262877968, -9.48861652309627]
    c = np.array([0.0, 0.6358126895828704, 0.4095798393397535, 0.9769306725060716, 0.4288403609558664, 1.0, 1.0, 1.0])
    d = np.array([0.21193756319429014, -0.42387512638858027, -0.3384627126235924, 1.8046452872882734,
                  2.325825639765069, 0.0, 0.0, 0.0])
    H = np.array([
        [25.948786856663858, -2.5579724845846235, 10.433815404888879, -2.3679251022685204,
         0.524948541321073, 1.1241088310450404, 0.4272876194431874, -0.17202221070155493],
        [-9.91568850695171, -0.9689944594115154, 3.0438037242978453, -24.495224566215796,
         20.176138334709044, 15.98066361424651, -6.789040303419874, -6.710236069923372],
        [11.419903575922262, 2.8879645146136994, 72.92137995996029, 80.12511834622643,
         -52.072871366152654, -59.78993625266729, -0.15582684282751913, 4.883087185713722],
    ])
    return RosenbrockTableau(gamma, a, C, c, d, H)


RODAS5P = _rodas5p()
