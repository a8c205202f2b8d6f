"""Noise levels of the EDM "VE" formulation used by PaGoDA (Karras et al. 2022, Kim et al. 2024).

The forward process is ``x_sigma = x + sigma * eps`` with ``sigma`` in ``[SIGMA_MIN, SIGMA_MAX]``;
pixels live in ``[-1, 1]`` and the data standard deviation is taken as ``SIGMA_DATA``.
"""

from __future__ import annotations

import torch

SIGMA_MIN = 0.002
SIGMA_MAX = 80.0
SIGMA_DATA = 0.5
RHO = 7.0


def karras_sigmas(
    n: int,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = RHO,
    *,
    append_zero: bool = False,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The rho-spaced grid ``sigma_i = (s_max^(1/rho) + i/(n-1) (s_min^(1/rho) - s_max^(1/rho)))^rho``.

    :param n: number of noise levels (>= 2).
    :param append_zero: append ``sigma = 0`` at the end (for sampling down to clean data).
    :return: ``[n]`` (or ``[n+1]``) tensor, descending from ``sigma_max`` to ``sigma_min`` (then 0).

    >>> s = karras_sigmas(18)
    >>> round(float(s[0]), 3), round(float(s[-1]), 4), len(s)
    (80.0, 0.002, 18)
    """
    if n < 2:
        raise ValueError(f"n (number of noise levels) must be >= 2, got {n}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    if append_zero:
        sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
    return sigmas.to(dtype)


def noise_label(sigma: torch.Tensor) -> torch.Tensor:
    """EDM's network time input ``c_noise = ln(sigma) / 4``; shape follows ``sigma``."""
    return sigma.log() / 4


def precond_scalings(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA):
    """EDM preconditioning ``(c_skip, c_out, c_in)`` for the denoiser ``D = c_skip x + c_out F(c_in x)``.

    ``c_skip = sd^2/(s^2+sd^2)``, ``c_out = s sd / sqrt(s^2+sd^2)``, ``c_in = 1/sqrt(s^2+sd^2)``.

    >>> c_skip, c_out, c_in = precond_scalings(torch.tensor(0.5))
    >>> float(c_skip), round(float(c_out), 4), round(float(c_in), 4)
    (0.5, 0.3536, 1.4142)
    """
    var = sigma**2 + sigma_data**2
    return sigma_data**2 / var, sigma * sigma_data / var.sqrt(), 1 / var.sqrt()


def training_sigmas(n: int, generator: torch.Generator | None = None, p_mean: float = -1.2, p_std: float = 1.2):
    """EDM training noise levels: ``ln sigma ~ N(p_mean, p_std^2)``; returns ``[n]`` float32."""
    return (torch.randn(n, generator=generator) * p_std + p_mean).exp()


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA) -> torch.Tensor:
    """EDM loss weight ``lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2`` (unit effective weight)."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
