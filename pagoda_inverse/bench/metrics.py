"""Metrics that are truthful offline (no pretrained backbone): PSNR and SSIM (piq), measurement consistency,
sample diversity. Images are ``[B, C, H, W]`` in ``[-1, 1]``; every metric returns one value per image ``[B]``.

LPIPS and FID need pretrained backbone weights that cannot be downloaded here; they are never stood in for.
"""

from __future__ import annotations

import torch


def _unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float().clamp(-1, 1) + 1) / 2).clamp(0, 1)


def psnr(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """PSNR in dB on ``[0, 1]``-mapped images (estimates clamped to the valid range).

    >>> round(float(psnr(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.2))), 3)  # MSE 0.01 in [0, 1] units
    20.0
    """
    import piq

    return piq.psnr(_unit(x), _unit(ref), data_range=1.0, reduction="none")


def ssim(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """SSIM (piq, 11x11 Gaussian window; images must be at least 11 px) on ``[0, 1]``-mapped images."""
    import piq

    return piq.ssim(_unit(x), _unit(ref), data_range=1.0, reduction="none")


def consistency(op, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Measurement consistency ``||A x - y|| / sqrt(m)``: the RMS residual in ``[-1, 1]`` units (compare with
    ``sigma_y``; 0 means the estimate explains the measurement exactly)."""
    r = (op.A(x) - y).flatten(1)
    return r.norm(dim=1) / r.shape[1] ** 0.5


def diversity(samples: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel standard deviation over the ``K`` samples ``[K, B, ...]`` (0 when ``K = 1``)."""
    if len(samples) < 2:
        return torch.zeros(samples.shape[1])
    return samples.std(0).flatten(1).mean(1)
