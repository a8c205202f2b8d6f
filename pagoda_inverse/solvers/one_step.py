"""PaGoDA's encoder-decoder solvers: super-resolution by construction and one-step posterior sampling.

``encode_decode``: encode a measurement-consistent estimate at the teacher resolution, decode once at G's
resolution. For the area x(R/r) down-sampling that the encoder itself was trained with, this is PaGoDA's
super-resolution by construction (Kim et al. 2024).

``one_step``: one-step posterior sampling through the model's posterior encoder for the operator's family
(:mod:`pagoda_inverse.core.posterior`): ``K`` samples are one pass of ``q``'s trunk and one batched pass of its
per-sample heads and of G over ``K`` noises (by default antithetic pairs ``eps, -eps``), each pulled onto the
measurements by the data-consistency step (``K + 1`` network evaluations).

``encode_perturb``: for a model without that encoder, latents drawn around the encoding of ``A^+ y``,
``z_k = sqrt(1 - eta^2) z_0 + eta sigma_max eps_k`` (a variance-preserving perturbation, so ``eta = 0`` is
deterministic and ``eta = 1`` a prior sample), decoded in one pass each and made data-consistent; optional re-encode
rounds start from the last sample mean.
"""

from __future__ import annotations

import math

import torch

from pagoda_inverse.control.codec import decode
from pagoda_inverse.core.generator import one_step_nfe
from pagoda_inverse.core.posterior import posterior_samples
from pagoda_inverse.ops.consistency import data_consistency
from pagoda_inverse.ops.families import operator_family
from pagoda_inverse.ops.rng import randn_like
from pagoda_inverse.solvers import not_applicable
from pagoda_inverse.solvers.base import SolverResult, encode_estimate, encoder_nfe, prepare, result
from pagoda_inverse.utils.device import autocast
from pagoda_inverse.utils.errors import NotApplicableError, UserError


@torch.no_grad()
def solve_encode_decode(
    model,
    op,
    y,
    *,
    cond=None,
    generator=None,
    callback=None,
    encoder: str | None = None,
    num_steps: int = 18,
    consistency: bool = True,
    prior_std: float = 0.2,
) -> SolverResult:
    """``x = DC(G(E(down(A^+ y))))``: one encoding, one decode, one data-consistency step.

    :param encoder: ``"ode"`` (PF-ODE, ``2 (num_steps - 1)`` NFE) or ``"learned"`` (1 NFE; default when present).
    :param consistency: apply the data-consistency step (projection or Tikhonov, see ``data_consistency``).
    """
    timer, encoder, c = prepare(model, op, y, cond, encoder)
    z = encode_estimate(model, op.initial_estimate(y), c, encoder, num_steps)
    x = decode(model, z, c)
    if consistency:
        x = data_consistency(op, x, y, prior_std)
    if callback is not None:
        callback({"step": 1, "total": 1, "x": x})
    return result(
        x[None], z[None], timer, "encode_decode", encoder_nfe(model, encoder, num_steps) + 1, encoder=encoder
    )


@torch.no_grad()
def solve_one_step(
    model,
    op,
    y,
    *,
    cond=None,
    generator=None,
    callback=None,
    samples: int = 1,
    prior_std: float = 0.2,
    cfg_scale: float = 1.0,
    precision: str = "fp32",
    antithetic: bool = True,
    shrink: float = 0.0,
) -> SolverResult:
    """One-step posterior sampling through the model's posterior encoder ``q`` for ``op``'s family: ``K = samples``
    samples in ``K + 1`` NFE (``q``'s trunk once, its head and G per sample), each made data-consistent. Only for
    models with that encoder (``solve`` refuses the others; ``encode_perturb`` serves them).

    :param prior_std: the data-consistency step's prior width where ``q`` predicts none (a ``fixed`` encoder).
    :param cfg_scale: classifier-free guidance of G when ``cond`` is given (2 NFE per decode when != 1).
    :param precision: ``fp32`` or ``bf16`` networks (:data:`~pagoda_inverse.utils.device.PRECISIONS`) for q and G.
    :param antithetic: draw the noises in pairs ``(eps, -eps)``: every sample is still a posterior sample, and the
        pairs cancel the part of ``G(q(y, eps))`` that is odd in ``eps``, so the mean of K samples is a far better
        estimate of the posterior mean than K independent ones give (docs/one-step-tuning.md); the std over a paired
        set slightly overstates the spread (variance by up to ``K / (K - 1)``).
    :param shrink: the estimate is the samples' mean pulled this share of the way toward ``A^+ y``,
        ``mean + shrink (A^+ y - mean)`` (0: the mean; the samples stay as drawn; a noiseless fit to ``y`` is kept,
        since ``A A^+ y = y``). For colorization ``A^+ y`` is the gray copy, so this scales the estimate's chroma: the
        ``photo`` model's encoder, trained on crops, colours whole photos better pulled toward gray, and the model
        ships the share chosen on its training photos.
    :return: samples ``[K, B, ...]``, their (shrunk) mean as the estimate (``result.std`` the per-pixel spread), and
        latents.
    """
    if not 0 <= shrink <= 1:
        raise UserError(f"shrink must be in [0, 1], got {shrink}")
    timer, _, c = prepare(model, op, y, cond, None)
    q = model.posteriors.get(operator_family(op))
    if q is None:  # called directly, not through solve()
        raise NotApplicableError(not_applicable("one_step", op, model))
    # K noises per image, image i's from its own generator; q's trunk once, its heads and G batched; data consistency.
    template = y.new_empty(len(y), q.config.noise_channels, *model.image_shape[1:])
    drawn = (samples + 1) // 2 if antithetic else samples
    eps = torch.stack([randn_like(template, generator) for _ in range(drawn)])
    obs_noise = torch.stack([randn_like(y, generator) for _ in range(drawn)])  # the step's perturbations
    if antithetic:  # noises in pairs (eps, -eps): each still a posterior sample, their mean less noisy
        eps, obs_noise = torch.cat([eps, -eps])[:samples], torch.cat([obs_noise, -obs_noise])[:samples]
    xs, zs = posterior_samples(model, q, op, y, c, eps, prior_std, cfg_scale, precision, obs_noise)
    out = result(
        xs, zs, timer, "one_step", nfe=1 + samples * one_step_nfe(model, cfg_scale), posterior=q.config.family
    )
    if shrink:  # the estimate toward A^+ y (the gray copy for colorization)
        out.estimate = torch.lerp(out.estimate, op.initial_estimate(y), shrink)
    if callback is not None:
        callback({"step": 1, "total": 1, "x": out.estimate})
    return out


@torch.no_grad()
def solve_encode_perturb(
    model,
    op,
    y,
    *,
    cond=None,
    generator=None,
    callback=None,
    samples: int = 1,
    eta: float = 0.3,
    rounds: int = 1,
    encoder: str | None = None,
    num_steps: int = 18,
    prior_std: float = 0.2,
    cfg_scale: float = 1.0,
    precision: str = "fp32",
) -> SolverResult:
    """Samples around the encoding of ``A^+ y`` (any model with G and an encoder): ``K = samples`` perturbed latents,
    one pass of G each, each made data-consistent; ``rounds`` re-encode the last sample mean.

    :param eta: stochasticity in ``[0, 1]``: share of fresh prior noise in each latent.
    :param rounds: re-encode rounds; round ``t > 1`` encodes the previous round's sample mean.
    :param encoder: ``"ode"`` (PF-ODE in ``num_steps`` steps) or ``"learned"`` (default where the model has one).
    :param cfg_scale: classifier-free guidance of G when ``cond`` is given (2 NFE per decode when != 1).
    :param precision: ``fp32`` or ``bf16`` networks for the encoder (the PF-ODE's steps stay fp32) and G.
    :return: samples ``[K, B, ...]``, their mean as the estimate, and the last round's latents.
    """
    if not 0 <= eta <= 1:
        raise UserError(f"eta must be in [0, 1], got {eta}")
    timer, encoder, c = prepare(model, op, y, cond, encoder)
    sigma_max = model.decoder.sigma_max
    estimate = op.initial_estimate(y)
    for r in range(rounds):
        # Encode the current measurement-consistent estimate at the teacher resolution (the ODE's state in fp32).
        with autocast(precision, y.device):
            z0 = encode_estimate(model, estimate, c, encoder, num_steps).float()
        # Perturb, decode once, and pull each sample onto the measurements.
        zs = torch.stack(
            [math.sqrt(1 - eta**2) * z0 + eta * sigma_max * randn_like(z0, generator) for _ in range(samples)]
        )
        with autocast(precision, y.device):
            x = [decode(model, z, c, cfg_scale=cfg_scale).float() for z in zs]
        xs = torch.stack([data_consistency(op, xk, y, prior_std) for xk in x])
        estimate = xs.mean(0)
        if callback is not None:
            callback({"step": r + 1, "total": rounds, "x": estimate})
    nfe = rounds * (encoder_nfe(model, encoder, num_steps) + samples * one_step_nfe(model, cfg_scale))
    return result(xs, zs, timer, "encode_perturb", nfe, encoder=encoder, eta=eta, rounds=rounds)
