"""Pixel-range helpers, padding, exact area downsampling and flips."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pagoda_inverse.datasets import area_pool, from_model_range, hflip, pad_to, to_model_range


def test_model_range_round_trip():
    u = torch.arange(256, dtype=torch.uint8)
    x = to_model_range(u)
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert from_model_range(x).equal(u)
    assert from_model_range(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]


def test_pad_to():
    x = torch.full((2, 1, 28, 28), 7, dtype=torch.uint8)
    y = pad_to(x, 32)
    assert y.shape == (2, 1, 32, 32) and y.dtype == torch.uint8
    assert y[..., 2:30, 2:30].eq(7).all() and y.sum() == x.sum()
    z = pad_to(to_model_range(x), 32, value=-1.0)
    assert z[..., 0, :].eq(-1).all() and z[..., 2:30, 2:30].equal(to_model_range(x))
    assert pad_to(torch.zeros(3, 37, 31), 40).shape == (3, 40, 40)  # odd sizes
    with pytest.raises(ValueError, match="larger"):
        pad_to(x, 16)


@pytest.mark.parametrize("factor", [1, 2, 4, 8])
def test_downsample_is_block_mean(factor):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 32, 32, generator=g) * 2 - 1
    y = area_pool(x, factor)
    assert y.shape == (3, 2, 32 // factor, 32 // factor)
    ref = x.reshape(3, 2, 32 // factor, factor, 32 // factor, factor).mean(dim=(3, 5))
    torch.testing.assert_close(y, ref)
    # the nearest-neighbour upsample is a right inverse: encode-decode SR is exact for this degradation
    torch.testing.assert_close(area_pool(F.interpolate(y, scale_factor=factor, mode="nearest"), factor), y)
    assert area_pool(x[0], factor).shape == (2, 32 // factor, 32 // factor)  # unbatched


def test_downsample_rectangular_and_bad_factor():
    assert area_pool(torch.zeros(1, 36, 30), 6).shape == (1, 6, 5)
    with pytest.raises(ValueError, match=r"factor 3 .* 32x32.*\[1, 2, 4, 8, 16, 32\]"):
        area_pool(torch.zeros(1, 1, 32, 32), 3)
    with pytest.raises(ValueError, match="factor 0"):
        area_pool(torch.zeros(1, 1, 32, 32), 0)
    with pytest.raises(ValueError, match="float"):
        area_pool(torch.zeros(1, 1, 32, 32, dtype=torch.uint8), 2)


def test_hflip():
    x = torch.arange(12.0).reshape(1, 3, 4)
    assert hflip(x)[0, 0].tolist() == [3.0, 2.0, 1.0, 0.0]
    assert hflip(hflip(x)).equal(x)
