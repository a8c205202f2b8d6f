r"""Colour degradations: a per-pixel channel-mixing matrix :math:`y_{:, i, j} = M x_{:, i, j}`.

:class:`Grayscale` (colorization) is the 1x3 case. With the SVD :math:`M = U S V^\top` the pseudo-inverse and the
Tikhonov solve are exact per-pixel closed forms (singular values below ``rcond * max`` count as zero).
"""

from __future__ import annotations

import numpy as np
import torch

from ._checks import as_batch_scalar, check_image, check_positive, fail
from .base import LinearOperator

#: Luma weights (ITU-R BT.601), as in deepinv's ``Decolorize(srf="rec601")``.
REC601 = (0.299, 0.587, 0.114)


class ColourMix(LinearOperator):
    r"""Per-pixel linear colour transform by a (C_out, C_in) matrix.

    :param matrix: (C_out, C_in) tensor/array of finite values.
    :param rcond: relative threshold for zero singular values in ``A_dagger``.
    :param kwargs: options of :class:`~pagoda_inverse.ops.base.LinearOperator`.

    >>> op = ColourMix([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    >>> y = op.A(torch.ones(1, 3, 2, 2))
    >>> tuple(y.shape), y[0, :, 0, 0].tolist()
    ((1, 2, 2, 2), [1.0, 1.0])
    """

    exact_dagger = True
    tileable = True

    def __init__(self, matrix, rcond: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        m = torch.as_tensor(np.asarray(matrix) if not isinstance(matrix, torch.Tensor) else matrix)
        m = m.detach().to("cpu", torch.float64)
        if m.ndim != 2 or m.numel() == 0:
            raise fail(f"matrix must be a 2-D (C_out, C_in) array, got shape {tuple(m.shape)}")
        if not bool(torch.isfinite(m).all()):
            raise fail("matrix contains NaN or inf values")
        if self.in_shape is not None and m.shape[1] != self.in_shape[0]:
            raise fail(f"matrix has {m.shape[1]} input channels but the images have {self.in_shape[0]}")
        check_positive(rcond, "rcond")
        u, s, vh = torch.linalg.svd(m, full_matrices=False)
        keep = s > rcond * s.max()
        s_inv = torch.where(keep, 1.0 / s.clamp_min(1e-300), torch.zeros_like(s))
        self.register_buffer("matrix", m)
        self.register_buffer("pinv", vh.T @ torch.diag(s_inv) @ u.T)
        self.register_buffer("_u", u)
        self.register_buffer("_s2", torch.where(keep, s**2, torch.zeros_like(s)))

    def out_shape(self, in_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
        shape = tuple(self.in_shape if in_shape is None else in_shape)
        return (*shape[:-3], self.matrix.shape[0], *shape[-2:])

    @staticmethod
    def _mix(mat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("oc,bchw->bohw", mat.to(device=x.device, dtype=x.dtype), x)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "x", self.matrix.shape[1])
        return self._mix(self.matrix, x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        check_image(y, "y", self.matrix.shape[0])
        return self._mix(self.matrix.T, y)

    def A_dagger(self, y: torch.Tensor, max_iter: int | None = None, tol: float | None = None) -> torch.Tensor:
        check_image(y, "y", self.matrix.shape[0])
        return self._mix(self.pinv, y)

    def gram_solve(self, r: torch.Tensor, gamma: float | torch.Tensor = 0.0) -> torch.Tensor:
        # M M^T = U S^2 U^T (plus a null space when C_out > rank): invert on the range, pseudo-inverse otherwise.
        check_image(r, "r", self.matrix.shape[0])
        g = as_batch_scalar(gamma, r, "gamma")
        u = self._u.to(device=r.device, dtype=r.dtype)
        s2 = self._s2.to(device=r.device, dtype=r.dtype)
        coef = torch.einsum("ok,bohw->bkhw", u, r)
        if isinstance(g, float) and g == 0.0:
            coef = coef * torch.where(s2 > 0, 1.0 / s2.clamp_min(torch.finfo(r.dtype).tiny), 0.0)[:, None, None]
            return torch.einsum("ok,bkhw->bohw", u, coef)
        inside = torch.einsum("ok,bkhw->bohw", u, coef / (s2[:, None, None] + g))
        outside = (r - torch.einsum("ok,bkhw->bohw", u, coef)) / g  # component orthogonal to range(U)
        return inside + outside

    def extra_repr(self) -> str:
        return f"matrix={tuple(self.matrix.shape)}"


class Grayscale(ColourMix):
    """RGB -> luma (colorization): ``y = w_r R + w_g G + w_b B``, one output channel.

    :param weights: ``"rec601"`` (0.299, 0.587, 0.114; deepinv's ``Decolorize``), ``"mean"`` (1/3 each; DDRM/DDNM's
        ``color``) or three numbers.
    :param kwargs: options of :class:`~pagoda_inverse.ops.base.LinearOperator`.

    ``A_dagger`` spreads the luma back as ``w y / |w|^2`` (a gray image for the mean weights; tinted for rec601);
    the solvers start from :meth:`initial_estimate`, the luma copied to every channel (scaled by ``1 / sum(w)``),
    which is just as consistent and has no tint. Noiseless data consistency corrects the same way
    (:meth:`back_project`): it replaces an estimate's luma and keeps its chroma, where the orthogonal projection
    would add the luma error as a tint.

    >>> op = Grayscale()
    >>> y = op.A(torch.ones(1, 3, 2, 2))
    >>> tuple(y.shape), round(float(y[0, 0, 0, 0]), 6)
    ((1, 1, 2, 2), 1.0)
    """

    #: One :meth:`back_project` step is exact (``A B = I``), so noiseless data consistency is a luma replacement.
    back_project_steps = 1

    def __init__(self, weights: str | tuple[float, float, float] = "rec601", **kwargs):
        if isinstance(weights, str):
            if weights not in ("rec601", "mean"):
                raise fail(f"weights must be 'rec601', 'mean' or three numbers, got {weights!r}")
            w = REC601 if weights == "rec601" else (1 / 3, 1 / 3, 1 / 3)
        else:
            w = tuple(float(v) for v in weights)
            if len(w) != 3:
                raise fail(f"weights must have 3 entries (R, G, B), got {len(w)}")
        super().__init__([list(w)], **kwargs)

    def back_project(self, r: torch.Tensor) -> torch.Tensor:
        """A luma residual ``r`` ``[B, 1, H, W]`` added to every channel (``r / sum(w)``, an exact right inverse):
        the correction changes luma only, never chroma (R - Y, B - Y), unlike ``A_dagger``'s tinted ``w r / |w|^2``.

        >>> op = Grayscale()
        >>> x = torch.rand(1, 3, 4, 4) * 2 - 1
        >>> y = op.A(torch.rand(1, 3, 4, 4) * 2 - 1)
        >>> fixed = x + op.back_project(y - op.A(x))
        >>> consistent = torch.allclose(op.A(fixed), y, atol=1e-6)
        >>> same_chroma = torch.allclose(fixed - fixed.mean(1, keepdim=True), x - x.mean(1, keepdim=True), atol=1e-6)
        >>> bool(consistent), bool(same_chroma)
        (True, True)
        """
        return self.initial_estimate(r)

    def initial_estimate(self, y: torch.Tensor) -> torch.Tensor:
        """The luma in every channel, ``y / sum(w)``: consistent (``A x = y``) and colourless.

        >>> op = Grayscale()
        >>> y = op.A(torch.rand(1, 3, 4, 4))
        >>> x = op.initial_estimate(y)
        >>> tuple(x.shape), bool(torch.allclose(op.A(x), y, atol=1e-6)), bool(torch.equal(x[:, 0], x[:, 2]))
        ((1, 3, 4, 4), True, True)
        """
        total = float(self.matrix.sum())
        if abs(total) < 1e-8:
            return self.A_dagger(y)
        return (y / total).expand(-1, self.matrix.shape[1], -1, -1).contiguous()
