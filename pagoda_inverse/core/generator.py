"""PaGoDA's one-step decoder / generator ``G(z, cond)`` (Kim et al. 2024, sec. 3.2).

``G(z, cond) = c_out(sigma_max) F(c_in(sigma_max) z; c_noise(sigma_max), cond)``: one pass of the backbone at
the highest noise level. Initialised as a copy of the teacher's backbone, G starts as the teacher's one-step
denoiser at ``sigma_max`` (its negligible skip term ``c_skip(80) = 4e-5`` dropped so the output resolution may
grow past the latent's). The latent ``z`` lives at the teacher's resolution with std about ``sigma_max``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from .sigmas import SIGMA_DATA, SIGMA_MAX, noise_label, precond_scalings
from .unet import UNet


class Generator(nn.Module):
    """One-step generator. ``forward(z [B,C,r,r], cond [B,D]) -> [B,C,R,R]`` raw (clamp only for display).

    >>> from pagoda_inverse.core.unet import UNetConfig
    >>> G = Generator(UNet(UNetConfig(channels=8, attn_resolutions=(), cond_dim=4, grow_channels=(8,))))
    >>> G(torch.randn(2, 1, 8, 8) * 80, torch.zeros(2, 4)).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(self, net: UNet, sigma_max: float = SIGMA_MAX, sigma_data: float = SIGMA_DATA):
        super().__init__()
        self.net, self.sigma_max, self.sigma_data = net, sigma_max, sigma_data

    @classmethod
    def from_teacher(cls, teacher_net: UNet, sigma_max: float = SIGMA_MAX) -> Generator:
        """A generator whose backbone is a deep copy of the teacher's (PaGoDA's initialisation)."""
        return cls(copy.deepcopy(teacher_net), sigma_max=sigma_max)

    def forward(self, z: torch.Tensor, cond: torch.Tensor, grow_offset: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """``grow_offset``: optional ``[B, *net.grow_in_shapes[i]]`` shifts of the features entering G's first
        ``len(grow_offset)`` growth stages."""
        sigma = torch.full((len(z),), self.sigma_max, device=z.device, dtype=torch.float32)
        _, c_out, c_in = precond_scalings(sigma[0], self.sigma_data)
        return c_out * self.net(c_in * z.float(), noise_label(sigma), cond.float(), grow_offset)


def generate_guided(
    G: nn.Module,
    z: torch.Tensor,
    cond: torch.Tensor,
    null: torch.Tensor | None = None,
    cfg_scale: float = 1.0,
    grow_offset: Sequence[torch.Tensor] = (),
) -> torch.Tensor:
    """``G_w(z, c) = G(z, null) + w (G(z, c) - G(z, null))``: classifier-free guidance of a one-step generator.

    The condition dropout used in training makes ``G(z, null)`` the unconditional generator. With ``w = 1`` it
    is one network evaluation; otherwise one batched pass over ``[cond; null]`` (2 NFE).

    :param z: ``[B, C, r, r]`` latents (std about ``sigma_max``).
    :param cond: ``[B, D]`` condition vectors; ``null``: ``[D]``.
    :param grow_offset: optional ``[B, *G.net.grow_in_shapes[i]]`` feature shifts (see :class:`Generator`), the same for
        both passes.
    :return: ``[B, C, R, R]`` images, nominally in ``[-1, 1]``.
    """
    if cfg_scale == 1.0:
        return G(z, cond, grow_offset)
    if null is None:
        raise ValueError("cfg_scale != 1 needs the null embedding (null=...)")
    offset = [torch.cat([o, o]) for o in grow_offset]
    x_cond, x_null = G(torch.cat([z, z]), torch.cat([cond, null.expand_as(cond)]), offset).chunk(2)
    return x_null + cfg_scale * (x_cond - x_null)


def one_step(
    model,
    z: torch.Tensor,
    cond: torch.Tensor,
    *,
    cfg_scale: float = 1.0,
    grow_offset: Sequence[torch.Tensor] = (),
) -> torch.Tensor:
    """One-step sample of ``model`` (a :class:`~pagoda_inverse.core.model.PagodaModel`) from noise latents:
    ``G(z, c)``; with guidance ``w = cfg_scale != 1``, ``G_w(M(z, c, w), c)`` through the model's guidance map when it
    has one, else ``G_w(z, c)`` (:func:`one_step_nfe` evaluations).

    :param z: ``[B, C, r, r]`` noise latents at the ``sigma_max`` scale (``sigma_max * randn``).
    :param grow_offset: optional shifts of the features entering G's growth stages (see ``Generator``).
    :return: ``[B, C, R, R]`` raw images (not clamped; differentiable in ``z`` and ``grow_offset``).
    """
    if cfg_scale != 1.0 and model.guidance is not None:
        # Where the teacher's CFG sampler takes this noise, in G's latent space (one pass at its resolution).
        z = model.guidance(z, cond, cfg_scale)
    return generate_guided(model.decoder, z, cond, model.bank.null_embedding, cfg_scale, grow_offset)


def one_step_nfe(model, cfg_scale: float) -> int:
    """Network evaluations of one :func:`one_step`: G (twice with guidance) plus the guidance map's pass."""
    return 1 if cfg_scale == 1.0 else 2 + (model.guidance is not None)
