"""A small conditional projection discriminator for PaGoDA's adversarial loss (hinge), with DiffAugment.

No pretrained backbone exists offline, so instead of the paper's Projected-GAN discriminator (frozen DeiT and
EfficientNet features) this is a compact spectrally-normalised CNN trained from scratch, with the projection
conditioning of Miyato & Koyama 2018: ``logit = w . h + <embed(cond), h>``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm


class Discriminator(nn.Module):
    """``forward(x [B,C,R,R] in [-1,1], cond [B,D]) -> [B]`` logits; R a power of two >= 4.

    >>> D = Discriminator(in_channels=1, resolution=8, channels=8, cond_dim=4)
    >>> D(torch.zeros(3, 1, 8, 8), torch.zeros(3, 4)).shape
    torch.Size([3])
    """

    def __init__(self, in_channels: int = 1, resolution: int = 8, channels: int = 32, cond_dim: int = 384):
        super().__init__()
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(in_channels, channels, 3, padding=1)), nn.LeakyReLU(0.2)]
        ch, res = channels, resolution
        # Stride-2 stages down to 4x4, doubling the width (capped at 8x).
        while res > 4:
            nxt = min(ch * 2, channels * 8)
            layers += [spectral_norm(nn.Conv2d(ch, nxt, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            ch, res = nxt, res // 2
        layers += [spectral_norm(nn.Conv2d(ch, ch, 3, padding=1)), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.head = spectral_norm(nn.Linear(ch * 16, 1))
        self.embed = spectral_norm(nn.Linear(cond_dim, ch * 16, bias=False))
        self.resolution = resolution

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.features(x).flatten(1)
        return self.head(h).squeeze(1) + (self.embed(cond) * h).sum(1) / math.sqrt(h.shape[1])


def diff_augment(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.125) -> torch.Tensor:
    """Differentiable augmentation for both real and fake images (Zhao et al. 2020): random translation by up to
    ``ratio`` of the size (zero padding = the background), per image.

    :param x: ``[B, C, H, W]``; :return: same shape.
    """
    b, _, h, w = x.shape
    shift = max(1, int(round(h * ratio)))
    dx = torch.randint(-shift, shift + 1, (b,), generator=generator).to(x.device)
    dy = torch.randint(-shift, shift + 1, (b,), generator=generator).to(x.device)
    # Translate by sampling the padded image on a shifted integer grid (background is -1 in [-1, 1] units).
    padded = F.pad(x, (shift, shift, shift, shift), value=-1.0)
    rows = (torch.arange(h, device=x.device)[None, :] + shift - dy[:, None]).clamp(0, h + 2 * shift - 1)
    cols = (torch.arange(w, device=x.device)[None, :] + shift - dx[:, None]).clamp(0, w + 2 * shift - 1)
    idx_b = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_b, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)
