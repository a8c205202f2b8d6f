"""Bad input: a ValueError with a one-line message that names the parameter."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from pagoda_inverse.ops import (
    AreaDownsample,
    BicubicDownsample,
    Blur,
    ColourMix,
    GaussianNoise,
    Grayscale,
    Inpaint,
    OperatorParameterError,
    gaussian_kernel,
    load_kernel,
    load_mask,
    make_operator,
    motion_kernel,
    random_mask,
)
from pagoda_inverse.utils.errors import UserError


def raises(match: str):
    """Expect a one-line ValueError (also a UserError, for the CLI's exit code 2) whose message contains ``match``."""

    class _Ctx:
        def __enter__(self):
            self.ctx = pytest.raises(ValueError, match=match)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            out = self.ctx.__exit__(*exc)
            err = self.info.value
            assert isinstance(err, OperatorParameterError) and isinstance(err, UserError)
            assert "\n" not in str(err) and len(str(err)) < 300
            return out

    return _Ctx()


x = torch.zeros(2, 3, 37, 31)


def test_kernel_wrong_shape():
    with raises("kernel must have shape"):
        Blur(torch.ones(5))
    with raises("kernel must have shape"):
        Blur(torch.ones(1, 1, 1, 3, 3))
    with raises("kernel holds 3 per-image entries but the batch has 2"):
        Blur(torch.ones(3, 1, 5, 5)).A(x)
    with raises("kernel has 2 channels"):
        Blur(torch.ones(1, 2, 5, 5)).A(x)
    with raises("kernel of size 41x41 is larger"):
        Blur(torch.ones(41, 41), padding="valid").A(x)


def test_kernel_empty_or_not_normalisable():
    with raises("kernel is empty"):
        Blur(torch.ones(0, 3))
    with raises("kernel sums to zero"):
        Blur(torch.zeros(3, 3))
    with raises("kernel sums to zero"):
        Blur(torch.tensor([[1.0, -1.0]]))
    with raises("kernel contains NaN"):
        Blur(torch.tensor([[1.0, float("nan")]]))


def test_kernel_files(tmp_path):
    nan = tmp_path / "nan.npy"
    np.save(nan, np.array([[1.0, np.nan], [0.0, 1.0]]))
    with raises("kernel file .*nan.npy.* contains NaN"):
        load_kernel(nan)
    with raises("kernel file .*nan.npy.* contains NaN"):
        Blur.from_file(nan)
    negative = tmp_path / "negative.npy"
    np.save(negative, np.array([[1.0, -0.5], [0.0, 1.0]]))
    with raises("negative.npy.* has negative entries"):
        load_kernel(negative)
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 0)))
    with raises("kernel"):
        load_kernel(empty)
    zeros = tmp_path / "zeros.png"
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(zeros)
    with raises("kernel file .*zeros.png.* sums to zero"):
        load_kernel(zeros)
    with raises("kernel file .* does not exist"):
        load_kernel(tmp_path / "missing.npy")
    cube = tmp_path / "cube.npy"
    np.save(cube, np.ones((2, 3, 3)))
    with raises("expected 2-D"):
        load_kernel(cube)
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(rgb)
    with raises("save it as a grayscale image"):
        load_kernel(rgb)
    txt = tmp_path / "k.txt"
    txt.write_text("1 2 3")
    with raises("must be .npy or a grayscale image"):
        load_kernel(txt)


def test_pickled_npy_is_never_loaded(tmp_path):
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with raises("not a readable .npy"):
        load_kernel(evil)
    raw = tmp_path / "raw.npy"
    raw.write_bytes(pickle.dumps([[1.0]]))
    with raises("kernel file"):
        load_kernel(raw)


def test_negative_sigma():
    with raises("sigma must be > 0"):
        gaussian_kernel(-1.0)
    with raises("sigma must be > 0"):
        Blur.gaussian(sigma=[1.0, -2.0])
    with raises("sigma_y must be >= 0"):
        GaussianNoise(-0.1)
    with raises("sigma_y must be >= 0"):
        make_operator("denoise", shape=(3, 8, 8), sigma_y=-0.05)
    with raises("sigma_y must be a finite number"):
        GaussianNoise(float("nan"))
    with raises("gamma must be >= 0"):
        Blur.gaussian(1.0, 5, "circular").tikhonov(x, x, -1.0)


def test_factor_must_divide_size():
    with raises(r"factor=4 does not divide the image size 37x31; H and W must be multiples of 4 \(e.g. 40x32\)"):
        AreaDownsample(4).A(x)
    with raises("factor=8 does not divide"):
        BicubicDownsample(8).A(x)
    with raises("factor=4 does not divide"):
        make_operator("downsample_bicubic", shape=(3, 37, 31))
    with raises("factor must be an integer >= 1"):
        AreaDownsample(0)
    with raises("factor must be an integer >= 1"):
        AreaDownsample(2.5)


def test_mask_wrong_shape(tmp_path):
    with raises("mask has shape"):
        Inpaint(torch.ones(37, 30)).A(x)
    with raises("mask has shape"):
        Inpaint(torch.ones(2, 37, 31)).A(x)
    with raises("mask holds 3 per-image entries"):
        Inpaint(torch.ones(3, 1, 37, 31)).A(x)
    with raises("mask has shape"):
        Inpaint(torch.ones(16, 16), in_shape=(3, 37, 31))
    with raises("mask values must lie in"):
        Inpaint(torch.full((4, 4), 2.0))
    with raises("mask must have shape"):
        Inpaint(torch.ones(4))
    png = tmp_path / "mask.png"
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(png)
    with raises("mask has shape"):
        make_operator("inpaint_mask", shape=(3, 37, 31), mask=png)


def test_other_parameters():
    with raises("padding must be one of"):
        Blur(torch.ones(3, 3), padding="mirror")
    with raises("drop must be a fraction"):
        random_mask(8, 8, drop=70)
    with raises("intensity must be in"):
        motion_kernel(15, 1.5)
    with raises("box 40x40 does not fit"):
        make_operator("inpaint_box", shape=(3, 37, 31), box=40)
    with raises("unknown operator 'blurr'"):
        make_operator("blurr")
    with raises("shape must be"):
        make_operator("denoise", shape=(37, 31))
    with raises("x must have 3 channel"):
        Grayscale().A(torch.zeros(1, 1, 4, 4))
    with raises("matrix contains NaN"):
        ColourMix([[float("nan"), 1.0]])
    with raises("seeds has 3 entries but batch is 2"):
        make_operator("inpaint_random", shape=(3, 8, 8), batch=2, seeds=[1, 2, 3])
    with raises("noise must be one of"):
        make_operator("denoise", shape=(3, 8, 8), noise="speckle")
    with raises("rate must be > 0"):
        make_operator("denoise", shape=(3, 8, 8), noise="poisson", rate=0)
    with raises("mask file"):
        load_mask("/nonexistent/mask.png")
