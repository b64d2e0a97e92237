"""Test-session settings.

Most tests compile a solve or a gradient with XLA and then run it for milliseconds, so the
suite's time is mostly XLA's CPU backend (LLVM) compiling. The tests compile at LLVM
optimisation level 0 instead of XLA's default: the same programs (same HLO, no fast-math
either way), compiled faster and running slower. Measured on the 2-core machine, whole
suite, `pytest -n 2`: 13 min 14 s at the default level, 11 min 15 s at level 1 (2026-12-03);
on another machine of the kind (2026-12-04) 9 min 57 s at level 1, 8 min 53 s at level 0
(worker time 18 min 23 s -> 16 min 20 s; Boehm's three conformance gradients compile in
17.3 s instead of 21.7) (docs/benchmarks.md). Users' programs are compiled at the default
level. An ``xla_backend_optimization_level`` already in ``XLA_FLAGS`` is left as it is.

This must run before JAX creates its CPU backend, which reads ``XLA_FLAGS`` once: pytest
imports this file before any test module (and worker processes inherit the variable).
"""

from __future__ import annotations

import os

_LEVEL = "--xla_backend_optimization_level=0"
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_backend_optimization_level" not in _flags:
    os.environ["XLA_FLAGS"] = f"{_flags} {_LEVEL}".strip()
