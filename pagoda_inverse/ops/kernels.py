r"""Blur kernels: Gaussian, seeded random motion trajectories, and kernels read from files.

Every kernel is a float64 tensor normalised to sum 1. A kernel is applied as a true convolution with its centre at
index ``(kh // 2, kw // 2)`` (deepinv's and scipy's convention).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch

from ._checks import check_int, check_positive, fail
from ._io import read_2d
from .rng import GeneratorLike, per_image_generators, uniform, uniform_float


def as_kernel(kernel, name: str = "kernel", normalise: bool = True) -> torch.Tensor:
    """Validate a kernel and return it as a float64 (Bk, Ck, kh, kw) tensor.

    :param kernel: a (kh, kw), (Ck, kh, kw) or (Bk, Ck, kh, kw) tensor/array (Bk is 1 or the batch size for
        per-image kernels, Ck is 1 or the channel count), or a path to a ``.npy``/grayscale image file.
    :param name: parameter name for error messages.
    :param normalise: divide each kernel by its sum (it must then be non-zero).
    :raises ValueError: empty, NaN/inf, wrong number of dimensions, a zero sum, or (files) negative entries.
    """
    if isinstance(kernel, (str, os.PathLike)):
        path, kernel = kernel, read_2d(kernel, name)
        name = f"{name} file {str(path)!r}"
        if bool((kernel < 0).any()):  # a file is a blur kernel; tensors may be any filter (e.g. a difference)
            raise fail(f"{name} has negative entries; a blur kernel must be >= 0 everywhere")
    k = torch.as_tensor(np.asarray(kernel) if not isinstance(kernel, torch.Tensor) else kernel)
    if k.ndim not in (2, 3, 4):
        raise fail(f"{name} must have shape (kh, kw), (C, kh, kw) or (B, C, kh, kw), got {tuple(k.shape)}")
    k = k.detach().to("cpu", torch.float64)
    k = k.reshape(*[1] * (4 - k.ndim), *k.shape)  # the missing leading axes, of size 1
    if k.numel() == 0 or min(k.shape) == 0:
        raise fail(f"{name} is empty (shape {tuple(k.shape)})")
    if not bool(torch.isfinite(k).all()):
        raise fail(f"{name} contains NaN or inf values")
    if normalise:
        s = k.sum(dim=(-2, -1), keepdim=True)
        if bool((s.abs() <= 1e-12 * k.abs().sum(dim=(-2, -1), keepdim=True).clamp_min(1e-300)).any()):
            raise fail(f"{name} sums to zero and cannot be normalised")
        k = k / s
    return k.contiguous()


def load_kernel(path: str | os.PathLike) -> torch.Tensor:
    """Read a kernel from a ``.npy`` file (no pickle) or a grayscale image, normalised to sum 1.

    :param path: the file; a PNG is read as grayscale intensities.
    :return: (kh, kw) float64 tensor.
    :raises ValueError: missing/unreadable file, not 2-D, NaN/inf, negative entries, or all zeros.
    """
    return as_kernel(path)[0, 0]


def gaussian_kernel(sigma: float | Sequence[float], size: int | Sequence[int] | None = None) -> torch.Tensor:
    r"""A sampled, normalised Gaussian :math:`k(u, v) \propto \exp(-u^2 / 2\sigma_y^2 - v^2 / 2\sigma_x^2)`.

    Sample points are centred on ``(size - 1) / 2`` (same as deepinv's ``gaussian_blur`` and kornia).

    :param sigma: standard deviation in pixels (> 0), or ``(sigma_y, sigma_x)``.
    :param size: kernel size (int or (kh, kw)); default ``2 * ceil(3 * sigma) + 1``.
    :return: (kh, kw) float64 tensor summing to 1.

    >>> k = gaussian_kernel(1.0, 5)
    >>> tuple(k.shape), round(float(k.sum()), 6), bool(k[2, 2] == k.max())
    ((5, 5), 1.0, True)
    """
    check_positive(sigma, "sigma")
    sy, sx = (sigma, sigma) if isinstance(sigma, (int, float)) else tuple(sigma)
    if size is None:
        size = (2 * math.ceil(3 * sy) + 1, 2 * math.ceil(3 * sx) + 1)
    kh, kw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    kh, kw = check_int(kh, "size"), check_int(kw, "size")
    u = torch.arange(kh, dtype=torch.float64) - (kh - 1) / 2
    v = torch.arange(kw, dtype=torch.float64) - (kw - 1) / 2
    k = torch.exp(-0.5 * (u / sy) ** 2)[:, None] * torch.exp(-0.5 * (v / sx) ** 2)[None, :]
    return k / k.sum()


def _beta_int(gen, a: int, b: int, n: int) -> torch.Tensor:
    # Beta(a, b) with integer a, b as Ga / (Ga + Gb), Gamma(k) = sum of k unit exponentials.
    e = -torch.log1p(-uniform(gen, n * (a + b)).reshape(n, a + b))
    ga = e[:, :a].sum(1)
    return ga / (ga + e[:, a:].sum(1))


def _triangular(gen, low: float, mode: float, high: float, n: int) -> torch.Tensor:
    u = uniform(gen, n)
    if high <= low:
        return torch.full((n,), low, dtype=torch.float64)
    c = (mode - low) / (high - low)
    left = low + torch.sqrt(u * (high - low) * (mode - low))
    right = high - torch.sqrt((1 - u) * (high - low) * (high - mode))
    return torch.where(u < c, left, right)


def motion_trajectory(size: int, intensity: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random camera-shake trajectory with the statistics of the ``motionblur`` package used by DPS/DAPS.

    On a canvas of twice the kernel size (diagonal D): the path length is ``0.75 D (U + U(0, intensity^2))``, made
    of steps ``Beta(1, 30) (1 - intensity + 0.1) D``; the first heading is ``U(-a, a)`` with ``a ~ U(0, intensity
    pi)``, later turns are ``Triangular(0, intensity a, a + 0.1)`` that keep or (with probability ``Beta(2, 20)``)
    flip the previous sign; the path is centred on its mean and rotated by ``U(0, pi)``.

    :param size: kernel size in pixels (the path is returned in kernel pixel coordinates).
    :param intensity: in [0, 1]; 0 is a short straight stroke, 1 a long, wiggly one. DPS uses 0.5.
    :param generator: CPU generator (None: torch's global RNG).
    :return: (N, 2) float64 tensor of (row, col) points.
    """
    eps = 0.1
    diag = math.hypot(2 * size, 2 * size)
    max_len = 0.75 * diag * (uniform_float(generator) + uniform_float(generator, 0.0, intensity**2))
    steps = torch.empty(0, dtype=torch.float64)
    while steps.numel() == 0 or float(steps.sum()) < max_len:  # step lengths, drawn in chunks for speed
        chunk = _beta_int(generator, 1, 30, 64) * (1 - intensity + eps) * diag
        steps = torch.cat([steps, chunk[chunk < max_len]])
    n = int(torch.searchsorted(torch.cumsum(steps, 0), torch.tensor([max_len], dtype=torch.float64))) + 1
    steps = steps[:n]
    max_angle = uniform_float(generator, 0.0, intensity * math.pi)
    jitter = float(_beta_int(generator, 2, 20, 1))
    first = uniform(generator, 1, -max_angle, max_angle)
    turns = _triangular(generator, 0.0, intensity * max_angle, max_angle + eps, n - 1)
    flips = torch.where(uniform(generator, n - 1) < jitter, -1.0, 1.0).to(torch.float64)
    signs = torch.sign(first) * torch.cumprod(flips, 0)
    angles = torch.cat([first, turns * signs])
    path = torch.cumsum(torch.polar(steps, angles), 0)
    path = (path - path.mean()) * torch.polar(torch.ones(1, dtype=torch.float64), uniform(generator, 1, 0.0, math.pi))
    # Canvas -> kernel pixels: the canvas is 2x the kernel, centred.
    path = path / 2 + (size - 1) / 2 * (1 + 1j)
    return torch.stack([path.imag, path.real], dim=1)


def motion_kernel(size: int = 61, intensity: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random motion-blur kernel (seeded), in the style of the DPS suite (``size=61, intensity=0.5``).

    The trajectory follows :func:`motion_trajectory`; it is rasterised by bilinear splatting of points spaced 0.25 px
    along the path and smoothed by a Gaussian of ``sigma = max(0.5, 0.01 * diagonal)`` px (kornia), then normalised.
    The statistics match the ``motionblur`` package; the pixels do not (it draws with PIL from numpy's global RNG).

    :param size: kernel size (odd recommended), >= 3.
    :param intensity: in [0, 1].
    :param generator: CPU ``torch.Generator``; the same seed gives the same kernel.
    :return: (size, size) float64 tensor summing to 1.

    >>> k = motion_kernel(15, 0.5, torch.Generator().manual_seed(0))
    >>> tuple(k.shape), round(float(k.sum()), 6), bool((k >= 0).all())
    ((15, 15), 1.0, True)
    """
    return motion_kernels(1, size, intensity, generator)[0, 0]


def _splat_path(size: int, intensity: float, generator: torch.Generator | None) -> torch.Tensor:
    """``(size, size)`` float64: a :func:`motion_trajectory` splatted bilinearly, points 0.25 px apart along it."""
    pts = motion_trajectory(size, intensity, generator)
    # Dense samples along each segment: segment i gets counts[i] points at t = 0, 1/c, ..., (c-1)/c; then the end.
    seg = pts[1:] - pts[:-1]
    counts = (seg.norm(dim=1) / 0.25).ceil().clamp_min(1).long()
    idx = torch.repeat_interleave(torch.arange(len(seg)), counts)
    first = torch.cumsum(counts, 0) - counts
    t = (torch.arange(len(idx)) - first[idx]).to(torch.float64) / counts[idx]
    idx, t = torch.cat([idx, torch.tensor([len(seg) - 1])]), torch.cat([t, torch.ones(1, dtype=torch.float64)])
    p = pts[idx] + t[:, None] * seg[idx]
    # Bilinear splat onto the kernel grid (points outside are clipped, as the reference crops its canvas).
    canvas = torch.zeros(size + 2, size + 2, dtype=torch.float64)
    base = p.floor()
    frac = p - base
    for dr in (0, 1):
        for dc in (0, 1):
            w = (frac[:, 0] if dr else 1 - frac[:, 0]) * (frac[:, 1] if dc else 1 - frac[:, 1])
            r = (base[:, 0] + dr + 1).long()
            c = (base[:, 1] + dc + 1).long()
            ok = (r >= 0) & (r < size + 2) & (c >= 0) & (c < size + 2)
            canvas.index_put_((r[ok], c[ok]), w[ok], accumulate=True)
    return canvas[1:-1, 1:-1]


def motion_kernels(
    batch: int = 1,
    size: int = 61,
    intensity: float = 0.5,
    generator: GeneratorLike = None,
    seeds: Sequence[int] | None = None,
) -> torch.Tensor:
    """``batch`` motion kernels, kernel i drawn from generator i (see :func:`~pagoda_inverse.ops.rng`).

    :param batch: number of kernels B.
    :param size: kernel size.
    :param intensity: in [0, 1].
    :param generator: a generator shared in order, or a list of B generators.
    :param seeds: B seeds (kernel i depends only on ``seeds[i]``).
    :return: (B, 1, size, size) float64 tensor.
    """
    import kornia

    size = check_int(size, "size", 3)
    if not 0.0 <= float(intensity) <= 1.0:
        raise fail(f"intensity must be in [0, 1], got {intensity!r}")
    gens = per_image_generators(batch, generator, seeds)
    paths = torch.stack([_splat_path(size, float(intensity), g) for g in gens])[:, None]
    # One Gaussian smoothing for the whole batch, then each kernel normalised to sum 1.
    sigma = max(0.5, 0.01 * math.hypot(size, size))
    ks = 2 * math.ceil(3 * sigma) + 1
    k = kornia.filters.gaussian_blur2d(paths, (ks, ks), (sigma, sigma), border_type="constant")
    # A path that fell wholly outside the canvas gives a centred dot.
    empty = k.sum((1, 2, 3)) <= 0
    k[empty] = 0.0
    k[empty, 0, size // 2, size // 2] = 1.0
    return k / k.sum((2, 3), keepdim=True)
