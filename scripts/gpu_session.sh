#!/usr/bin/env bash
# A GPU session in two device calls on the SAME warm machine (the carry limit, 64 MiB a call, splits the data in
# two; call 2 uses what call 1 left in gpu-work/, so it must start within the machine's 30 s warm period).
# Run from the repository root on the device machine; results land in $OUT. Prepared here by:
#   scripts/gpu_session.sh prepare            # (this machine) gpu-c1/, gpu-c2/: packs, wheels, surrogate
# and on the device:
#   CALL=1 scripts/gpu_session.sh             # carry gpu-c1: setup, CUDA smoke run of every stage, `irad bench`
#   CALL=2 BUDGET=420 scripts/gpu_session.sh  # carry gpu-c2: pairs (PGD-100, ResNet-18), implicit, SampleNet
# Device time: a machine start (1-2 min) + call 1 (at most ~4 min: smoke, then two benchmarks of at most BENCH_S=90 s)
# + call 2 (BUDGET s) must fit the session's 15 minutes: set BUDGET from what `status` says is left.
# Both calls run the stages of scripts/recipe_gpu.sh (call 1 at toy size). Call 2 splits what is left of BUDGET
# (seconds) between the implicit representation (3/4) and SampleNet, via `--time-limit`, so the whole call ends
# inside its device limit; every stage writes its results to $OUT at once.
# The surrogate (pyautoattack's ResNet-18) travels rounded to float16 (44.8 -> 21.3 MiB); `prepare` checks on
# test1000 that it predicts what the float32 file predicts.
set -euo pipefail
W=gpu-work
if [ "${1:-}" = prepare ]; then
    SRC=${SRC:-../shared/data/cifar10/train.npz}
    PY=${PY:-.venv/bin/python}
    A_STOP=${A_STOP:-9000}    # sizes that fit: 65.3 / 64.9 MB with the tree, of 67.1
    B_STOP=${B_STOP:-31500}
    rm -rf gpu-c1 gpu-c2 && mkdir -p gpu-c1/site gpu-c2
    cp -r "$($PY -c 'import os, pyautoattack; print(os.path.dirname(pyautoattack.__file__))')" gpu-c1/site/
    rm -rf gpu-c1/site/pyautoattack/examples gpu-c1/site/pyautoattack/__pycache__
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 -d gpu-c1 torchattacks==3.5.1
    $PY - <<'PYEOF'
import torch
from irad.utils import sha256_file
from irad.weights import resolve_weights, save_weights
_, src = resolve_weights("resnet18-autoattack")
sd = torch.load(src, map_location="cpu", weights_only=True)
save_weights({k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()},
             "gpu-c1/resnet18-fp16.safetensors",  # one self-describing file, its sha256 in its metadata
             {"arch": "resnet18", "dataset": "cifar10", "mean": None, "std": None, "num_classes": 10,
              "original_sha256": sha256_file(src),
              "source": "pyautoattack==0.2.0 examples/model_test.pt, rounded to float16 for a GPU call's carry"})
from irad.classifiers import load_classifier
from irad.data import load_dataset
x, y = load_dataset("cifar10", "test").tensors(1000, 0)
with torch.no_grad():
    logits = [torch.cat([load_classifier("resnet18", weights=w)(x[i:i + 250]) for i in range(0, 1000, 250)])
              for w in ("default", "gpu-c1/resnet18-fp16.safetensors")]
acc = [float((z.argmax(1) == y).float().mean()) for z in logits]
same = float((logits[0].argmax(1) == logits[1].argmax(1)).float().mean())
print(f"test1000: float32 {acc[0]:.3f}, float16 {acc[1]:.3f}, same prediction {same:.3f}, "
      f"max logit difference {float((logits[0] - logits[1]).abs().max()):.3g}")
assert same == 1.0, "the float16 surrogate predicts differently"
PYEOF
    $PY scripts/gpu_data.py pack "$SRC" gpu-c1/val.npz --images 45000:46000 --role val
    $PY scripts/gpu_data.py pack "$SRC" gpu-c1/train-a.npz --images 0:"$A_STOP"
    $PY scripts/gpu_data.py pack "$SRC" gpu-c2/train-b.npz --images "$A_STOP":"$B_STOP"
    du -sh gpu-c1 gpu-c2
    exit 0
fi

OUT=${OUT:?run on the device machine, where OUT is set}
export PYTHONPATH="$PWD/src:$PWD/$W/site" PYTHONUNBUFFERED=1
PYBIN=${PYBIN:-python3}  # the device's Python, which has torch
DEV=${DEV:-cuda}         # dry run here: DEV=cpu PYBIN=.venv/bin/python AMP=--no-amp LIMIT=40 VAL_LIMIT=20 STEPS=1
log() { echo "[$(date +%T) +${SECONDS}s] $*"; }
show() { tr '\r' '\n' <"$1" | grep -v 'it/s]$' | tail -n 25 | tee -a "$OUT/session.log" || true; }

case ${CALL:?set CALL=1 or CALL=2} in
1)
    [ -d gpu-c1 ] || { echo "gpu-c1/ is missing: carry it (run \`scripts/gpu_session.sh prepare\` here first)" >&2; exit 2; }
    mkdir -p $W/site $W/packs
    for whl in gpu-c1/*.whl; do $PYBIN -m zipfile -e "$whl" $W/site; done  # pure-Python wheels: unzip = install
    cp -r gpu-c1/site/pyautoattack $W/site/
    cp gpu-c1/resnet18-fp16.* gpu-c1/*.npz $W/ 2>/dev/null; mv $W/val.npz $W/train-a.npz $W/packs/
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true; } | tee $OUT/smoke.log
    $PYBIN -c "import torch, irad, torchattacks, pyautoattack; from PIL import features; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU', '| Pillow WebP (the packs need it):', features.check('webp'))" 2>&1 | tee -a "$OUT/smoke.log" || log "import check failed (the benchmarks below need none of the carried packages)"
    log "smoke: every stage on $DEV at toy size" | tee -a "$OUT/smoke.log"
    rm -rf $W/smoke  # a rerun on a warm machine must not resume an earlier smoke run
    set +e
    (
        set -ex
        $PYBIN scripts/gpu_data.py unpack $W/smoke/cifar10/train.npz $W/packs/val.npz $W/packs/train-a.npz
        export IRAD="$PYBIN -m irad" DEVICE=$DEV SURROGATE_WEIGHTS=$W/resnet18-fp16.safetensors VAL_SIZE=1000 \
            LIMIT=64 VAL_LIMIT=64 STEPS=2 IMPLICIT_EPOCHS=2 IMPLICIT_BATCH=32 SAMPLENET_EPOCHS=1 \
            SAMPLENET_BATCH=32 IMPLICIT_MINUTES=0.5
        for stage in pairs implicit samplenet; do STAGE=$stage scripts/recipe_gpu.sh $W/smoke $W/smoke; done
        $PYBIN -c "import irad, torch; d = irad.load_defense('irad', weights='$W/smoke/samplenet/irad.safetensors', device='$DEV'); print('purified', d(torch.rand(4, 3, 32, 32, device='$DEV')).shape)"
    ) >>"$OUT/smoke.log" 2>&1
    rc=$?
    set -e
    if [ $rc -eq 0 ]; then log "smoke: OK"; else log "smoke: FAILED (rc $rc)"; fi | tee -a "$OUT/smoke.log"
    log "bench 1: strict fp32 (no TF32, like for like with the reference) and bf16, batches 1/64/200/1000"
    timeout ${BENCH_S:-90} $PYBIN -m irad bench --reference --strict-fp32 --repeats 5 --device $DEV \
        --json $OUT/bench-strict.json 2>&1 | tee $OUT/bench-strict.md || log "bench 1 stopped (rc $?)"
    log "bench 2: PyTorch's default TF32 settings at batch 200, + image sizes (batch 64) and training throughput"
    timeout ${BENCH_S:-90} $PYBIN -m irad bench --reference --batch-sizes 200 --repeats 3 --training \
        --image-sizes 32,64,128,224 --batch-size 64 --device $DEV --json $OUT/bench-default.json 2>&1 | tee $OUT/bench-default.md || log "bench 2 stopped (rc $?)"
    log "call 1 done" ;;
2)
    BUDGET=${BUDGET:-420}
    for f in $W/site/pyautoattack $W/resnet18-fp16.safetensors $W/packs/val.npz $W/packs/train-a.npz; do
        [ -e "$f" ] || { echo "$f is missing: run CALL=1 first, on the same warm machine" >&2; exit 2; }
    done
    # the logs come back whatever happens
    trap 'tar czf $OUT/runs.tgz $(ls -d $W/pairs-*/meta.json $W/implicit/log.jsonl $W/implicit/command.txt \
        $W/pairs.out $W/implicit.out $W/samplenet/log.jsonl $W/samplenet/command.txt $W/samplenet.out 2>/dev/null) || true' EXIT
    cp gpu-c2/*.npz $W/packs/
    log "unpack" | tee $OUT/session.log
    $PYBIN scripts/gpu_data.py unpack $W/data/cifar10/train.npz $W/packs/*.npz 2>&1 | tee -a "$OUT/session.log"
    val_size=$(grep -o -- '--val-size [0-9]*' "$OUT/session.log" | tail -n 1 | cut -d' ' -f2)
    export IRAD="$PYBIN -m irad" DEVICE=$DEV SURROGATE_WEIGHTS=$W/resnet18-fp16.safetensors VAL_SIZE=${val_size:?} \
        IMPLICIT_EPOCHS=200 SAMPLENET_EPOCHS=50 AMP=${AMP:---amp}
    # PGD-100 on ResNet-18 for 32,500 images: ~80 s at the 42,000 steps/s measured on an H200; the timeout keeps a
    # slower machine inside the call's limit, so that the EXIT trap still returns the logs
    log "pairs (at most $((BUDGET / 2)) s)" | tee -a $OUT/session.log
    timeout $((BUDGET / 2)) env STAGE=pairs scripts/recipe_gpu.sh $W/data $W >$W/pairs.out 2>&1 || fail=1
    show $W/pairs.out; [ -z "${fail:-}" ]
    left=$((BUDGET - SECONDS)); imp=$(( (left - 75) * 3 / 4 )); imp=$(( imp > 6 ? imp : 6 ))
    log "implicit: ${imp}s of training" | tee -a $OUT/session.log
    IMPLICIT_MINUTES=$($PYBIN -c "print($imp / 60)") STAGE=implicit scripts/recipe_gpu.sh $W/data $W \
        >$W/implicit.out 2>&1 || fail=1
    show $W/implicit.out; [ -z "${fail:-}" ]
    cp $W/implicit/implicit-adversarial-denoising.* $OUT/
    left=$((BUDGET - SECONDS)); sn=$(( left - 40 )); sn=$(( sn > 6 ? sn : 6 ))
    log "samplenet: ${sn}s of training" | tee -a $OUT/session.log
    SAMPLENET_MINUTES=$($PYBIN -c "print($sn / 60)") STAGE=samplenet scripts/recipe_gpu.sh $W/data $W \
        >$W/samplenet.out 2>&1 || fail=1
    show $W/samplenet.out; [ -z "${fail:-}" ]
    cp $W/samplenet/irad.safetensors $OUT/  # one self-describing file
    log "call 2 done" | tee -a $OUT/session.log ;;
*) echo "CALL must be 1 or 2" >&2; exit 2 ;;
esac
