"""Cross-checks against deepinv's own operators on the same parameters, and the adapter both ways."""

from __future__ import annotations

import warnings

import pytest
import torch

from pagoda_inverse.ops import (
    AreaDownsample,
    BicubicDownsample,
    Blur,
    Grayscale,
    Inpaint,
    make_operator,
    motion_kernels,
    registry,
)
from pagoda_inverse.ops.deepinv_adapter import (
    from_deepinv,
    image_from_01,
    image_to_01,
    measurement_from_01,
    measurement_to_01,
    to_deepinv,
)

dinv = pytest.importorskip("deepinv")
warnings.filterwarnings("ignore", module="deepinv")

TOL = 1e-5
PADDINGS = ["reflect", "circular", "replicate", "constant", "valid"]


def _x(shape=(2, 3, 37, 31), seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _agree(ours, theirs, x):
    y = ours.A(x)
    assert (y - theirs.A(x)).abs().max() < TOL
    assert (ours.A_adjoint(y) - theirs.A_adjoint(y)).abs().max() < TOL


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("size", [61, 8])
def test_gaussian_blur_matches_deepinv(padding, size):
    if padding == "valid" and size == 61:
        pytest.skip("61-pixel kernel larger than the 37x31 image")
    ours = Blur.gaussian(sigma=3.0, size=size, padding=padding)
    filt = dinv.physics.functional.gaussian_blur(psf_size=(size, size), sigma=3.0)
    assert (ours.kernel[0, 0].float() - filt[0, 0]).abs().max() < 1e-7
    _agree(ours, dinv.physics.Blur(filter=filt, padding=padding), _x())


@pytest.mark.parametrize("padding", PADDINGS)
def test_motion_blur_matches_deepinv(padding):
    # Per-image motion kernels (seeded) through deepinv's Blur with the same (B, 1, k, k) filter.
    kernels = motion_kernels(batch=2, size=15 if padding == "valid" else 61, intensity=0.5, seeds=[0, 1])
    ours = Blur(kernels, padding)
    _agree(ours, dinv.physics.Blur(filter=kernels.float(), padding=padding), _x())


@pytest.mark.parametrize("method", ["fft", "direct"])
def test_blur_methods_agree_even_kernel(method):
    k = torch.rand(6, 4, generator=torch.Generator().manual_seed(0))
    ours = Blur(k, "reflect", method=method)
    _agree(ours, dinv.physics.Blur(filter=(k / k.sum())[None, None], padding="reflect"), _x())


def test_circular_blur_dagger_matches_blurfft():
    filt = dinv.physics.functional.gaussian_blur(psf_size=(7, 7), sigma=1.0)
    ours = Blur(filt, "circular")
    theirs = dinv.physics.BlurFFT(img_size=(3, 37, 31), filter=filt)
    x = _x()
    _agree(ours, theirs, x)
    y = ours.A(x)
    assert (ours.A_dagger(y) - theirs.A_dagger(y)).abs().max() < 1e-4


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_area_downsampling_matches_deepinv(factor):
    x = _x((2, 3, 40, 32))
    theirs = dinv.physics.Downsampling(
        filter=torch.ones(1, 1, factor, factor) / factor**2, factor=factor, padding="valid"
    )
    _agree(AreaDownsample(factor), theirs, x)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_bicubic_matches_deepinv_matlab(factor):
    x = _x((2, 3, 40, 32))
    ours, theirs = BicubicDownsample(factor), dinv.physics.DownsamplingMatlab(factor=factor)
    assert (ours.A(x) - theirs.A(x)).abs().max() < TOL


@pytest.mark.parametrize("kind", ["inpaint_box", "inpaint_random", "inpaint_freeform"])
def test_inpainting_matches_deepinv(kind):
    ours = make_operator(kind, shape=(3, 37, 31), batch=2, seeds=[0, 1])
    theirs = dinv.physics.Inpainting(img_size=(3, 37, 31), mask=ours.mask.float())
    x = _x()
    _agree(ours, theirs, x)
    assert (ours.A_dagger(ours.A(x)) - theirs.A_dagger(theirs.A(x))).abs().max() < TOL


def test_random_mask_fraction_convention():
    # Ours: drop = fraction removed. deepinv: mask=q keeps a fraction q (Bernoulli).
    ours = Inpaint.random((1, 64, 64), drop=0.7, seeds=[0])
    assert abs(float(ours.mask.mean()) - 0.3) < 1e-3
    theirs = dinv.physics.Inpainting(img_size=(1, 64, 64), mask=0.3, rng=torch.Generator().manual_seed(0))
    assert abs(float(theirs.mask.mean()) - 0.3) < 0.03


def test_grayscale_matches_decolorize():
    x = _x()
    theirs = dinv.physics.Decolorize()
    # deepinv's BT.601 weights are rounded (0.29896, 0.58702, 0.11405); with its exact weights we agree to 1e-5.
    ours = Grayscale(tuple(theirs.srf.flatten().tolist()))
    _agree(ours, theirs, x)
    assert (ours.A_dagger(ours.A(x)) - theirs.A_dagger(theirs.A(x))).abs().max() < TOL
    assert (Grayscale("rec601").A(x) - theirs.A(x)).abs().max() < 2e-4


# ---- adapter -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", registry.list_operators())
def test_to_deepinv_units_and_contract(name):
    shape = registry.fit_shape(name, (3, 37, 31))
    op = make_operator(name, shape=shape, batch=2, seeds=[0, 1])
    phys = to_deepinv(op)
    assert isinstance(phys, dinv.physics.LinearPhysics)
    x01 = (_x((2, *shape)) + 1) / 2
    # Noise-free: deepinv's measurement of x01 is ours of x = 2 x01 - 1, shifted by A1 / 2.
    y = op.A(image_from_01(x01))
    assert (measurement_to_01(op, y) - phys(x01)).abs().max() < TOL
    assert (measurement_from_01(op, phys(x01)) - y).abs().max() < TOL
    assert torch.allclose(image_to_01(image_from_01(x01)), x01)
    # deepinv's own adjointness test on the wrapped operator (it draws a single image).
    single = to_deepinv(make_operator(name, shape=shape, seeds=[0]))
    assert abs(float(single.adjointness_test(x01[:1]))) < 1e-4 * float(single.A(x01[:1]).norm() ** 2)
    assert from_deepinv(phys) is op


def test_to_deepinv_noise_units():
    op = make_operator("inpaint_random", shape=(1, 64, 64), seeds=[0], drop=0.5, sigma_y=0.2)
    phys = to_deepinv(op)
    assert float(phys.noise_model.sigma) == pytest.approx(0.1)
    y01 = phys(torch.full((1, 1, 64, 64), 0.5))
    kept = op.mask.bool()
    assert float(y01[~kept].abs().max()) == 0.0  # noise stays inside the observed pixels
    assert float((y01[kept] - 0.5).std()) == pytest.approx(0.1, rel=0.1)
    pois = to_deepinv(make_operator("denoise", shape=(1, 8, 8), noise="poisson", rate=50.0))
    assert float(pois.noise_model.gain) == pytest.approx(1 / 50)


def test_from_deepinv_wraps_physics():
    phys = dinv.physics.Inpainting(
        img_size=(3, 37, 31),
        mask=0.5,
        noise_model=dinv.physics.GaussianNoise(0.05),
        rng=torch.Generator().manual_seed(0),
    )
    op = from_deepinv(phys)
    assert op.sigma_y == pytest.approx(0.1)
    x = _x()
    assert torch.equal(op.A(x), phys.A(x))
    y = op.A(x)
    assert (op.A(op.A_dagger(y)) - y).abs().max() < 1e-6
    sol = op.tikhonov(y, torch.zeros_like(x), 0.5)
    assert torch.allclose(sol, phys.prox_l2(torch.zeros_like(x), y, 2.0), atol=1e-6)
    assert to_deepinv(op) is phys
    noisy = op(x, generator=torch.Generator().manual_seed(0))
    assert float((noisy - y)[phys.mask.expand_as(y) == 0].abs().max()) == 0.0


def test_from_deepinv_blur_to_our_solvers():
    filt = dinv.physics.functional.gaussian_blur(psf_size=(9, 9), sigma=1.5)
    op = from_deepinv(dinv.physics.Blur(filter=filt, padding="reflect"), in_shape=(3, 37, 31))
    ours = Blur(filt, "reflect")
    x = _x()
    assert (op.A(x) - ours.A(x)).abs().max() < TOL
    assert op.in_shape == (3, 37, 31) and op.sigma_y == 0.0
