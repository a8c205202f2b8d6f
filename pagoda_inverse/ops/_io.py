"""Reading kernels and masks from files (.npy, .png and other grayscale images). Never unpickles."""

from __future__ import annotations

import os
from pathlib import Path
from tokenize import TokenError

import numpy as np
import torch

from pagoda_inverse.utils.errors import UserError

from ._checks import OperatorParameterError, fail

#: What numpy's .npy reader raises on a corrupt file (its header is parsed with ``ast.literal_eval``).
NPY_ERRORS = (
    ValueError,
    TypeError,
    OSError,
    EOFError,
    SyntaxError,
    TokenError,
    MemoryError,
    RecursionError,
    OverflowError,
)
IMAGE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".pgm")


def read_2d(path: str | os.PathLike, name: str) -> torch.Tensor:
    """Read a 2-D float64 array from ``path``.

    ``.npy`` files are read with ``allow_pickle=False`` (a trailing singleton axis is squeezed); images are read as
    grayscale (RGB images are rejected, convert them first) and scaled to [0, 1]. Either way the size is checked
    against the input pixel cap (:func:`~pagoda_inverse.utils.io.pixel_cap`) before the values are read.

    :param path: the file.
    :param name: the parameter name used in error messages (``"kernel"``, ``"mask"``).
    :return: a (H, W) float64 tensor.
    """
    p = Path(path)
    if not p.is_file():
        raise fail(f"{name} file {str(p)!r} does not exist")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False, mmap_mode="r")  # header only: the values stay on disk
            _check_size(p, arr.size)
            arr = np.array(arr)
        except OperatorParameterError:
            raise
        except NPY_ERRORS as err:
            raise fail(f"{name} file {str(p)!r} is not a readable .npy array ({err})") from None
        arr = np.squeeze(arr)
        if arr.dtype.kind not in "biuf":
            raise fail(f"{name} file {str(p)!r} holds dtype {arr.dtype}; expected numbers")
        arr = arr.astype(np.float64)
    elif suffix in IMAGE_SUFFIXES:
        from PIL import UnidentifiedImageError

        from pagoda_inverse.utils.io import open_image

        try:
            with open_image(p) as im:
                if im.mode not in ("1", "L", "I", "I;16", "F", "LA", "P"):
                    raise fail(f"{name} file {str(p)!r} has mode {im.mode}; save it as a grayscale image")
                if im.mode == "P":
                    im = im.convert("L")
                if im.mode == "LA":
                    im = im.getchannel("L")
                bits = {"1": 1, "L": 8, "I;16": 16}.get(im.mode)
                arr = np.asarray(im, dtype=np.float64)
        except OperatorParameterError:
            raise
        except UserError as err:  # over the pixel cap
            raise fail(str(err)) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise fail(f"{name} file {str(p)!r} is not a readable image ({err})") from None
        if bits is not None:  # full scale 2^bits - 1 (1 for bilevel images)
            arr = arr / float(2**bits - 1)
        elif arr.size and arr.max() > 1.0:
            arr = arr / arr.max()
    else:
        raise fail(f"{name} file {str(p)!r} must be .npy or a grayscale image ({', '.join(IMAGE_SUFFIXES)})")
    if arr.ndim != 2:
        raise fail(f"{name} file {str(p)!r} holds an array of shape {arr.shape}; expected 2-D (H, W)")
    return torch.from_numpy(np.ascontiguousarray(arr))


def _check_size(path: Path, size: int) -> None:
    from pagoda_inverse.utils.io import MAX_PIXELS_ENV, pixel_cap

    if size > pixel_cap():
        raise fail(
            f"{path}: {size} values exceed the {pixel_cap()}-pixel cap; pass a smaller file (or raise {MAX_PIXELS_ENV})"
        )
