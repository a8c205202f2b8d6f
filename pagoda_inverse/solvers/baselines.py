"""Baselines with no learned prior: the pseudo-inverse, bicubic up-sampling and the grayscale copy (0 network
evaluations)."""

from __future__ import annotations

import torch.nn.functional as F

from pagoda_inverse.solvers.base import SolverResult, Timer, result


def solve_pinv(model, op, y, *, cond=None, generator=None, callback=None) -> SolverResult:
    """``x = A^+ y``: the minimum-norm least-squares solution (closed form or CG, see the operator)."""
    timer = Timer()
    return result(op.A_dagger(y)[None], None, timer, "pinv", 0)


def solve_bicubic(model, op, y, *, cond=None, generator=None, callback=None) -> SolverResult:
    """Bicubic up-sampling of a low-resolution measurement to the operator's input size (super-resolution only)."""
    timer = Timer()
    x = F.interpolate(y, size=tuple(op.in_shape[-2:]), mode="bicubic", align_corners=False)
    return result(x[None], None, timer, "bicubic", 0)


def solve_gray(model, op, y, *, cond=None, generator=None, callback=None) -> SolverResult:
    """The grayscale measurement copied to every colour channel (the colorization baseline)."""
    timer = Timer()
    return result(y.expand(-1, op.in_shape[0], -1, -1)[None], None, timer, "gray", 0)
