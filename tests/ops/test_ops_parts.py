"""Kernels, masks, files, noise, composition, closed forms and the import contract."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pagoda_inverse.ops import (
    AreaDownsample,
    BicubicDownsample,
    Blur,
    ColourMix,
    Composed,
    GaussianNoise,
    Grayscale,
    Identity,
    Inpaint,
    PoissonNoise,
    box_mask,
    compose,
    freeform_mask,
    gaussian_kernel,
    load_kernel,
    load_mask,
    make_masks,
    make_operator,
    motion_kernel,
    motion_kernels,
    random_mask,
)

FAST = settings(max_examples=15, deadline=None)


def _adj_gap(op, x, y) -> float:
    ax, aty = op.A(x), op.A_adjoint(y)
    return float(((ax * y).sum() - (x * aty).sum()).abs() / (ax.norm() * y.norm()))


# ---- hypothesis: adjointness over sizes, kernels, paddings, factors ---------------------------------------------


@FAST
@given(
    h=st.integers(5, 40),
    w=st.integers(5, 40),
    kh=st.integers(1, 12),
    kw=st.integers(1, 12),
    padding=st.sampled_from(["circular", "reflect", "replicate", "constant", "valid"]),
    method=st.sampled_from(["fft", "direct"]),
    per_image=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_blur_adjoint_any_size(h, w, kh, kw, padding, method, per_image, seed):
    if padding == "valid" and (kh > h or kw > w):
        return
    g = torch.Generator().manual_seed(seed)
    k = torch.rand(2 if per_image else 1, 1, kh, kw, generator=g, dtype=torch.float64) + 0.01
    op = Blur(k, padding, method=method)
    x = torch.randn(2, 3, h, w, generator=g, dtype=torch.float64)
    y = torch.randn(2, *op.out_shape(x.shape[1:]), generator=g, dtype=torch.float64)
    assert op.A(x).shape == y.shape
    assert _adj_gap(op, x, y) < 1e-10
    # FFT and direct paths are the same operator.
    other = Blur(k, padding, method="direct" if method == "fft" else "fft")
    assert torch.allclose(op.A(x), other.A(x), atol=1e-10)


@FAST
@given(
    hm=st.integers(1, 6),
    wm=st.integers(1, 6),
    factor=st.sampled_from([1, 2, 3, 4, 8]),
    filt=st.sampled_from(["area", "bicubic"]),
    seed=st.integers(0, 2**16),
)
def test_downsample_closed_forms_any_size(hm, wm, factor, filt, seed):
    g = torch.Generator().manual_seed(seed)
    op = (AreaDownsample if filt == "area" else BicubicDownsample)(factor)
    x = torch.randn(2, 2, hm * factor, wm * factor, generator=g, dtype=torch.float64)
    y = op.A(x)
    assert y.shape == (2, 2, hm, wm)
    assert _adj_gap(op, x, torch.randn_like(y)) < 1e-10
    assert torch.allclose(op.A(op.A_dagger(y)), y, atol=1e-9)
    # Closed-form Tikhonov equals CG on the normal equations.
    sol = op.tikhonov(y, torch.zeros_like(x), 0.3)
    assert torch.allclose(op.A_adjoint_A(sol) + 0.3 * sol, op.A_adjoint(y), atol=1e-9)


@FAST
@given(h=st.integers(4, 30), w=st.integers(4, 30), drop=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_random_mask_drops_exact_count(h, w, drop, seed):
    m = random_mask(h, w, drop, torch.Generator().manual_seed(seed))
    assert int((m == 0).sum()) == round(drop * h * w)
    assert set(m.unique().tolist()) <= {0.0, 1.0}


# ---- kernels --------------------------------------------------------------------------------------------------------


def test_gaussian_kernel_properties():
    k = gaussian_kernel(3.0, 61)
    assert k.shape == (61, 61) and k.dtype == torch.float64
    assert float(k.sum()) == pytest.approx(1.0)
    assert torch.allclose(k, k.flip(0)) and torch.allclose(k, k.T)
    assert gaussian_kernel(1.0).shape == (7, 7)
    aniso = gaussian_kernel((1.0, 3.0), (5, 15))
    assert aniso.shape == (5, 15) and float(aniso[2].sum()) > float(aniso[:, 7].sum())


def test_motion_kernel_seeded_and_varied():
    a = motion_kernel(61, 0.5, torch.Generator().manual_seed(0))
    b = motion_kernel(61, 0.5, torch.Generator().manual_seed(0))
    c = motion_kernel(61, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.sum()) == pytest.approx(1.0) and float(a.min()) >= 0
    # A motion kernel is spread out (not a dot) and anisotropic in general.
    assert float(a.max()) < 0.2
    batch = motion_kernels(3, 31, 0.5, seeds=[5, 6, 7])
    assert batch.shape == (3, 1, 31, 31)
    assert torch.equal(batch[2, 0], motion_kernel(31, 0.5, torch.Generator().manual_seed(7)))
    # intensity 0: a short straight stroke.
    assert float(motion_kernel(31, 0.0, torch.Generator().manual_seed(0)).max()) > float(a.max())


def test_kernel_from_npy_and_png(tmp_path):
    k = np.random.default_rng(0).random((7, 5))
    np.save(tmp_path / "k.npy", k)
    got = load_kernel(tmp_path / "k.npy")
    assert torch.allclose(got, torch.from_numpy(k / k.sum()))
    Image.fromarray((k / k.max() * 255).round().astype(np.uint8)).save(tmp_path / "k.png")
    png = load_kernel(tmp_path / "k.png")
    assert png.shape == (7, 5) and float(png.sum()) == pytest.approx(1.0)
    assert torch.allclose(png, got, atol=0.01)
    op = make_operator("blur_kernel", shape=(3, 37, 31), kernel=tmp_path / "k.npy", padding="circular")
    assert torch.allclose(op.kernel[0, 0], got)


# ---- masks ----------------------------------------------------------------------------------------------------------


def test_box_mask_center_and_random():
    m = box_mask(256, 256)
    assert int((m == 0).sum()) == 128 * 128 and float(m[64:192, 64:192].sum()) == 0.0
    for seed in range(20):
        r = box_mask(256, 256, box=128, position="random", generator=torch.Generator().manual_seed(seed))
        rows = torch.nonzero((r == 0).any(1)).flatten()
        cols = torch.nonzero((r == 0).any(0)).flatten()
        assert len(rows) == len(cols) == 128
        assert rows.min() >= 16 and rows.max() <= 255 - 16 and cols.min() >= 16 and cols.max() <= 255 - 16
    odd = box_mask(37, 31, position="random", generator=torch.Generator().manual_seed(0))
    assert int((odd == 0).sum()) == 18 * 15


def test_freeform_masks():
    ms = make_masks("freeform", 4, 64, 48, seeds=[0, 1, 2, 3])
    assert ms.shape == (4, 1, 64, 48)
    holes = (ms == 0).flatten(1).float().mean(1)
    assert bool((holes > 0.01).all()) and bool((holes < 0.9).all())
    assert not torch.equal(ms[0], ms[1])
    assert torch.equal(ms[3, 0], freeform_mask(64, 48, generator=torch.Generator().manual_seed(3)))


def test_random_masks_and_kernels_match_the_ones_the_posterior_encoders_were_trained_on():
    # Golden tensors written by freeform_mask / motion_kernels as of commit 14987eb (the code that made the training
    # operators of the shipped posterior encoders): a faster rewrite must draw the same numbers and give the same
    # pixels, or retrained encoders would no longer reproduce the shipped weights.
    from pathlib import Path

    from safetensors.torch import load_file

    golden = load_file(Path(__file__).parents[1] / "fixtures" / "random_operators.safetensors")
    masks = torch.stack([freeform_mask(32, 32, generator=torch.Generator().manual_seed(s)) for s in range(8)])
    assert torch.equal(masks.to(torch.uint8), golden["freeform_32"])
    # Same draws, same kernels up to float64 rounding: libm's exp differs in the last bits between CPU types.
    torch.testing.assert_close(
        motion_kernels(8, 9, 0.5, seeds=list(range(8)))[:, 0], golden["motion_9"], rtol=1e-12, atol=1e-15
    )


def test_mask_from_png(tmp_path):
    m = box_mask(37, 31, box=(10, 7))
    Image.fromarray((m.numpy() * 255).astype(np.uint8)).save(tmp_path / "m.png")
    assert torch.equal(load_mask(tmp_path / "m.png"), m)
    assert torch.equal(load_mask(tmp_path / "m.png", invert=True), 1 - m)
    Image.fromarray(m.numpy() > 0.5).save(tmp_path / "m1.png")  # 1-bit PNG
    assert torch.equal(load_mask(tmp_path / "m1.png"), m)
    op = make_operator("inpaint_mask", shape=(3, 37, 31), mask=tmp_path / "m.png")
    assert torch.equal(op.mask[0, 0], m)
    op = Inpaint.from_file(tmp_path / "m.png", invert=True)
    assert torch.equal(op.mask[0, 0], 1 - m)


def test_per_image_masks_differ_in_a_batch():
    op = make_operator("inpaint_random", shape=(3, 16, 16), batch=3, generator=torch.Generator().manual_seed(0))
    assert op.mask.shape == (3, 1, 16, 16)
    assert not torch.equal(op.mask[0], op.mask[1])
    y = op(torch.ones(3, 3, 16, 16))
    assert [int(v) for v in (y != 0).flatten(1).sum(1)] == [3 * 77] * 3  # 70% of 256 pixels dropped


# ---- noise ----------------------------------------------------------------------------------------------------------


def test_gaussian_noise_units_and_per_image_sigma():
    y = torch.zeros(2, 3, 64, 64)
    n = GaussianNoise(0.05)(y, torch.Generator().manual_seed(0))
    assert float(n.std()) == pytest.approx(0.05, rel=0.05)
    n = GaussianNoise([0.0, 0.2])(y, torch.Generator().manual_seed(0))
    assert float(n[0].abs().max()) == 0.0 and float(n[1].std()) == pytest.approx(0.2, rel=0.05)
    op = make_operator("denoise", shape=(3, 8, 8), sigma_y=0.05)
    assert op.sigma_y == 0.05


def test_poisson_noise():
    y = torch.zeros(1, 1, 128, 128)  # mid-grey
    out = PoissonNoise(rate=200.0)(y, torch.Generator().manual_seed(0))
    counts = (out + 1) / 2 * 200
    assert torch.allclose(counts, counts.round(), atol=1e-3)
    assert float(counts.mean()) == pytest.approx(100, rel=0.02)
    assert float(out.std()) == pytest.approx(PoissonNoise(200.0).sigma, rel=0.05)
    op = make_operator("gaussian_blur_circular", shape=(3, 16, 16), size=5, sigma=1.0, noise="poisson", rate=10.0)
    a = op(torch.zeros(1, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    b = op(torch.zeros(1, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


# ---- composition and closed forms -------------------------------------------------------------------------------------


def test_composition_order_and_noise():
    blur, down = Blur.gaussian(1.0, 5, "reflect"), AreaDownsample(2, sigma_y=0.1)
    op = compose(blur, down)
    x = torch.randn(2, 3, 8, 6)
    assert torch.allclose(op.A(x), down.A(blur.A(x)))
    assert torch.allclose((down * blur).A(x), op.A(x))
    assert op.sigma_y == 0.1 and op.size_multiple == 2
    nested = Composed([op, Grayscale()])
    assert len(nested.ops) == 3 and nested.out_shape((3, 8, 6)) == (1, 4, 3)
    assert compose(Identity(), sigma_y=0.2).exact_dagger and compose(Identity(), sigma_y=0.2).sigma_y == 0.2
    # Inpainting last: the composition's noise stays inside the mask.
    inp = Inpaint.random((3, 8, 6), drop=0.5, seeds=[0], sigma_y=0.1)
    noisy = compose(blur, inp)(x, generator=torch.Generator().manual_seed(0))
    assert float(noisy[(inp.mask == 0).expand_as(noisy)].abs().max()) == 0.0


def test_circular_blur_closed_forms_match_cg():
    op = Blur.gaussian(1.2, 7, "circular")
    ref = Blur.gaussian(1.2, 7, "circular", cg_max_iter=500, cg_tol=1e-12)
    ref.exact_dagger = False  # the generic CG path
    x = torch.randn(2, 3, 12, 10, dtype=torch.float64)
    y = op.A(x)
    assert torch.allclose(op.tikhonov(y, x * 0.5, 0.01), ref.tikhonov(y, x * 0.5, 0.01), atol=1e-8)
    assert torch.allclose(op.gram_solve(y, 0.3), ref.gram_solve(y, 0.3), atol=1e-8)


def test_colour_pinv_and_tikhonov():
    op = ColourMix([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    y = op.A(x)
    xd = op.A_dagger(y)
    assert torch.allclose(op.A(xd), y)
    assert torch.allclose(xd, torch.einsum("cd,bdhw->bchw", torch.linalg.pinv(op.matrix), y))
    g = Grayscale("mean")
    assert torch.allclose(g.A_dagger(g.A(x)), x.mean(1, keepdim=True).expand_as(x))
    tall = ColourMix(torch.randn(5, 3, dtype=torch.float64))  # more outputs than inputs: A A^T is singular
    y = torch.randn(2, 5, 3, 3, dtype=torch.float64)
    sol = tall.tikhonov(y, None, 0.2)
    assert torch.allclose(tall.A_adjoint_A(sol) + 0.2 * sol, tall.A_adjoint(y))


def test_import_is_light():
    code = (
        "import sys, pagoda_inverse.ops; "
        "bad = [m for m in ('deepinv', 'skimage', 'matplotlib') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
