#!/usr/bin/env bash
# The checks that need a GPU, one per call, results under $OUT (default results/gpu). NOT yet run on a GPU (none was
# available): their run times there are unknown. An evaluation caches its attack only once all N images are done,
# so each defense of table5 is its own run (a finished one is kept when a later one runs out of time); lower N if
# a call runs out of time. `CHECK=bench` also works on a CPU (slowly). Run from the repository root.
#
#   CHECK=bench    scripts/gpu_checks.sh   # issue "fast purification": irad vs reference, batches 1/64/200/1000,
#                                          # fp32 + bf16, image sizes 32-224, training throughput
#   CHECK=table5   scripts/gpu_checks.sh   # full-gradient PGD-10 with EOT over 4 passes (the CPU rows' protocol,
#                                          # readme_tables.sh table5-diffpure) on N = 128 images instead of 16:
#                                          # DiffPure t = 20, IRAD+DiffPure t = 20, DiffPure t = 100 — the paper's
#                                          # claim that IRAD+DiffPure keeps DiffPure's robustness. (The paper's
#                                          # AutoAttack `rand` through 20-100 SDE steps needs far more than a call.)
#   CHECK=bf16     scripts/gpu_checks.sh   # IRAD SA/RA in fp32 and bf16 on test1000 (oblivious AutoAttack)
set -euo pipefail
# irad: the venv's where there is one, else the device's Python with this checkout's src/ and the packages that
# `CALL=1 scripts/gpu_session.sh` unpacked into gpu-work/site (pyautoattack, torchattacks) on the same warm machine
if [ -z "${IRAD:-}" ]; then
    if [ -x .venv/bin/irad ]; then IRAD=.venv/bin/irad; else
        export PYTHONPATH="$PWD/src:$PWD/gpu-work/site${PYTHONPATH:+:$PYTHONPATH}"
        IRAD="python3 -m irad"
        python3 -c "import irad, torchattacks, pyautoattack" || {
            echo "irad, torchattacks or pyautoattack cannot be imported: run CALL=1 scripts/gpu_session.sh first" >&2
            exit 2; }
    fi
fi
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
case ${CHECK:-bench} in
bench)
    $IRAD bench --reference --training --image-sizes 32,64,128,224 --json "$OUT/bench.json" | tee "$OUT/bench.md" ;;
table5)
    for d in diffpure:t_star=0.02,steps=20 irad+diffpure diffpure; do
        $IRAD evaluate --victim resnet32 --threat-model full-gradient --attack pgd:steps=10 --eot-samples 4 \
            --defense "$d" -n "${N:-128}" --repeats 1 --out "$OUT/table5-${d//[:=,]/-}" --cache "$OUT/cache"
    done ;;
bf16)
    $IRAD evaluate --victim resnet32 --attack autoattack --defense irad --defense irad:precision=bf16 -n "${N:-1000}" \
        --out "$OUT/bf16" --cache "$OUT/cache" ;;
*) echo "unknown CHECK=$CHECK (bench, table5, bf16)" >&2; exit 2 ;;
esac
