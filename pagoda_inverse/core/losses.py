"""Training losses as small functions: EDM denoising loss, the reconstruction distance, hinge GAN losses and
PaGoDA's adaptive adversarial weight (Kim et al. 2024, eq. for lambda_ad; Esser et al. 2021).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .sigmas import edm_loss_weight, training_sigmas


def training_noise(shape: torch.Size, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """EDM training noise for a batch of ``shape [B, C, H, W]``: ``(sigma [B, 1, 1, 1], unit noise [B, C, H, W])``
    with ``ln sigma ~ N(-1.2, 1.2^2)`` (sigma drawn first, then the noise)."""
    sigma = training_sigmas(shape[0], generator).reshape(-1, 1, 1, 1)
    return sigma, torch.randn(shape, generator=generator)


def edm_loss(
    precond: torch.nn.Module,
    x: torch.Tensor,
    cond: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    noise: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """EDM denoising loss ``E[lambda(sigma) ||D(x + sigma n; sigma) - x||^2]`` with ``ln sigma ~ N(-1.2, 1.2^2)``.

    :param x: ``[B, C, H, W]`` clean images in ``[-1, 1]``; ``cond``: ``[B, D]``.
    :param noise: ``(sigma [B, 1, 1, 1], n [B, C, H, W])`` from :func:`training_noise` (default: drawn here from
        ``generator``); data-parallel training draws it for the global batch and passes each rank its slice.
    :return: scalar loss (mean over pixels and batch).
    """
    sigma, n = noise if noise is not None else training_noise(x.shape, generator)
    sigma, n = sigma.to(x.device), n.to(x.device)
    denoised = precond(x + sigma * n, sigma.flatten(), cond)
    return (edm_loss_weight(sigma) * (denoised - x) ** 2).mean()


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def structural_distance(x: torch.Tensor, y: torch.Tensor, num_scales: int = 3) -> torch.Tensor:
    """Reconstruction distance without a pretrained backbone: multi-scale L1 + squared error + gradient L1.

    At each scale (2x average pooling between scales, down to 4 px) it adds
    ``mean|x - y| + mean (x - y)^2 + mean|grad x - grad y|``; the gradient term keeps edges sharp, the
    coarse scales weigh global structure.

    :param x, y: ``[B, C, H, W]`` in ``[-1, 1]``.
    :return: ``[B]`` per-image distances (>= 0, 0 iff equal).
    """
    total = x.new_zeros(len(x))
    for s in range(num_scales):
        if s > 0:
            if x.shape[-1] < 8:
                break
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        diff = x - y
        gx, gy = _gradients(diff)
        total = total + diff.abs().mean((1, 2, 3)) + diff.square().mean((1, 2, 3))
        total = total + gx.abs().mean((1, 2, 3)) + gy.abs().mean((1, 2, 3))
    return total


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss ``mean relu(1 - D(real)) + mean relu(1 + D(fake))``."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss ``-mean D(G(eps))``."""
    return -fake_logits.mean()


def adaptive_weight(
    rec_loss: torch.Tensor,
    adv_loss: torch.Tensor,
    last_weight: torch.Tensor,
    lo: float = 0.01,
    hi: float = 10.0,
) -> torch.Tensor:
    """PaGoDA/VQGAN adaptive weight ``clip(||grad_W L_rec|| / (||grad_W L_adv|| + 1e-4), lo, hi)``, detached.

    Both gradient norms are taken on the same tensor ``W`` (the generator's output conv weight).
    """
    g_rec = torch.autograd.grad(rec_loss, last_weight, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv_loss, last_weight, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(lo, hi).detach()
