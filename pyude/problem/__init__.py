"""The problem/objective layer: data, loss and gradients on top of an engine."""

from ._data import Measurements, measurements
from ._problem import Problem, weighted_sum_of_squares

__all__ = ["Problem", "Measurements", "measurements", "weighted_sum_of_squares"]
