"""An analytic Gaussian-mixture prior whose denoiser D(x; sigma) = E[x0 | x_sigma] is exact at every sigma
(the oracle of NVlabs/edm2 toy_example.py): p(x0) = sum_k w_k N(mu_k, s_k^2 I)."""

from __future__ import annotations

import torch


class GaussianMixture:
    def __init__(self, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor):
        self.means, self.stds, self.weights = means.double(), stds.double(), weights.double() / weights.sum()

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Exact posterior mean for x [B, *shape] at noise level sigma (scalar)."""
        b = x.shape[0]
        flat = x.reshape(b, -1).double()
        var = self.stds**2 + float(sigma) ** 2  # [K] variance of each component after noising
        d = flat.shape[1]
        sq = ((flat[:, None, :] - self.means[None]) ** 2).sum(-1)  # [B, K]
        logp = self.weights.log() - 0.5 * sq / var - 0.5 * d * var.log()
        r = logp.softmax(dim=1)  # [B, K] responsibilities
        shrink = self.stds**2 / var  # [K]
        comp = self.means[None] + shrink[None, :, None] * (flat[:, None, :] - self.means[None])  # [B, K, D]
        return (r[..., None] * comp).sum(1).reshape(x.shape).to(x.dtype)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * noise, k
