"""Saving images and grids (pixels in ``[-1, 1]`` inside the library; uint8 only at the file boundary)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .atomic import atomic_path


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` float -> ``[0, 255]`` uint8 (clamped, rounded)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def make_grid(x: torch.Tensor, nrow: int | None = None, pad: int = 1) -> torch.Tensor:
    """Tile ``[B, C, H, W]`` into one ``[C, rows*(H+pad)+pad, nrow*(W+pad)+pad]`` image (padding = -1, black)."""
    b, c, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(b))
    rows = math.ceil(b / nrow)
    grid = x.new_full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), -1.0)
    for i in range(b):
        r, col = divmod(i, nrow)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = x[
            i
        ]
    return grid


def save_image(x: torch.Tensor, path: str | Path, *, scale: int = 1) -> None:
    """Save one ``[C, H, W]`` image in ``[-1, 1]`` as PNG atomically; ``scale`` enlarges it (nearest)."""
    from PIL import Image

    u8 = to_uint8(x)
    if scale > 1:
        u8 = u8.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    arr = u8.permute(1, 2, 0).numpy()
    img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def save_grid(x: torch.Tensor, path: str | Path, nrow: int | None = None, *, scale: int = 1) -> None:
    """Save a batch ``[B, C, H, W]`` in ``[-1, 1]`` as one PNG grid."""
    save_image(make_grid(x.detach().cpu().float(), nrow), path, scale=scale)
