"""Intermediate-layer offsets on the features entering G's growth stages (what ``latent_ilo`` optimises)."""

import pytest
import torch

from pagoda_inverse.core.generator import Generator
from pagoda_inverse.core.unet import UNet, UNetConfig


@pytest.fixture(scope="module")
def grown_twice():
    torch.manual_seed(0)
    config = UNetConfig(channels=8, channel_mult=(1, 2), attn_resolutions=(), cond_dim=4, grow_channels=(12, 8))
    G = Generator(UNet(config)).eval()
    with torch.no_grad():  # random weights everywhere (the heads start at zero, which would hide any shift)
        for param in G.parameters():
            param.normal_(0.0, 0.2)
    return G


def test_grow_in_shapes_are_the_features_entering_each_stage(grown_twice):
    assert grown_twice.net.grow_in_shapes == [(8, 8, 8), (12, 16, 16)]  # trunk output, then stage 1 output


def test_each_offset_shifts_its_own_stage_input(grown_twice):
    G, g = grown_twice, torch.Generator().manual_seed(1)
    z, c = torch.randn(2, 1, 8, 8, generator=g) * G.sigma_max, torch.randn(2, 4, generator=g)
    zeros = [torch.zeros(2, *shape) for shape in G.net.grow_in_shapes]
    with torch.no_grad():
        plain = G(z, c)
        torch.testing.assert_close(G(z, c, zeros), plain)
        torch.testing.assert_close(G(z, c, zeros[:1]), plain)
        second = G(z, c, [zeros[0], torch.randn(2, *G.net.grow_in_shapes[1], generator=g)])
    assert not torch.allclose(second, plain)  # a shift entering the 16x16 stage alone changes the image
    with pytest.raises(ValueError, match="3 growth offsets for a network with 2 growth stages"):
        G(z, c, [*zeros, zeros[-1]])
