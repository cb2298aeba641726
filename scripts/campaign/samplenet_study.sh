#!/usr/bin/env bash
# Training campaign (issue 14), step 4a: a small study of SampleNet's fidelity weight λ (the loss is the paper's
# CE(f(IR(X)), y) + CE(f(IR(X')), y) plus λ·|IR(X) − X|₁, which keeps resampled clean images sharp), at equal compute:
# the same 2,000 ResNet-20 training pairs (63 steps of 32), ResNet-20 as SampleNet's classifier, chosen on 200
# held-out ResNet-20 validation pairs (surrogate accuracy, clean and adversarial, and PSNR(IR(X), X)).
#
#   scripts/campaign/samplenet_study.sh PAIRS_DIR IMPLICIT_WEIGHTS OUT_DIR [LAMBDA ...]
set -euo pipefail
PAIRS=${1:?PAIRS_DIR}; IMPLICIT=${2:?IMPLICIT_WEIGHTS}; OUT=${3:?OUT_DIR}; shift 3
DATA=${DATA:-../shared/data}
IRAD=${IRAD:-irad}
lambdas=("$@"); [ ${#lambdas[@]} -gt 0 ] || lambdas=(0 10 50)
for lam in "${lambdas[@]}"; do
    $IRAD train samplenet --implicit "$IMPLICIT" --surrogate resnet20 \
        --pairs "$PAIRS/train-resnet20-pgd20" --val-pairs "$PAIRS/val-resnet20-pgd20" --val-images 200 \
        --train-limit 2000 --batch-size 32 --epochs 1 --lr 2e-4 --fidelity "$lam" --checkpoint-every 20 \
        --device cpu --data "$DATA" --out "$OUT/fidelity-$lam"
done
