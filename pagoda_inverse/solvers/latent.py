"""Latent-space solvers through the one-step generator: MAP optimisation and Langevin posterior sampling.

Both work on the normalised latent ``u = z / sigma_max`` (prior ``N(0, I)``) with the potential

    U(u) = ||A G(sigma_max u) - y||^2 / (2 s^2) + ||u||^2 / 2,    s = max(sigma_y, sigma_floor),

``latent_map`` minimises it (Adam, GAN-inversion style); ``latent_langevin`` samples ``exp(-U)`` with the
unadjusted Langevin algorithm ``u <- u - tau grad U + sqrt(2 tau) xi`` (the noise-space posterior sampling of
Purohit et al., arXiv 2410.02078, with a one-step map like G). Both start at the encoding of ``A^+ y`` and end with
the data-consistency step.
"""

from __future__ import annotations

import torch

from pagoda_inverse.core.generator import generate_guided
from pagoda_inverse.ops._rng import randn_like
from pagoda_inverse.solvers.base import (
    SolverResult,
    data_consistency,
    encode_estimate,
    encoder_nfe,
    prepare,
    result,
)


def _potential(model, op, y, c, u, s, cfg_scale: float = 1.0):
    """``U(u)`` per image ``[B]`` and the decoded images (G with classifier-free guidance ``cfg_scale``)."""
    x = generate_guided(model.generator, u * model.generator.sigma_max, c, model.bank.null_embedding, cfg_scale)
    misfit = (op.A(x) - y).pow(2).flatten(1).sum(1) / (2 * s**2)
    return misfit + u.pow(2).flatten(1).sum(1) / 2, x


def _noise_level(op, sigma_floor: float) -> float:
    return max(float(torch.as_tensor(op.sigma_y).max()), sigma_floor)


def solve_latent_map(
    model,
    op,
    y,
    *,
    cond=None,
    generator=None,
    callback=None,
    steps: int = 100,
    lr: float = 0.05,
    sigma_floor: float = 0.02,
    encoder: str | None = None,
    num_steps: int = 18,
    consistency: bool = True,
    prior_std: float = 0.2,
    cfg_scale: float = 1.0,
) -> SolverResult:
    """MAP latent: ``argmin_u U(u)`` by Adam from the encoding of ``A^+ y`` (2 NFE per step: forward + backward).

    :param sigma_floor: lower bound on the likelihood's noise level ``s`` (keeps noiseless problems well posed).
    :param cfg_scale: classifier-free guidance of G when ``cond`` is given (twice the NFE when != 1).
    """
    timer, encoder, c = prepare(model, op, y, cond, encoder)
    s = _noise_level(op, sigma_floor)
    with torch.no_grad():
        u = (encode_estimate(model, op.initial_estimate(y), c, encoder, num_steps) / model.generator.sigma_max).clone()
    u.requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr)
    for step in range(steps):
        # Gradient step on the per-image potential (images are independent: sum over the batch).
        energy, _ = _potential(model, op, y, c, u, s, cfg_scale)
        opt.zero_grad(set_to_none=True)
        energy.sum().backward()
        opt.step()
        if callback is not None:
            callback({"step": step + 1, "total": steps, "energy": energy.detach()})
    with torch.no_grad():
        _, x = _potential(model, op, y, c, u, s, cfg_scale)
        x = data_consistency(op, x, y, prior_std) if consistency else x
    nfe = encoder_nfe(model, encoder, num_steps) + (2 * steps + 1) * (1 if cfg_scale == 1 else 2)
    return result(x[None], (u.detach() * model.generator.sigma_max)[None], timer, "latent_map", nfe, encoder=encoder)


def solve_latent_langevin(
    model,
    op,
    y,
    *,
    cond=None,
    generator=None,
    callback=None,
    samples: int = 4,
    steps: int = 100,
    step_size: float = 2e-4,
    init_eta: float = 0.3,
    sigma_floor: float = 0.02,
    encoder: str | None = None,
    num_steps: int = 18,
    consistency: bool = True,
    prior_std: float = 0.2,
) -> SolverResult:
    """Posterior samples ``u ~ exp(-U)`` by unadjusted Langevin dynamics, ``K = samples`` chains per image.

    :param step_size: ``tau``; stability needs ``tau`` well below ``s^2 / ||A J_G||^2``.
    :param init_eta: chains start at ``sqrt(1 - eta^2) u_enc + eta xi`` (spread-out starts).
    """
    timer, encoder, c = prepare(model, op, y, cond, encoder)
    s = _noise_level(op, sigma_floor)
    with torch.no_grad():
        u0 = encode_estimate(model, op.initial_estimate(y), c, encoder, num_steps) / model.generator.sigma_max
    # K chains per image; chain j of image i draws from image i's generator only.
    chains = [(1 - init_eta**2) ** 0.5 * u0 + init_eta * randn_like(u0, generator) for _ in range(samples)]
    for step in range(steps):
        for j, u in enumerate(chains):
            u = u.detach().requires_grad_(True)
            energy, _ = _potential(model, op, y, c, u, s)
            (grad,) = torch.autograd.grad(energy.sum(), u)
            # Langevin step: drift down the potential plus sqrt(2 tau) Gaussian noise.
            chains[j] = (u - step_size * grad + (2 * step_size) ** 0.5 * randn_like(u0, generator)).detach()
        if callback is not None:
            callback({"step": step + 1, "total": steps, "energy": energy.detach()})
    with torch.no_grad():
        xs = torch.stack([model.generator(u * model.generator.sigma_max, c) for u in chains])
        if consistency:
            xs = torch.stack([data_consistency(op, x, y, prior_std) for x in xs])
    nfe = encoder_nfe(model, encoder, num_steps) + samples * (2 * steps + 1)
    z = torch.stack(chains) * model.generator.sigma_max
    return result(xs, z, timer, "latent_langevin", nfe, encoder=encoder)
