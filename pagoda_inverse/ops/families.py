"""Operator families: which kind of inverse problem an operator poses, and random members of each family.

A posterior encoder (:mod:`pagoda_inverse.core.posterior`) is trained for one family and serves every operator of
it: ``superres`` (area or bicubic down-sampling by 2, 4 or 8), ``inpaint`` (box, random pixels, free-form strokes, a
mask file), ``deblur`` (Gaussian, motion or any kernel), ``denoise`` (identity) and ``colorize`` (RGB -> luma).

>>> from pagoda_inverse.ops import make_operator
>>> operator_family(make_operator("inpaint_random", shape=(1, 8, 8)))
'inpaint'
>>> op = sample_family_operator("deblur", (1, 32, 32), 4, torch.Generator().manual_seed(0))
>>> operator_family(op), tuple(op.sigma_y.shape)
('deblur', (4,))
"""

from __future__ import annotations

import torch

from ._checks import fail
from .base import Identity, LinearOperator
from .blur import Blur
from .colour import Grayscale
from .downsample import AreaDownsample, BicubicDownsample
from .inpaint import Inpaint
from .rng import uniform, uniform_float

#: The operator families, in listing order.
FAMILIES = ("superres", "inpaint", "deblur", "denoise", "colorize")

_CLASSES = {
    "superres": (AreaDownsample, BicubicDownsample),
    "inpaint": (Inpaint,),
    "deblur": (Blur,),
    "denoise": (Identity,),
    "colorize": (Grayscale,),
}

#: Largest measurement noise drawn for training, in [-1, 1] units.
MAX_SIGMA_Y = 0.2
#: Conjugate-gradient iterations of the training blurs' data-consistency solve (reflect padding has no closed form;
#: an early-stopped solve halves the step time, and it is exact enough where the prior term keeps it well posed).
DEBLUR_CG_ITERATIONS = 30


def operator_family(op: LinearOperator) -> str | None:
    """The family of ``op`` (a key of :data:`FAMILIES`), or ``None`` for operators outside every family
    (compositions, colour mixes, deepinv physics)."""
    for family, classes in _CLASSES.items():
        if type(op) in classes:
            return family
    return None


def check_family(family: str) -> str:
    """``family`` itself, or a one-line error listing the families."""
    if family not in FAMILIES:
        raise fail(f"unknown operator family {family!r}; choose one of: {', '.join(FAMILIES)}")
    return family


def _choice(g: torch.Generator, options):
    return options[int(torch.randint(len(options), (1,), generator=g))]


def sample_family_operator(
    family: str, shape: tuple[int, int, int], batch: int, generator: torch.Generator
) -> LinearOperator:
    """A random member of ``family`` for ``batch`` images of ``shape`` (C, H, W), the training distribution of the
    posterior encoders. Per-image parameters (masks, motion kernels, Gaussian widths) and a per-image ``sigma_y``
    uniform in ``[0, MAX_SIGMA_Y]`` are drawn from ``generator``; the member type and its shared parameters (the
    down-sampling factor and filter, the drop rate, the motion intensity) are one draw per batch.

    - superres: area or bicubic, factor 2, 4 or 8 (those dividing H);
    - inpaint: a box (side 1/4 to 5/8 of the image, centred or anywhere), 30-90% random pixels, or free-form strokes;
    - deblur: Gaussian (std 0.5-3 px, 9x9) or motion (9x9, intensity 0.3-0.7), reflect padding (CG capped at
      :data:`DEBLUR_CG_ITERATIONS`);
    - denoise: the identity; colorize: BT.601 luma.
    """
    check_family(family)
    c, h, w = shape
    sigma_y = uniform(generator, batch, 0.0, MAX_SIGMA_Y).float()
    noise = {"in_shape": shape, "sigma_y": sigma_y}
    if family == "superres":
        factor = _choice(generator, [f for f in (2, 4, 8) if h % f == 0 and w % f == 0])
        cls = _choice(generator, (AreaDownsample, BicubicDownsample))
        return cls(factor, **noise)
    if family == "inpaint":
        kind = _choice(generator, ("box", "random", "freeform"))
        if kind == "box":
            side = [int(round(uniform_float(generator, 0.25, 0.625) * min(h, w)))] * 2
            position = _choice(generator, ("center", "random"))
            return Inpaint.box(shape, side, position, batch=batch, generator=generator, sigma_y=sigma_y)
        if kind == "random":
            return Inpaint.random(
                shape, uniform_float(generator, 0.3, 0.9), batch=batch, generator=generator, sigma_y=sigma_y
            )
        return Inpaint.freeform(shape, batch=batch, generator=generator, sigma_y=sigma_y)
    if family == "deblur":
        noise["cg_max_iter"] = DEBLUR_CG_ITERATIONS
        if _choice(generator, ("gaussian", "motion")) == "gaussian":
            return Blur.gaussian(uniform(generator, batch, 0.5, 3.0).tolist(), 9, "reflect", **noise)
        return Blur.motion(9, uniform_float(generator, 0.3, 0.7), "reflect", batch=batch, generator=generator, **noise)
    if family == "denoise":
        return Identity(**noise)
    if c != 3:
        raise fail(f"the colorize family needs RGB images, got {c} channel(s)")
    return Grayscale("rec601", **noise)
