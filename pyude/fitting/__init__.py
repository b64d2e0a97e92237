"""Fitting: the two-stage UDE recipe, multi-start on any Executor."""

from ._fit import FitResult, fit
from ._multistart import MultistartResult, fit_multistart, sample_starts
from ._optimizers import LBFGS, Adam, MultipleShooting

__all__ = ["fit", "FitResult", "fit_multistart", "MultistartResult", "sample_starts", "Adam", "LBFGS", "MultipleShooting"]
