# Settings shared by scripts/recipe_cpu.sh and scripts/recipe_cpu_more.sh (sourced; reads their $1 and $2).
DATA=${1:-../shared/data}
OUT=${2:-runs/irad-cpu}
SURROGATE=${SURROGATE:-resnet20}
SURROGATE_WEIGHTS=${SURROGATE_WEIGHTS:-default}
# the command line of irad: the setup script's .venv if there is one, else the `irad` on PATH
if [ -z "${IRAD:-}" ]; then if [ -x .venv/bin/irad ]; then IRAD=.venv/bin/irad; else IRAD=irad; fi; fi
