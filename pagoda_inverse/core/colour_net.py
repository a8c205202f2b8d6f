"""A luma-to-colour network ``C(gray) ~ E[x | luma(x)]``: the photo model's amortised colorization prior.

PaGoDA's decoder is unconditional, and its colours given a luma are nearly uncorrelated with the truth's (the
posterior samples of ``one_step`` average to little colour). ``C`` regresses the colour of a training crop from its
luma with a squared error, so it estimates the posterior mean: the PSNR-optimal colorization, in one network pass.
``C(g) = g + P F(g)``, with ``g`` the luma copied to every channel, ``F`` a U-Net of the model family and
``P v = v - luma(v)`` the projection onto zero-luma (chroma) images: ``C`` never changes the luma it is given.
"""

from __future__ import annotations

import torch
from torch import nn

from pagoda_inverse.core.unet import UNet
from pagoda_inverse.ops.colour import REC601


def luma(x: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W] -> [B, 1, H, W]``: the BT.601 luma (the ``Grayscale`` operator's default weights, summing to
    one)."""
    return torch.einsum("c,bchw->bhw", x.new_tensor(REC601), x)[:, None]


class ColourNet(nn.Module):
    """``forward(gray [B, 3, H, W] in [-1, 1], equal channels) -> [B, 3, H, W]`` with the same luma.

    ``H`` and ``W`` are multiples of ``2^(levels - 1)`` of the U-Net (8 for the photo model's).

    >>> from pagoda_inverse.core.unet import UNetConfig
    >>> C = ColourNet(UNet(UNetConfig(in_channels=3, resolution=16, channels=8, attn_resolutions=(), cond_dim=1)))
    >>> g = torch.rand(2, 1, 16, 16).expand(-1, 3, -1, -1) * 2 - 1
    >>> x = C(g)
    >>> tuple(x.shape), bool(torch.allclose(luma(x), g[:, :1], atol=1e-6))
    ((2, 3, 16, 16), True)
    """

    def __init__(self, net: UNet):
        super().__init__()
        self.net = net

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        b = len(gray)
        out = self.net(gray.float(), gray.new_zeros(b), gray.new_zeros(b, self.net.config.cond_dim))
        # Keep only the chroma of the network's output: the luma stays the input's.
        return gray + out - luma(out)
