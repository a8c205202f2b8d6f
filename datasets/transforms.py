"""Pixel-range conversions and the resampling used to build training pairs.

Inside the library images are float tensors in ``[-1, 1]`` (the EDM / PaGoDA convention); on disk
and in the dataset they are ``uint8`` in ``[0, 255]``. All functions take a single image ``[C, H, W]`` or a batch
``[B, C, H, W]`` and keep the leading dimensions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["area_pool", "area_resize", "from_model_range", "hflip", "pad_to", "to_model_range"]


def to_model_range(u8: torch.Tensor) -> torch.Tensor:
    """Map ``uint8`` pixels in ``[0, 255]`` to ``float32`` in ``[-1, 1]`` (``x = u8 / 127.5 - 1``).

    :param torch.Tensor u8: images ``[..., H, W]``, any integer dtype with values in ``[0, 255]`` (floats are taken
        as already being in ``[0, 255]``).
    :return: ``float32`` tensor of the same shape with values in ``[-1, 1]``; 0 maps to -1 and 255 to 1.

    >>> to_model_range(torch.tensor([0, 255], dtype=torch.uint8))
    tensor([-1.,  1.])
    """
    return u8.to(torch.float32) / 127.5 - 1.0


def from_model_range(x: torch.Tensor) -> torch.Tensor:
    """Map ``[-1, 1]`` floats back to ``uint8`` ``[0, 255]`` (clamped, rounded to nearest).

    Exact inverse of :func:`to_model_range` on its image: ``from_model_range(to_model_range(u)) == u``.

    :param torch.Tensor x: images ``[..., H, W]`` in model range; values outside ``[-1, 1]`` are clamped.
    :return: ``uint8`` tensor of the same shape.

    >>> from_model_range(torch.tensor([-1.5, -1.0, 0.0, 1.0]))
    tensor([  0,   0, 128, 255], dtype=torch.uint8)
    """
    return ((x.detach().to(torch.float32) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def pad_to(x: torch.Tensor, size: int, value: float = 0.0) -> torch.Tensor:
    """Pad the last two dims symmetrically to ``size x size`` (Fashion-MNIST: 28 -> 32 with 2 px each side).

    An odd difference puts the extra pixel at the bottom/right.

    :param torch.Tensor x: images ``[..., H, W]`` with ``H, W <= size``.
    :param int size: target height and width.
    :param float value: fill value, in the units of ``x`` (0 = black background for ``uint8``; use -1 for model range).
    :return: tensor ``[..., size, size]`` of the same dtype.
    :raises ValueError: if ``H`` or ``W`` is larger than ``size``.

    >>> pad_to(torch.ones(1, 28, 28, dtype=torch.uint8), 32).shape
    torch.Size([1, 32, 32])
    """
    h, w = x.shape[-2:]
    if h > size or w > size:
        raise ValueError(f"pad_to: image is {h}x{w}, larger than the target {size}x{size}; crop or resize it first")
    top, left = (size - h) // 2, (size - w) // 2
    pads = (left, size - w - left, top, size - h - top)
    if x.dtype.is_floating_point or x.dtype.is_complex:
        return F.pad(x, pads, value=value)
    # constant padding of integer tensors is not supported on every backend: build the canvas explicitly
    out = torch.full((*x.shape[:-2], size, size), value, dtype=x.dtype, device=x.device)
    out[..., top : top + h, left : left + w] = x
    return out


def area_pool(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Anti-aliased downsampling by exact area averaging (``avg_pool2d`` with ``kernel = stride = factor``).

    This is the teacher-resolution degradation used for PaGoDA training, identical by design to the ``area``
    downsample operator of :mod:`pagoda_inverse.ops`, so encode-decode super-resolution inverts exactly the
    training degradation. Each output pixel is the mean of a ``factor x factor`` block.

    :param torch.Tensor x: float images ``[C, H, W]`` or ``[B, C, H, W]`` (any range).
    :param int factor: positive integer dividing both ``H`` and ``W``; 1 returns ``x`` unchanged.
    :return: tensor ``[..., H // factor, W // factor]`` of the same dtype.
    :raises ValueError: if ``factor`` is not a positive integer dividing ``H`` and ``W``, or ``x`` is not 3-D/4-D.

    >>> area_pool(torch.arange(16.0).reshape(1, 1, 4, 4), 2)
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
    """
    if x.dim() not in (3, 4):
        raise ValueError(f"area_pool: expected [C, H, W] or [B, C, H, W], got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1 or h % factor or w % factor:
        ok = [f for f in range(1, min(h, w) + 1) if h % f == 0 and w % f == 0]
        raise ValueError(
            f"area_pool: factor {factor!r} does not divide the image size {h}x{w}; factors that work: {ok}"
        )
    if factor == 1:
        return x
    if not x.dtype.is_floating_point:
        raise ValueError(f"area_pool: expected a float tensor, got {x.dtype}; convert with to_model_range first")
    return F.avg_pool2d(x, kernel_size=factor, stride=factor)


def area_resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """``x [..., H, W]`` area-pooled to height ``resolution`` (:func:`area_pool` by ``H // resolution``) when ``H`` is
    a multiple of it; unchanged otherwise (callers check the shape they need).

    >>> area_resize(torch.zeros(2, 1, 32, 32), 8).shape, area_resize(torch.zeros(1, 1, 30, 30), 8).shape
    (torch.Size([2, 1, 8, 8]), torch.Size([1, 1, 30, 30]))
    """
    factor = x.shape[-2] // resolution
    return area_pool(x, factor) if factor >= 1 and x.shape[-2] == factor * resolution else x


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror images left-right (flip the last dim).

    :param torch.Tensor x: images ``[..., H, W]``.
    :return: flipped copy of the same shape and dtype.

    >>> hflip(torch.tensor([[1, 2, 3]]))
    tensor([[3, 2, 1]])
    """
    return torch.flip(x, dims=(-1,))
