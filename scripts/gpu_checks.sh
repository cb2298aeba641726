#!/usr/bin/env bash
# The checks that need a GPU, one per call, results under $OUT (default results/gpu). NOT yet run on a GPU (none was
# available): their run times there are unknown; table5 resumes after a kill, so a call that runs out of time can be
# repeated, or lower N. `CHECK=bench` also works on a CPU (slowly). Run from the repository root.
#
#   CHECK=bench    scripts/gpu_checks.sh   # issue "fast purification": irad vs reference, batches 1/64/200/1000,
#                                          # fp32 + bf16, image sizes 32-224, training throughput
#   CHECK=table5   scripts/gpu_checks.sh   # full-gradient attacks on DiffPure (t = 100, t = 20) and IRAD+DiffPure:
#                                          # the paper's claim that IRAD+DiffPure keeps DiffPure's robustness
#   CHECK=bf16     scripts/gpu_checks.sh   # IRAD SA/RA in fp32 and bf16 on test1000 (oblivious AutoAttack)
set -euo pipefail
# irad: the venv's where there is one, else the device's Python (after `CALL=1 scripts/gpu_session.sh`, run with
# PYTHONPATH=$PWD/src:$PWD/gpu-work/site so that pyautoattack and torchattacks are found)
if [ -z "${IRAD:-}" ]; then
    if [ -x .venv/bin/irad ]; then IRAD=.venv/bin/irad; else IRAD="python3 -m irad"; fi
fi
OUT=${OUT:-results/gpu}
N=${N:-200}
mkdir -p "$OUT"
case ${CHECK:-bench} in
bench)
    $IRAD bench --reference --training --image-sizes 32,64,128,224 --json "$OUT/bench.json" | tee "$OUT/bench.md" ;;
table5)
    $IRAD evaluate --preset table5 --victim resnet32 --defense diffpure:t_star=0.02,steps=20 \
        --defense irad+diffpure --defense diffpure -n "$N" --out "$OUT/table5" --cache "$OUT/cache" ;;
bf16)
    $IRAD evaluate --victim resnet32 --attack autoattack --defense irad --defense irad:precision=bf16 -n 1000 \
        --out "$OUT/bf16" --cache "$OUT/cache" ;;
*) echo "unknown CHECK=$CHECK (bench, table5, bf16)" >&2; exit 2 ;;
esac
