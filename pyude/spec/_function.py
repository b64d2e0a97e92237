"""A model given as a Python callable ``f(t, y, p)`` written with jax.numpy (JAX engine only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

from .._errors import DataError, SpecError


class FunctionModel:
    """``dy/dt = f(t, y, p)`` with ``y`` a 1-D array and ``p`` any pytree of arrays.

    States are named ``y0, y1, ...`` unless ``states`` is given. There is no
    initial-value rule: ``y0`` must be passed to every solve.
    """

    def __init__(self, f: Callable, n_states: int, params: Any = None, states: list[str] | None = None):
        if not callable(f):
            raise SpecError(f"expected a callable f(t, y, p), got {type(f).__name__}")
        self.f = f
        self.states = list(states) if states is not None else [f"y{i}" for i in range(n_states)]
        if len(self.states) != n_states:
            raise SpecError(f"{len(self.states)} state names given for {n_states} states")
        self.name = getattr(f, "__name__", "function")
        self.inputs: dict = {}
        self.networks: dict = {}
        self.observables: dict = {}
        self.parameters: dict = {}
        template = params if params is not None else np.zeros((0,))
        flat, self._unravel = ravel_pytree(jax.tree.map(lambda a: np.asarray(a, dtype=float), template))
        self.n_params = int(flat.size)
        self._structure = jax.tree.structure(template)
        # numpy (un)flattening in ravel_pytree's leaf order: jax's unravel dispatches device
        # ops, ~0.5 ms per gradient on a training loop's host path
        self._shapes = [np.shape(leaf) for leaf in jax.tree.leaves(template)]
        self._splits = np.cumsum([int(np.prod(sh)) for sh in self._shapes])[:-1]

    @property
    def n_states(self) -> int:
        return len(self.states)

    def fingerprint(self) -> str:
        return f"function:{id(self.f)}:{self._structure}:{self.n_params}:{self.n_states}"

    def flatten(self, params) -> np.ndarray:
        if params is None:
            if self.n_params:
                raise DataError("this model takes parameters: pass params")
            return np.zeros((0,))
        if jax.tree.structure(params) != self._structure:
            raise DataError(f"params have structure {jax.tree.structure(params)}, expected {self._structure}")
        leaves = [np.asarray(leaf, dtype=float).reshape(-1) for leaf in jax.tree.leaves(params)]
        return np.concatenate(leaves) if leaves else np.zeros((0,))

    def unflatten(self, vector):
        vec = np.asarray(vector, dtype=float)
        if vec.shape != (self.n_params,):
            raise DataError(f"parameter vector has shape {vec.shape}, expected ({self.n_params},)")
        parts = np.split(vec, self._splits) if self._shapes else []
        return self._structure.unflatten([part.reshape(sh).copy() for part, sh in zip(parts, self._shapes)])

    def unravel(self, vector):
        return self._unravel(vector)

    def initial_overrides(self, params) -> dict:
        return {}
