"""A learned guidance map ``M(z, c, w) ~ z_w``: classifier-free guidance for a one-step generator in one pass.

G is trained to decode the *unguided* PF-ODE latents, so guiding its output (``G(z, null) + w (G(z, c) -
G(z, null))``) only extrapolates between two images. The teacher's guidance acts along the whole ODE instead.
The map learns where that guided trajectory goes, in G's own latent space::

    z_w = encode(sample_w(z, c), c)

with ``sample_w`` the teacher's CFG-``w`` Heun sampler started from ``z`` and ``encode`` its unguided PF-ODE
encoder. ``G(z_w, c)`` is then (up to G's reconstruction error) the teacher's guided sample grown to G's
resolution, at the cost of one pass of a small network at the teacher's resolution. This is the distillation
loss of PaGoDA's guided text-to-image models (Kim et al. 2024), moved from G's weights into a separate latent map
so that G, and every solver built on it, is unchanged.

``M(z, c, w) = z + sigma_max F(z / sigma_max; (w - 1) / 4, c)`` with ``F`` a U-Net of the teacher's architecture
(the guidance scale takes the noise-level input) whose output layer starts at zero, so ``M`` starts as the
identity, which is exact at ``w = 1`` up to the ODE's round-trip error.
"""

from __future__ import annotations

import torch
from torch import nn

from pagoda_inverse.utils.errors import UserError

from .sigmas import SIGMA_MAX
from .unet import UNet


def guidance_label(w: torch.Tensor | float, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The network's scalar input for guidance scale ``w``: ``(w - 1) / 4`` as ``[n]`` float32 (0 at ``w = 1``)."""
    w = torch.as_tensor(w, dtype=torch.float32, device=device)
    return ((w - 1) / 4).expand(n).contiguous() if w.dim() == 0 else (w - 1) / 4


class GuidanceMap(nn.Module):
    """``forward(z [B,C,r,r], cond [B,D], w float or [B]) -> z_w [B,C,r,r]``, both at the ``sigma_max`` scale.

    :param net: U-Net at the teacher resolution (its noise-level input carries the guidance scale).
    :param w_max: the largest scale the map was trained for (``forward`` refuses larger ones).

    >>> from pagoda_inverse.core.unet import UNetConfig
    >>> M = GuidanceMap(UNet(UNetConfig(channels=8, attn_resolutions=(), cond_dim=4)), w_max=4.0)
    >>> z = torch.randn(2, 1, 8, 8) * 80
    >>> torch.equal(M(z, torch.zeros(2, 4), 2.0), z)  # a fresh map is the identity
    True
    """

    def __init__(self, net: UNet, w_max: float, sigma_max: float = SIGMA_MAX):
        super().__init__()
        self.net, self.w_max, self.sigma_max = net, float(w_max), sigma_max

    def forward(self, z: torch.Tensor, cond: torch.Tensor, w: torch.Tensor | float) -> torch.Tensor:
        w_t = torch.as_tensor(w, dtype=torch.float32)
        bad = w_t[(w_t > self.w_max + 1e-6) | (w_t < 1.0 - 1e-6)]
        if bad.numel():
            raise UserError(
                f"guidance scale {bad.flatten()[0].item():g}: this model's guidance map is trained for "
                f"[1, {self.w_max:g}]; pass a --cfg in that range"
            )
        label = guidance_label(w_t, len(z), z.device)
        return z + self.sigma_max * self.net(z.float() / self.sigma_max, label, cond.float())
