#!/usr/bin/env bash
# Install pagoda-inv on a fresh Debian/Ubuntu machine: Fashion-MNIST and the photo model's photos from Debian, then the
# package with all extras.
set -euo pipefail
cd "$(dirname "$0")"
# The photo model's Debian sources (datasets/photos.py: PHOTO_PACKAGES).
PHOTOS="plasma-workspace-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 opencv-doc"
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist $PHOTOS
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist $PHOTOS
else
  echo "install.sh: not root, skipping apt; for training and benchmarks run:" \
       "sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist $PHOTOS (or set PAGODA_FMNIST_DIR)" >&2
fi
python3 -m pip install -q -c constraints.txt -e ".[all]"
