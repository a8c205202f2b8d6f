"""Batched conjugate gradients: each image of the batch is its own system with its own step sizes."""

from __future__ import annotations

from collections.abc import Callable

import torch


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Per-image inner product, shaped (B, 1, 1, 1) for broadcasting.
    return (a * b).flatten(1).sum(1).reshape(-1, *([1] * (a.ndim - 1)))


def conjugate_gradient(
    apply: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> torch.Tensor:
    """Solve ``apply(x) = b`` for a symmetric positive semi-definite ``apply``, image by image.

    Starts from zero (which, in the range of ``A^T``, gives the minimum-norm least-squares solution of the normal
    equations). Stops when every image has ``||b - apply(x)|| <= tol * ||b||`` or after ``max_iter`` iterations.
    Images that converged are frozen (their step is zeroed), so one slow image does not disturb the others.

    :param apply: the linear map, (B, ...) -> (B, ...).
    :param b: right-hand side, (B, ...).
    :param max_iter: iteration cap.
    :param tol: relative residual tolerance.
    :return: the solution, shaped like ``b``.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = _dot(r, r)
    stop = (tol * tol) * _dot(b, b)
    tiny = torch.finfo(b.dtype).tiny
    for _ in range(max_iter):
        active = rs > stop
        if not bool(active.any()):
            break
        ap = apply(p)
        pap = _dot(p, ap)
        alpha = torch.where(active & (pap > tiny), rs / pap.clamp_min(tiny), torch.zeros_like(rs))
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = _dot(r, r)
        beta = torch.where(active, rs_new / rs.clamp_min(tiny), torch.zeros_like(rs))
        p = r + beta * p
        rs = torch.where(active, rs_new, rs)
    return x
