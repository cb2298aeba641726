#!/usr/bin/env bash
# Training campaign (issue 14), step 1: PGD-20 pairs (L-inf 8/255, step 2/255, random start) for the implicit
# representation, from two surrogates (ResNet-20, FastNet) on all 45,000 training images, and validation pairs
# on the first 1,000 held-out images (the last 5,000 of train.npz) from both, plus from ResNet-32, a classifier
# that crafts no training pair (does the purifier generalise to a victim it never saw?).
#
#   scripts/campaign/pairs.sh DATA_DIR OUT_DIR [resnet20|fastnet|val ...]    (default: val resnet20 fastnet)
#
# Every folder resumes shard by shard: re-run the same command after a kill. Time on 2 CPU cores (measured on
# 250 images): ResNet-20 ~33 images/s, FastNet ~21 images/s, ResNet-32 ~22 images/s.
set -euo pipefail
DATA=${1:?DATA_DIR}; OUT=${2:?OUT_DIR}; shift 2
STAGES=${*:-val resnet20 fastnet}
IRAD=${IRAD:-irad}
PGD=(--steps 20 --eps 8/255 --alpha 2/255 --val-size 5000 --data "$DATA")
for stage in $STAGES; do
  case $stage in
    val)
      for s in resnet20 fastnet resnet32; do
        $IRAD train pairs --surrogate "$s" --split val --limit 1000 --shard-size 500 "${PGD[@]}" \
            --out "$OUT/val-$s-pgd20"
      done ;;
    resnet20|fastnet)
      $IRAD train pairs --surrogate "$stage" --split train --shard-size 1000 "${PGD[@]}" \
          --out "$OUT/train-$stage-pgd20" ;;
    *) echo "unknown stage $stage (val, resnet20, fastnet)" >&2; exit 2 ;;
  esac
done
