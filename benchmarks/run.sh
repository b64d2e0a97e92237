#!/usr/bin/env bash
# Benchmarks (not tests). torch's CPU wheel 2.13.0 exists for this machine's Python 3.11;
# a plain `pip install torch` would pull a multi-GB CUDA build, so the pin matters.
set -euo pipefail
cd "$(dirname "$0")/.."
PY311=$(command -v python3.11 || ls /root/.pyenv/versions/3.11*/bin/python3.11 | head -1)
if [ ! -x .venv-bench/bin/python ]; then
  "$PY311" -m venv .venv-bench
  .venv-bench/bin/pip install --quiet torch==2.13.0 torchdiffeq==0.2.5 scipy
  .venv-bench/bin/pip install --quiet -e .
fi
.venv-bench/bin/python benchmarks/stiff.py
.venv-bench/bin/python benchmarks/neural_ode.py "${1:-20}"
