"""Generation with a PaGoDA model: one-step G (1 NFE, 2 with CFG) or the teacher's Heun PF-ODE sampler."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from pagoda_inverse.control.codec import decode
from pagoda_inverse.core.model import PagodaModel
from pagoda_inverse.core.ode import sample_heun
from pagoda_inverse.core.precond import guided_denoiser
from pagoda_inverse.utils.errors import UserError
from pagoda_inverse.utils.seeding import randn_for_seeds

SAMPLERS = ("onestep", "heun")


@torch.no_grad()
def generate(
    model: PagodaModel,
    cond: torch.Tensor,
    seeds: Sequence[int],
    *,
    cfg_scale: float = 1.0,
    sampler: str = "onestep",
    num_steps: int = 18,
    batch_size: int = 256,
    callback: Callable[[dict], None] | None = None,
) -> torch.Tensor:
    """Samples for ``cond`` (one row per seed), sample ``i`` a function of ``seeds[i]`` only.

    :param cond: ``[B, D]`` condition vectors (``model.class_condition``, ``model.prompt_condition`` or
        ``model.null_condition``), ``B = len(seeds)``.
    :param sampler: ``"onestep"``: ``G(z)`` at G's resolution; ``"heun"``: the teacher's PF-ODE at its resolution.
    :param num_steps: Heun grid points (``2 num_steps - 1`` evaluations, doubled by CFG).
    :return: ``[B, C, R, R]`` in ``[-1, 1]`` (clamped).

    >>> from pagoda_inverse.core.model import load_model
    >>> model = load_model("fmnist")
    >>> generate(model, model.class_condition(torch.tensor([9, 9])), [0, 1]).shape
    torch.Size([2, 1, 32, 32])
    """
    if sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    if len(cond) != len(seeds):
        raise ValueError(f"cond has {len(cond)} rows but {len(seeds)} seeds were given")
    net = model.generator if sampler == "onestep" else model.teacher
    if net is None:
        part = "decoder/ (one-step G)" if sampler == "onestep" else "teacher/"
        raise UserError(f"{model.path}: has no {part} checkpoint; use the other --sampler or another --model")
    shape = (model.channels, model.teacher_resolution, model.teacher_resolution)
    out = []
    for start in range(0, len(seeds), batch_size):
        z = randn_for_seeds(seeds[start : start + batch_size], shape)
        c = cond[start : start + batch_size]
        if sampler == "onestep":
            x = decode(model, z * model.generator.sigma_max, c, cfg_scale=cfg_scale)
        else:
            den = guided_denoiser(model.teacher, c, model.bank.null_embedding, cfg_scale)
            x = sample_heun(den, z, num_steps)
        out.append(x.clamp(-1, 1))
        if callback is not None:
            callback({"step": min(start + batch_size, len(seeds)), "total": len(seeds)})
    return torch.cat(out)
