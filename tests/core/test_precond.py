"""EDM preconditioning algebra (Karras et al. 2022, Table 1 and Appendix B.6)."""

import pytest
import torch

from pagoda_inverse.core.precond import EDMPrecond, guided_denoiser
from pagoda_inverse.core.sigmas import SIGMA_DATA, edm_loss_weight, karras_sigmas, precond_scalings

SIGMAS = torch.tensor([0.002, 0.05, 0.5, 1.0, 7.3, 80.0], dtype=torch.float64)


def test_input_has_unit_variance():
    # Var[c_in (x + sigma n)] = c_in^2 (sd^2 + sigma^2) = 1.
    _, _, c_in = precond_scalings(SIGMAS)
    torch.testing.assert_close(c_in**2 * (SIGMA_DATA**2 + SIGMAS**2), torch.ones_like(SIGMAS))


def test_effective_target_has_unit_variance_and_unit_loss_weight():
    # F's target (x - c_skip (x + sigma n)) / c_out has variance ((1-c_skip)^2 sd^2 + c_skip^2 sigma^2) / c_out^2 = 1,
    # and lambda(sigma) c_out^2 = 1 so every noise level weighs equally.
    c_skip, c_out, _ = precond_scalings(SIGMAS)
    var = ((1 - c_skip) ** 2 * SIGMA_DATA**2 + c_skip**2 * SIGMAS**2) / c_out**2
    torch.testing.assert_close(var, torch.ones_like(SIGMAS))
    torch.testing.assert_close(edm_loss_weight(SIGMAS) * c_out**2, torch.ones_like(SIGMAS))


def test_limits():
    # sigma -> 0: D is the identity (c_skip -> 1, c_out -> 0); large sigma: c_skip -> 0.
    c_skip, c_out, _ = precond_scalings(torch.tensor(1e-6, dtype=torch.float64))
    assert abs(float(c_skip) - 1) < 1e-9 and float(c_out) < 1e-5
    c_skip, _, _ = precond_scalings(torch.tensor(80.0))
    assert float(c_skip) < 1e-4


class _Probe(torch.nn.Module):
    """Backbone returning a fixed function of its inputs, to check the wrapper's arithmetic."""

    def forward(self, x, noise_labels, cond):
        return 2 * x + noise_labels[:, None, None, None] + cond.sum(1)[:, None, None, None]


def test_wrapper_applies_the_four_scalings():
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    cond = torch.randn(3, 5)
    sigma = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    out = EDMPrecond(_Probe())(x, sigma, cond)
    c_skip, c_out, c_in = (c.reshape(-1, 1, 1, 1) for c in precond_scalings(sigma))
    expected = c_skip * x + c_out * (
        2 * c_in * x + sigma.log().reshape(-1, 1, 1, 1) / 4 + cond.sum(1).reshape(-1, 1, 1, 1)
    )
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_cfg_is_linear_extrapolation():
    x = torch.randn(2, 1, 4, 4)
    cond, null = torch.randn(2, 5), torch.randn(5)
    D = EDMPrecond(_Probe())
    s = torch.tensor(0.7)
    d_c, d_n = D(x, s, cond), D(x, s, null.expand(2, -1))
    torch.testing.assert_close(guided_denoiser(D, cond, null, 3.0)(x, s), d_n + 3.0 * (d_c - d_n))
    torch.testing.assert_close(guided_denoiser(D, cond)(x, s), d_c)
    with pytest.raises(ValueError, match="null"):
        guided_denoiser(D, cond, None, 2.0)


def test_karras_grid_endpoints_and_monotone():
    s = karras_sigmas(40, append_zero=True)
    assert float(s[0]) == pytest.approx(80.0) and float(s[-2]) == pytest.approx(0.002) and float(s[-1]) == 0
    assert bool((s[1:] < s[:-1]).all())
