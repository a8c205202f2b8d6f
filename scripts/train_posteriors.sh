#!/usr/bin/env bash
# Train the posterior encoders of a model's one-step G, one family after another, export them into the model folder
# and write docs/posterior.md.
# Stage 1 (v2, fixed consistency): each family from scratch; on 2026-11-30 (bf16 steps on a 2-core AMX CPU) about
# 0.48 s/step inpaint, 0.78 deblur, 0.45 superres, 0.55 denoise: 89.3 min of training in all.
# Stage 2 (v3, learned consistency, 2026-12-07, fp32 on a 2-core AVX2 CPU): inpaint and denoise fine-tune all of q from
# stage 1 (preset fmnist-finetune), superres and deblur train only the consistency read-out (preset fmnist-readout);
# docs/posterior.md lists each family's measured time. Training is seeded and deterministic: a rerun on the same
# CPU kind and number of threads reproduces the weights bit for bit (precision auto picks bf16 only on a CPU with
# native bfloat16, so the arithmetic follows the machine). An interrupted family continues with
# `pagoda-inv train posterior --family F --resume RUN_DIR`.
# Usage: scripts/train_posteriors.sh [MODEL_FOLDER] [RUNS_DIR]
set -euo pipefail
F=${1:-pagoda_inverse/models/fmnist}
RUNS=${2:-runs}
mkdir -p "$RUNS"
for spec in inpaint:5000 deblur:2400 superres:1600 denoise:700; do
  family=${spec%:*}
  pagoda-inv train posterior --family "$family" --consistency fixed --steps "${spec#*:}" --model "$F" --runs "$RUNS" \
    -q > "$RUNS/posterior-$family-v2.path"
done
for spec in inpaint:fmnist-finetune:600 denoise:fmnist-finetune:400 superres:fmnist-readout:120 deblur:fmnist-readout:120; do
  IFS=: read -r family preset steps <<< "$spec"
  pagoda-inv train posterior --family "$family" --preset "$preset" --steps "$steps" --model "$F" --runs "$RUNS" -q \
    --init "$(cat "$RUNS/posterior-$family-v2.path")" > "$RUNS/posterior-$family.path"
done
pagoda-inv export --overwrite --out "$F" $(for f in inpaint deblur superres denoise; do echo --posterior "$(cat "$RUNS/posterior-$f.path")"; done)
python benchmarks/posterior.py --images 256 --samples 16
