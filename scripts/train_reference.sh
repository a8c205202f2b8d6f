#!/usr/bin/env bash
# Train the reference models shipped beside `fmnist`, benchmark generation, write their cards and export them:
#   fmnist-clf      the evaluation classifier (FD/KID-FMNIST features, control accuracy)
#   fmnist-fullres  an EDM model trained directly at 32x32 (the peer solvers' prior, the generation reference)
# An interrupted stage continues with the same command plus `--resume RUN_DIR`.
# Usage: scripts/train_reference.sh [RUNS_DIR]    (under torchrun: prefix the train commands with
#   `torchrun --standalone --nproc-per-node N -m pagoda_inverse.cli` instead of `pagoda-inv`)
set -euo pipefail
RUNS=${1:-runs}
mkdir -p "$RUNS"
C=$(pagoda-inv train classifier --preset fmnist --runs "$RUNS" -q)
pagoda-inv export --overwrite --out pagoda_inverse/models/fmnist-clf --classifier "$C"
T=$(pagoda-inv train teacher --preset fmnist-fullres --runs "$RUNS" -q)
pagoda-inv export --overwrite --out pagoda_inverse/models/fmnist-fullres --teacher "$T"
# Generation benchmark. fmnist-fullres's Heun sampler runs at ~110 samples/min with CFG on the 2-core CPU, so the
# full-size suites (`pagoda-inv bench --task generate`: 10k + 1k samples per sampler) take about 2 hours there;
# these are the sizes docs/generation was made with (10k samples for the cheap samplers, fewer with fullres Heun).
pagoda-inv bench --task generate_class --solvers pagoda_onestep,teacher8_heun_bicubic --out docs/generation/class-10k \
  --overwrite -q
pagoda-inv bench --task generate_class --limit 1000 --out docs/generation/class-1k --overwrite -q
pagoda-inv bench --task generate_prompt --limit 400 --out docs/generation/prompt-400 --overwrite -q
python benchmarks/reference_cards.py --clf-run "$(dirname "$C")" --fullres-run "$(dirname "$T")" \
  --generation docs/generation/*/results.json
pagoda-inv export --overwrite --out pagoda_inverse/models/fmnist-clf --classifier "$C" --card docs/models/fmnist-clf.md
pagoda-inv export --overwrite --out pagoda_inverse/models/fmnist-fullres --teacher "$T" --card docs/models/fmnist-fullres.md
