#!/usr/bin/env bash
# Create ./.venv with irad and its dependencies (idempotent; offline-capable where the PyTorch wheels are local).
# PyTorch: torch 2.14.1 + torchvision 0.29.1 (a CUDA build that also runs on CPUs). The smaller CPU-only
# torch 2.13.0 has no torchvision that loads beside it, and irad needs torchvision (datasets, image folders).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
