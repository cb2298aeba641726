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
# pip warns once per package that a configured local index folder is missing ("Location ... is ignored"): dozens of
# lines that read like a failed install, so they are filtered out; every other message, and pip's exit status, stay.
pip_install() {
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
pip_install "torch==2.14.1" "torchvision==0.29.1"
pip_install -e ".[test]"
echo "irad is set up in .venv (run .venv/bin/irad --help)"
