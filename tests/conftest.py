"""Test-session settings.

Most tests compile a solve or a gradient with XLA and then run it for milliseconds, so the
suite's time is mostly XLA's CPU backend compiling. Three settings make the tests' programs
compile faster (users' programs are compiled with XLA's defaults):

- LLVM optimisation level 0 instead of XLA's default: the same programs (same HLO, no
  fast-math either way), compiled faster and running slower. Measured on a 2-core Xeon,
  whole suite, `pytest -n 2`: 13 min 14 s at the default level, 11 min 15 s at level 1
  (2026-12-03); on another machine of the kind (2026-12-04) 9 min 57 s at level 1, 8 min
  53 s at level 0.
- A few HLO passes left out: the while-loop optimisations (invariant code motion, the
  simplifier, constant sinking), the conditional simplifier and the HLO verifier (a
  consistency check between passes). They rewrite programs into equivalent, faster ones
  and take about a quarter of the backend's time on the solver's loops. Measured on a
  2-core AMD EPYC (2026-12-04), whole suite: 13 min 13 s with them, 10 min 48 s without
  (backend compile 902 -> 669 s of worker time); the compiled gradients run as fast.
- No LLVM alias metadata (``noalias`` and alias scopes on every buffer access): it informs
  LLVM's optimisation passes, which level 0 mostly skips, and building it was the largest
  single cost left (about half of a native profile of Elowitz's gradients). Elowitz's
  three gradients, alternating: backend compile 11.9 / 13.4 s without it against 15.6 /
  16.6 s, the gradient running as fast; a fresh clone's whole suite (2026-12-05, same
  machine kind) 8 min 54 s, and 9 min 15 s right after with the metadata switched back on.

Flags already in ``XLA_FLAGS`` (any of the names below) are left as they are. This must
run before JAX creates its CPU backend, which reads ``XLA_FLAGS`` once: pytest imports this
file before any test module (and worker processes inherit the variable). Measurements:
docs/benchmarks.md section 6.
"""

from __future__ import annotations

import os

_SETTINGS = {
    "xla_backend_optimization_level": "0",
    "xla_disable_hlo_passes": ",".join(
        [
            "while-loop-invariant-code-motion",
            "while-loop-simplifier",
            "while-loop-constant-sinking",
            "conditional-simplifier",
            "hlo-verifier",
        ]
    ),
    "xla_llvm_enable_noalias_metadata": "false",
    "xla_llvm_enable_alias_scope_metadata": "false",
}
_flags = os.environ.get("XLA_FLAGS", "")
for _name, _value in _SETTINGS.items():
    if _name not in _flags:
        _flags = f"{_flags} --{_name}={_value}".strip()
os.environ["XLA_FLAGS"] = _flags
