#!/usr/bin/env bash
# IRAD CPU recipe: the paper's pipeline (pairs -> implicit representation -> SampleNet) at a REDUCED scale that
# finishes in about an hour on 2 CPU cores. NOT the paper's recipe; see README "Shipped weights" for the
# differences. Every stage checkpoints and resumes: re-run the same script after a kill.
#
#   scripts/recipe_cpu.sh [DATA_DIR] [OUT_DIR]
#
# Reductions vs the paper (§6, A.1): surrogate = the third-party ResNet-20 (the paper's ResNet-18 back-propagates
# at ~24 images/s on 2 CPU cores, ResNet-20 at ~270), PGD 10 steps instead of 100 (same eps 8/255, step 2/255),
# 3,000 training pairs instead of 50,000, 256 queried pixels per image instead of 1,024, batch 32 and lr 2e-4 for
# the implicit stage (3 epochs, then 4 more from those weights), SampleNet for 0.8 epoch with batch 50. Architecture as in the paper.
set -euo pipefail
source "$(dirname "$0")/recipe_cpu_settings.sh"

$IRAD train pairs --surrogate "$SURROGATE" --surrogate-weights "$SURROGATE_WEIGHTS" --split train \
    --steps 10 --limit 3000 --shard-size 500 --data "$DATA" --out "$OUT/pairs-train"
$IRAD train pairs --surrogate "$SURROGATE" --surrogate-weights "$SURROGATE_WEIGHTS" --split val \
    --steps 10 --limit 300 --shard-size 300 --data "$DATA" --out "$OUT/pairs-val"
$IRAD train implicit --task adversarial-denoising --pairs "$OUT/pairs-train" --val-pairs "$OUT/pairs-val" \
    --epochs 3 --queries 256 --batch-size 32 --lr 2e-4 --betas 0,0.9 --no-residual --crop 0 --val-images 200 --checkpoint-every 25 \
    --data "$DATA" --out "$OUT/implicit"
# Stage 2 (added after stage 1 reached only 27.9 dB on validation, below the 32.9 dB of its adversarial input):
# continue from stage 1's weights for 4 more epochs, then SampleNet for 0.8 epoch.
$IRAD train implicit --task adversarial-denoising --pairs "$OUT/pairs-train" --val-pairs "$OUT/pairs-val" \
    --init "$OUT/implicit/implicit-adversarial-denoising.safetensors" \
    --epochs 4 --queries 256 --batch-size 32 --lr 2e-4 --betas 0,0.9 --no-residual --crop 0 --val-images 200 --checkpoint-every 25 \
    --data "$DATA" --out "$OUT/implicit2"
$IRAD train samplenet --implicit "$OUT/implicit2/implicit-adversarial-denoising.safetensors" \
    --pairs "$OUT/pairs-train" --val-pairs "$OUT/pairs-val" --surrogate "$SURROGATE" \
    --surrogate-weights "$SURROGATE_WEIGHTS" --epochs 0.8 --batch-size 50 --val-images 200 --checkpoint-every 8 \
    --data "$DATA" --out "$OUT/samplenet2"
echo "IRAD weights: $OUT/samplenet2/irad.safetensors"
