#!/usr/bin/env bash
# Train the embedded `photo` model from scratch on this machine, stage by stage:
#   teacher 16x16 (unconditional, RGB crops of the photos in datasets/photos.py) -> PF-ODE latents (train, test)
#   -> one-step decoder at 16x16 -> grow to 32 -> grow to 64 -> learned encoder -> colour network (colorization)
#   -> benchmark (docs/models/photo.md) -> export as fp16 into pagoda_inverse/models/photo.
# Needs the Debian package plasma-workspace-wallpapers (install.sh installs it). An interrupted stage continues with
# the same command plus `--resume RUN_DIR` (encode: re-run the same command). Usage: scripts/train_photo.sh [RUNS_DIR]
set -euo pipefail
RUNS=${1:-runs}
mkdir -p "$RUNS"
T=$(pagoda-inv train teacher --preset photo --runs "$RUNS" -q)
pagoda-inv encode --preset photo --teacher "$T" --out "$RUNS/photo-latents-train" -q 2> "$RUNS/photo-encode-train.log"
pagoda-inv encode --preset photo --teacher "$T" --split test --out "$RUNS/photo-latents-test" -q \
  2> "$RUNS/photo-encode-test.log"
L="$RUNS/photo-latents-train"
D16=$(pagoda-inv train decoder --preset photo --teacher "$T" --latents "$L" --runs "$RUNS" -q)
D32=$(pagoda-inv train grow --preset photo --decoder "$D16" --teacher "$T" --latents "$L" --runs "$RUNS" -q)
D64=$(pagoda-inv train grow --preset photo --decoder "$D32" --teacher "$T" --latents "$L" --runs "$RUNS" -q)
E=$(pagoda-inv train encoder --preset photo --teacher "$T" --latents "$L" --runs "$RUNS" -q)
C=$(pagoda-inv train colour --preset photo --runs "$RUNS" -q)
# The model's solver settings: the PF-ODE encoder (the learned one is too coarse here) and 4 posterior samples.
DEFAULTS='{"one_step": {"encoder": "ode", "samples": 4}}'
pagoda-inv export --overwrite --out pagoda_inverse/models/photo --teacher "$T" --decoder "$D64" --encoder "$E" \
  --colour "$C" --solver-defaults "$DEFAULTS"
python benchmarks/photo.py --teacher-run "$(dirname "$T")" --decoder-run "$(dirname "$D16")" \
  --grow-runs "$(dirname "$D32")" "$(dirname "$D64")" --encoder-run "$(dirname "$E")" \
  --test-latents "$RUNS/photo-latents-test" --encode-log "$RUNS/photo-encode-train.log" \
  --colour-run "$(dirname "$C")" --model pagoda_inverse/models/photo
pagoda-inv export --overwrite --out pagoda_inverse/models/photo --teacher "$T" --decoder "$D64" --encoder "$E" \
  --colour "$C" --solver-defaults "$DEFAULTS" --card docs/models/photo.md
