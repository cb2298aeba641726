#!/usr/bin/env bash
# Training campaign (issue 14), step 3b: the long run's validation PSNR was flat from step 10,000 to 14,000 with its
# 20-epoch cosine schedule still at 86 % of its peak rate, so instead of 42,000 more steps at slowly falling rates
# (about 5 h on 2 cores), the representation is annealed: a new cosine schedule from 4e-4 (about the long run's rate
# at step 14,000) down to 1 % over 3 epochs (8,439 steps of 32 crops), same data, crops, loss and validation,
# warm-started from the long run's weights exported at step 14,065 (the end of epoch 5) (the optimiser state is not carried).
#
#   scripts/campaign/anneal.sh PAIRS_DIR INIT_WEIGHTS RUN_DIR     # start, or resume after a kill / a new session
set -euo pipefail
PAIRS=${1:?PAIRS_DIR}; INIT=${2:?INIT_WEIGHTS}; RUN=${3:?RUN_DIR}
DATA=${DATA:-../shared/data}
IRAD=${IRAD:-irad}
$IRAD train implicit --task adversarial-denoising \
    --pairs "$PAIRS/train-resnet20-pgd20" --pairs "$PAIRS/train-fastnet-pgd20" \
    --val-pairs "$PAIRS/val-resnet20-pgd20" --val-pairs "$PAIRS/val-fastnet-pgd20" \
    --val-pairs "$PAIRS/val-resnet32-pgd20" --val-images 500 \
    --crop 16 --residual --batch-size 32 --lr 4e-4 --lr-schedule cosine --betas 0.9,0.999 --epochs 3 \
    --checkpoint-every 200 --val-every 2000 --device cpu --init "$INIT" --data "$DATA" --out "$RUN"
