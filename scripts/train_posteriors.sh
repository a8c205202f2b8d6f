#!/usr/bin/env bash
# Train the posterior encoders of a model's one-step G, one family after another (bf16 steps on both cores), export
# them into the model folder and write docs/posterior.md. Step counts for the four fmnist families on a 2-core CPU
# (about 0.48 s/step inpaint, 0.78 deblur, 0.45 superres, 0.55 denoise: 89.3 min of training in all on 2026-11-30;
# docs/posterior.md lists each family's measured time). Training is seeded and deterministic: a rerun on the same
# number of threads reproduces the shipped weights bit for bit. An interrupted family continues with
# `pagoda-inv train posterior --family F --resume RUN_DIR`.
# Usage: scripts/train_posteriors.sh [MODEL_FOLDER] [RUNS_DIR]
set -euo pipefail
F=${1:-pagoda_inverse/models/fmnist}
RUNS=${2:-runs}
mkdir -p "$RUNS"
for spec in inpaint:5000 deblur:2400 superres:1600 denoise:700; do
  family=${spec%:*}
  pagoda-inv train posterior --family "$family" --steps "${spec#*:}" --model "$F" --runs "$RUNS" -q \
    > "$RUNS/posterior-$family.path"
done
pagoda-inv export --overwrite --out "$F" $(for f in inpaint deblur superres denoise; do echo --posterior "$(cat "$RUNS/posterior-$f.path")"; done)
python benchmarks/posterior.py --images 256 --samples 16
