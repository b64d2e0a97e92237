#!/usr/bin/env bash
# Benchmarks (never run as tests): bash benchmarks/run.sh [neural-ODE training steps, default 30]
#
# Needs Python 3.11 (torch 2.13.0's CPU wheel on this machine exists for 3.11). torch is
# pinned: a plain `pip install torch` pulls a multi-GB CUDA build. The venv lives in the
# repository (.venv-bench, git-ignored; BENCH_VENV=path overrides) and pyude is used from
# the checkout through PYTHONPATH, so nothing is built into the source tree.
# Results: benchmarks/results/{stiff,adjoint_scaling,neural_ode}.json; tables on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${BENCH_VENV:-$ROOT/.venv-bench}
STEPS=${1:-30}

PY311=$(command -v python3.11 || ls /root/.pyenv/versions/3.11*/bin/python3.11 2>/dev/null | head -1 || true)
if [ ! -f "$VENV/.bench-installed" ]; then
  [ -n "$PY311" ] || { echo "benchmarks/run.sh needs python3.11 on PATH" >&2; exit 1; }
  "$PY311" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet \
    torch==2.13.0 torchdiffeq==0.2.5 "jax[cpu]==0.10.2" diffrax==0.7.2 equinox optax jaxtyping \
    numpy pandas pyyaml matplotlib scipy
  touch "$VENV/.bench-installed"
fi

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
PY="$VENV/bin/python"
echo "== machine: $(nproc) CPUs, $(uname -m); $("$PY" -V)"
echo "== stiff problems vs scipy (benchmarks/stiff.py)"
"$PY" benchmarks/stiff.py
echo "== continuous adjoint cost vs max_steps (benchmarks/adjoint_scaling.py)"
"$PY" benchmarks/adjoint_scaling.py
echo "== neural-ODE training vs torchdiffeq (benchmarks/neural_ode.py --steps $STEPS)"
"$PY" benchmarks/neural_ode.py --steps "$STEPS"
echo "== loss vs wall time, Adam alone vs Adam + L-BFGS-B (benchmarks/fit_loss_vs_time.py)"
"$PY" benchmarks/fit_loss_vs_time.py
