r"""Inpainting :math:`y = m \odot x` with a mask that may differ per image (1 = kept, 0 = dropped).

The measurement keeps the image's shape, with zeros at dropped pixels (deepinv's convention). Noise is added and
then masked again, so a noisy ``y`` stays in the range of ``A``. ``A`` is a diagonal projection: ``A_adjoint = A``,
``A_dagger = A`` for binary masks, and the Tikhonov solve is pixel-wise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from ._checks import as_batch_scalar, check_batch, check_image, fail
from .base import LinearOperator
from .masks import load_mask, make_masks
from .rng import GeneratorLike


def as_mask(mask, invert: bool = False) -> torch.Tensor:
    """Validate a mask and return it as a float64 (Bm, Cm, H, W) tensor with values in [0, 1].

    :param mask: (H, W), (C, H, W) or (B, C, H, W) tensor/array (B per-image masks, C per-channel; either may be 1),
        or a path to a grayscale PNG / ``.npy`` file (see :func:`~pagoda_inverse.ops.masks.load_mask`).
    :param invert: swap kept and dropped pixels (for masks where 1 marks the hole).
    """
    if isinstance(mask, (str, os.PathLike)):
        m = load_mask(mask)
    else:
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
        m = m.detach().to("cpu", torch.float64)
    if m.ndim not in (2, 3, 4) or m.numel() == 0:
        raise fail(f"mask must have shape (H, W), (C, H, W) or (B, C, H, W), got {tuple(m.shape)}")
    if not bool(torch.isfinite(m).all()) or bool((m < 0).any()) or bool((m > 1).any()):
        raise fail("mask values must lie in [0, 1] (1 = keep, 0 = inpaint) with no NaN")
    m = m.reshape(*[1] * (4 - m.ndim), *m.shape)  # the missing leading axes, of size 1
    return (1 - m if invert else m).contiguous()


class Inpaint(LinearOperator):
    r"""Masking :math:`y = m \odot x`, one mask per image or shared.

    :param mask: see :func:`as_mask`; a path reads a grayscale PNG (white = keep).
    :param invert: the file/tensor marks holes with 1 (LaMa's masks); flip it.
    :param kwargs: options of :class:`~pagoda_inverse.ops.base.LinearOperator`.

    >>> op = Inpaint.random((3, 8, 8), drop=0.5, batch=2, seeds=[0, 1])
    >>> x = torch.ones(2, 3, 8, 8)
    >>> [int(v) for v in op.A(x).sum(dim=(1, 2, 3))], bool(torch.equal(op.A_dagger(op.A(x)), op.A(x)))
    ([96, 96], True)
    """

    exact_dagger = True

    def __init__(self, mask, *, invert: bool = False, **kwargs):
        super().__init__(**kwargs)
        m = as_mask(mask, invert)
        if self.in_shape is not None:
            c, h, w = self.in_shape
            if tuple(m.shape[-2:]) != (h, w) or m.shape[1] not in (1, c):
                raise fail(
                    f"mask has shape {tuple(m.shape)} but images are {c}x{h}x{w}; expected (B, 1 or {c}, {h}, {w})"
                )
        self.register_buffer("mask", m)
        self.binary = bool(((m == 0) | (m == 1)).all())
        self._cast: dict = {}

    # ---- constructors ----------------------------------------------------------------------------------------------

    @classmethod
    def _made(cls, kind: str, shape, batch, generator, seeds, params, kwargs) -> Inpaint:
        c, h, w = shape
        return cls(make_masks(kind, batch, h, w, generator, seeds, **params), in_shape=shape, **kwargs)

    @classmethod
    def box(
        cls,
        shape: tuple[int, int, int],
        box=None,
        position: str = "center",
        margin: int | None = None,
        batch: int = 1,
        generator: GeneratorLike = None,
        seeds: Sequence[int] | None = None,
        **kwargs,
    ) -> Inpaint:
        """Box hole, centred or at a seeded random position (DPS: ``box=128, position="random"`` at 256).

        :param shape: (C, H, W). See :func:`~pagoda_inverse.ops.masks.box_mask` for the other parameters.
        """
        return cls._made(
            "box", shape, batch, generator, seeds, {"box": box, "position": position, "margin": margin}, kwargs
        )

    @classmethod
    def random(
        cls,
        shape: tuple[int, int, int],
        drop: float = 0.7,
        batch: int = 1,
        generator: GeneratorLike = None,
        seeds: Sequence[int] | None = None,
        **kwargs,
    ) -> Inpaint:
        """Random pixels: ``drop`` is the fraction **dropped** (DAPS 0.7, DPS paper 0.92; deepinv's kept = 1 - drop).

        :param shape: (C, H, W).
        """
        return cls._made("random", shape, batch, generator, seeds, {"drop": drop}, kwargs)

    @classmethod
    def freeform(
        cls,
        shape: tuple[int, int, int],
        batch: int = 1,
        generator: GeneratorLike = None,
        seeds: Sequence[int] | None = None,
        **params,
    ) -> Inpaint:
        """Free-form strokes; ``params`` go to :func:`~pagoda_inverse.ops.masks.freeform_mask` or the base class.

        :param shape: (C, H, W).
        """
        mask_keys = ("strokes", "vertices", "width", "length")
        mask_params = {k: params.pop(k) for k in mask_keys if k in params}
        return cls._made("freeform", shape, batch, generator, seeds, mask_params, params)

    @classmethod
    def from_file(cls, path: str | os.PathLike, invert: bool = False, **kwargs) -> Inpaint:
        """Mask read from a grayscale PNG (white = keep unless ``invert``) or a ``.npy`` file (no pickle)."""
        return cls(path, invert=invert, **kwargs)

    # ---- the operator ----------------------------------------------------------------------------------------------

    def _mask_for(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x)
        m = self.mask
        if tuple(m.shape[-2:]) != tuple(x.shape[-2:]) or m.shape[1] not in (1, x.shape[1]):
            raise fail(
                f"mask has shape {tuple(m.shape)} but the images are {tuple(x.shape)}; the mask must be "
                f"(B, 1 or C, H, W) with the images' H and W"
            )
        check_batch(m.shape[0], x.shape[0], "mask")
        key = (x.device, x.dtype)
        cached = self._cast.get(key)
        if cached is None or cached[0] is not m:  # re-cast when the buffer was replaced or moved
            cached = self._cast[key] = (m, m.to(device=x.device, dtype=x.dtype))
        return cached[1]

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._mask_for(x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y * self._mask_for(y)

    def _restrict(self, y: torch.Tensor) -> torch.Tensor:
        return y * self._mask_for(y)

    def gram_solve(self, r: torch.Tensor, gamma: float | torch.Tensor = 0.0) -> torch.Tensor:
        m2 = self._mask_for(r) ** 2
        g = as_batch_scalar(gamma, r, "gamma")
        if isinstance(g, float) and g == 0.0:
            return torch.where(m2 > 0, r / m2.clamp_min(torch.finfo(r.dtype).tiny), torch.zeros_like(r))
        return r / (m2 + g)

    def A_dagger(self, y: torch.Tensor, max_iter: int | None = None, tol: float | None = None) -> torch.Tensor:
        m = self._mask_for(y)
        if self.binary:
            return y * m
        return torch.where(m > 0, y / m.clamp_min(torch.finfo(y.dtype).tiny), torch.zeros_like(y))

    def on_tiles(self, corners, size: int) -> Inpaint:
        """The mask cropped to each tile: ``[len(corners), 1 or C, size, size]`` (one image's mask, or a shared one)."""
        if self.mask.shape[0] != 1:
            raise fail(f"tiles need one mask for the image, got {self.mask.shape[0]}")
        mask = torch.cat([self.mask[..., top : top + size, left : left + size] for top, left in corners])
        kwargs = {"noise": self.noise_model, "cg_max_iter": self.cg_max_iter, "cg_tol": self.cg_tol}
        return Inpaint(mask, in_shape=None if self.in_shape is None else (self.in_shape[0], size, size), **kwargs)

    def extra_repr(self) -> str:
        return f"mask={tuple(self.mask.shape)}"
