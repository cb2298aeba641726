#!/usr/bin/env bash
# Table 7 (training task of the implicit representation) at a REDUCED CPU scale, NOT the paper's:
# every task trains the same smaller model (EDSR with 4 residual blocks instead of 16; MLP as in the paper) from
# scratch for 2 epochs on the same 3,000 training images (256 queried pixels per image, batch 32, lr 2e-4), so the
# tasks get equal budgets. The adversarial-denoising task uses the CPU recipe's PGD-10 pairs (ResNet-20 surrogate;
# make them with scripts/recipe_cpu.sh's first two commands). No SampleNet is trained per task: the evaluation
# (scripts/readme_tables.sh table7) resamples each representation with a fixed shift d = 1.5 and at U = G.
# Two tasks train at a time, one thread each; every run checkpoints and resumes (re-run after a kill).
#
#   scripts/table7.sh [DATA_DIR] [PAIRS_DIR] [OUT_DIR]
set -euo pipefail
DATA=${1:-../shared/data}
PAIRS=${2:-runs/irad-cpu}
OUT=${3:-runs/table7}
IRAD=${IRAD:-.venv/bin/irad}
COMMON=(--epochs 2 --queries 256 --batch-size 32 --lr 2e-4 --betas 0,0.9 --no-residual --crop 0 --encoder-blocks 4 --train-limit 3000 --val-images 100
        --checkpoint-every 25 --data "$DATA" --device cpu)

train() {  # train TASK [ARGS...]
    local task=$1
    shift
    if [ -f "$OUT/$task/implicit-$task.safetensors" ]; then echo "$task: already trained"; return; fi
    mkdir -p "$OUT/$task"
    OMP_NUM_THREADS=1 $IRAD train implicit --task "$task" "${COMMON[@]}" --out "$OUT/$task" "$@" \
        > "$OUT/$task.out" 2>&1
    echo "$task: done"
}

train adversarial-denoising --pairs "$PAIRS/pairs-train" --val-pairs "$PAIRS/pairs-val" &
train clean2clean &
wait
train gaussian-denoising &
train inpainting &
wait
train super-resolution
