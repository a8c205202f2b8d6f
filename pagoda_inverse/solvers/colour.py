"""``colour_net``: colorization by the model's luma-to-colour network (the posterior-mean colour, one pass)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pagoda_inverse.ops.consistency import data_consistency
from pagoda_inverse.solvers.base import SolverResult, Timer, result
from pagoda_inverse.utils.errors import UserError


def solve_colour_net(
    model,
    op,
    y,
    *,
    cond=None,
    generator=None,
    callback=None,
    saturation: float = 1.0,
    consistency: bool = True,
    prior_std: float = 0.2,
) -> SolverResult:
    """``x = C(gray copy of y)`` with the model's colour network ``C`` (:mod:`pagoda_inverse.core.colour_net`), its
    chroma scaled by ``saturation``, then the data-consistency step (noiseless: the luma replaced by the measured
    one, the chroma kept).

    ``C`` regresses a crop's colour from its luma with a squared error, so it estimates ``E[x | y]`` on crops like
    its training crops: the PSNR-optimal colorization there (deterministic; use ``one_step`` for diverse samples).
    Images of any size whose sides are not a multiple of the U-Net's coarsest level are edge-padded and cropped back.

    :param saturation: ``x = gray + s (C(gray) - gray)``: ``s < 1`` blends toward the grayscale copy, which loses
        less where the network's colours are wrong (a whole photo is further from its training crops than a crop);
        the ``photo`` model ships the value chosen on its training photos.
    :param prior_std: the data-consistency prior around ``C``'s estimate when ``sigma_y > 0``.
    """
    if not 0 <= saturation <= 2:
        raise UserError(f"saturation must be in [0, 2], got {saturation}")
    timer = Timer()
    if model.colour is None:
        raise UserError(
            f"{model.path}: this model has no colour network (colour/); train one with 'pagoda-inv train colour' "
            f"or use --model photo"
        )
    gray = op.initial_estimate(y)  # the luma in every channel
    multiple = 2 ** (len(model.colour.net.config.channel_mult) - 1)
    h, w = gray.shape[-2:]
    pad = (0, -w % multiple, 0, -h % multiple)
    with torch.no_grad():
        x = model.colour(F.pad(gray, pad, mode="replicate") if any(pad) else gray)[..., :h, :w]
        x = gray + saturation * (x - gray)  # blend toward (s < 1) or away from the grayscale copy
        x = data_consistency(op, x, y, prior_std) if consistency else x
    return result(x[None], None, timer, "colour_net", 1)
