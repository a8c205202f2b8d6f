"""PaGoDA's encoder-decoder solvers: super-resolution by construction and one-step posterior sampling.

``encode_decode``: encode a measurement-consistent estimate at the teacher resolution, decode once at G's
resolution. For the area x(R/r) down-sampling that the encoder itself was trained with, this is PaGoDA's
super-resolution by construction (Kim et al. 2024).

``one_step``: posterior sampling around that encoding. Latents are drawn as
``z_k = sqrt(1 - eta^2) z_0 + eta sigma_max eps_k`` (a variance-preserving perturbation of the encoding, so
``eta = 0`` is deterministic and ``eta = 1`` is a prior sample), decoded in one pass each, then pulled onto
the measurements by the data-consistency step; optional re-encode rounds start from the last sample mean.
"""

from __future__ import annotations

import math

import torch

from pagoda_inverse.control.codec import decode
from pagoda_inverse.ops._rng import randn_like
from pagoda_inverse.solvers.base import (
    SolverResult,
    data_consistency,
    encode_estimate,
    encoder_nfe,
    prepare,
    result,
)


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
    eta: float = 0.3,
    rounds: int = 1,
    encoder: str | None = None,
    num_steps: int = 18,
    prior_std: float = 0.2,
    cfg_scale: float = 1.0,
) -> SolverResult:
    """One-step posterior sampling: ``K = samples`` decodes of perturbed encodings, each made data-consistent.

    :param eta: stochasticity in ``[0, 1]``: share of fresh prior noise in each latent.
    :param rounds: re-encode rounds; round ``t > 1`` encodes the previous round's sample mean.
    :param cfg_scale: classifier-free guidance of G when ``cond`` is given (2 NFE per decode when != 1).
    :return: samples ``[K, B, ...]``, their mean as the estimate, and the latents of the last round.
    """
    timer, encoder, c = prepare(model, op, y, cond, encoder)
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    sigma_max = model.generator.sigma_max
    estimate = op.initial_estimate(y)
    for r in range(rounds):
        # Encode the current measurement-consistent estimate at the teacher resolution.
        z0 = encode_estimate(model, estimate, c, encoder, num_steps)
        # Perturb, decode once, and pull each sample onto the measurements.
        zs = torch.stack(
            [math.sqrt(1 - eta**2) * z0 + eta * sigma_max * randn_like(z0, generator) for _ in range(samples)]
        )
        xs = torch.stack([data_consistency(op, decode(model, z, c, cfg_scale=cfg_scale), y, prior_std) for z in zs])
        estimate = xs.mean(0)
        if callback is not None:
            callback({"step": r + 1, "total": rounds, "x": estimate})
    nfe = rounds * (encoder_nfe(model, encoder, num_steps) + samples * (1 if cfg_scale == 1 else 2))
    return result(xs, zs, timer, "one_step", nfe, encoder=encoder, eta=eta, rounds=rounds)
