"""A learned one-step encoder ``E(x, cond) ~ z``: the fast path for solvers (PaGoDA's ``pgd_encoder`` idea).

It regresses the PF-ODE latents of the cached (image, latent) pairs: one network pass instead of the
``2 (N - 1)`` teacher evaluations of the ODE encoder. ``E(x, c) = sigma_max * F(x; c_noise(sigma_min), c)``
with ``F`` a U-Net of the teacher's architecture (initialised from the teacher), so its raw output targets
the unit-variance ``z / sigma_max``.
"""

from __future__ import annotations

import torch
from torch import nn

from pagoda_inverse.core.sigmas import SIGMA_MAX, SIGMA_MIN, noise_label
from pagoda_inverse.core.unet import UNet


class LearnedEncoder(nn.Module):
    """``forward(x [B,C,r,r] in [-1,1], cond [B,D]) -> z [B,C,r,r]`` at the ``sigma_max`` scale.

    >>> from pagoda_inverse.core.unet import UNetConfig
    >>> E = LearnedEncoder(UNet(UNetConfig(channels=8, attn_resolutions=(), cond_dim=4)))
    >>> E(torch.zeros(2, 1, 8, 8), torch.zeros(2, 4)).shape
    torch.Size([2, 1, 8, 8])
    """

    def __init__(self, net: UNet, sigma_max: float = SIGMA_MAX):
        super().__init__()
        self.net, self.sigma_max = net, sigma_max

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        label = noise_label(torch.full((len(x),), SIGMA_MIN, device=x.device))
        return self.sigma_max * self.net(x.float(), label, cond.float())
