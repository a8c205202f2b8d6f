"""EDM preconditioning: the thin wrapper that turns a backbone ``F`` into a denoiser ``D(x; sigma, cond)``.

``D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma), cond)`` (Karras et al. 2022,
Table 1, "VE" column with ``sigma_data = 0.5``). Classifier-free guidance mixes a conditional and an
unconditional (null-embedding) evaluation: ``D_w = D(x; null) + w (D(x; cond) - D(x; null))``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .sigmas import SIGMA_DATA, noise_label, precond_scalings

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class EDMPrecond(nn.Module):
    """Denoiser ``D(x, sigma, cond)`` around a backbone ``net(x, c_noise, cond)``.

    :param net: backbone, e.g. :class:`pagoda_inverse.core.unet.UNet`.
    :param sigma_data: data standard deviation in ``[-1, 1]`` pixel units.

    >>> from pagoda_inverse.core.unet import UNet, UNetConfig
    >>> D = EDMPrecond(UNet(UNetConfig(channels=8, attn_resolutions=(), cond_dim=4)))
    >>> D(torch.zeros(1, 1, 8, 8), torch.tensor([1.0]), torch.zeros(1, 4)).shape
    torch.Size([1, 1, 8, 8])
    """

    def __init__(self, net: nn.Module, sigma_data: float = SIGMA_DATA):
        super().__init__()
        self.net, self.sigma_data = net, sigma_data

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # Broadcast sigma to [B, 1, 1, 1] and apply the four EDM scalings.
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1).expand(len(x), 1, 1, 1)
        c_skip, c_out, c_in = precond_scalings(sigma, self.sigma_data)
        out = self.net((c_in * x).to(torch.float32), noise_label(sigma).flatten().float(), cond.float())
        return c_skip * x + c_out * out.to(x.dtype)


def guided_denoiser(
    precond: nn.Module,
    cond: torch.Tensor,
    null: torch.Tensor | None = None,
    cfg_scale: float | torch.Tensor = 1.0,
    clamp: bool = False,
) -> Denoiser:
    """Bind a condition (and optional CFG) to a denoiser, giving ``denoise(x [B,...], sigma scalar) -> [B,...]``.

    :param cond: ``[B, D]`` conditioning vectors.
    :param null: ``[D]`` null embedding, needed when ``cfg_scale != 1``.
    :param cfg_scale: guidance weight ``w``, a float or one per row (``[B]`` tensor, always two evaluations); the
        float 1 means plain conditional denoising (one evaluation).
    :param clamp: clamp the denoised estimate to ``[-1, 1]`` (PaGoDA does so during inversion).
    """
    guided = isinstance(cfg_scale, torch.Tensor) or cfg_scale != 1.0
    if guided and null is None:
        raise ValueError("cfg_scale != 1 needs the null embedding (null=...)")

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if not guided:
            out = precond(x, sigma, cond)
        else:
            # One batched pass over [conditional; unconditional], then extrapolate (per row for a tensor scale).
            both = precond(torch.cat([x, x]), sigma, torch.cat([cond, null.expand_as(cond)]))
            d_cond, d_null = both.chunk(2)
            w = cfg_scale.view(-1, *[1] * (x.dim() - 1)).to(x.dtype) if torch.is_tensor(cfg_scale) else cfg_scale
            out = d_null + w * (d_cond - d_null)
        return out.clamp(-1, 1) if clamp else out

    return denoise
