"""RGB natural photos for the ``photo`` model: sources with their licences, a held-out test split of whole images,
and seeded multi-scale random crops as the training set.

Sources (every file is listed in :data:`PHOTO_SOURCES` with its package, author and licence; ``pagoda-inv photos``
prints the manifest):

- Debian ``plasma-workspace-wallpapers`` (5.27): the 12 photographic wallpapers, largest size of each. The others in
  that package and all 16 of ``gnome-backgrounds`` 43.1 are abstract renders or vector art and are left out.
- the photos bundled with scikit-image (``skimage/data``) and scikit-learn (``sklearn/datasets/images``).

The test split holds whole images that never contribute a training crop. Files are found through
``$PAGODA_WALLPAPERS_DIR``, then ``dpkg-query -L plasma-workspace-wallpapers``, then ``/usr/share/wallpapers``;
the Python packages through their own ``__file__``.
"""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from pagoda_inverse.utils.errors import UserError
from pagoda_inverse.utils.io import open_image

__all__ = ["PHOTO_SOURCES", "PhotoSource", "load_photo", "photo_crops", "photo_manifest", "photo_sources"]

WALLPAPER_PACKAGE = "plasma-workspace-wallpapers"
WALLPAPERS_ENV = "PAGODA_WALLPAPERS_DIR"


@dataclass(frozen=True)
class PhotoSource:
    """One photo: ``package`` (a Debian or PyPI package), its ``name`` there, ``author``, ``licence`` and ``split``
    (``"train"`` or ``"test"``)."""

    name: str
    package: str
    author: str
    licence: str
    split: str

    def path(self) -> Path:
        """The image file; raises :class:`UserError` with the install command when it is missing."""
        if self.package == WALLPAPER_PACKAGE:
            folder = _wallpapers_dir() / self.name / "contents" / "images"
            files = sorted(folder.glob("*.jp*g")) + sorted(folder.glob("*.png")) if folder.is_dir() else []
            if not files:
                raise UserError(
                    f"{folder}: wallpaper {self.name!r} not found; run 'apt-get install -y {WALLPAPER_PACKAGE}' "
                    f"or set {WALLPAPERS_ENV} to a folder holding it"
                )
            return max(files, key=_pixels).resolve()  # the largest rendition (the others are symlinks to it)
        if self.package == "scikit-image":
            import skimage.data

            folder = Path(skimage.data.__file__).parent
        else:
            import sklearn.datasets

            folder = Path(sklearn.datasets.__file__).parent / "images"
        return folder / self.name


def _pixels(path: Path) -> int:
    with Image.open(path) as im:
        return im.size[0] * im.size[1]


@functools.cache
def _wallpapers_dir() -> Path:
    if os.environ.get(WALLPAPERS_ENV):
        return Path(os.environ[WALLPAPERS_ENV])
    try:
        listed = subprocess.run(
            ["dpkg-query", "-L", WALLPAPER_PACKAGE], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()
        metadata = next(p for p in listed if p.endswith("/metadata.json"))
        return Path(metadata).parent.parent
    except (OSError, subprocess.SubprocessError, StopIteration):
        return Path("/usr/share/wallpapers")


_KDE, _LGPL = WALLPAPER_PACKAGE, "LGPL-3.0 (KDE wallpaper metadata); package GPL-2+"
#: Every photo used, in a fixed order (the crop sampler indexes into the train entries).
PHOTO_SOURCES: tuple[PhotoSource, ...] = (
    PhotoSource("BytheWater", _KDE, "Maciej Wiklo", _LGPL, "train"),
    PhotoSource("ColdRipple", _KDE, "Risto Saukonpää", _LGPL, "train"),
    PhotoSource("ColorfulCups", _KDE, "Dmitri Popov", _LGPL, "train"),
    PhotoSource("DarkestHour", _KDE, "Risto Saukonpää", _LGPL, "train"),
    PhotoSource("FallenLeaf", _KDE, "Martin Klapetek", _LGPL, "train"),
    PhotoSource("Grey", _KDE, "Sigi Sagi", _LGPL, "train"),
    PhotoSource("Kite", _KDE, "Risto Saukonpää", _LGPL, "train"),
    PhotoSource("OneStandsOut", _KDE, "Risto Saukonpää", _LGPL, "train"),
    PhotoSource("Volna", _KDE, "Nikita Babin", "CC-BY-SA-4.0", "train"),
    PhotoSource("summer_1am", _KDE, "Risto Saukonpää", _LGPL, "train"),
    PhotoSource("chelsea.png", "scikit-image", "Stefan van der Walt", "CC0", "train"),
    PhotoSource("rocket.jpg", "scikit-image", "SpaceX", "CC0 (public domain)", "train"),
    PhotoSource("hubble_deep_field.jpg", "scikit-image", "NASA", "public domain", "train"),
    PhotoSource("retina.jpg", "scikit-image", "Häggström, Mikael", "CC0", "train"),
    PhotoSource(
        "ihc.png",
        "scikit-image",
        "CMMI (Center for Microscopy And Molecular Imaging)",
        "no known restrictions",
        "train",
    ),
    PhotoSource("motorcycle_left.png", "scikit-image", "Middlebury stereo 2014", "no known restrictions", "train"),
    PhotoSource("china.jpg", "scikit-learn", "danielbuechele (Flickr)", "CC-BY-2.0", "train"),
    PhotoSource("flower.jpg", "scikit-learn", "vultilion (Flickr)", "CC-BY-2.0", "train"),
    PhotoSource("astronaut.png", "scikit-image", "NASA", "public domain (no known restrictions)", "test"),
    PhotoSource("coffee.png", "scikit-image", "Rachel Michetti", "CC0", "test"),
    PhotoSource("EveningGlow", _KDE, "Ian Hex", _LGPL, "test"),
    PhotoSource("Path", _KDE, "Risto Saukonpää", _LGPL, "test"),
)


def photo_sources(split: str) -> list[PhotoSource]:
    """The sources of ``split`` (``"train"`` or ``"test"``), in :data:`PHOTO_SOURCES` order."""
    if split not in ("train", "test"):
        raise UserError(f"photo split must be 'train' or 'test', got {split!r}")
    return [s for s in PHOTO_SOURCES if s.split == split]


def photo_manifest() -> list[dict]:
    """One row per source: name, package, author, licence, split, file (or ``None`` if missing) and size."""
    rows = []
    for s in PHOTO_SOURCES:
        try:
            path = s.path()
            with Image.open(path) as im:
                size = f"{im.size[0]}x{im.size[1]}"
        except (UserError, OSError):
            path, size = None, "missing"
        rows.append({**s.__dict__, "file": None if path is None else str(path), "size": size})
    return rows


@functools.cache
def load_photo(source: PhotoSource) -> torch.Tensor:
    """The whole photo as ``uint8 [3, H, W]`` (RGB; EXIF orientation applied; cached per process)."""
    path = source.path()
    with open_image(path) as im:
        arr = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def photo_crops(
    split: str, n: int, *, size: int = 64, scales: tuple[int, ...] = (1, 2, 4, 8), seed: int = 0
) -> torch.Tensor:
    """``n`` random crops of the photos of ``split``, area-downsampled to ``size x size``: ``uint8 [n, 3, size, size]``.

    Crop ``i`` depends only on ``(seed, i)``: it picks a photo uniformly, a scale ``s`` from ``scales`` (the crop
    covers ``s * size`` pixels of the photo, at most its shorter side) and a uniform position, then averages
    ``s x s`` blocks. No flips here: the training loops flip.
    """
    sources = photo_sources(split)
    photos = [load_photo(s) for s in sources]
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for i in range(n):
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        photo = photos[int(torch.randint(len(photos), (1,), generator=g))]
        h, w = photo.shape[-2:]
        s = scales[int(torch.randint(len(scales), (1,), generator=g))]
        s = max(1, min(s, min(h, w) // size))
        side = s * size
        top = int(torch.randint(h - side + 1, (1,), generator=g))
        left = int(torch.randint(w - side + 1, (1,), generator=g))
        crop = photo[:, top : top + side, left : left + side].float()
        out[i] = torch.nn.functional.avg_pool2d(crop[None], s)[0].round().to(torch.uint8)
    return out
