#!/usr/bin/env bash
# Train the embedded `fmnist` model from scratch on this machine, stage by stage:
#   teacher 8x8 -> PF-ODE latents (train, test) -> one-step decoder at 8x8 -> grow to 16 -> grow to 32
#   -> learned encoder -> guidance map (one-step CFG) -> benchmark (docs/core.md) -> export as fp16 into pagoda_inverse/models/fmnist
#      (with the task suites' solver settings, solver_defaults.json)
#   -> posterior encoders for the exported G (scripts/train_posteriors.sh) -> export -> docs/posterior.md
#   -> the recommended guidance scale, chosen on training data (benchmarks/cfg_choice.py) -> generation.json.
# Each training command prints its checkpoint folder on stdout; an interrupted stage continues with the same
# command plus `--resume RUN_DIR` (encode: re-run the same command). Usage: scripts/train_fmnist.sh [RUNS_DIR]
set -euo pipefail
RUNS=${1:-runs}
mkdir -p "$RUNS"
T=$(pagoda-inv train teacher --preset fmnist --runs "$RUNS" -q)
pagoda-inv encode --teacher "$T" --out "$RUNS/latents-train" -q 2> "$RUNS/encode-train.log"
pagoda-inv encode --teacher "$T" --split test --out "$RUNS/latents-test" -q 2> "$RUNS/encode-test.log"
D8=$(pagoda-inv train decoder --teacher "$T" --latents "$RUNS/latents-train" --runs "$RUNS" -q)
D16=$(pagoda-inv train grow --decoder "$D8" --teacher "$T" --latents "$RUNS/latents-train" --runs "$RUNS" -q)
D32=$(pagoda-inv train grow --decoder "$D16" --teacher "$T" --latents "$RUNS/latents-train" --runs "$RUNS" -q)
E=$(pagoda-inv train encoder --teacher "$T" --latents "$RUNS/latents-train" --runs "$RUNS" -q)
M=$(pagoda-inv train guidance --teacher "$T" --runs "$RUNS" -q)
python benchmarks/core.py --teacher-run "$(dirname "$T")" --decoder-run "$(dirname "$D8")" \
  --grow-runs "$(dirname "$D16")" "$(dirname "$D32")" --encoder-run "$(dirname "$E")" --guidance-run "$(dirname "$M")" \
  --train-latents "$RUNS/latents-train" --test-latents "$RUNS/latents-test" --encode-log "$RUNS/encode-train.log"
# The solver settings it ships (solver_defaults.json) are those of the task suites (tasks/*.toml), so `solve` gives
# the estimate the bench reports.
pagoda-inv export --overwrite --out pagoda_inverse/models/fmnist --teacher "$T" --decoder "$D32" --encoder "$E" --guidance "$M" \
  --card docs/models/fmnist.md --solver-defaults "$(python benchmarks/solver_defaults.py --model fmnist)"
# Posterior encoders for the exported (fp16) decoder, exported into the model folder; docs/posterior.md.
scripts/train_posteriors.sh pagoda_inverse/models/fmnist "$RUNS"
# The recommended guidance scale (generation.json), chosen on the train split and the tuning prompts.
W=$(python benchmarks/cfg_choice.py --md docs/generation/cfg-choice.md)
pagoda-inv export --overwrite --out pagoda_inverse/models/fmnist --generation-defaults "$W"
