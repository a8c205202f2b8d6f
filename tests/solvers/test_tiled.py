"""Tiled solving of images larger than the model: tile grid, blending, per-tile operators, consistency."""

import pytest
import torch

from pagoda_inverse.core.generator import Generator
from pagoda_inverse.core.learned_encoder import LearnedEncoder
from pagoda_inverse.core.model import PagodaModel
from pagoda_inverse.core.precond import EDMPrecond
from pagoda_inverse.core.text import CaptionBank
from pagoda_inverse.core.unet import UNet, UNetConfig
from pagoda_inverse.ops import make_operator
from pagoda_inverse.ops.inpaint import Inpaint
from pagoda_inverse.solvers.tiled import blend_window, solve_tiled, tile_corners
from pagoda_inverse.utils.errors import UserError

SHAPE = (3, 40, 56)  # not a multiple of the stride: the last tiles are flush with the border


@pytest.fixture(scope="module")
def rgb_model():
    """A random unconditional RGB patch model: teacher 8x8, G 8 -> 16 (tiles of 16 px)."""
    torch.manual_seed(0)
    cfg = UNetConfig(in_channels=3, channels=8, channel_mult=(1, 2), attn_resolutions=(), cond_dim=4)
    G = Generator(UNet(cfg.grown())).eval().requires_grad_(False)
    for p in G.parameters():  # zero-initialised output convs would make G constant
        torch.nn.init.normal_(p, std=0.05)
    config = {"unet": cfg.to_dict(), "data": {"dataset": "photo"}}
    bank = CaptionBank.unconditional(4)
    return PagodaModel("random-photo", EDMPrecond(UNet(cfg)).eval(), G, bank, config, LearnedEncoder(UNet(cfg)))


def _image():
    return torch.rand(1, *SHAPE, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("size,stride", [(16, 12), (16, 16), (16, 4), (64, 48)])
def test_tile_corners_cover_the_image(size, stride):
    h, w = 100, 71
    covered = torch.zeros(h, w, dtype=torch.int64)
    corners = tile_corners(h, w, size, stride)
    for t, left in corners:
        assert 0 <= t <= h - size and 0 <= left <= w - size
        covered[t : t + size, left : left + size] += 1
    assert bool((covered > 0).all())
    assert max(t for t, _ in corners) == h - size and max(left for _, left in corners) == w - size


def test_blend_window_is_positive_and_flat_inside():
    w = blend_window(16, 4)
    assert bool((w > 0).all()) and torch.equal(w[4:12, 4:12], torch.ones(8, 8))
    assert torch.allclose(w, w.T) and torch.allclose(w, w.flip(0))


@pytest.mark.parametrize(
    "name,params",
    [("downsample_area", {"factor": 2}), ("colorize", {}), ("inpaint_random", {"drop": 0.5}), ("denoise", {})],
)
def test_tiled_pinv_equals_the_whole_image_pinv(rgb_model, name, params):
    """For operators acting pixel by pixel (or block by block), solving in tiles and blending must reproduce the
    whole-image pseudo-inverse exactly: any misplaced crop of y, the mask or the output would show."""
    op = make_operator(name, shape=SHAPE, seeds=[0], **params)
    y = op(_image())
    res = solve_tiled("pinv", rgb_model, op, y, image_shape=SHAPE, overlap=4, tile_batch=5)
    torch.testing.assert_close(res.estimate, op.A_dagger(y), rtol=0, atol=1e-5)
    assert res.info["tiles"] == len(tile_corners(40, 56, 16, 12))


@pytest.mark.parametrize("name,params", [("downsample_area", {"factor": 4}), ("colorize", {})])
def test_tiled_sampling_is_consistent_and_seeded(rgb_model, name, params):
    op = make_operator(name, shape=SHAPE, seeds=[0], **params)
    y = op(_image())
    run = lambda seed, batch: solve_tiled(  # noqa: E731
        "encode_perturb", rgb_model, op, y, image_shape=SHAPE, seed=seed, tile_batch=batch, samples=2
    )
    res = run(0, 4)
    assert res.estimate.shape == (1, *SHAPE) and res.samples.shape == (2, 1, *SHAPE)
    torch.testing.assert_close(op.A(res.estimate), y, rtol=0, atol=1e-5)  # exact on the whole image
    torch.testing.assert_close(run(0, 7).samples, res.samples)  # the tile batch does not change the result
    assert not torch.allclose(run(1, 4).samples, res.samples)


def test_the_callers_prior_std_reaches_every_tile(rgb_model):
    # A solver that takes prior_std gets the caller's in every tile batch, not its own default.
    from pagoda_inverse.solvers import solve

    seen = []

    def spy(model, op, y, *, prior_std=0.2, **kwargs):
        seen.append(prior_std)
        return solve("pinv", model, op, y, **kwargs)

    op = make_operator("downsample_area", shape=SHAPE, seeds=[0], factor=2, sigma_y=0.1)
    y = op(_image())
    solve_tiled(spy, rgb_model, op, y, image_shape=SHAPE, tile_batch=5, prior_std=0.7)
    assert len(seen) == 3 and set(seen) == {0.7}  # 15 tiles in batches of 5


def test_the_tiles_estimates_are_blended_not_their_sample_means(rgb_model):
    # A solver whose estimate is not its samples' mean (one_step with shrink) keeps it through the blend: here every
    # tile's estimate is its pseudo-inverse while the samples stay the encode_perturb ones.
    from pagoda_inverse.solvers import solve

    def pinv_estimate(model, op, y, **kwargs):
        res = solve("encode_perturb", model, op, y, samples=2, **kwargs)
        res.estimate = op.A_dagger(y)
        return res

    op = make_operator("downsample_area", shape=SHAPE, seeds=[0], factor=2)
    y = op(_image())
    res = solve_tiled(pinv_estimate, rgb_model, op, y, image_shape=SHAPE)
    torch.testing.assert_close(res.estimate, op.A_dagger(y), rtol=0, atol=1e-5)
    assert (res.samples.mean(0) - res.estimate).abs().max() > 0.05  # the samples are G's, not the estimate


def test_tiled_blur_is_consistent_across_tile_borders(rgb_model):
    op = make_operator("gaussian_blur", shape=SHAPE, sigma=1.0, size=7, sigma_y=0.0)
    y = op(_image())
    res = solve_tiled("encode_perturb", rgb_model, op, y, image_shape=SHAPE)
    per_tile = (op.A(res.samples[0]) - y).abs().max()
    assert per_tile < 0.05, per_tile  # the whole-image data-consistency step fixes the tile borders


def test_inpaint_on_tiles_crops_the_mask():
    mask = (torch.rand(1, 1, 20, 30, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    op = Inpaint(mask, in_shape=(3, 20, 30))
    tiles = op.on_tiles([(0, 0), (4, 14)], 16)
    assert torch.equal(tiles.mask[1, 0], mask[0, 0, 4:20, 14:30]) and tiles.in_shape == (3, 16, 16)


def test_untileable_operator_and_small_image_are_refused(rgb_model):
    composed = make_operator("blur_downsample", shape=SHAPE[:1] + (40, 56), factor=2)
    y = composed(_image())
    with pytest.raises(UserError, match="tiles"):
        solve_tiled("pinv", rgb_model, composed, y, image_shape=SHAPE)
    op = make_operator("denoise", shape=(3, 12, 40))
    with pytest.raises(UserError, match="at least 16x16"):
        solve_tiled("pinv", rgb_model, op, torch.zeros(1, 3, 12, 40), image_shape=(3, 12, 40))
