"""The std map of a tiled solve has no dip where overlapping tiles are blended (issue 38, item 8)."""

from types import SimpleNamespace

import pytest
import torch

from pagoda_inverse.ops import make_operator
from pagoda_inverse.solvers.base import SolverResult
from pagoda_inverse.solvers.tiled import solve_tiled

TILE, K, SIGMA = 16, 256, 0.3


def _independent_noise(model, op, y, *, cond=None, generator=None, samples=1):
    """A synthetic solver: every tile's K samples are N(0, SIGMA^2) per pixel, from the tile's own generator (as
    one_step's tiles are: independent noise), so the true per-pixel std is the same everywhere."""
    x = torch.stack([torch.randn(samples, 3, TILE, TILE, generator=g) for g in generator], 1) * SIGMA
    return SolverResult(x.mean(0), x, None, {"nfe": 1})


@pytest.mark.parametrize("operator", ["colorize", "denoise"])
def test_std_map_has_no_dip_at_tile_overlaps(operator):
    shape = (3, TILE, 88)  # one row of 7 tiles, stride 12: six 4-pixel overlaps
    op = make_operator(operator, shape=shape, sigma_y=0.0 if operator == "colorize" else 10.0)
    y = torch.zeros(1, *op.out_shape(shape))
    res = solve_tiled(_independent_noise, SimpleNamespace(resolution=TILE), op, y, samples=K)
    assert res.info["tiles"] == 7 and res.info["overlap"] == 4
    profile = res.std[0].mean((0, 1))  # per column, over rows and channels
    flat = profile.median()
    # Blending whole samples would give sqrt(a^2 + (1-a)^2) ~ 0.71 of the std in the middle of each overlap.
    assert float(profile.min()) > 0.93 * float(flat), profile
    assert float(profile.max()) < 1.07 * float(flat), profile
    # The estimate is still the blend of the tiles' means (here about 0 everywhere).
    assert float(res.estimate.abs().max()) < 5 * SIGMA / K**0.5
