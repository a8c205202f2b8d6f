"""The VP epsilon-predictor as an EDM denoiser: schedules, the nearest-step timestep, D = x - sigma eps."""

from __future__ import annotations

import math

import pytest
import torch
from adm_helpers import TINY, tiny_adm

from pagoda_inverse.core.adm_teacher import VPEpsDenoiser, build_teacher, vp_alphas_cumprod, vp_sigmas
from pagoda_inverse.core.precond import EDMPrecond


class _Probe(torch.nn.Module):
    """An eps-predictor that records what it is given and predicts ``eps = 0.5 x_in`` (plus a variance channel)."""

    config = TINY

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.calls = []

    def forward(self, x, t, cond=None):
        self.calls.append((x.clone(), t.clone(), cond))
        return torch.cat([0.5 * x, torch.full_like(x, 7.0)], dim=1)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_a_discrete_sigma_is_passed_as_exactly_its_step(schedule):
    probe = _Probe()
    D = VPEpsDenoiser(probe, schedule)
    steps = torch.tensor([0, 1, 2, 17, 500, 998, 999])
    x = torch.randn(len(steps), 3, 8, 8)
    D(x, D.sigmas[steps].float(), None)  # the float32 noise levels of the steps, as a sampler would pass them
    assert probe.calls[-1][1].tolist() == steps.tolist()
    for t in steps.tolist():  # one level at a time, as a scalar, in float64
        D(x[:1], D.sigmas[t], None)
        assert probe.calls[-1][1].tolist() == [t]
    assert D.round_sigma(torch.tensor([D.sigmas[5] * 1.001])).tolist() == [D.sigmas[5].item()]


def test_between_steps_the_nearest_sigma_wins_and_the_scalings_use_the_requested_sigma():
    probe = _Probe()
    D = VPEpsDenoiser(probe, "linear")
    s3, s4 = D.sigmas[3].item(), D.sigmas[4].item()
    sigma = torch.tensor([s3 + 0.4 * (s4 - s3), s3 + 0.6 * (s4 - s3), 1e-5, 1e4], dtype=torch.float64)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    out = D(x, sigma, None)
    x_in, t, _ = probe.calls[-1]
    assert t.tolist() == [3, 4, 0, 999]
    s = sigma.view(-1, 1, 1, 1)
    torch.testing.assert_close(x_in, x / (s**2 + 1).sqrt())  # c_in = 1 / sqrt(sigma^2 + 1)
    torch.testing.assert_close(out, x - s * 0.5 * x_in)  # D = x - sigma eps, the variance channels dropped


def test_D_is_guided_diffusions_predicted_x0():
    # guided-diffusion: x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar) with x_t = sqrt(abar) x.
    net = tiny_adm(dtype=torch.float64)
    D = VPEpsDenoiser(net, "cosine")
    t = 321
    abar = vp_alphas_cumprod("cosine")[t]
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    labels = torch.tensor([1, 3])
    with torch.no_grad():
        x_t = abar.sqrt() * x
        eps = net(x_t, torch.full((2,), float(t), dtype=torch.float64), labels)[:, :3]
        expected = (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()
        torch.testing.assert_close(D(x, D.sigmas[t], labels), expected)
        assert torch.isfinite(D(x.float(), torch.tensor([0.002, 80.0]), labels)).all()  # the toolkit's sigma range


def test_schedules_match_guided_diffusion():
    linear, cosine = vp_sigmas("linear"), vp_sigmas("cosine")
    assert math.isclose(linear[0].item(), math.sqrt(1e-4 / (1 - 1e-4)), rel_tol=1e-12)
    assert 157 < linear[-1].item() < 158 and (linear.diff() > 0).all() and (cosine.diff() > 0).all()
    f = [math.cos((i / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2 for i in (0, 1, 2)]
    assert math.isclose(vp_alphas_cumprod("cosine")[1].item(), f[2] / f[0], rel_tol=1e-12)
    with pytest.raises(ValueError, match="unknown noise schedule 'quadratic'"):
        vp_sigmas("quadratic")


def test_build_teacher_reads_the_precond_section():
    net = tiny_adm()
    assert isinstance(build_teacher({"precond": {"type": "vp-eps", "schedule": "cosine"}}, net), VPEpsDenoiser)
    edm = build_teacher({"precond": {"type": "edm", "sigma_data": 0.5}}, net)
    assert isinstance(edm, EDMPrecond) and edm.sigma_data == 0.5
    with pytest.raises(ValueError, match="unknown precond type 've'"):
        build_teacher({"precond": {"type": "ve"}}, net)
