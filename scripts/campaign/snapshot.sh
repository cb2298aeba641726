#!/usr/bin/env bash
# Training campaign (issue 14): copy the long run's weights so far (one fp32 safetensors file whose metadata holds
# the sha256, steps done, validation PSNRs), its log and command into docs/training/irad-campaign/long-run/, and draw its
# learning curve, so that a commit carries the campaign to a new machine (continue with INIT=... long_run.sh).
#
#   scripts/campaign/snapshot.sh RUN_DIR [DEST]
set -euo pipefail
RUN=${1:?RUN_DIR}; DEST=${2:-docs/training/irad-campaign/long-run}
PY=${PY:-python}
mkdir -p "$DEST"
w="$RUN/implicit-adversarial-denoising"
[ -f "$w.safetensors" ] || { echo "no exported weights in $RUN yet (they appear at the first validation)" >&2; exit 1; }
# copy the weights (the run's frozen code may write the older pair: weights + .json sidecar), make them one
# self-describing file, and check its sha256 against the one its metadata records
cp "$w.safetensors" "$DEST/implicit-latest.safetensors.tmp"
[ -f "$w.json" ] && cp "$w.json" "$DEST/implicit-latest.safetensors.json.tmp"
$PY - "$DEST" <<'PY'
import os, sys
from pathlib import Path
from irad.weights import convert_weights, load_state_dict_file, read_meta
dest = Path(sys.argv[1])
tmp, side = dest / "implicit-latest.safetensors.tmp", dest / "implicit-latest.safetensors.json.tmp"
work = dest / "implicit-latest.work.safetensors"
os.replace(tmp, work)
if side.is_file():
    os.replace(side, work.with_suffix(".json"))
convert_weights(work)
load_state_dict_file(work)  # checks the tensors against the sha256 the metadata records
os.replace(work, dest / "implicit-latest.safetensors")
(dest / "implicit-latest.json").unlink(missing_ok=True)  # the sidecar of earlier snapshots
meta = read_meta(dest / "implicit-latest.safetensors")
print(f"snapshot: step {meta['steps_done']} of {meta['steps_planned']}, val_psnr {meta.get('val_psnr', float('nan')):.2f} dB")
PY
cp "$RUN/log.jsonl" "$RUN/command.txt" "$DEST/"
$PY "$(dirname "$0")/recipe_study.py" curve "$DEST/log.jsonl" "$DEST/curve.png"
