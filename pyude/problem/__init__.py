"""The problem/objective layer: data, conditions, estimation, objective and gradients on top of an engine."""

from ._conditions import Conditions
from ._data import Measurements, measurements
from ._estimate import Estimation
from ._problem import Problem

__all__ = ["Problem", "Conditions", "Estimation", "Measurements", "measurements"]
