#!/usr/bin/env bash
# The AMICI benchmark venv (benchmarks/petab_vs_amici.py): AMICI is a competitor measured
# side by side, never a runtime or test dependency of pyude.
#
#   bash benchmarks/amici_venv.sh            # venv at $AMICI_VENV (default /work/.venv-amici)
#
# AMICI 1.x needs Python >= 3.12 and builds its C++ core (SUNDIALS, SuiteSparse) from the
# sdist: a C++ compiler, CMake, BLAS and HDF5 headers. Each model is compiled at import time
# through SWIG: the model's SWIG must be the one AMICI's core was built with (pip's `swig`
# wheel, 4.5.1 here, installed into the venv as a build requirement). With Debian's
# /usr/bin/swig (4.1) first on PATH the model imports but `get_model()` fails with
# "AttributeError: 'SwigPyObject' object has no attribute 'module'": run with the venv's
# bin/ first on PATH (petab_vs_amici.py is started that way below).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${AMICI_VENV:-/work/.venv-amici}
# the first python3.12 that runs (a pyenv shim is on PATH even where its version is not selected)
PY312=""
for p in python3.12 /root/.pyenv/versions/3.12*/bin/python3.12; do
  if "$p" -c 'import sys' >/dev/null 2>&1; then PY312=$p; break; fi
done
[ -n "$PY312" ] || { echo "AMICI 1.x needs python3.12 on PATH" >&2; exit 1; }
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  apt-get install -y -qq g++ cmake swig libopenblas-dev libhdf5-dev libboost-serialization-dev
fi
"$PY312" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# ~10 min: builds the C++ core (with the newest swig wheel in pip's build env; the venv's swig, a
# runtime requirement of amici, must be the same version: 4.5.1 when this was written)
"$VENV/bin/python" -m pip install amici==1.1.0 petab==0.10.0 swig==4.5.1
"$VENV/bin/python" -m pip install -e ".[petab]"                 # pyude from this checkout
echo "run: PATH=$VENV/bin:\$PATH $VENV/bin/python benchmarks/petab_vs_amici.py"
