"""The contract every registered solver meets, on a random-weight model (shapes, seeding, consistency)."""

import pytest
import torch

from pagoda_inverse.core.generator import Generator
from pagoda_inverse.core.learned_encoder import LearnedEncoder
from pagoda_inverse.core.model import PagodaModel
from pagoda_inverse.core.precond import EDMPrecond
from pagoda_inverse.core.text import CaptionBank
from pagoda_inverse.core.unet import UNet, UNetConfig
from pagoda_inverse.ops import make_operator
from pagoda_inverse.solvers import SOLVERS, solve
from pagoda_inverse.utils.errors import UserError

FAST = {
    "encode_decode": {"num_steps": 4},
    "one_step": {"num_steps": 4, "samples": 3},
    "latent_map": {"num_steps": 4, "steps": 5},
    "latent_langevin": {"num_steps": 4, "steps": 5, "samples": 3},
}
# Solvers whose output is pulled onto the measurements (bicubic is not).
CONSISTENT = {"pinv", "encode_decode", "one_step", "latent_map", "latent_langevin"}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = UNetConfig(channels=8, channel_mult=(1, 2), attn_resolutions=(), cond_dim=6)
    g = torch.Generator().manual_seed(0)
    e = torch.randn(10, 6, generator=g)
    bank = CaptionBank(e, torch.arange(10), e, torch.arange(10), e, torch.zeros(6))
    teacher = EDMPrecond(UNet(cfg)).eval()
    G = Generator(UNet(cfg.grown())).eval().requires_grad_(False)
    for p in G.parameters():  # zero-initialised output convs would make G constant
        torch.nn.init.normal_(p, std=0.05)
    E = LearnedEncoder(UNet(cfg)).eval()
    return PagodaModel("random", teacher, G, bank, {"unet": cfg.to_dict()}, E)


def _problem(name, sigma_y=0.0):
    op = make_operator(
        name, shape=(1, 16, 16), batch=2, seeds=[0, 1], sigma_y=sigma_y, **({"factor": 2} if "down" in name else {})
    )
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(3)) * 1.6 - 0.8
    y = op(x, generator=[torch.Generator().manual_seed(10), torch.Generator().manual_seed(11)])
    return op, x, y


def _gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("operator", ["downsample_area", "inpaint_box"])
def test_contract(model, solver, operator):
    op, x, y = _problem(operator)
    if solver == "bicubic" and "down" not in operator:
        with pytest.raises(UserError, match="down-sampling"):
            solve(solver, model, op, y)
        return
    res = solve(solver, model, op, y, generator=_gens(0, 1), **FAST.get(solver, {}))
    assert res.estimate.shape == x.shape and res.samples.shape[1:] == x.shape
    assert torch.isfinite(res.samples).all() and res.info["solver"] == solver and res.info["nfe"] >= 0
    # Same seeds, same result; image i depends only on generator i.
    again = solve(solver, model, op, y, generator=_gens(0, 1), **FAST.get(solver, {}))
    torch.testing.assert_close(again.samples, res.samples)
    op1 = make_operator(
        operator, shape=(1, 16, 16), batch=1, seeds=[1], **({"factor": 2} if "down" in operator else {})
    )
    alone = solve(solver, model, op1, y[1:], generator=_gens(1), **FAST.get(solver, {}))
    torch.testing.assert_close(alone.samples[:, 0], res.samples[:, 1], rtol=1e-4, atol=1e-4)
    # Noiseless measurements are matched exactly.
    if solver in CONSISTENT:
        torch.testing.assert_close(op.A(res.estimate), y, rtol=0, atol=1e-4)


@pytest.mark.parametrize("solver", ["encode_decode", "one_step", "latent_map"])
def test_noisy_consistency_within_the_noise_level(model, solver):
    op, x, y = _problem("inpaint_random", sigma_y=0.05)
    # A random G is far from the data, so weigh the measurements as a trained model's error (0.1) would not.
    res = solve(solver, model, op, y, generator=_gens(0, 1), prior_std=0.5, **FAST[solver])
    residual = (op.A(res.estimate) - y).flatten(1).norm(dim=1)
    observed = op.A(torch.ones_like(x)).flatten(1).count_nonzero(dim=1)
    assert bool((residual <= 0.05 * observed.sqrt() * 1.5).all()), residual


def test_samples_spread_where_the_mask_hides(model):
    op, x, y = _problem("inpaint_box")
    res = solve("one_step", model, op, y, generator=_gens(0, 1), num_steps=4, samples=6, eta=0.8)
    kept = op.A(torch.ones_like(x)) > 0
    assert float(res.std[kept].max()) < 1e-4  # observed pixels are fixed by the projection
    assert float(res.std[~kept].mean()) > 1e-3


def test_unknown_solver_and_bad_measurement(model):
    op, _, y = _problem("inpaint_box")
    with pytest.raises(UserError, match="unknown solver 'dps'"):
        solve("dps", model, op, y)
    with pytest.raises(UserError, match="NaN"):
        solve("one_step", model, op, y * float("nan"))
