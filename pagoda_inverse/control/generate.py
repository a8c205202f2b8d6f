"""Generation with a PaGoDA model: one-step G (1 NFE; with CFG, 2 plus the guidance map's pass when the model has
one) or the teacher's Heun PF-ODE sampler, at the model's recommended guidance unless told otherwise."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from pagoda_inverse.core.generator import one_step
from pagoda_inverse.core.model import PagodaModel
from pagoda_inverse.core.ode import sample_heun
from pagoda_inverse.core.precond import guided_denoiser
from pagoda_inverse.utils.errors import UserError
from pagoda_inverse.utils.seeding import randn_for_seeds

SAMPLERS = ("onestep", "heun")


def recommended_cfg_scale(model: PagodaModel, cond: torch.Tensor | None = None) -> float:
    """The guidance scale ``w`` that :func:`generate` and ``pagoda-inv generate`` use when none is given: the model's
    recommended one (``model.generation_defaults``, the folder's ``generation.json``), else 1; also 1 for ``cond``
    made only of null conditions (unconditional samples, where guidance has no condition to act on).

    >>> from pagoda_inverse.core.model import load_model
    >>> model = load_model("fmnist")
    >>> recommended_cfg_scale(model), recommended_cfg_scale(model, model.null_condition(2))
    (3.0, 1.0)
    """
    if cond is not None and len(cond) and bool((cond == model.bank.null_embedding.to(cond.device)).all()):
        return 1.0
    return float(model.generation_defaults.get("cfg_scale", 1.0))


@torch.no_grad()
def generate(
    model: PagodaModel,
    cond: torch.Tensor,
    seeds: Sequence[int],
    *,
    cfg_scale: float | None = None,
    sampler: str = "onestep",
    num_steps: int = 18,
    batch_size: int = 256,
    callback: Callable[[dict], None] | None = None,
) -> torch.Tensor:
    """Samples for ``cond`` (one row per seed), sample ``i`` a function of ``seeds[i]`` only.

    :param cond: ``[B, D]`` condition vectors (``model.class_condition``, ``model.prompt_condition`` or
        ``model.null_condition``), ``B = len(seeds)``.
    :param cfg_scale: classifier-free guidance scale ``w`` (1: none; default: :func:`recommended_cfg_scale`, the
        model's recommended scale, as ``pagoda-inv generate`` without ``--cfg``). One-step: with a guidance map
        (``model.guidance``) the noise first goes to the latent of the teacher's CFG-``w`` sample, ``M(z, c, w)``,
        and G's output is guided at the same scale, ``G_w(M(z, c, w), c)`` (3 evaluations, one of them at the
        teacher's resolution); without one, ``G_w(z, c)`` (2 evaluations). Heun: the teacher's CFG.
    :param num_steps: Heun grid points (``2 num_steps - 1`` evaluations, doubled by CFG).
    :return: ``[B, C, R, R]`` in ``[-1, 1]`` (clamped), on the model's device.

    >>> from pagoda_inverse.core.model import load_model
    >>> model = load_model("fmnist")
    >>> generate(model, model.class_condition(torch.tensor([9, 9])), [0, 1]).shape
    torch.Size([2, 1, 32, 32])
    """
    if sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    if cfg_scale is None:
        cfg_scale = recommended_cfg_scale(model, cond)
    if len(cond) != len(seeds):
        raise ValueError(f"cond has {len(cond)} rows but {len(seeds)} seeds were given")
    net = model.decoder if sampler == "onestep" else model.teacher
    if net is None:
        part = "decoder/ (one-step G)" if sampler == "onestep" else "teacher/"
        raise UserError(f"{model.path}: has no {part} checkpoint; use the other --sampler or another --model")
    shape = (model.channels, model.teacher_resolution, model.teacher_resolution)
    out = []
    for start in range(0, len(seeds), batch_size):
        z = randn_for_seeds(seeds[start : start + batch_size], shape, model.device)  # drawn on the CPU
        c = cond[start : start + batch_size]
        if sampler == "onestep":
            x = one_step(model, z * model.decoder.sigma_max, c, cfg_scale=cfg_scale)
        else:
            den = guided_denoiser(model.teacher, c, model.bank.null_embedding, cfg_scale)
            x = sample_heun(den, z, num_steps)
        out.append(x.clamp(-1, 1))
        if callback is not None:
            callback({"step": min(start + batch_size, len(seeds)), "total": len(seeds)})
    return torch.cat(out)
