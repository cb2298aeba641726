#!/usr/bin/env bash
# Training campaign (issue 14), step 3: the long run of the implicit representation on the recipe chosen by
# scripts/campaign/recipe_study.py (docs/training/irad-campaign/recipe-study.md), on all 90,000 PGD-20 pairs of
# scripts/campaign/pairs.sh (ResNet-20 and FastNet surrogates, 45,000 training images each), validated on held-out
# pairs of ResNet-20 (val_psnr), FastNet and ResNet-32 (a classifier that crafted no training pair).
#
#   scripts/campaign/long_run.sh PAIRS_DIR RUN_DIR          # start, or resume after a kill / a new session
#   INIT=WEIGHTS scripts/campaign/long_run.sh PAIRS_DIR RUN_DIR   # a new machine: continue from committed weights
#
# Meant to run niced in the background from a frozen `git worktree` (see docs/training/irad-campaign/README.md).
# The weights so far are exported at every validation (RUN_DIR/implicit-adversarial-denoising.safetensors, partial
# until the last step); scripts/campaign/snapshot.sh copies them and the log into docs/ for a commit.
set -euo pipefail
PAIRS=${1:?PAIRS_DIR}; RUN=${2:?RUN_DIR}
DATA=${DATA:-../shared/data}
IRAD=${IRAD:-irad}
init=()
[ -n "${INIT:-}" ] && init=(--init "$INIT")
$IRAD train implicit --task adversarial-denoising \
    --pairs "$PAIRS/train-resnet20-pgd20" --pairs "$PAIRS/train-fastnet-pgd20" \
    --val-pairs "$PAIRS/val-resnet20-pgd20" --val-pairs "$PAIRS/val-fastnet-pgd20" \
    --val-pairs "$PAIRS/val-resnet32-pgd20" --val-images 500 \
    --crop 16 --residual --batch-size 32 --lr 5e-4 --lr-schedule cosine --betas 0.9,0.999 --epochs 20 \
    --checkpoint-every 200 --val-every 2000 --device cpu ${init[@]+"${init[@]}"} --data "$DATA" --out "$RUN"
