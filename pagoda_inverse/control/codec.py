"""Encode images to PaGoDA latents and decode latents to images: the two halves of the diffusion autoencoder."""

from __future__ import annotations

import torch

from pagoda_inverse.core.generator import one_step
from pagoda_inverse.core.model import PagodaModel
from pagoda_inverse.core.ode import encode_heun
from pagoda_inverse.core.precond import guided_denoiser
from pagoda_inverse.utils.errors import UserError

ENCODERS = ("ode", "learned")


@torch.no_grad()
def encode(
    model: PagodaModel, images: torch.Tensor, cond: torch.Tensor, *, method: str = "ode", num_steps: int = 18
) -> torch.Tensor:
    """Images at the teacher resolution -> latents ``z`` (std about ``sigma_max``).

    :param images: ``[B, C, r, r]`` in ``[-1, 1]``, ``r`` the teacher resolution (area-downsample larger images
        first, e.g. with ``pagoda_inverse.datasets.area_pool``).
    :param cond: ``[B, D]`` conditions (e.g. ``model.class_condition(labels)``).
    :param method: ``"ode"``: the teacher's PF-ODE (Heun, ``2 (num_steps - 1)`` NFE, D clamped to [-1, 1] as in
        training); ``"learned"``: the learned one-step encoder (1 NFE).
    :return: ``[B, C, r, r]`` latents.

    >>> from pagoda_inverse import load_model
    >>> model = load_model("fmnist")
    >>> x, c = torch.zeros(2, 1, 8, 8), model.class_condition(torch.tensor([0, 1]))
    >>> z = encode(model, x, c, num_steps=4)
    >>> z.shape, decode(model, z, c).shape
    (torch.Size([2, 1, 8, 8]), torch.Size([2, 1, 32, 32]))
    """
    r = model.teacher_resolution
    if images.shape[-2:] != (r, r) or images.shape[1] != model.channels:
        raise UserError(
            f"images must be [B, {model.channels}, {r}, {r}] (the teacher resolution), got {tuple(images.shape)}"
        )
    if method == "learned":
        if model.encoder is None:
            raise UserError(f"{model.path}: has no learned encoder/ checkpoint; use method='ode'")
        return model.encoder(images, cond)
    if method != "ode":
        raise UserError(f"unknown encoder {method!r}; choose one of: {', '.join(ENCODERS)}")
    if model.teacher is None:
        raise UserError(f"{model.path}: has no teacher/ checkpoint, which the ODE encoder needs")
    return encode_heun(guided_denoiser(model.teacher, cond, clamp=True), images, num_steps)


@torch.no_grad()
def decode(model: PagodaModel, z: torch.Tensor, cond: torch.Tensor, *, cfg_scale: float = 1.0) -> torch.Tensor:
    """Latents -> images in one pass of G, at G's (possibly grown) resolution, clamped to ``[-1, 1]``.

    Guidance is generation's (:func:`~pagoda_inverse.core.generator.one_step`, the one guided decode of the
    toolkit): with ``cfg_scale != 1``, ``G_w(M(z, c, w), c)`` through the model's guidance map when it has one, else
    ``G_w(z, c)``.

    :param z: ``[B, C, r, r]`` latents (from :func:`encode`, or ``sigma_max * randn`` to sample).
    :return: ``[B, C, R, R]``.
    """
    if model.decoder is None:
        raise UserError(f"{model.path}: has no decoder/ checkpoint (one-step G)")
    return one_step(model, z, cond, cfg_scale=cfg_scale).clamp(-1, 1)
