"""RGB natural photos for the ``photo`` model: sources with their licences, a held-out test split of whole images,
and seeded multi-scale random crops as the training set.

Sources (every file is listed in :data:`PHOTO_SOURCES` with its package, author and licence; ``pagoda-inv photos``
prints the manifest):

- Debian ``plasma-workspace-wallpapers`` (5.27): the 12 photographic wallpapers, largest size of each. The others in
  that package and all 16 of ``gnome-backgrounds`` 43.1 are abstract renders or vector art and are left out.
- Debian ``lomiri-wallpapers-16.04`` and ``-20.04`` (20.04.0): the 15 photographs by named authors (14 and 1); the
  renders (``Fossa``, ``Infinite-Sea``, ``Painting-Colors``, ``umang``) are left out.
- Debian ``opencv-doc`` (4.6.0, ``examples/data``): the 20 natural colour photographs; left out are the grayscale
  ones, renders, logos, charts, text, chessboards and calibration shots, the paintings (``starry_night``, the
  ``graf`` graffiti), the motion-blurred plate, and the second view of each stereo or near-duplicate pair.
- the photos bundled with scikit-image (``skimage/data``) and scikit-learn (``sklearn/datasets/images``).

No other wallpaper package is used: the list is deliberate. The test split holds whole images that never contribute a
training crop. Debian files are found through ``dpkg-query -L PACKAGE``, then the package's usual folder; ``$PAGODA_WALLPAPERS_DIR``
(the plasma wallpapers' folder) and ``$PAGODA_PHOTOS_DIR`` (a flat folder holding the other files by name) override that for a
machine without the packages. The Python packages' files are found through their own ``__file__``.
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

__all__ = [
    "PHOTO_SOURCES",
    "PhotoSource",
    "load_photo",
    "photo_crops",
    "photo_manifest",
    "photo_sources",
    "random_crops",
    "shrink_to",
]

WALLPAPER_PACKAGE = "plasma-workspace-wallpapers"
WALLPAPERS_ENV = "PAGODA_WALLPAPERS_DIR"
PHOTOS_ENV = "PAGODA_PHOTOS_DIR"
#: The Debian packages whose files are photos of the manifest, with the folder each usually installs them to.
DEBIAN_FOLDERS = {
    "lomiri-wallpapers-16.04": "/usr/share/backgrounds",
    "lomiri-wallpapers-20.04": "/usr/share/backgrounds",
    "opencv-doc": "/usr/share/doc/opencv-doc/examples/data",
}
#: Every Debian package the manifest draws on (``install.sh`` installs them).
PHOTO_PACKAGES = (WALLPAPER_PACKAGE, *DEBIAN_FOLDERS)


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
        if self.package in DEBIAN_FOLDERS:
            path = _debian_file(self.package, self.name)
            if not path.is_file():
                raise UserError(
                    f"{path}: photo {self.name!r} not found; run 'apt-get install -y {self.package}' "
                    f"or set {PHOTOS_ENV} to a folder holding it"
                )
            return path
        if self.package == "scikit-image":
            import skimage.data

            folder = Path(skimage.data.__file__).parent
        else:
            import sklearn.datasets

            folder = Path(sklearn.datasets.__file__).parent / "images"
        return folder / self.name


def _debian_file(package: str, name: str) -> Path:
    """Where ``package`` put the file ``name``: ``$PAGODA_PHOTOS_DIR/name`` when set, else as ``dpkg-query -L``
    lists it, else in the package's usual folder."""
    if os.environ.get(PHOTOS_ENV):
        return Path(os.environ[PHOTOS_ENV]) / name
    listed = [p for p in _dpkg_files(package) if p.name == name]
    return listed[0] if listed else Path(DEBIAN_FOLDERS[package]) / name


@functools.cache
def _dpkg_files(package: str) -> tuple[Path, ...]:
    """The files ``package`` installed (empty when it is not installed or there is no dpkg)."""
    try:
        listed = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(Path(p) for p in listed.stdout.split())


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
_L16, _L20 = "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04"  # licences: each package's copyright file
# opencv-doc's copyright file puts samples/data under the package's own terms and names no photographers.
_CV_AUTHOR, _CV_LICENCE = "OpenCV samples (photographer not stated)", "Apache-2.0 (opencv-doc package)"
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
    PhotoSource("Bridge_by_Sander_Klootwijk.jpg", _L16, "Sander Klootwijk", "CC-BY-SA-4.0", "train"),
    PhotoSource("Dragonfly_by_Bolly.jpg", _L16, '"Bolly"', "CC-BY-SA-4.0", "train"),
    PhotoSource("Picture_0B_by_freespace.jpg", _L16, 'Trevor "Freespace"', "CC-BY-4.0", "train"),
    PhotoSource("Picture_1A_by_freespace.jpg", _L16, 'Trevor "Freespace"', "CC-BY-4.0", "train"),
    PhotoSource("Wine_by_Jakkub_Mede.jpg", _L16, "Jakub Mede", "CC-BY-4.0", "train"),
    PhotoSource("aitzgorri_by_Aitzol_Berasategi.jpg", _L16, "Aitzol Berasategi", "CC-BY-4.0", "train"),
    PhotoSource("analogpattern_by_Peter_Nerlich.jpg", _L16, "Peter Nerlich", "CC-BY-SA-4.0", "train"),
    PhotoSource("free_by_Peter_Nerlich.jpg", _L16, "Peter Nerlich", "CC-BY-SA-4.0", "train"),
    PhotoSource("friends_by_Aitzol_Berasategi.jpg", _L16, "Aitzol Berasategi", "CC-BY-4.0", "train"),
    PhotoSource("greentock_by_Peter_Nerlich.jpg", _L16, "Peter Nerlich", "CC-BY-SA-4.0", "train"),
    PhotoSource("life_by_Aitzol_Berasategi.jpg", _L16, "Aitzol Berasategi", "CC-BY-4.0", "train"),
    PhotoSource("picosdeeuropa_by_Aitzol_Berasategi.jpg", _L16, "Aitzol Berasategi", "CC-BY-4.0", "train"),
    PhotoSource("seeding_by_Clements_Engelhardt.jpg", _L16, "Clemens Engelhardt", "CC0-1.0", "train"),
    PhotoSource("sunset_by_Aitzol_Berasategi.jpg", _L16, "Aitzol Berasategi", "CC-BY-4.0", "train"),
    PhotoSource("Kleiber_by_Lukas_Baubkus.jpg", _L20, "Lukas Baubkus", "CC-BY-SA-3.0", "train"),
    PhotoSource("aero1.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("aero3.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("aloeL.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("apple.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("baboon.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("board.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("building.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("butterfly.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("chicky_512.png", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("ela_original.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("fruits.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("home.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("left.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("leuvenA.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("messi5.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("orange.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("rubberwhale1.png", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("smarties.png", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("squirrel_cls.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
    PhotoSource("stuff.jpg", "opencv-doc", _CV_AUTHOR, _CV_LICENCE, "train"),
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


def shrink_to(photo: torch.Tensor, max_side: int) -> torch.Tensor:
    """``photo [C, H, W]`` or ``[B, C, H, W]`` (any dtype) averaged over ``f x f`` blocks, ``f`` the smallest integer
    that brings the longer side to at most ``max_side`` (``f = 1``: returned as is); float32 unless unchanged."""
    factor = -(-max(photo.shape[-2:]) // max_side)
    return torch.nn.functional.avg_pool2d(photo.float(), factor) if factor > 1 else photo


def photo_crops(
    split: str,
    n: int,
    *,
    size: int = 64,
    scales: tuple[int, ...] = (1, 2, 4, 8),
    max_side: int = 2560,
    seed: int = 0,
) -> torch.Tensor:
    """``n`` random crops of the photos of ``split``, area-downsampled to ``size x size``: ``uint8 [n, 3, size, size]``.

    Every photo is first shrunk by :func:`shrink_to` to a longer side of at most ``max_side`` (the wallpapers' 2560
    px), so that a crop of one scale shows about as much of a scene whatever camera took it; then
    :func:`random_crops`.
    """
    photos = [shrink_to(load_photo(s), max_side) for s in photo_sources(split)]
    return random_crops(photos, n, size=size, scales=scales, seed=seed).round().to(torch.uint8)


def random_crops(
    images: list[torch.Tensor], n: int, *, size: int, scales: tuple[int, ...] = (1, 2, 4, 8), seed: int = 0
) -> torch.Tensor:
    """``n`` random multi-scale crops of ``images`` (each ``[C, H, W]``, any size and dtype), area-downsampled to
    ``size x size``: ``float32 [n, C, size, size]``. Crop ``i`` depends only on ``(seed, i)``: it picks an image uniformly,
    a scale ``s`` from ``scales`` (the crop covers ``s * size`` pixels, at most the image's shorter side; an image
    smaller than ``size`` is an error) and a uniform position, then averages ``s x s`` blocks. No flips here: the
    training loops flip."""
    small = [tuple(x.shape[-2:]) for x in images if min(x.shape[-2:]) < size]
    if small:
        raise UserError(f"random crops of {size}x{size} need images at least that large; got one of {small[0]}")
    out = torch.empty(n, images[0].shape[0], size, size)
    for i in range(n):
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        image = images[int(torch.randint(len(images), (1,), generator=g))]
        h, w = image.shape[-2:]
        s = scales[int(torch.randint(len(scales), (1,), generator=g))]
        s = max(1, min(s, min(h, w) // size))
        side = s * size
        top = int(torch.randint(h - side + 1, (1,), generator=g))
        left = int(torch.randint(w - side + 1, (1,), generator=g))
        crop = image[None, :, top : top + side, left : left + side].float()
        out[i] = torch.nn.functional.avg_pool2d(crop, s)[0]
    return out
