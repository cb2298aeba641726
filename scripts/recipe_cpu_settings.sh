# Settings shared by scripts/recipe_cpu.sh and scripts/recipe_cpu_more.sh (sourced; reads their $1 and $2).
DATA=${1:-../shared/data}
OUT=${2:-runs/irad-cpu}
SURROGATE=${SURROGATE:-resnet20}
SURROGATE_WEIGHTS=${SURROGATE_WEIGHTS:-default}
IRAD=${IRAD:-irad}
