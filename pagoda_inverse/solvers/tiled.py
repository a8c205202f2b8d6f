"""Solve an inverse problem on an image of any size with a patch model, in overlapping tiles.

The image is covered by ``T x T`` tiles (``T`` = the model's resolution) on a grid of stride ``T - overlap``, the
last row and column flush with the border. Each batch of ``tile_batch`` tiles is solved with the operator restricted
to those tiles (:meth:`~pagoda_inverse.ops.base.LinearOperator.on_tiles`) and the matching crop of the
measurements; the tiles are blended with a raised-cosine window over the overlaps (weights sum to 1, so no seams;
each sample's deviation from its tile's mean is blended variance-preserving, so the std map has no dip there either),
and a final data-consistency step with the *whole-image* operator makes the result consistent with ``y`` across
tile borders (exactly when ``sigma_y = 0``). Memory is bounded by the tile batch plus a few whole-image buffers.

Fully convolutional solvers (:data:`WHOLE_IMAGE_SIDE`) see more context: an image whose sides fit their limit is
solved in one pass, a larger one in tiles of that side, one at a time.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable

import torch

from pagoda_inverse.ops.base import LinearOperator
from pagoda_inverse.ops.consistency import data_consistency
from pagoda_inverse.solvers.base import SolverResult, Timer
from pagoda_inverse.utils.errors import UserError

#: Solvers that take an image of any size, with the largest side solved in one pass (the colour network: its
#: attention then spans the whole photo, so one tile's colour guess never differs from its neighbour's).
WHOLE_IMAGE_SIDE = {"colour_net": 768}


def tile_corners(height: int, width: int, size: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners of ``size``-tiles covering ``height x width`` with the given stride, last tiles flush.

    >>> tile_corners(100, 64, 64, 48)
    [(0, 0), (36, 0)]
    """

    def starts(n: int) -> list[int]:
        last = n - size
        return sorted({*range(0, last, stride), last})

    return [(top, left) for top in starts(height) for left in starts(width)]


def blend_window(size: int, overlap: int) -> torch.Tensor:
    """``[size, size]`` weights: 1 inside, rising as ``sin^2`` over ``overlap`` pixels at each edge (never 0).

    >>> w = blend_window(16, 4)
    >>> round(float(w[0, 0]), 4), float(w[8, 8])
    (0.0014, 1.0)
    """
    ramp = torch.ones(size, dtype=torch.float64)
    if overlap > 0:
        u = (torch.arange(overlap, dtype=torch.float64) + 0.5) / overlap
        edge = torch.sin(0.5 * math.pi * u) ** 2
        ramp[:overlap] = edge
        ramp[size - overlap :] = torch.minimum(ramp[size - overlap :], edge.flip(0))
    return (ramp[:, None] * ramp[None, :]).float()


@torch.no_grad()
def solve_tiled(
    method: str | Callable[..., SolverResult],
    model,
    op: LinearOperator,
    y: torch.Tensor,
    *,
    image_shape: tuple[int, int, int] | None = None,
    overlap: int | None = None,
    tile_batch: int = 16,
    seed: int = 0,
    cond: torch.Tensor | None = None,
    prior_std: float = 0.2,
    callback: Callable[[dict], None] | None = None,
    **hparams,
) -> SolverResult:
    """Solve ``y = A x + n`` for one image ``x`` of ``image_shape = (C, H, W)`` tile by tile.

    :param method: a solver name of :data:`~pagoda_inverse.solvers.SOLVERS` (or a function with their signature).
    :param op: the whole-image operator (built for ``image_shape``); it must be tileable.
    :param image_shape: ``(C, H, W)`` of ``x``; default ``op.in_shape``.
    :param y: ``[1, C_y, H_y, W_y]`` measurements of the whole image.
    :param overlap: pixels shared by neighbouring tiles (blended; default a quarter of the tile); must keep the
        stride a multiple of the operator's ``size_multiple``.
    :param tile_batch: tiles per solver call (bounds the memory).
    :param seed: tile ``i`` uses the generator seeded with ``seed * 1_000_003 + i`` (reruns are identical).
    :param cond: ``[1, D]`` condition shared by every tile (``None``: unconditional).
    :param prior_std: the data-consistency prior width (as in ``one_step`` and ``encode_perturb``): of the final whole-image step, and of
        every tile's own step when the solver takes one.
    :param callback: called after each tile batch with ``{"step": tiles done, "total": tiles}``.
    :param hparams: the solver's hyper-parameters (e.g. ``samples``).
    :return: the blended estimate ``[1, C, H, W]``, samples ``[K, 1, C, H, W]``, no latents, and ``info`` with
        ``tiles``, ``tile`` (``None`` for one whole-image pass), ``overlap``, ``nfe`` (per tile) and ``seconds``.

    >>> import tempfile
    >>> from pagoda_inverse import load_model
    >>> from pagoda_inverse.core.random_model import write_random_model
    >>> from pagoda_inverse.ops import make_operator
    >>> model = load_model(write_random_model(tempfile.mkdtemp(), photo=True))  # a random model with 16x16 tiles
    >>> op = make_operator("downsample_area", shape=(3, 40, 56), factor=4)
    >>> res = solve_tiled("encode_perturb", model, op, torch.zeros(1, 3, 10, 14))
    >>> res.estimate.shape, res.info["tiles"], float((op.A(res.estimate)).abs().max()) < 1e-6
    (torch.Size([1, 3, 40, 56]), 15, True)
    """
    from pagoda_inverse.solvers import SOLVERS, solve

    timer = Timer()
    solver = functools.partial(solve, method) if isinstance(method, str) else method  # solve() checks the name
    function = getattr(SOLVERS.get(method), "fn", None) if isinstance(method, str) else method  # None: unknown
    if function is not None and "prior_std" in inspect.signature(function).parameters:
        hparams = {**hparams, "prior_std": prior_std}  # each tile's own consistency step uses the caller's width
    image_shape = image_shape or op.in_shape
    if image_shape is None:
        raise UserError("pass image_shape=(C, H, W): the operator does not record its input shape")
    size = model.resolution
    c, h, w = image_shape
    if isinstance(method, str) and method in WHOLE_IMAGE_SIDE:
        size, tile_batch = WHOLE_IMAGE_SIDE[method], 1
        if h <= size and w <= size:  # one pass over the whole image
            res = solver(
                model, op, y, cond=cond, generator=[torch.Generator().manual_seed(seed * 1_000_003)], **hparams
            )
            info = {**res.info, "seconds": timer.seconds, "tiles": 1, "tile": None, "overlap": 0}
            return SolverResult(res.estimate, res.samples, None, info)
    overlap = size // 4 if overlap is None else overlap
    stride = size - overlap
    multiple = op.size_multiple
    if not 0 <= overlap < size or stride % multiple:
        raise UserError(f"overlap {overlap} must be in [0, {size}) with {size} - overlap a multiple of {multiple}")
    if h < size or w < size:
        raise UserError(f"the image is {w}x{h}; tiled solving needs at least {size}x{size} (the model's tile)")
    corners = tile_corners(h, w, size, stride)
    scale = op.out_shape((c, size, size))[-1] / size  # measurement pixels per image pixel
    ms = round(size * scale)
    window = blend_window(size, overlap)
    total = mean = estimate = weight = weight_sq = None
    info: dict = {}
    for b0 in range(0, len(corners), tile_batch):
        batch = corners[b0 : b0 + tile_batch]
        # Measurements of these tiles, and the operator restricted to them.
        y_t = torch.cat([y[..., round(top * scale) :, round(left * scale) :][..., :ms, :ms] for top, left in batch])
        op_t = op.on_tiles(batch, size)
        gens = [torch.Generator().manual_seed(seed * 1_000_003 + b0 + i) for i in range(len(batch))]
        c_t = None if cond is None else cond.expand(len(batch), -1)
        res = solver(model, op_t, y_t, cond=c_t, generator=gens, **hparams)
        info = res.info
        if total is None:
            total = torch.zeros(len(res.samples), 1, c, h, w, device=res.samples.device)  # sum of w * deviation
            mean = torch.zeros(1, c, h, w, device=res.samples.device)  # sum of w * tile mean
            estimate = torch.zeros_like(mean)  # sum of w * tile estimate (the mean, or e.g. one_step's shrunk one)
            weight = torch.zeros(1, 1, h, w, device=res.samples.device)  # sum of w
            weight_sq = torch.zeros(1, 1, h, w, device=res.samples.device)  # sum of w^2
            window = window.to(res.samples.device)
        # Accumulate each tile's window-weighted mean over its samples and the samples' deviations from it.
        for i, (top, left) in enumerate(batch):
            tile_mean = res.samples[:, i].mean(0)
            total[:, 0, :, top : top + size, left : left + size] += (res.samples[:, i] - tile_mean) * window
            mean[0, :, top : top + size, left : left + size] += tile_mean * window
            estimate[0, :, top : top + size, left : left + size] += res.estimate[i] * window
            weight[0, 0, top : top + size, left : left + size] += window
            weight_sq[0, 0, top : top + size, left : left + size] += window**2
        if callback is not None:
            callback({"step": min(b0 + tile_batch, len(corners)), "total": len(corners)})
    # The tiles' samples are independent (their own noise), so blending whole samples with weights a_i (sum 1)
    # would give a pixel the variance sum(a_i^2 sigma_i^2): half of it in the middle of an overlap, and a std map
    # with dark bands at every seam. Blending per-tile std maps instead would give the right map, but not samples
    # that have it (the samples grid would still be flatter at the seams). So the means are blended with a_i and the
    # deviations with a_i / sqrt(sum a_j^2): each pixel's variance is then sum(a_i^2 sigma_i^2) / sum(a_i^2), an
    # average of its tiles' variances (no dip), the samples' mean is the blended tile means, every sample is still
    # smooth across the seams, and the std map is the std of the samples written beside it.
    samples = mean / weight + total / weight_sq.sqrt()
    # One whole-image data-consistency step per sample: consistent across tile borders.
    samples = torch.stack([data_consistency(op, s, y, prior_std) for s in samples])
    estimate = data_consistency(op, estimate / weight, y, prior_std)  # the tiles' estimates, blended the same way
    out = {
        **info,
        "seconds": timer.seconds,
        "tiles": len(corners),
        "tile": size,
        "overlap": overlap,
        "measurement_scale": scale,
    }
    return SolverResult(estimate, samples, None, out)
