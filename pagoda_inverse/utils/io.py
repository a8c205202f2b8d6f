"""Reading user files safely: images (pixel cap checked before decoding, ``[-1, 1]`` tensors) and JSON, with clear
one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from pagoda_inverse.utils.errors import UserError

MAX_PIXELS = 64_000_000  # default cap: larger images are refused before decoding (decompression bombs)
MAX_PIXELS_ENV = "PAGODA_MAX_PIXELS"


def read_json(path: Path, error: type[UserError] = UserError, fix: str = ""):
    """The JSON value in the file ``path``; text that is not JSON is ``error`` naming the file (``fix``: what to do,
    appended to the message)."""
    import json

    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"{path}: not valid JSON ({err}){fix}") from None


class ColourImageError(UserError):
    """A colour image where a grayscale one is needed (a grayscale model, or the input of colorization)."""


def pixel_cap() -> int:
    """The pixel cap for input images: ``$PAGODA_MAX_PIXELS`` when set (a positive integer), else :data:`MAX_PIXELS`.

    >>> pixel_cap() > 0
    True
    """
    value = os.environ.get(MAX_PIXELS_ENV)
    if value is None:
        return MAX_PIXELS
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"{MAX_PIXELS_ENV}={value!r} is not a positive integer; unset it or pass e.g. 100000000")
    return int(value)


def open_image(path: Path, max_pixels: int | None = None):
    """Open ``path`` with PIL (lazily: no pixel decoded yet) and refuse it if its header's size is over the cap.

    ``max_pixels`` defaults to :func:`pixel_cap`; PIL's own decompression-bomb limit is lifted while the header is
    read, so this cap is the one that applies. Raises :class:`UserError`; PIL's errors on unreadable files pass.
    """
    from PIL import Image

    cap = pixel_cap() if max_pixels is None else max_pixels
    pil_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        img = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit
    w, h = img.size
    if w * h > cap:
        img.close()
        raise UserError(
            f"{path}: {w}x{h} exceeds the {cap}-pixel cap; downscale or crop it first "
            f"(or raise the cap with {MAX_PIXELS_ENV})"
        )
    return img


def load_image(path: str | Path, channels: int, *, max_pixels: int | None = None) -> torch.Tensor:
    """Read an image file as ``[channels, H, W]`` float32 in ``[-1, 1]``.

    Grayscale models accept grayscale images (8/16-bit, palette, with alpha: alpha is dropped) and RGB images whose
    three channels are equal; RGB models accept RGB, grayscale (replicated), palette and CMYK (converted); alpha is
    dropped (pixels keep their colour). Every problem raises :class:`UserError` naming the file and the fix.
    The size is read from the header and checked against ``max_pixels`` (default :func:`pixel_cap`) before any
    pixel is decoded.
    """
    from PIL import UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; check the path")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the file is empty; pass a PNG or JPEG image")
    try:
        with open_image(path, max_pixels) as img:
            w, h = img.size
            if w < 1 or h < 1:
                raise UserError(f"{path}: the image has no pixels")
            img.load()
            arr = _to_array(img, channels, path)
    except UserError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"{path}: not a readable image ({err}); pass a valid PNG or JPEG") from None
    return torch.from_numpy(np.array(arr)).permute(2, 0, 1).float().div(127.5).sub(1)


def _to_array(img, channels: int, path: Path):
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        gray = np.clip(np.round(a / top * 255), 0, 255).astype(np.uint8)
        rgb = np.repeat(gray[..., None], 3, axis=2)
    else:
        if mode == "P":
            img = img.convert("RGBA")
        rgb = np.asarray(img.convert("RGB"))
    if channels == 3:
        return rgb
    if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
        raise ColourImageError(f"{path}: is a colour image but the model is grayscale; convert it to grayscale first")
    return rgb[..., :1]
