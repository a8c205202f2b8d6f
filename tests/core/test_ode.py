"""Heun PF-ODE solver against an analytic Gaussian-mixture denoiser (exact score at every sigma)."""

import torch
from gmm import GaussianMixture

from pagoda_inverse.core.ode import decode_heun, encode_heun, sample_heun


def _mixture():
    g = torch.Generator().manual_seed(0)
    means = torch.randn(3, 16, generator=g, dtype=torch.float64) * 0.5
    return GaussianMixture(means, torch.tensor([0.1, 0.2, 0.15]), torch.tensor([0.5, 0.3, 0.2])), g


def test_encode_decode_round_trip_is_tight_and_second_order():
    gm, g = _mixture()
    x, _ = gm.sample(64, g)
    errors = {}
    for n in (40, 80):
        z = encode_heun(gm.denoise, x, n)
        errors[n] = float((decode_heun(gm.denoise, z, n) - x).pow(2).mean().sqrt())
    assert errors[80] < 1e-3
    # Heun is second order: doubling the steps divides the error by about 4.
    assert errors[40] / errors[80] > 3.0
    # Latents are at the sigma_max scale.
    assert 70 < float(encode_heun(gm.denoise, x, 80).std()) < 90


def test_sampling_recovers_the_mixture():
    gm, g = _mixture()
    s = sample_heun(gm.denoise, torch.randn(4000, 16, generator=g, dtype=torch.float64), 40)
    nearest = ((s[:, None] - gm.means[None]) ** 2).sum(-1).argmin(1)
    freq = torch.bincount(nearest, minlength=3).double() / len(s)
    torch.testing.assert_close(freq, gm.weights, atol=0.03, rtol=0)
    for k in range(3):
        spread = float((s[nearest == k] - gm.means[k]).std())
        assert abs(spread - float(gm.stds[k])) < 0.1 * float(gm.stds[k])


def test_callback_sees_every_step():
    gm, g = _mixture()
    seen = []
    sample_heun(gm.denoise, torch.randn(4, 16, generator=g, dtype=torch.float64), 6, callback=seen.append)
    assert [info["i"] for info in seen] == list(range(6))
    assert float(seen[-1]["sigma"]) == 0.0
