"""Degradation operators ("physics") for image inverse problems, with deepinv's contract.

Images are (B, C, H, W) tensors in [-1, 1]; ``sigma_y`` is in the same units (DPS convention).
``y = op(x) = op.noise(op.A(x))``; linear operators add ``A_adjoint``, ``A_dagger``, ``tikhonov``, ``project``.
Operators are built directly or by name from :mod:`pagoda_inverse.ops.registry`. The deepinv adapter lives in
:mod:`pagoda_inverse.ops.deepinv_adapter` (imports deepinv lazily).
"""

from ._checks import OperatorParameterError
from .base import Composed, Identity, LinearOperator, compose
from .blur import Blur
from .colour import ColourMix, Grayscale
from .consistency import data_consistency
from .downsample import AreaDownsample, BicubicDownsample, downsample
from .inpaint import Inpaint
from .kernels import gaussian_kernel, load_kernel, motion_kernel, motion_kernels
from .masks import box_mask, freeform_mask, load_mask, make_masks, random_mask
from .noise import GaussianNoise, NoiseModel, NoNoise, PoissonNoise, make_noise
from .registry import OPERATORS, fit_shape, list_operators, make_operator

__all__ = [
    "OPERATORS",
    "AreaDownsample",
    "BicubicDownsample",
    "Blur",
    "ColourMix",
    "Composed",
    "GaussianNoise",
    "Grayscale",
    "Identity",
    "Inpaint",
    "LinearOperator",
    "NoNoise",
    "NoiseModel",
    "OperatorParameterError",
    "PoissonNoise",
    "box_mask",
    "compose",
    "data_consistency",
    "downsample",
    "fit_shape",
    "freeform_mask",
    "gaussian_kernel",
    "list_operators",
    "load_kernel",
    "load_mask",
    "make_masks",
    "make_noise",
    "make_operator",
    "motion_kernel",
    "motion_kernels",
    "random_mask",
]
