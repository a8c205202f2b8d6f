r"""Composition :math:`A = A_k \cdots A_2 A_1` of linear operators (``ops[0]`` is applied first).

The adjoint is :math:`A_1^\top \cdots A_k^\top`. ``A_dagger`` and ``tikhonov`` use conjugate gradients (the
pseudo-inverse of a product is not the product of pseudo-inverses in general), except for a composition of one
operator. Noise is that of the last operator unless given; the inner operators' noise is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .base import LinearOperator
from .noise import NoiseModel


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
        flat: list[LinearOperator] = []
        for op in ops:
            flat.extend(op.ops if isinstance(op, Composed) else [op])
        if not flat:
            from ._checks import fail

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
