"""Heun's method for the probability-flow ODE, both directions, as plain functions (Karras et al. 2022, Alg. 1).

The PF-ODE of the VE process is ``dx/dsigma = (x - D(x; sigma)) / sigma``. Integrating it from
``sigma_max`` down to 0 samples data from noise; integrating it from ``sigma_min`` up to ``sigma_max``
encodes an image into its latent (PaGoDA's deterministic encoder, "DDIM inversion").
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .precond import Denoiser
from .sigmas import SIGMA_MAX, SIGMA_MIN, karras_sigmas


def pf_ode_heun(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: Callable[[dict], None] | None = None,
) -> torch.Tensor:
    """Integrate the PF-ODE from ``sigmas[0]`` to ``sigmas[-1]`` (any direction) with Heun's 2nd-order method.

    A step whose target is ``sigma = 0`` is a plain Euler step (the drift is undefined at 0).

    :param denoise: ``denoise(x [B,...], sigma scalar tensor) -> [B,...]``.
    :param x: ``[B, ...]`` state at ``sigmas[0]``.
    :param sigmas: ``[N]`` noise levels, monotone (descending to sample, ascending to encode).
    :param callback: called after each step with ``{"i", "n", "x", "sigma", "denoised"}``.
    :return: ``[B, ...]`` state at ``sigmas[-1]`` (same dtype as ``x``).
    """
    sigmas = sigmas.to(x.device, torch.float64)
    n = len(sigmas) - 1
    for i in range(n):
        s_cur, s_next = sigmas[i], sigmas[i + 1]
        # Euler step from s_cur to s_next.
        denoised = denoise(x, s_cur.to(x.dtype))
        d_cur = (x - denoised) / s_cur
        x_next = x + (s_next - s_cur) * d_cur
        # Heun correction: average the slopes at both ends (skipped when landing on sigma = 0).
        if s_next > 0:
            d_next = (x_next - denoise(x_next, s_next.to(x.dtype))) / s_next
            x_next = x + (s_next - s_cur) * (0.5 * d_cur + 0.5 * d_next)
        x = x_next.to(x.dtype)
        if callback is not None:
            callback({"i": i, "n": n, "x": x, "sigma": s_next, "denoised": denoised})
    return x


def sample_heun(
    denoise: Denoiser,
    noise: torch.Tensor,
    num_steps: int = 18,
    *,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    callback: Callable[[dict], None] | None = None,
) -> torch.Tensor:
    """Noise -> data: solve the PF-ODE from ``sigma_max`` to 0 on the rho=7 grid (``2 * num_steps - 1`` NFE).

    :param noise: ``[B, ...]`` standard normal noise (scaled by ``sigma_max`` here).
    :return: ``[B, ...]`` samples, nominally in ``[-1, 1]`` (not clamped).
    """
    sigmas = karras_sigmas(num_steps, sigma_min, sigma_max, append_zero=True)
    return pf_ode_heun(denoise, noise * sigma_max, sigmas, callback=callback)


def encode_heun(
    denoise: Denoiser,
    images: torch.Tensor,
    num_steps: int = 18,
    *,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    callback: Callable[[dict], None] | None = None,
) -> torch.Tensor:
    """Data -> noise: PaGoDA's encoder. Treat the image as ``x(sigma_min)`` and integrate up to ``sigma_max``.

    :param images: ``[B, C, r, r]`` in ``[-1, 1]`` at the teacher's resolution.
    :param num_steps: grid points (``2 * (num_steps - 1)`` NFE).
    :return: ``[B, C, r, r]`` latents at the ``sigma_max`` scale (std about ``sigma_max``).
    """
    sigmas = karras_sigmas(num_steps, sigma_min, sigma_max).flip(0)
    return pf_ode_heun(denoise, images, sigmas, callback=callback)


def decode_heun(
    denoise: Denoiser,
    latents: torch.Tensor,
    num_steps: int = 18,
    *,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    callback: Callable[[dict], None] | None = None,
) -> torch.Tensor:
    """Exact inverse of :func:`encode_heun` up to discretisation: ``sigma_max -> sigma_min`` on the same grid."""
    sigmas = karras_sigmas(num_steps, sigma_min, sigma_max)
    return pf_ode_heun(denoise, latents, sigmas, callback=callback)
