#!/usr/bin/env bash
# Training campaign (issue 14): copy the long run's weights so far (fp32 safetensors + JSON sidecar with sha256,
# steps done, validation PSNRs), its log and command into docs/training/irad-campaign/long-run/, and draw its
# learning curve, so that a commit carries the campaign to a new machine (continue with INIT=... long_run.sh).
#
#   scripts/campaign/snapshot.sh RUN_DIR [DEST]
set -euo pipefail
RUN=${1:?RUN_DIR}; DEST=${2:-docs/training/irad-campaign/long-run}
PY=${PY:-python}
mkdir -p "$DEST"
w="$RUN/implicit-adversarial-denoising"
[ -f "$w.safetensors" ] || { echo "no exported weights in $RUN yet (they appear at the first validation)" >&2; exit 1; }
# the sidecar names the weights' sha256: copy the pair, then check it
cp "$w.json" "$DEST/implicit-latest.json.tmp"; cp "$w.safetensors" "$DEST/implicit-latest.safetensors.tmp"
mv "$DEST/implicit-latest.safetensors.tmp" "$DEST/implicit-latest.safetensors"
mv "$DEST/implicit-latest.json.tmp" "$DEST/implicit-latest.json"
cp "$RUN/log.jsonl" "$RUN/command.txt" "$DEST/"
$PY - "$DEST" <<'PY'
import hashlib, json, sys
from pathlib import Path
dest = Path(sys.argv[1])
meta = json.loads((dest / "implicit-latest.json").read_text())
digest = hashlib.sha256((dest / "implicit-latest.safetensors").read_bytes()).hexdigest()
assert digest == meta["sha256"], "the copied weights do not match their sidecar: run the snapshot again"
print(f"snapshot: step {meta['steps_done']} of {meta['steps_planned']}, val_psnr {meta.get('val_psnr', float('nan')):.2f} dB")
PY
$PY "$(dirname "$0")/recipe_study.py" curve "$DEST/log.jsonl" "$DEST/curve.png"
