"""Is the Julia engine usable here? Decided from files and environment variables only.

The rule (docs/engines.md): the Julia engine is available when

1. the Python package ``juliacall`` is installed (``pip install "pyude[julia]"``), found
   with ``importlib.util.find_spec`` (never imported: importing it starts Julia), and
2. a Julia executable is already on this machine, looked up where juliapkg looks,
   minus its download step: ``$PYTHON_JULIACALL_EXE`` (with ``$PYTHON_JULIACALL_PROJECT``),
   ``$PYTHON_JULIAPKG_EXE``, the Julia juliapkg installed earlier into its environment,
   juliaup's ``juliaup.json``, a ``juliaup`` or ``julia`` command on ``PATH``.

``PYUDE_JULIA=no`` switches the engine off. No subprocess is run and nothing is
downloaded, so the answer takes milliseconds; without Julia, ``engine="julia"`` raises
:class:`~pyude.EngineUnavailable` with these install instructions.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from ..._errors import EngineUnavailable

SWITCH_ENV = "PYUDE_JULIA"

INSTALL = """\
To use engine='julia':
  1. install Julia 1.10 or 1.11 (https://julialang.org/install/, e.g. `curl -fsSL https://install.julialang.org | sh`
     for juliaup), so that `julia` or `juliaup` is on PATH (or set PYTHON_JULIAPKG_EXE=/path/to/julia);
  2. pip install "pyude[julia]"   (juliacall; from a source checkout: pip install -e ".[julia]");
  3. the first use of engine='julia' installs the Julia packages listed in pyude/juliapkg.json
     (OrdinaryDiffEq, SciMLSensitivity, Lux, ... and the local julia/ package PyUDE): many minutes, once.
To reuse an existing Julia environment (e.g. diffeqpy's), set PYTHON_JULIAPKG_PROJECT=/abs/path/to/env.
Otherwise use engine='jax' (the default), which needs none of this."""


def _exists(path: str | None) -> bool:
    return bool(path) and Path(path).is_file()


def _juliapkg_project() -> Path:
    """Where juliapkg keeps its Julia environment (its ``state.reset_state`` rule, not imported)."""
    project = os.environ.get("PYTHON_JULIAPKG_PROJECT")
    if project:
        return Path(project)
    prefix = sys.prefix if sys.prefix != sys.base_prefix else os.environ.get("CONDA_PREFIX")
    if prefix:
        return Path(prefix) / "julia_env"
    depot = os.environ.get("JULIA_DEPOT_PATH", "").split(os.pathsep)[0] or str(Path.home() / ".julia")
    return Path(depot) / "environments" / "pyjuliapkg"


def find_julia() -> str | None:
    """A Julia executable (or juliaup) that juliacall would use without downloading one, else ``None``."""
    for var in ("PYTHON_JULIACALL_EXE", "PYTHON_JULIAPKG_EXE"):
        if _exists(os.environ.get(var)):
            return os.environ[var]
    exe = "julia.exe" if os.name == "nt" else "julia"
    installed = _juliapkg_project() / "pyjuliapkg" / "install" / "bin" / exe
    if installed.is_file():
        return str(installed)
    juliaup_depot = os.environ.get("JULIAUP_DEPOT_PATH") or str(Path.home() / ".julia")
    if (Path(juliaup_depot) / "juliaup" / "juliaup.json").is_file():
        return shutil.which("juliaup") or str(Path(juliaup_depot) / "juliaup")
    return shutil.which("juliaup") or shutil.which("julia")


def unavailable_reason() -> str | None:
    """Why the Julia engine cannot run here (``None``: it can)."""
    if os.environ.get(SWITCH_ENV, "").strip().lower() in ("0", "no", "off", "false"):
        return f"the Julia engine is switched off ({SWITCH_ENV}={os.environ[SWITCH_ENV]})"
    if importlib.util.find_spec("juliacall") is None:
        return "the Python package juliacall is not installed"
    if find_julia() is None:
        return "no Julia installation was found (nothing on PATH, no juliaup, no PYTHON_JULIAPKG_EXE)"
    return None


def julia_available() -> bool:
    return unavailable_reason() is None


def require_julia() -> None:
    """Raise :class:`EngineUnavailable` (with install instructions) unless the Julia engine can run."""
    reason = unavailable_reason()
    if reason is not None:
        raise EngineUnavailable(f"engine='julia' is unavailable: {reason}.\n{INSTALL}")
