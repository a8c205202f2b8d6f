"""Seeded inpainting masks: box, random pixels, free-form strokes, and masks read from files.

Convention everywhere: **1 = pixel kept (observed), 0 = pixel dropped (to inpaint)**, as in deepinv and DDNM.

``random_mask(drop=p)`` takes the **dropped** fraction ``p`` (the DPS/DAPS convention: DAPS's 70% random
inpainting is ``drop=0.7``); deepinv's ``Inpainting(mask=q)`` takes the kept fraction ``q = 1 - p``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch

from ._checks import check_choice, check_int, fail
from ._io import read_2d
from .rng import GeneratorLike, per_image_generators, uniform, uniform_float


def _randint(gen, low: int, high: int) -> int:
    """Uniform integer in [low, high] (inclusive) from ``gen``."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def box_mask(
    h: int,
    w: int,
    box: int | Sequence[int] | None = None,
    position: str = "center",
    margin: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A rectangular hole (the DPS/DAPS ``box`` task: a 128x128 hole in 256x256 with a 16 px margin).

    :param h: image height. :param w: image width.
    :param box: hole size ``(bh, bw)`` or an int for a square; default ``(h // 2, w // 2)``.
    :param position: ``"center"`` or ``"random"`` (uniform top-left inside the margin).
    :param margin: minimum distance from the image border for random boxes; default ``round(min(h, w) / 16)``,
        reduced when the box would not fit.
    :param generator: CPU generator for ``position="random"``.
    :return: (h, w) float64 mask, 0 inside the box.

    >>> m = box_mask(8, 6, box=(4, 2))
    >>> int(m.sum()), m[2:6, 2:4].abs().sum().item()
    (40, 0.0)
    """
    check_choice(position, "position", ("center", "random"))
    bh, bw = (h // 2, w // 2) if box is None else ((box, box) if isinstance(box, int) else tuple(box))
    bh, bw = check_int(bh, "box", 0), check_int(bw, "box", 0)
    if bh > h or bw > w:
        raise fail(f"box {bh}x{bw} does not fit in the {h}x{w} image")
    if position == "center":
        top, left = (h - bh) // 2, (w - bw) // 2
    else:
        m = round(min(h, w) / 16) if margin is None else check_int(margin, "margin", 0)
        mh, mw = min(m, (h - bh) // 2), min(m, (w - bw) // 2)
        top, left = _randint(generator, mh, h - mh - bh), _randint(generator, mw, w - mw - bw)
    mask = torch.ones(h, w, dtype=torch.float64)
    mask[top : top + bh, left : left + bw] = 0
    return mask


def random_mask(h: int, w: int, drop: float = 0.7, generator: torch.Generator | None = None) -> torch.Tensor:
    """Drop exactly ``round(drop * h * w)`` pixels chosen uniformly (same for all channels, as in DPS).

    :param drop: the **dropped** fraction in [0, 1] (DPS/DAPS convention; deepinv's kept fraction is ``1 - drop``).
    :return: (h, w) float64 mask.

    >>> m = random_mask(10, 10, drop=0.3, generator=torch.Generator().manual_seed(0))
    >>> int(m.sum())
    70
    """
    if not 0.0 <= float(drop) <= 1.0:
        raise fail(f"drop must be a fraction in [0, 1] (the share of pixels removed), got {drop!r}")
    n = round(float(drop) * h * w)
    mask = torch.ones(h * w, dtype=torch.float64)
    mask[torch.randperm(h * w, generator=generator)[:n]] = 0
    return mask.reshape(h, w)


def freeform_mask(
    h: int,
    w: int,
    strokes: int = 5,
    vertices: int = 10,
    width: tuple[float, float] = (0.05, 0.12),
    length: tuple[float, float] = (0.08, 0.25),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Free-form brush strokes (in the style of DeepFill v2 / Palette masks), seeded.

    Each of ``2..strokes`` strokes starts at a uniform point and walks ``4..vertices`` segments whose heading turns
    by up to 72 degrees; every segment is a capsule of a stroke-wide width. Sizes are fractions of ``min(h, w)``.

    :param strokes: maximum number of strokes.
    :param vertices: maximum number of segments per stroke (>= 4).
    :param width: (min, max) brush width as a fraction of ``min(h, w)``.
    :param length: (min, max) segment length as a fraction of ``min(h, w)``.
    :return: (h, w) float64 mask, 0 under the strokes.
    """
    strokes, vertices = check_int(strokes, "strokes"), check_int(vertices, "vertices", 4)
    s = min(h, w)
    # The strokes' segments (start, direction, brush radius), walked in plain floats: the draws come one at a time
    # because the number of segments is itself drawn.
    starts, steps, radii = [], [], []
    for _ in range(_randint(generator, min(2, strokes), strokes)):
        p0, p1 = (float(v) for v in uniform(generator, 2))
        p0, p1 = p0 * h, p1 * w
        radius = uniform_float(generator, width[0] * s, width[1] * s) / 2
        heading = uniform_float(generator, 0, 2 * math.pi)
        for _ in range(_randint(generator, 4, vertices)):
            heading += uniform_float(generator, -2 * math.pi / 5, 2 * math.pi / 5)
            step = uniform_float(generator, length[0] * s, length[1] * s)
            # The segment's end, clamped to the image.
            q0 = min(max(p0 + step * math.sin(heading), 0.0), float(h))
            q1 = min(max(p1 + step * math.cos(heading), 0.0), float(w))
            starts.append((p0, p1))
            steps.append((q0 - p0, q1 - p1))
            radii.append(radius)
            p0, p1 = q0, q1
    # Squared distance from every pixel centre to a chunk of segments [S, h, w] at a time (about 4M values); a pixel is
    # a hole within a brush radius of any segment.
    p0, p1 = torch.tensor(starts, dtype=torch.float64).T[..., None, None]
    d0, d1 = torch.tensor(steps, dtype=torch.float64).T[..., None, None]
    length2 = torch.tensor([a * a + b * b + 1e-12 for a, b in steps], dtype=torch.float64)[:, None, None]
    radius2 = torch.tensor([r**2 for r in radii], dtype=torch.float64)[:, None, None]
    rows = torch.arange(h, dtype=torch.float64)[:, None] + 0.5
    cols = torch.arange(w, dtype=torch.float64)[None, :] + 0.5
    hole = torch.zeros(h, w, dtype=torch.bool)
    chunk = max(1, 2**22 // (h * w))
    for i in range(0, len(steps), chunk):
        c = slice(i, i + chunk)
        t = (((rows - p0[c]) * d0[c] + (cols - p1[c]) * d1[c]) / length2[c]).clamp(0, 1)
        dist2 = (rows - p0[c] - t * d0[c]) ** 2 + (cols - p1[c] - t * d1[c]) ** 2
        hole |= (dist2 <= radius2[c]).any(0)
    return (~hole).to(torch.float64)


def load_mask(path: str | os.PathLike, invert: bool = False) -> torch.Tensor:
    """Read a mask from a grayscale PNG (or ``.npy``, no pickle); values > 0.5 (of the full range) are kept.

    :param path: the file; white (1) = keep, black (0) = inpaint.
    :param invert: set True for masks where white marks the hole (LaMa's convention).
    :return: (h, w) float64 binary mask.
    :raises ValueError: missing/unreadable file, not 2-D, NaN values, or values outside [0, 1].
    """
    m = read_2d(path, "mask")
    if not bool(torch.isfinite(m).all()):
        raise fail(f"mask file {str(path)!r} contains NaN or inf values")
    if m.numel() and (m.min() < 0 or m.max() > 1):
        raise fail(
            f"mask file {str(path)!r} has values in [{float(m.min()):g}, {float(m.max()):g}]; "
            "a .npy mask must hold values in [0, 1] (1 = observed)"
        )
    m = (m > 0.5).to(torch.float64)
    return 1 - m if invert else m


MASK_KINDS = {"box": box_mask, "random": random_mask, "freeform": freeform_mask}


def make_masks(
    kind: str,
    batch: int,
    h: int,
    w: int,
    generator: GeneratorLike = None,
    seeds: Sequence[int] | None = None,
    **params,
) -> torch.Tensor:
    """``batch`` masks of one kind; mask i is drawn from generator i, so it depends only on ``seeds[i]``.

    :param kind: ``"box"``, ``"random"`` or ``"freeform"``.
    :param batch: number of masks B.
    :param h: height. :param w: width.
    :param generator: a shared CPU generator (drawn in image order) or a list of B generators.
    :param seeds: B integer seeds (takes precedence over ``generator``).
    :param params: keyword arguments of :func:`box_mask`, :func:`random_mask` or :func:`freeform_mask`.
    :return: (B, 1, h, w) float64 masks.

    >>> a = make_masks("random", 2, 8, 8, seeds=[3, 4], drop=0.5)
    >>> b = make_masks("random", 1, 8, 8, seeds=[4], drop=0.5)
    >>> bool(torch.equal(a[1], b[0]))
    True
    """
    fn = MASK_KINDS[check_choice(kind, "kind", tuple(MASK_KINDS))]
    gens = per_image_generators(check_int(batch, "batch"), generator, seeds)
    return torch.stack([fn(h, w, generator=g, **params) for g in gens])[:, None]
