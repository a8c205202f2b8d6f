"""Saving images and grids (pixels in ``[-1, 1]`` inside the library; uint8 only at the file boundary)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import torch

from .atomic import atomic_path
from .errors import UserError

#: What an image file's suffix writes (Pillow): JPEG at quality 95, WebP lossless; other suffixes are refused.
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` float -> ``[0, 255]`` uint8 (clamped, rounded)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def image_format(path: str | Path) -> str:
    """The Pillow format that ``path``'s suffix names (:data:`IMAGE_FORMATS`); :class:`UserError` for any other.

    >>> image_format("out.JPG"), image_format("out.png")
    ('JPEG', 'PNG')
    """
    suffix = Path(path).suffix
    if suffix.lower() not in IMAGE_FORMATS:
        what = f"a {suffix} image" if suffix else "an image without a suffix"
        raise UserError(f"{path}: cannot write {what}; name it .png, .jpg, .jpeg or .webp")
    return IMAGE_FORMATS[suffix.lower()]


def make_grid(x: torch.Tensor, nrow: int | None = None, pad: int = 1) -> torch.Tensor:
    """Tile ``[B, C, H, W]`` into one ``[C, rows*(H+pad)+pad, nrow*(W+pad)+pad]`` image (padding = -1, black)."""
    b, c, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(b))
    rows = math.ceil(b / nrow)
    grid = x.new_full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), -1.0)
    for i in range(b):
        top, left = pad + (i // nrow) * (h + pad), pad + (i % nrow) * (w + pad)
        grid[:, top : top + h, left : left + w] = x[i]
    return grid


def save_image(x: torch.Tensor, path: str | Path, *, scale: int = 1) -> None:
    """Save one ``[C, H, W]`` image in ``[-1, 1]`` atomically, in the format its suffix names (:func:`image_format`:
    PNG, JPEG or WebP); ``scale`` enlarges it (nearest)."""
    from PIL import Image

    fmt = image_format(path)  # before any work
    u8 = to_uint8(x)
    if scale > 1:
        u8 = u8.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    arr = u8.permute(1, 2, 0).numpy()
    img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    with atomic_path(path) as tmp:
        img.save(tmp, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))


def save_grid(x: torch.Tensor, path: str | Path, nrow: int | None = None, *, scale: int = 1) -> None:
    """Save a batch ``[B, C, H, W]`` in ``[-1, 1]`` as one grid image (format by suffix, as :func:`save_image`)."""
    save_image(make_grid(x.detach().cpu().float(), nrow), path, scale=scale)


def save_panels(columns: dict[str, torch.Tensor], path: str | Path, *, cell: float = 1.1) -> None:
    """Save a figure of titled columns (matplotlib, PNG, atomic): ``{title: [B, C, h, w] in [-1, 1]}``, one row per
    image. Columns may differ in resolution (an 8x8 observation beside 32x32 estimates): every panel is drawn at the
    same size with nearest-neighbour pixels, so a low-resolution input shows its true blockiness.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "panels.png")
    >>> save_panels({"low": torch.zeros(2, 1, 8, 8), "high": torch.ones(2, 1, 32, 32)}, path)
    >>> os.path.getsize(path) > 0
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(len(v) for v in columns.values())
    fig, axes = plt.subplots(rows, len(columns), figsize=(cell * len(columns), cell * rows + 0.25), squeeze=False)
    for j, (title, images) in enumerate(columns.items()):
        axes[0, j].set_title(textwrap.fill(title, 16), fontsize=8)
        for i in range(rows):
            axes[i, j].axis("off")
            if i < len(images):
                u8 = to_uint8(images[i].cpu()).permute(1, 2, 0).numpy()
                axes[i, j].imshow(u8[..., 0] if u8.shape[2] == 1 else u8, cmap="gray", vmin=0, vmax=255,
                                  interpolation="nearest")  # fmt: skip
    fig.tight_layout(pad=0.2)
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
