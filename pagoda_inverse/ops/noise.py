"""Measurement noise models, in the library's [-1, 1] pixel units, seeded by ``torch.Generator``.

``sigma_y`` is a standard deviation in [-1, 1] units (the DPS convention): DPS's 0.05 is 0.025 in deepinv's [0, 1]
units. Poisson noise is defined on the [0, 1] intensity ``(y + 1) / 2`` and mapped back.
"""

from __future__ import annotations

import torch

from ._checks import as_batch_scalar, check_choice, check_nonneg, check_positive
from .rng import GeneratorLike, poisson, randn_like


class NoiseModel(torch.nn.Module):
    """Base class: ``noise_model(y, generator=None)`` returns a noisy copy of the clean measurement ``y``.

    :attr sigma: the noise standard deviation in [-1, 1] units (float, or a ``[B]`` tensor of per-image values).
    """

    sigma: float | torch.Tensor = 0.0

    def forward(self, y: torch.Tensor, generator: GeneratorLike = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class NoNoise(NoiseModel):
    """No noise: returns ``y`` unchanged. ``sigma`` is 0.

    >>> NoNoise()(torch.zeros(1, 1, 2, 2)).abs().sum().item()
    0.0
    """

    sigma = 0.0

    def forward(self, y: torch.Tensor, generator: GeneratorLike = None) -> torch.Tensor:
        return y


class GaussianNoise(NoiseModel):
    """Additive white Gaussian noise ``y + sigma * n``, ``n ~ N(0, I)``.

    :param sigma: standard deviation in [-1, 1] units, >= 0; a float or a sequence/tensor of B per-image values.

    >>> g = torch.Generator().manual_seed(0)
    >>> y = GaussianNoise(0.05)(torch.zeros(2, 3, 8, 8), generator=g)
    >>> y.shape, bool(0.04 < float(y.std()) < 0.06)
    (torch.Size([2, 3, 8, 8]), True)
    """

    def __init__(self, sigma: float | torch.Tensor = 0.05):
        super().__init__()
        check_nonneg(sigma, "sigma_y")
        self.sigma = float(sigma) if isinstance(sigma, (int, float)) else torch.as_tensor(sigma, dtype=torch.float64)

    def forward(self, y: torch.Tensor, generator: GeneratorLike = None) -> torch.Tensor:
        sigma = as_batch_scalar(self.sigma, y, "sigma_y")
        if isinstance(sigma, float) and sigma == 0.0:
            return y
        return y + sigma * randn_like(y, generator)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class PoissonNoise(NoiseModel):
    """Poisson (shot) noise: ``y01 ~ Poisson(rate * clamp((y + 1) / 2, 0, 1)) / rate``, returned as ``2 y01 - 1``.

    :param rate: photons per unit intensity (> 0); higher is less noisy. In deepinv's terms ``gain = 1 / rate``.

    ``sigma`` reports the standard deviation at mid-grey in [-1, 1] units, ``2 * sqrt(0.5 / rate)``, for solvers
    that need a Gaussian approximation.

    >>> y = PoissonNoise(rate=100.0)(torch.zeros(1, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    >>> bool(((y + 1) * 100 / 2).sub(((y + 1) * 100 / 2).round()).abs().max() < 1e-4)
    True
    """

    def __init__(self, rate: float = 100.0):
        super().__init__()
        check_positive(rate, "rate")
        self.rate = float(rate)
        self.sigma = 2.0 * (0.5 / self.rate) ** 0.5

    def forward(self, y: torch.Tensor, generator: GeneratorLike = None) -> torch.Tensor:
        y01 = ((y + 1) / 2).clamp(0, 1)
        return 2 * poisson(y01 * self.rate, generator) / self.rate - 1

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


def make_noise(
    noise: str | NoiseModel | None = "gaussian", sigma_y: float | torch.Tensor = 0.0, rate: float | None = None
) -> NoiseModel:
    """Build a noise model from a name.

    :param noise: ``"gaussian"``, ``"poisson"``, ``"none"``, a :class:`NoiseModel` (returned as is) or ``None``.
    :param sigma_y: Gaussian standard deviation in [-1, 1] units (0 gives :class:`NoNoise`).
    :param rate: Poisson rate (photons per unit intensity), required for ``"poisson"``.
    :return: a :class:`NoiseModel`.
    """
    if isinstance(noise, NoiseModel):
        return noise
    check_choice(noise or "none", "noise", ("gaussian", "poisson", "none"))
    if noise == "poisson":
        return PoissonNoise(100.0 if rate is None else rate)
    check_nonneg(sigma_y, "sigma_y")
    if noise is None or noise == "none" or (isinstance(sigma_y, (int, float)) and sigma_y == 0):
        return NoNoise()
    return GaussianNoise(sigma_y)
