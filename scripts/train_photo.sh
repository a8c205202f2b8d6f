#!/usr/bin/env bash
# Train the embedded `photo` model from scratch on this machine, stage by stage:
#   teacher 16x16 (unconditional, RGB crops of the photos in datasets/photos.py) -> PF-ODE latents (train, test)
#   -> one-step decoder at 16x16 -> grow to 32 -> grow to 64 -> colour network (colorization)
#   -> export as fp16 into pagoda_inverse/models/photo -> posterior encoders for colorization, super-resolution and
#   deblurring (trained against the exported G; measured on training photos, the chosen ones exported beside it)
#   -> benchmark (docs/photo.md, model card).
# Needs the photo packages that install.sh installs (plasma-workspace-wallpapers, lomiri-wallpapers-16.04 and -20.04,
# opencv-doc). Training takes about 195 min on a 2-core CPU (165 without the posterior encoders), plus 68 min for the
# candidate superres and deblur encoders; docs/photo.md lists each stage's measured time.
# Running the same command again continues where it stopped: a finished stage leaves its output in
# RUNS/photo-STAGE.path and is not redone; an interrupted training stage continues from its last checkpoint (its run
# folder is named in RUNS/photo-STAGE.log) and its training time is summed over the sessions.
# Usage: scripts/train_photo.sh [RUNS_DIR]
set -euo pipefail
shopt -s inherit_errexit
RUNS=${1:-runs}
mkdir -p "$RUNS"

# stage NAME COMMAND...: run a pagoda-inv COMMAND once (quiet, its log in RUNS/photo-NAME.log), continuing the run
# folder of an interrupted earlier try, and print what it printed (a training stage: its checkpoint).
stage() {
  local done="$RUNS/photo-$1.path" log="$RUNS/photo-$1.log" run=""
  shift
  if [ ! -e "$done" ]; then
    if [ -f "$log" ]; then run=$(sed -n 's/^run folder: //p' "$log" | tail -n 1); fi
    if [ -n "$run" ] && [ -d "$run" ]; then set -- "$@" --resume "$run"; fi
    "$@" -q > "$done.part" 2>> "$log"
    mv "$done.part" "$done"
  fi
  cat "$done"
}

L="$RUNS/photo-latents-train"
T=$(stage teacher pagoda-inv train teacher --preset photo --runs "$RUNS")
stage encode-train pagoda-inv encode --preset photo --teacher "$T" --out "$L" > /dev/null
stage encode-test pagoda-inv encode --preset photo --teacher "$T" --split test --out "$RUNS/photo-latents-test" > /dev/null
D16=$(stage decoder pagoda-inv train decoder --preset photo --teacher "$T" --latents "$L" --runs "$RUNS")
D32=$(stage grow32 pagoda-inv train grow --preset photo --decoder "$D16" --teacher "$T" --latents "$L" --runs "$RUNS")
D64=$(stage grow64 pagoda-inv train grow --preset photo --decoder "$D32" --teacher "$T" --latents "$L" --runs "$RUNS")
C=$(stage colour pagoda-inv train colour --preset photo --runs "$RUNS")
# The model's solver settings, chosen on training crops: one_step (the posterior encoders' families) and encode_perturb
# (the others) with 2 samples (4 cost twice the decoding time for a few hundredths of a dB), bf16 networks where the
# device has native bfloat16 (precision auto; emulated bf16 on an AVX2-only CPU is ~12x slower than fp32);
# encode_perturb: the PF-ODE encoding in G's training steps (12), perturbed by eta 0.1 (0.3: -0.1 dB).
# colour_net: chroma scaled by 0.2, and one_step's colorize estimate shrunk toward the gray copy by 0.5: the largest
# mean gains over the gray copy on the whole colour training photos (docs/photo-choices.md; one_step's is the larger,
# so it is the default colorization). (No learned encoder: at 16.9 dB it was too coarse.)
DEFAULTS='{"one_step": {"samples": 2, "precision": "auto"}, "encode_perturb": {"num_steps": 12, "eta": 0.1, "samples": 2, "precision": "auto"}, "colour_net": {"saturation": 0.2}, "families": {"colorize": {"one_step": {"shrink": 0.5}}}}'
MODEL=pagoda_inverse/models/photo
export_model() {
  pagoda-inv export --overwrite --out "$MODEL" --teacher "$T" --decoder "$D64" --colour "$C" \
    --solver-defaults "$DEFAULTS" "$@"
}
export_model
# The posterior encoders, trained for the decoder exported above: colorize (2000 steps), superres (800) and deblur (300;
# the photo-v3 issue's 90-minute budget for the two new ones).
P1=$(stage posterior-colorize pagoda-inv train posterior --family colorize --preset photo --model "$MODEL" --runs "$RUNS")
P2=$(stage posterior-superres pagoda-inv train posterior --family superres --preset photo --model "$MODEL" --runs "$RUNS" --steps 800)
P3=$(stage posterior-deblur pagoda-inv train posterior --family deblur --preset photo --model "$MODEL" --runs "$RUNS" --steps 300)
# Every candidate beside a copy of the model, measured on whole training photos (docs/photo-choices.md).
CANDIDATES="$RUNS/photo-candidates"
rm -rf "$CANDIDATES" && cp -r "$MODEL" "$CANDIDATES"
pagoda-inv export --overwrite --out "$CANDIDATES" --posterior "$P1" --posterior "$P2" --posterior "$P3" > /dev/null
python benchmarks/photo_choices.py --model "$CANDIDATES"
# Shipped from those measurements: the colorize encoder only. On the training photos encode_perturb beat the superres
# encoder (800 steps) by 0.5-1.3 dB and the deblur encoder (300 steps) by 0.4-1.3 dB, so those families keep
# encode_perturb; colour_net's saturation (in DEFAULTS) is the one of the largest mean gain there.
add_posterior() { pagoda-inv export --overwrite --out "$MODEL" --posterior "$P1" "$@"; }
add_posterior
python benchmarks/photo.py --teacher-run "$(dirname "$T")" --decoder-run "$(dirname "$D16")" \
  --grow-runs "$(dirname "$D32")" "$(dirname "$D64")" \
  --test-latents "$RUNS/photo-latents-test" --encode-log "$RUNS/photo-encode-train.log" \
  --colour-run "$(dirname "$C")" --model "$MODEL"
add_posterior --card docs/models/photo.md
