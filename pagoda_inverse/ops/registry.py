"""The operator registry shared by the CLI, the task suites and the tests.

``OPERATORS[name](shape, *, batch=1, generator=None, seeds=None, sigma_y=0.0, noise="gaussian", rate=None,
**params)`` builds an operator for (C, H, W) images. Every entry builds with its defaults; random parameters
(motion kernels, masks) are drawn per image from ``seeds`` (image i depends only on ``seeds[i]``) or from
``generator``. ``sigma_y`` is in [-1, 1] units.

>>> sorted(OPERATORS)[:3]
['blur_downsample', 'blur_kernel', 'colorize']
>>> op = make_operator("downsample_bicubic", shape=(3, 32, 32), factor=4, sigma_y=0.05)
>>> op.out_shape(), op.sigma_y
((3, 8, 8), 0.05)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch

from ._checks import check_divisible, check_int, fail, round_up
from .base import Composed, Identity, LinearOperator
from .blur import Blur
from .colour import ColourMix, Grayscale
from .downsample import AreaDownsample, BicubicDownsample
from .inpaint import Inpaint
from .masks import box_mask
from .rng import GeneratorLike

Factory = Callable[..., LinearOperator]

#: name -> factory(shape, *, batch, generator, seeds, sigma_y, noise, rate, **params)
OPERATORS: dict[str, Factory] = {}


def _entry(name: str):
    def register(fn: Factory) -> Factory:
        OPERATORS[name] = fn
        return fn

    return register


@_entry("denoise")
def _denoise(shape, *, batch=1, generator=None, seeds=None, **kw) -> LinearOperator:
    """Identity operator (denoising)."""
    return Identity(in_shape=shape, **kw)


@_entry("gaussian_blur")
def _gaussian_blur(
    shape, *, batch=1, generator=None, seeds=None, sigma=3.0, size=61, padding="reflect", **kw
) -> LinearOperator:
    """Gaussian blur, DPS suite: sigma 3, 61x61, reflect padding (sigma may be a list of B values)."""
    return Blur.gaussian(sigma, size, padding, in_shape=shape, **kw)


@_entry("gaussian_blur_circular")
def _gaussian_blur_circular(shape, *, batch=1, generator=None, seeds=None, sigma=3.0, size=61, **kw) -> LinearOperator:
    """Gaussian blur with circular padding: exact FFT pseudo-inverse and Tikhonov solve."""
    return Blur.gaussian(sigma, size, "circular", in_shape=shape, **kw)


@_entry("motion_blur")
def _motion_blur(
    shape, *, batch=1, generator=None, seeds=None, size=61, intensity=0.5, padding="reflect", **kw
) -> LinearOperator:
    """Random motion blur, one kernel per image, DPS suite: 61x61, intensity 0.5, reflect padding."""
    return Blur.motion(size, intensity, padding, batch=batch, generator=generator, seeds=seeds, in_shape=shape, **kw)


@_entry("blur_kernel")
def _blur_kernel(
    shape, *, batch=1, generator=None, seeds=None, kernel=None, padding="reflect", **kw
) -> LinearOperator:
    """Blur by a given kernel: a ``.npy``/grayscale PNG path, an array or a tensor (default: 9x9 uniform, DDRM)."""
    kernel = torch.ones(9, 9, dtype=torch.float64) if kernel is None else kernel
    return Blur(kernel, padding, in_shape=shape, **kw)


@_entry("downsample_area")
def _downsample_area(shape, *, batch=1, generator=None, seeds=None, factor=4, **kw) -> LinearOperator:
    """Average pooling by ``factor`` (2, 4, 8); H and W must be multiples of it."""
    return AreaDownsample(factor, in_shape=shape, **kw)


@_entry("downsample_bicubic")
def _downsample_bicubic(shape, *, batch=1, generator=None, seeds=None, factor=4, **kw) -> LinearOperator:
    """MATLAB antialiased bicubic by ``factor`` (DPS/DAPS SR); H and W must be multiples of it."""
    return BicubicDownsample(factor, in_shape=shape, **kw)


@_entry("blur_downsample")
def _blur_downsample(
    shape, *, batch=1, generator=None, seeds=None, sigma=2.0, size=13, padding="reflect", factor=4, filter="area", **kw
) -> LinearOperator:
    """Gaussian blur then downsampling (classical SR degradation), a composition."""
    down = AreaDownsample(factor) if filter == "area" else BicubicDownsample(factor)
    return Composed([Blur.gaussian(sigma, size, padding, in_shape=shape), down], **kw)


@_entry("inpaint_box")
def _inpaint_box(
    shape, *, batch=1, generator=None, seeds=None, box=None, position="random", margin=None, **kw
) -> LinearOperator:
    """Box hole (default half the image, random position with a 1/16 margin, as DPS's 128 px in 256)."""
    return Inpaint.box(shape, box, position, margin, batch=batch, generator=generator, seeds=seeds, **kw)


@_entry("inpaint_random")
def _inpaint_random(shape, *, batch=1, generator=None, seeds=None, drop=0.7, **kw) -> LinearOperator:
    """Random pixels; ``drop`` is the fraction REMOVED (DAPS 0.7; deepinv's kept fraction is 1 - drop)."""
    return Inpaint.random(shape, drop, batch=batch, generator=generator, seeds=seeds, **kw)


@_entry("inpaint_freeform")
def _inpaint_freeform(shape, *, batch=1, generator=None, seeds=None, **kw) -> LinearOperator:
    """Free-form brush strokes (seeded); ``strokes``, ``vertices``, ``width``, ``length`` tune them."""
    return Inpaint.freeform(shape, batch=batch, generator=generator, seeds=seeds, **kw)


@_entry("inpaint_mask")
def _inpaint_mask(shape, *, batch=1, generator=None, seeds=None, mask=None, invert=False, **kw) -> LinearOperator:
    """Mask from a grayscale PNG/.npy path or a tensor (white/1 = keep); default: a centred half-size box."""
    if mask is None:
        mask = box_mask(shape[-2], shape[-1])
    return Inpaint(mask, invert=invert, in_shape=shape, **kw)


@_entry("colorize")
def _colorize(shape, *, batch=1, generator=None, seeds=None, weights="rec601", **kw) -> LinearOperator:
    """RGB -> luma (BT.601 weights, or ``weights="mean"`` as DDRM); needs 3 channels."""
    return Grayscale(weights, in_shape=shape, **kw)


@_entry("colour_mix")
def _colour_mix(shape, *, batch=1, generator=None, seeds=None, matrix=None, **kw) -> LinearOperator:
    """Per-pixel colour matrix (C_out, C); default averages neighbouring channels (RGB -> (R+G)/2, (G+B)/2)."""
    if matrix is None:
        c = shape[0]
        matrix = torch.eye(1) if c == 1 else 0.5 * (torch.eye(c - 1, c) + torch.eye(c)[1:])
    return ColourMix(matrix, in_shape=shape, **kw)


def list_operators() -> list[str]:
    """Sorted registry names."""
    return sorted(OPERATORS)


def describe(name: str) -> str:
    """One-line description of a registry entry."""
    return (_lookup(name).__doc__ or "").strip().splitlines()[0]


def _lookup(name: str) -> Factory:
    if name not in OPERATORS:
        raise fail(f"unknown operator {name!r}; choose one of {', '.join(list_operators())}")
    return OPERATORS[name]


def size_multiple(name: str, **params) -> int:
    """H and W of images for operator ``name`` must be multiples of this: the ``factor`` of the entries that
    down-sample (its default where ``params`` has none), 1 for the rest."""
    factor = inspect.signature(_lookup(name)).parameters.get("factor")
    return 1 if factor is None else check_int(params.get("factor", factor.default), "factor")


def fit_shape(name: str, shape: Sequence[int], **params) -> tuple[int, int, int]:
    """Round H and W of ``shape`` (C, H, W) up to sizes operator ``name`` accepts."""
    m = size_multiple(name, **params)
    c, h, w = (int(s) for s in shape)
    return c, round_up(h, m), round_up(w, m)


def make_operator(
    name: str,
    shape: Sequence[int] = (3, 256, 256),
    batch: int = 1,
    generator: GeneratorLike = None,
    seeds: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    **params,
) -> LinearOperator:
    """Build registry operator ``name`` for (C, H, W) images.

    :param name: a key of :data:`OPERATORS` (see :func:`list_operators`).
    :param shape: (C, H, W) image shape.
    :param batch: number of images B; random operators draw one kernel/mask per image.
    :param generator: CPU ``torch.Generator`` (or a list of B) for random parameters.
    :param seeds: B integer seeds; image i's kernel/mask depends only on ``seeds[i]``.
    :param device: where to put the operator's buffers (they also follow the input on use).
    :param params: the entry's parameters plus ``sigma_y`` ([-1, 1] units), ``noise`` (``"gaussian"``,
        ``"poisson"``, ``"none"``), ``rate`` (Poisson), ``cg_max_iter``, ``cg_tol``.
    :return: a :class:`~pagoda_inverse.ops.base.LinearOperator`.
    """
    factory = _lookup(name)
    if len(tuple(shape)) != 3:
        raise fail(f"shape must be (C, H, W), got {tuple(shape)}")
    shape = tuple(check_int(s, "shape") for s in shape)
    batch = check_int(batch, "batch")
    if seeds is not None and len(seeds) != batch:
        batch = len(seeds) if batch == 1 else batch
    op = factory(shape, batch=batch, generator=generator, seeds=seeds, **params)
    check_divisible(shape, op.size_multiple)
    return op.to(device) if device is not None else op
