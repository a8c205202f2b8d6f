r"""Downsampling by an integer factor: area (average pooling) and MATLAB-style antialiased bicubic.

Both are separable, :math:`A x = M_H\, x\, M_W^\top`, with full-row-rank :math:`M`, so the pseudo-inverse and the
Tikhonov solve are exact closed forms:

- area (DDRM ``sr4``): :math:`M` averages blocks of ``factor`` pixels; :math:`A A^\top = I / s^2`, so
  ``A_dagger`` is nearest-neighbour upsampling;
- bicubic (DPS ``Resizer`` / MATLAB ``imresize(x, 1/s)``): cubic kernel ``a = -0.5`` stretched by ``s``
  (antialiasing), symmetric (edge-including) boundary; :math:`A^\dagger y = P_H\, y\, P_W^\top` with
  :math:`P = M^\top (M M^\top)^{-1}`.

H and W must be multiples of the factor (2, 4 and 8 are the usual ones; any integer >= 1 works).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import as_batch_scalar, check_choice, check_divisible, check_image, check_int
from .base import LinearOperator


def _cubic(x: torch.Tensor) -> torch.Tensor:
    ax = x.abs()
    near = 1.5 * ax**3 - 2.5 * ax**2 + 1
    far = -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return torch.where(ax <= 1, near, torch.where(ax <= 2, far, torch.zeros_like(ax)))


def bicubic_matrix(n: int, factor: int) -> torch.Tensor:
    """The (n / factor, n) float64 matrix of MATLAB's ``imresize`` by ``1 / factor`` along one axis.

    :param n: input length, a multiple of ``factor``.
    :param factor: integer downscaling factor >= 1.
    """
    m = n // factor
    width = 4.0 * factor  # antialiasing stretches the cubic's support by the factor
    i = torch.arange(1, m + 1, dtype=torch.float64)
    u = i * factor + 0.5 * (1 - factor)  # 1-based input coordinate of each output centre
    left = torch.floor(u - width / 2)
    taps = int(width) + 2
    j = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    w = _cubic((u[:, None] - j) / factor) / factor
    w = w / w.sum(1, keepdim=True)
    # Symmetric boundary (MATLAB): index k maps into [1, n] with period 2n, edge pixel repeated.
    k = (j.long() - 1) % (2 * n)
    k = torch.where(k >= n, 2 * n - 1 - k, k)
    mat = torch.zeros(m, n, dtype=torch.float64)
    mat.scatter_add_(1, k, w)
    return mat


class _Downsample(LinearOperator):
    """Down-sampling by an integer ``factor`` dividing H and W: the shapes and checks the two kinds share."""

    exact_dagger = True
    tileable = True

    def __init__(self, factor: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.factor = check_int(factor, "factor")
        self.size_multiple = self.factor
        if self.in_shape is not None:
            check_divisible(self.in_shape, self.factor)

    def out_shape(self, in_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
        shape = tuple(self.in_shape if in_shape is None else in_shape)
        check_divisible(shape, self.factor)
        return (*shape[:-2], shape[-2] // self.factor, shape[-1] // self.factor)

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class AreaDownsample(_Downsample):
    """Average pooling over ``factor x factor`` blocks (the DDRM/DDNM ``sr_averagepooling`` operator).

    :param factor: integer factor >= 1 dividing H and W (2, 4, 8 typical).
    :param kwargs: options of :class:`~pagoda_inverse.ops.base.LinearOperator` (``in_shape``, ``sigma_y``, ...).

    >>> op = AreaDownsample(2)
    >>> y = op.A(torch.arange(16.).reshape(1, 1, 4, 4))
    >>> y.tolist(), tuple(op.A_dagger(y).shape)
    ([[[[2.5, 4.5], [10.5, 12.5]]]], (1, 1, 4, 4))
    """

    # 10 bilinear back-projection steps leave a residual under 1% of the initial one (tests/solvers/test_contract.py);
    # the exact projection then finishes.
    back_project_steps = 10

    def _upsample(self, y: torch.Tensor) -> torch.Tensor:
        b, c, h, w = y.shape
        s = self.factor
        return y[:, :, :, None, :, None].expand(b, c, h, s, w, s).reshape(b, c, h * s, w * s)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x)
        check_divisible(x.shape, self.factor)
        return F.avg_pool2d(x, self.factor) if self.factor > 1 else x

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        check_image(y, "y")
        return self._upsample(y) / self.factor**2

    def gram_solve(self, r: torch.Tensor, gamma: float | torch.Tensor = 0.0) -> torch.Tensor:
        return r / (1.0 / self.factor**2 + as_batch_scalar(gamma, r, "gamma"))

    def A_dagger(self, y: torch.Tensor, max_iter: int | None = None, tol: float | None = None) -> torch.Tensor:
        check_image(y, "y")
        return self._upsample(y)

    def back_project(self, r: torch.Tensor) -> torch.Tensor:
        """Bilinear up-sampling of the residual (half-pixel centres): the correction is smooth, not block-wise."""
        check_image(r, "r")
        if self.factor == 1:
            return r
        return F.interpolate(r, scale_factor=self.factor, mode="bilinear", align_corners=False)


class BicubicDownsample(_Downsample):
    """MATLAB-style antialiased bicubic downsampling (DPS/DAPS ``Resizer``, deepinv ``DownsamplingMatlab``).

    The 1-D matrices are built for each image size on first use and cached per device and dtype.

    :param factor: integer factor >= 1 dividing H and W (2, 4, 8 typical).
    :param kwargs: options of :class:`~pagoda_inverse.ops.base.LinearOperator`.

    >>> op = BicubicDownsample(4)
    >>> x = torch.rand(2, 3, 16, 12) * 2 - 1
    >>> y = op.A(x)
    >>> tuple(y.shape), bool(torch.allclose(op.A(op.A_dagger(y)), y, atol=1e-5))
    ((2, 3, 4, 3), True)
    """

    def __init__(self, factor: int = 4, **kwargs):
        super().__init__(factor, **kwargs)
        self._cache: dict = {}

    def _mats(self, h: int, w: int, like: torch.Tensor) -> dict[str, torch.Tensor]:
        key = (h, w, like.device, like.dtype)
        if key not in self._cache:
            out = {}
            for axis, n in (("h", h), ("w", w)):
                m = bicubic_matrix(n, self.factor)
                gram = m @ m.T
                out[f"M{axis}"] = m
                out[f"P{axis}"] = m.T @ torch.linalg.solve(gram, torch.eye(len(gram), dtype=gram.dtype))
                out[f"mu{axis}"], out[f"V{axis}"] = torch.linalg.eigh(gram)
            self._cache[key] = {k: t.to(device=like.device, dtype=like.dtype) for k, t in out.items()}
        return self._cache[key]

    def A(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x)
        check_divisible(x.shape, self.factor)
        m = self._mats(x.shape[-2], x.shape[-1], x)
        return m["Mh"] @ x @ m["Mw"].T

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        check_image(y, "y")
        m = self._mats(y.shape[-2] * self.factor, y.shape[-1] * self.factor, y)
        return m["Mh"].T @ y @ m["Mw"]

    def A_dagger(self, y: torch.Tensor, max_iter: int | None = None, tol: float | None = None) -> torch.Tensor:
        check_image(y, "y")
        m = self._mats(y.shape[-2] * self.factor, y.shape[-1] * self.factor, y)
        return m["Ph"] @ y @ m["Pw"].T

    def gram_solve(self, r: torch.Tensor, gamma: float | torch.Tensor = 0.0) -> torch.Tensor:
        m = self._mats(r.shape[-2] * self.factor, r.shape[-1] * self.factor, r)
        g = as_batch_scalar(gamma, r, "gamma")
        coef = m["Vh"].T @ r @ m["Vw"]
        coef = coef / (m["muh"][:, None] * m["muw"][None, :] + g)
        return m["Vh"] @ coef @ m["Vw"].T


def downsample(factor: int = 4, filter: str = "area", **kwargs) -> LinearOperator:
    """Build :class:`AreaDownsample` (``filter="area"``) or :class:`BicubicDownsample` (``filter="bicubic"``).

    :param factor: integer factor dividing H and W.
    :param filter: ``"area"`` or ``"bicubic"``.
    :param kwargs: options of :class:`~pagoda_inverse.ops.base.LinearOperator`.
    """
    check_choice(filter, "filter", ("area", "bicubic"))
    return (AreaDownsample if filter == "area" else BicubicDownsample)(factor, **kwargs)
