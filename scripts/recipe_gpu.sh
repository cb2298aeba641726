#!/usr/bin/env bash
# IRAD GPU recipe: the paper's pipeline near its scale, in stages that each fit one device call (<= 9 minutes),
# every stage resuming from the previous one's files. Run from the repository root on a machine whose Python has
# torch (+ irad's other dependencies, or PYTHONPATH pointing at carried wheels).
#
#   STAGE=pairs     scripts/recipe_gpu.sh DATA_DIR OUT_DIR   # PGD-100 pairs vs the ResNet-18 surrogate
#   STAGE=implicit  scripts/recipe_gpu.sh DATA_DIR OUT_DIR   # implicit representation, bf16 autocast
#   STAGE=samplenet scripts/recipe_gpu.sh DATA_DIR OUT_DIR   # SampleNet, batch 400
#
# DATA_DIR must hold cifar10/train.npz (its last VAL_SIZE images are the validation split). Where a device call
# carries at most 64 MiB, scripts/gpu_session.sh brings the images in lossless WebP packs (scripts/gpu_data.py).
# Paper settings kept: surrogate ResNet-18, PGD eps 8/255 step 2/255 100 steps random start, all 1,024 pixels
# queried, Adam (1e-4, betas (0, 0.9)) batch 128 for the implicit stage, Adam (2e-4) batch 400 for SampleNet.
# Reduced: the training images (the carry limit), and the number of epochs (time). Sizes are overridable below so
# the same script runs at toy size on a CPU (DEVICE=cpu LIMIT=40 VAL_LIMIT=20 STEPS=2 IMPLICIT_EPOCHS=0.5 ...).
set -euo pipefail
DATA=${1:?data dir}
OUT=${2:?output dir}
# the command line of irad: the setup script's .venv if there is one, else the `irad` on PATH
if [ -z "${IRAD:-}" ]; then if [ -x .venv/bin/irad ]; then IRAD=.venv/bin/irad; else IRAD=irad; fi; fi
DEVICE=${DEVICE:-cuda}
LIMIT=${LIMIT:-}            # training pairs (default: the whole train split of DATA)
VAL_LIMIT=${VAL_LIMIT:-1000}
STEPS=${STEPS:-100}
SURROGATE=${SURROGATE:-resnet18}
SURROGATE_WEIGHTS=${SURROGATE_WEIGHTS:-default}  # a file, e.g. when the package's weights cannot travel
VAL_SIZE=${VAL_SIZE:-5000}  # the last VAL_SIZE images of DATA's train.npz are the validation split
IMPLICIT_EPOCHS=${IMPLICIT_EPOCHS:-40}
IMPLICIT_BATCH=${IMPLICIT_BATCH:-128}
SAMPLENET_EPOCHS=${SAMPLENET_EPOCHS:-5}
SAMPLENET_BATCH=${SAMPLENET_BATCH:-400}
AMP=${AMP:---amp}
IMPLICIT_MINUTES=${IMPLICIT_MINUTES:-}    # optional --time-limit of each training stage (clean stop, resumable)
SAMPLENET_MINUTES=${SAMPLENET_MINUTES:-}
limit_arg=()
[ -n "$LIMIT" ] && limit_arg=(--limit "$LIMIT")
imp_limit=() sn_limit=()
[ -n "$IMPLICIT_MINUTES" ] && imp_limit=(--time-limit "$IMPLICIT_MINUTES")
[ -n "$SAMPLENET_MINUTES" ] && sn_limit=(--time-limit "$SAMPLENET_MINUTES")
S=(--device "$DEVICE" --data "$DATA")

case "${STAGE:?set STAGE=pairs|implicit|samplenet}" in
  pairs)
    $IRAD train pairs --surrogate "$SURROGATE" --surrogate-weights "$SURROGATE_WEIGHTS" --split train \
        --steps "$STEPS" ${limit_arg[@]+"${limit_arg[@]}"} --val-size "$VAL_SIZE" --shard-size 4000 --batch-size 4000 "${S[@]}" \
        --out "$OUT/pairs-train"
    $IRAD train pairs --surrogate "$SURROGATE" --surrogate-weights "$SURROGATE_WEIGHTS" --split val \
        --steps "$STEPS" --limit "$VAL_LIMIT" --val-size "$VAL_SIZE" --shard-size 1000 --batch-size 1000 "${S[@]}" \
        --out "$OUT/pairs-val" ;;
  implicit)
    $IRAD train implicit --task adversarial-denoising --pairs "$OUT/pairs-train" --val-pairs "$OUT/pairs-val" \
        --epochs "$IMPLICIT_EPOCHS" --batch-size "$IMPLICIT_BATCH" --lr 1e-4 --betas 0,0.9 --no-residual --crop 0 \
        $AMP --val-size "$VAL_SIZE" \
        --val-images "$VAL_LIMIT" --checkpoint-every 500 ${imp_limit[@]+"${imp_limit[@]}"} "${S[@]}" --out "$OUT/implicit" ;;
  samplenet)
    $IRAD train samplenet --implicit "$OUT/implicit/implicit-adversarial-denoising.safetensors" \
        --pairs "$OUT/pairs-train" --val-pairs "$OUT/pairs-val" --surrogate "$SURROGATE" \
        --surrogate-weights "$SURROGATE_WEIGHTS" --epochs "$SAMPLENET_EPOCHS" --batch-size "$SAMPLENET_BATCH" $AMP \
        --val-images "$VAL_LIMIT" --checkpoint-every 50 ${sn_limit[@]+"${sn_limit[@]}"} "${S[@]}" --out "$OUT/samplenet" ;;
  *) echo "unknown STAGE $STAGE" >&2; exit 2 ;;
esac
