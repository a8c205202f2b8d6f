#!/usr/bin/env bash
# The wheel carries everything the editable install uses: build it, install it into a fresh virtual environment
# outside the checkout (system site packages supply torch and the other dependencies), then run `generate` and
# `solve superres` on an RGB photo (the photo model with its solver_defaults.json) in both installs; the outputs
# must be byte-identical.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python -m pip wheel -q --no-deps --no-build-isolation -w "$TMP/dist" .
python -m venv --system-site-packages "$TMP/venv"
"$TMP/venv/bin/python" -m pip install -q --no-deps "$TMP"/dist/*.whl
mkdir "$TMP/work"
cd "$TMP/work"
where=$("$TMP/venv/bin/python" -c "import pagoda_inverse; print(pagoda_inverse.__file__)")
case "$where" in "$TMP/venv/"*) ;; *) echo "wheel_check: the venv imports $where, not its wheel" >&2; exit 1 ;; esac
# A small RGB photo crop (pixels of a gradient pattern, no download).
python -c "
import numpy as np
from PIL import Image
y, x = np.mgrid[0:32, 0:32]
rgb = np.stack([(x * 4) % 256, (y * 5) % 256, ((x + y) * 3) % 256], -1).astype(np.uint8)
Image.fromarray(rgb).save('photo.png')"
for install in editable wheel; do
  if [ "$install" = wheel ]; then bin="$TMP/venv/bin"; else bin="$(dirname "$(command -v python)")"; fi
  "$bin/pagoda-inv" generate --class 9 --seeds 0-7 --out "gen-$install.png" > /dev/null
  "$bin/pagoda-inv" solve superres --input photo.png --scale 2 --output "sr-$install.png" > /dev/null
done
cmp gen-editable.png gen-wheel.png
cmp sr-editable.png sr-wheel.png
cd "$ROOT"
echo "wheel_check: wheel and editable install give identical generate and solve outputs"
