r"""The operator contract: :class:`LinearOperator` with deepinv's names.

``y = forward(x) = noise(A(x))`` with ``x`` a (B, C, H, W) image batch in [-1, 1] and ``sigma_y`` in the same units.

Data-consistency helpers used by the solvers:

- :meth:`LinearOperator.A_dagger` -- the Moore-Penrose pseudo-inverse :math:`A^\dagger y` (closed form where the
  operator is diagonalisable, conjugate gradients on the normal equations otherwise);
- :meth:`LinearOperator.tikhonov` -- :math:`(A^\top A + \gamma I)^{-1}(A^\top y + \gamma x_0)`;
- :meth:`LinearOperator.project` -- :math:`x + A^\dagger(y - A x)`, the null-space projection.

:class:`Composed` (``compose(A1, ..., Ak)``, or ``Ak * ... * A1`` as in deepinv) chains operators: ``ops[0]`` first,
the adjoint :math:`A_1^\top \cdots A_k^\top`; ``A_dagger`` and ``tikhonov`` use conjugate gradients (the
pseudo-inverse of a product is not the product of pseudo-inverses in general) except for a chain of one; noise is the
last operator's unless given, the inner operators' noise is ignored.

Operators with a closed form implement :meth:`LinearOperator.gram_solve`,
:math:`(A A^\top + \gamma I)^{+} r`, and set ``exact_dagger = True``; the rest then follows from the push-through
identity :math:`(A^\top A + \gamma I)^{-1} A^\top = A^\top (A A^\top + \gamma I)^{-1}`, which avoids any cancellation.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch

from ._checks import as_batch_scalar, check_nonneg, fail
from ._linalg import conjugate_gradient
from .noise import NoiseModel, make_noise
from .rng import GeneratorLike


class LinearOperator(torch.nn.Module):
    r"""Base class of the linear degradation operators.

    Subclasses implement :meth:`A` and :meth:`A_adjoint` (and :meth:`out_shape` when the shape changes); operators
    with a closed-form :math:`(A A^\top + \gamma I)^{+}` also implement :meth:`gram_solve` and set
    ``exact_dagger = True``.

    :param in_shape: the (C, H, W) input shape when the operator is tied to one (masks, bicubic matrices), else None.
    :param noise: a :class:`~pagoda_inverse.ops.noise.NoiseModel`, or ``"gaussian"``/``"poisson"``/``"none"``.
    :param sigma_y: Gaussian noise standard deviation in [-1, 1] units (used when ``noise`` is a name).
    :param rate: Poisson rate (used when ``noise="poisson"``).
    :param cg_max_iter: iteration cap of the conjugate-gradient fallback.
    :param cg_tol: relative residual tolerance of the conjugate-gradient fallback.

    >>> op = Identity(sigma_y=0.1)
    >>> x = torch.zeros(2, 3, 5, 7)
    >>> op.A(x).shape, op.sigma_y, op.forward(x, generator=torch.Generator().manual_seed(0)).shape
    (torch.Size([2, 3, 5, 7]), 0.1, torch.Size([2, 3, 5, 7]))
    """

    #: True when A_dagger / tikhonov are exact closed forms (no iterative solver).
    exact_dagger: bool = False
    #: H and W must be multiples of this (downsampling factors).
    size_multiple: int = 1
    #: Translation-invariant, so :meth:`on_tiles` may apply it to image tiles unchanged.
    tileable: bool = False
    #: Iterations of :meth:`back_project` that noiseless data consistency runs before the exact projection
    #: (0: the projection alone); operators with a smooth approximate inverse set it.
    back_project_steps: int = 0

    def __init__(
        self,
        in_shape: tuple[int, int, int] | None = None,
        noise: str | NoiseModel | None = None,
        sigma_y: float | torch.Tensor = 0.0,
        rate: float | None = None,
        cg_max_iter: int = 100,
        cg_tol: float = 1e-6,
    ):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape) if in_shape is not None else None
        self.noise_model = make_noise("gaussian" if noise is None else noise, sigma_y, rate)
        self.cg_max_iter = int(cg_max_iter)
        self.cg_tol = float(cg_tol)

    # ----------------------------------------------------------------------------------------------------------------
    # The contract.

    def A(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Apply the noise-free operator.

        :param x: (B, C, H, W) images in [-1, 1].
        :return: (B, C', H', W') measurements, see :meth:`out_shape`.
        """
        raise NotImplementedError

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        r"""Apply the adjoint :math:`A^\top`, with :math:`\langle A x, y\rangle = \langle x, A^\top y\rangle`.

        :param y: (B, C', H', W') measurements.
        :return: (B, C, H, W) images.
        """
        raise NotImplementedError

    def out_shape(self, in_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """Shape of ``A(x)`` for an input of shape ``in_shape`` ((C, H, W) or (B, C, H, W)); default: unchanged.

        :param in_shape: input shape, default ``self.in_shape``.
        """
        return tuple(self.in_shape if in_shape is None else in_shape)

    @property
    def sigma_y(self) -> float | torch.Tensor:
        """Noise standard deviation in [-1, 1] units (0 when noise-free; per-image tensor when given so)."""
        return self.noise_model.sigma

    def noise(self, y: torch.Tensor, generator: GeneratorLike = None) -> torch.Tensor:
        """Add measurement noise to a clean measurement.

        :param y: clean measurement ``A(x)``.
        :param generator: a ``torch.Generator`` or a list of one generator per image (row i uses generator i).
        :return: noisy measurement, same shape.
        """
        return self._restrict(self.noise_model(y, generator=generator))

    def forward(self, x: torch.Tensor, generator: GeneratorLike = None) -> torch.Tensor:
        """Noisy measurement ``noise(A(x))``.

        :param x: (B, C, H, W) images in [-1, 1].
        :param generator: noise generator(s), see :meth:`noise`.
        """
        return self.noise(self.A(x), generator=generator)

    def _restrict(self, y: torch.Tensor) -> torch.Tensor:
        # Keeps noisy measurements in the range of A where that is a simple mask (inpainting); identity otherwise.
        return y

    # ----------------------------------------------------------------------------------------------------------------
    # Gram-matrix helpers and the data-consistency solvers.

    def A_adjoint_A(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`A^\top A x`."""
        return self.A_adjoint(self.A(x))

    def A_A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        r""":math:`A A^\top y`."""
        return self.A(self.A_adjoint(y))

    def gram_solve(self, r: torch.Tensor, gamma: float | torch.Tensor = 0.0) -> torch.Tensor:
        r"""Return :math:`(A A^\top + \gamma I)^{+} r` in measurement space (closed form where available).

        The generic version runs conjugate gradients (a pseudo-inverse only when ``gamma > 0`` or ``r`` lies in
        the range of :math:`A A^\top`).

        :param r: (B, C', H', W') measurement-space tensor.
        :param gamma: ``gamma >= 0``, a float or ``[B]`` per-image values.
        """
        g = as_batch_scalar(gamma, r, "gamma")
        return conjugate_gradient(lambda u: self.A_A_adjoint(u) + g * u, r, max_iter=self.cg_max_iter, tol=self.cg_tol)

    def A_dagger(self, y: torch.Tensor, max_iter: int | None = None, tol: float | None = None) -> torch.Tensor:
        r"""Pseudo-inverse :math:`A^\dagger y`, the minimum-norm least-squares solution of :math:`A x = y`.

        Exact for operators with ``exact_dagger``; otherwise conjugate gradients on
        :math:`A^\top A x = A^\top y` from :math:`x = 0` (which converges to the minimum-norm solution).

        :param y: (B, C', H', W') measurement.
        :param max_iter: CG iteration cap (default ``self.cg_max_iter``); ignored by closed forms.
        :param tol: CG relative tolerance (default ``self.cg_tol``); ignored by closed forms.
        :return: (B, C, H, W) image.
        """
        return self.tikhonov(y, None, 0.0, max_iter, tol)  # gamma = 0: the least-squares solve from x = 0

    def tikhonov(
        self,
        y: torch.Tensor,
        x0: torch.Tensor | None = None,
        gamma: float | torch.Tensor = 1.0,
        max_iter: int | None = None,
        tol: float | None = None,
    ) -> torch.Tensor:
        r"""Solve :math:`(A^\top A + \gamma I) x = A^\top y + \gamma x_0`.

        This is :math:`\arg\min_x \|A x - y\|^2 + \gamma \|x - x_0\|^2`, the data-consistency step with noise
        (typically ``gamma = sigma_y**2 / tau**2``). Computed as :math:`x_0 + (A^\top A + \gamma I)^{-1} A^\top
        (y - A x_0)`: closed form for ``exact_dagger`` operators, conjugate gradients otherwise.

        :param y: (B, C', H', W') measurement.
        :param x0: (B, C, H, W) prior estimate; default zeros.
        :param gamma: regularisation weight > 0 (0 gives ``project``), float or ``[B]`` per-image values.
        :param max_iter: CG iteration cap (default ``self.cg_max_iter``).
        :param tol: CG tolerance (default ``self.cg_tol``).
        :return: (B, C, H, W) image.
        """
        check_nonneg(gamma, "gamma")
        r = y if x0 is None else y - self.A(x0)
        if self.exact_dagger:
            d = self.A_adjoint(self.gram_solve(r, gamma))
        else:
            g = as_batch_scalar(gamma, r, "gamma")
            d = conjugate_gradient(
                lambda u: self.A_adjoint_A(u) + g * u,
                self.A_adjoint(r),
                max_iter=self.cg_max_iter if max_iter is None else max_iter,
                tol=self.cg_tol if tol is None else tol,
            )
        return d if x0 is None else x0 + d

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
        r"""deepinv's proximal step :math:`\arg\min_x \tfrac{\gamma}{2}\|A x - y\|^2 + \tfrac12\|x - z\|^2`.

        Equal to ``tikhonov(y, z, 1 / gamma)``.

        :param z: (B, C, H, W) point.
        :param y: measurement.
        :param gamma: step size > 0.
        """
        inv = 1.0 / gamma if isinstance(gamma, (int, float)) else 1.0 / torch.as_tensor(gamma)
        return self.tikhonov(y, z, inv)

    def back_project(self, r: torch.Tensor) -> torch.Tensor:
        """A smooth approximate right inverse ``B`` (``A B r ~ r``) applied to a residual ``r``, for iterative
        back-projection ``x <- x + B (y - A x)`` (Irani & Peleg 1991). Default: ``A_dagger``, with which one step is
        already the exact projection.

        :param r: (B, C, h, w) residual in measurement space; :return: (B, C, H, W).
        """
        return self.A_dagger(r)

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""Null-space projection :math:`x + A^\dagger (y - A x)`: the closest point to ``x`` with ``A x = y``.

        :param x: (B, C, H, W) estimate.
        :param y: noise-free measurement.
        """
        return x + self.A_dagger(y - self.A(x))

    # ----------------------------------------------------------------------------------------------------------------
    # Diagnostics and algebra.

    def adjointness_error(self, x: torch.Tensor, y: torch.Tensor) -> float:
        r"""Relative gap :math:`|\langle A x, y\rangle - \langle x, A^\top y\rangle| / (\|Ax\|\|y\|)`."""
        ax, aty = self.A(x), self.A_adjoint(y)
        lhs, rhs = (ax * y).sum(), (x * aty).sum()
        return float((lhs - rhs).abs() / (ax.norm() * y.norm()).clamp_min(torch.finfo(x.dtype).tiny))

    def initial_estimate(self, y: torch.Tensor) -> torch.Tensor:
        """A measurement-consistent image the solvers start from (``A x = y`` when noiseless): ``A_dagger(y)``.

        Operators with a better-suited consistent point override it (colorization: the luma copied to every
        channel instead of the pseudo-inverse's tinted ``w y / |w|^2``).
        """
        return self.A_dagger(y)

    def on_tiles(self, corners: Sequence[tuple[int, int]], size: int) -> LinearOperator:
        """This operator acting on a batch of ``size x size`` tiles of the image, tile ``i`` with its top-left
        corner at ``corners[i] = (top, left)`` (used by :func:`~pagoda_inverse.solvers.tiled.solve_tiled`).

        Translation-invariant operators (``tileable = True``: identity, colour, blur, down-sampling) return a copy
        for tile-sized images; a tile's border then sees the operator's own boundary rule (blur: reflect) instead
        of the neighbouring pixels, which the tile overlap and the final whole-image data-consistency step correct.
        Operators with per-pixel parameters (masks) override this and crop them.

        :raises ValueError: the operator cannot be split into tiles (e.g. compositions, deepinv physics).
        """
        if not self.tileable:
            raise fail(f"{type(self).__name__} cannot be solved in tiles; give an image of the model's size")
        op = copy.copy(self)  # shares parameters and buffers; only the shape changes
        if self.in_shape is not None:
            op.in_shape = (self.in_shape[0], size, size)
        return op

    def __mul__(self, other: LinearOperator) -> LinearOperator:
        """``self * other`` applies ``other`` first then ``self`` (deepinv's order); noise comes from ``self``."""
        return Composed([other, self], noise=self.noise_model)


class Identity(LinearOperator):
    """The identity (denoising): ``A = A_adjoint = A_dagger = I``.

    :param kwargs: noise options of :class:`LinearOperator`.

    >>> Identity().A_dagger(torch.ones(1, 1, 2, 2)).sum().item()
    4.0
    """

    exact_dagger = True
    tileable = True

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def gram_solve(self, r: torch.Tensor, gamma: float | torch.Tensor = 0.0) -> torch.Tensor:
        return r / (1.0 + as_batch_scalar(gamma, r, "gamma"))

    def A_dagger(self, y: torch.Tensor, max_iter: int | None = None, tol: float | None = None) -> torch.Tensor:
        return y


# --------------------------------------------------------------------------------------------------------------------
# Composition. It lives beside the base class because ``LinearOperator.__mul__`` builds it (a module of its own would
# import this one and be imported back).


class Composed(LinearOperator):
    """A chain of linear operators applied in order.

    :param ops: operators, ``ops[0]`` first; nested compositions are flattened.
    :param noise: noise model (or name) of the composition; default: the last operator's.
    :param kwargs: other options of :class:`~pagoda_inverse.ops.base.LinearOperator` (``sigma_y``, ``cg_max_iter``…).

    >>> from pagoda_inverse.ops import Blur, AreaDownsample
    >>> op = Composed([Blur.gaussian(1.0, 5), AreaDownsample(2)])
    >>> op.A(torch.zeros(1, 3, 8, 6)).shape
    torch.Size([1, 3, 4, 3])
    """

    def __init__(self, ops: Sequence[LinearOperator], noise: str | NoiseModel | None = None, **kwargs):
        flat = [inner for op in ops for inner in (op.ops if isinstance(op, Composed) else [op])]
        if not flat:
            raise fail("ops must contain at least one operator")
        if noise is None and "sigma_y" not in kwargs:
            noise = flat[-1].noise_model
        super().__init__(in_shape=flat[0].in_shape, noise=noise, **kwargs)
        self.ops = torch.nn.ModuleList(flat)
        self.size_multiple = math.lcm(*[op.size_multiple for op in flat])
        self.exact_dagger = len(flat) == 1 and flat[0].exact_dagger

    def out_shape(self, in_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
        shape = tuple(self.in_shape if in_shape is None else in_shape)
        for op in self.ops:
            shape = op.out_shape(shape)
        return shape

    def A(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x = op.A(x)
        return x

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        for op in reversed(self.ops):
            y = op.A_adjoint(y)
        return y

    def _restrict(self, y: torch.Tensor) -> torch.Tensor:
        return self.ops[-1]._restrict(y)

    def gram_solve(self, r: torch.Tensor, gamma: float | torch.Tensor = 0.0) -> torch.Tensor:
        if len(self.ops) == 1:
            return self.ops[0].gram_solve(r, gamma)
        return super().gram_solve(r, gamma)

    def A_dagger(self, y: torch.Tensor, max_iter: int | None = None, tol: float | None = None) -> torch.Tensor:
        if len(self.ops) == 1:
            return self.ops[0].A_dagger(y, max_iter, tol)
        return super().A_dagger(y, max_iter, tol)


def compose(*ops: LinearOperator, noise: str | NoiseModel | None = None, **kwargs) -> Composed:
    """``compose(A1, A2, ..., Ak)`` is :math:`A_k \\cdots A_1` (``A1`` applied first).

    :param ops: the operators in order of application.
    :param noise: noise model of the composition (default: the last operator's).
    :param kwargs: ``sigma_y``, ``rate``, ``cg_max_iter``, ``cg_tol``.
    """
    return Composed(list(ops), noise=noise, **kwargs)
