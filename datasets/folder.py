"""A folder of the user's own images as a ``torch`` dataset (PNG / JPEG / WebP, optional labels and captions)."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from pagoda_inverse.datasets.transforms import to_model_range
from pagoda_inverse.utils.errors import UserError
from pagoda_inverse.utils.io import MAX_PIXELS, open_image, pixel_cap

__all__ = ["IMAGE_EXTENSIONS", "MAX_PIXELS", "ImageFolderDataset"]

#: File suffixes picked up (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")

_LABELS_FILE = "labels.csv"


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images found recursively under ``root``, resized and centre-cropped to ``size x size``.

    Files are listed once, sorted by their path relative to ``root``. An optional ``labels.csv`` in ``root`` (or
    the file given as ``labels_csv``) has rows ``filename,label[,caption]`` with ``filename`` relative to ``root``
    (``/``-separated); a header row starting with ``filename`` is skipped, an empty label means "no label".
    Images not listed get label ``-1`` and caption ``""``.

    :param root: folder to scan (sub-folders included).
    :param size: output side: the shorter side is resized to ``size`` (bicubic, anti-aliased), then the centre
        ``size x size`` crop is kept; ``None`` keeps each image's own size.
    :param int channels: 1 (grayscale, ``L``) or 3 (``RGB``); alpha is dropped.
    :param labels_csv: labels file; ``None`` uses ``root/labels.csv`` when it exists.
    :param int max_pixels: refuse images with more than this many pixels, from their header (decompression-bomb
        guard); default :func:`~pagoda_inverse.utils.io.pixel_cap` (``$PAGODA_MAX_PIXELS`` or 64 M).
    :param transform: optional callable applied to the ``[C, H, W]`` image tensor.
    :raises UserError: ``root`` is missing or holds no image; ``labels.csv`` is malformed or names a missing file;
        ``channels`` or ``size`` is invalid.

    ``ds[i]`` returns ``{"image": float32 [C, size, size] in [-1, 1], "label": int (-1 if none), "caption": str}``
    and raises :class:`UserError` naming the file if it cannot be read or is over the pixel cap.

    >>> import tempfile
    >>> from PIL import Image
    >>> with tempfile.TemporaryDirectory() as d:
    ...     Image.new("L", (40, 30), 255).save(f"{d}/a.png")
    ...     item = ImageFolderDataset(d, size=16)[0]
    >>> item["image"].shape, item["image"].max().item(), item["label"], item["caption"]
    (torch.Size([1, 16, 16]), 1.0, -1, '')
    """

    def __init__(
        self,
        root: str | os.PathLike,
        size: int | None = 32,
        channels: int = 1,
        labels_csv: str | os.PathLike | None = None,
        max_pixels: int | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        if channels not in (1, 3):
            raise UserError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise UserError(f"size must be a positive integer or None, got {size!r}")
        if not self.root.is_dir():
            raise UserError(f"{self.root}: image folder not found; pass an existing folder of png/jpg/webp images")
        self.size = size
        self.channels = channels
        self.max_pixels = pixel_cap() if max_pixels is None else int(max_pixels)
        self.transform = transform
        self.files: list[Path] = sorted(
            (p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
            key=lambda p: p.relative_to(self.root).as_posix(),
        )
        if not self.files:
            raise UserError(f"{self.root}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)}, recursively)")
        csv_path = Path(labels_csv) if labels_csv is not None else self.root / _LABELS_FILE
        if labels_csv is not None and not csv_path.is_file():
            raise UserError(
                f"{csv_path}: labels file not found; pass an existing CSV with rows filename,label[,caption]"
            )
        self._meta = self._read_labels(csv_path) if csv_path.is_file() else {}

    def _read_labels(self, path: Path) -> dict[str, tuple[int, str]]:
        known = {p.relative_to(self.root).as_posix() for p in self.files}
        meta: dict[str, tuple[int, str]] = {}
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise UserError(f"{path}: cannot read labels file ({err}); save it as UTF-8 CSV") from err
        for lineno, row in enumerate(rows, start=1):
            if not row or not "".join(row).strip():
                continue
            if lineno == 1 and row[0].strip().lower() == "filename":
                continue
            if len(row) > 3:
                row = [*row[:2], ",".join(row[2:])]  # an unquoted caption with commas
            name = row[0].strip().replace("\\", "/")
            if name not in known:
                raise UserError(
                    f"{path}:{lineno}: no image {name!r} under {self.root}; fix the filename or remove the row"
                )
            raw = row[1].strip() if len(row) > 1 else ""
            try:
                label = int(raw) if raw else -1
            except ValueError:
                raise UserError(
                    f"{path}:{lineno}: label {raw!r} is not an integer; use filename,label[,caption]"
                ) from None
            meta[name] = (label, row[2].strip() if len(row) > 2 else "")
        return meta

    def __len__(self) -> int:
        return len(self.files)

    def load_image(self, index: int) -> torch.Tensor:
        """Decode, convert, resize and crop image ``index``.

        :param int index: position in :attr:`files`.
        :return: ``uint8`` tensor ``[C, H, W]`` (``H = W = size`` unless ``size`` is ``None``).
        :raises UserError: the file is unreadable, not an image, or larger than ``max_pixels``.
        """
        path = self.files[index]
        mode = "L" if self.channels == 1 else "RGB"
        try:
            with open_image(path, self.max_pixels) as im:  # the size is checked from the header, before decoding
                im = ImageOps.exif_transpose(im).convert(mode)
        except UserError:
            raise
        except (OSError, SyntaxError, ValueError) as err:  # UnidentifiedImageError is an OSError
            raise UserError(f"{path}: cannot read image ({type(err).__name__}: {err}); re-save it as PNG") from None
        if self.size is not None:
            im = ImageOps.fit(im, (self.size, self.size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
        arr = np.array(im, dtype=np.uint8)  # a writable copy
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(arr))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int | str]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        image = to_model_range(self.load_image(index))
        if self.transform is not None:
            image = self.transform(image)
        label, caption = self._meta.get(self.files[index].relative_to(self.root).as_posix(), (-1, ""))
        return {"image": image, "label": label, "caption": caption}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, n={len(self)}, size={self.size}, "
            f"channels={self.channels}, labelled={sum(v[0] >= 0 for v in self._meta.values())})"
        )
