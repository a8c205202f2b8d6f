#!/usr/bin/env bash
# The GPU path run for real on one CUDA machine (issue 25), as one script with a log per part:
#   1. the GPU-marked tests (ops contract, solvers on CUDA == CPU, the bench engine on CUDA);
#   2. the smoke pipeline (teacher, encode, decoder, grow) under torchrun with nccl on CUDA and with gloo on the CPU
#      of the same machine, and the weights of every stage compared (benchmarks/device_agreement.py);
#   3. pagoda-inv bench --task superres_x4,inpaint_box --limit 64 on CUDA (the CPU numbers come from a CPU machine);
#   4. one-step generation throughput at batch 256 (benchmarks/throughput.py);
#   5. a 1024x768 photo super-resolved x4 in tiles by `pagoda-inv solve` (tile batch 16, the default, and 256).
# Data: the 256/64-image Fashion-MNIST fixture (the bench's first 64 test images are in it). Training embeds the
# class captions with the text encoder, which the GPU machine lacks: copy this machine's caption cache there first
# (mkdir -p .gpucache && cp ~/.cache/pagoda-inv/captions-*.safetensors .gpucache/; .gpucache is git-ignored, so
# name it in the device call's carry).
# Usage: OUT=results-folder [PARTS="tests train bench throughput photo"] bash scripts/gpu_check.sh  (writes
# tests.log, train.log, train-agreement.json, bench-cuda.json, bench-cuda.md and throughput.json there)
set -u
OUT=${OUT:-runs/gpu-check}
mkdir -p "$OUT"
PARTS=${PARTS:-tests train bench throughput photo}
export PYTHONUNBUFFERED=1 PAGODA_FMNIST_DIR=$PWD/tests/fixtures/fmnist-tiny PAGODA_CACHE_DIR=$PWD/.gpucache
WORK=$(mktemp -d)
part() { echo; echo "== $1 ($(date +%T))"; }
want() { [[ " $PARTS " == *" $1 "* ]]; }

part environment
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"

if want tests; then
part "GPU-marked tests"
timeout 180 python3 -m pytest -q -m gpu -p no:cacheprovider tests/ops tests/solvers tests/bench tests/core \
  -W ignore::UserWarning >"$OUT/tests.log" 2>&1
echo "pytest exit $?"; tail -n 15 "$OUT/tests.log"
fi

if want train; then
part "smoke training, CPU (gloo) and CUDA (nccl)"
RUN="torchrun --standalone --nproc-per-node 1 -m pagoda_inverse.cli"
for dev in cpu cuda; do
  export R=$WORK/$dev RUN dev OMP_NUM_THREADS=$([ $dev = cpu ] && echo 4 || echo 8)
  SECONDS=0
  timeout 150 bash -c '
    set -e
    export PAGODA_DEVICE=$dev
    T=$($RUN train teacher --preset smoke --runs "$R" -q)
    $RUN encode --teacher "$T" --preset smoke --out "$R/latents" -q >/dev/null
    D=$($RUN train decoder --preset smoke --teacher "$T" --latents "$R/latents" --runs "$R" -q)
    $RUN train grow --preset smoke --decoder "$D" --teacher "$T" --latents "$R/latents" --runs "$R" -q >/dev/null
  ' >"$WORK/train-$dev.log" 2>&1
  echo "$dev: exit $? in $SECONDS s"; tail -n 3 "$WORK/train-$dev.log"
  cat "$WORK/train-$dev.log" >>"$OUT/train.log"
done
timeout 120 python3 benchmarks/device_agreement.py "$WORK/cpu" "$WORK/cuda" --json "$OUT/train-agreement.json"
fi

if want bench; then
part "bench on CUDA"
timeout 240 pagoda-inv bench --task superres_x4,inpaint_box --limit 64 --device cuda --out "$WORK/bench-cuda" -q \
  --solvers bicubic,biharmonic,pinv,encode_decode,one_step,latent_map,latent_ilo,diffpir,ddrm >"$WORK/bench-cuda.log" 2>&1
echo "bench exit $?"; tail -n 5 "$WORK/bench-cuda.log"
cp "$WORK/bench-cuda/results.json" "$OUT/bench-cuda.json" 2>/dev/null
cp "$WORK/bench-cuda/results.md" "$OUT/bench-cuda.md" 2>/dev/null && head -n 40 "$OUT/bench-cuda.md"
fi

if want throughput; then
part "generation throughput at batch 256"
timeout 100 python3 benchmarks/throughput.py --device cuda --batch 256 --batches 20 --json "$OUT/throughput.json"
fi
if want photo; then
part "a 1024x768 photo to 4096x3072 (solve superres, photo model, in tiles) on CUDA"
python3 -c "
from PIL import Image; import skimage.data
Image.fromarray(skimage.data.chelsea()).resize((1024, 768), Image.BICUBIC).save('$WORK/large.png')"
for tb in 16 256; do
  SECONDS=0
  timeout 150 pagoda-inv solve superres --input "$WORK/large.png" --model photo --device cuda --tile-batch $tb \
    -o "$WORK/large-x4-$tb.png" 2>&1 | tail -n 2
  echo "tile batch $tb: exit ${PIPESTATUS[0]}, $SECONDS s wall"
done
python3 -c "from PIL import Image; print('output', Image.open('$WORK/large-x4-256.png').size)"
fi
part done
