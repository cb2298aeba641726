#!/usr/bin/env bash
# Training campaign (issue 14), step 4: SampleNet at scale on the final implicit representation, with the fidelity
# weight λ chosen by scripts/campaign/samplenet_study.sh: one epoch over the 45,000 ResNet-20 training pairs in
# batches of 32 (1,407 steps), Adam 2e-4 with the paper's betas (0, 0.9), ResNet-20 as SampleNet's classifier,
# validated (and the weights so far written) every 200 steps on 500 held-out ResNet-20 pairs.
#
#   scripts/campaign/samplenet_run.sh PAIRS_DIR IMPLICIT_WEIGHTS RUN_DIR [LAMBDA]   # start, or resume after a kill
set -euo pipefail
PAIRS=${1:?PAIRS_DIR}; IMPLICIT=${2:?IMPLICIT_WEIGHTS}; RUN=${3:?RUN_DIR}; LAMBDA=${4:-200}
DATA=${DATA:-../shared/data}
IRAD=${IRAD:-irad}
$IRAD train samplenet --implicit "$IMPLICIT" --surrogate resnet20 \
    --pairs "$PAIRS/train-resnet20-pgd20" --val-pairs "$PAIRS/val-resnet20-pgd20" --val-images 500 \
    --batch-size 32 --epochs 1 --lr 2e-4 --fidelity "$LAMBDA" --checkpoint-every 50 --val-every 200 \
    --device cpu --data "$DATA" --out "$RUN"
