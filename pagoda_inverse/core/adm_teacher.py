"""An imported ADM as the toolkit's EDM denoiser ``D(x, sigma, cond)`` (the interface of :mod:`.precond`).

A guided-diffusion network predicts the noise ``eps`` of the discrete VP process
``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``, ``t = 0..999``. Dividing by ``sqrt(abar_t)`` gives the toolkit's VE
form ``x = x_0 + sigma eps`` with ``sigma_t = sqrt((1 - abar_t) / abar_t)``, so (Karras et al. 2022, Table 1, the
iDDPM column)

    D(x; sigma) = x - sigma * eps(x / sqrt(sigma^2 + 1), t(sigma))

where ``t(sigma)`` is the step whose ``sigma_t`` is nearest to ``sigma`` (:class:`VPEpsDenoiser`). An EDM network
(``EDMPrecond`` in EDM's pickles) already is such a denoiser: :func:`build_teacher` wraps it in
:class:`~pagoda_inverse.core.precond.EDMPrecond`.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from pagoda_inverse.core.checkpoint import load_checkpoint, split_prefix
from pagoda_inverse.core.precond import EDMPrecond
from pagoda_inverse.nets.adm import ADM, ADMConfig, state_mismatch
from pagoda_inverse.utils.errors import CheckpointError

#: Noise schedules of guided-diffusion's 1000-step VP models (:func:`vp_alphas_cumprod`).
SCHEDULES = ("linear", "cosine")
#: Preconditionings a converted teacher may declare in its ``config.json`` ``"precond"`` section.
PRECONDS = ("vp-eps", "edm")


def vp_alphas_cumprod(schedule: str, steps: int = 1000) -> torch.Tensor:
    """``abar_t`` for ``t = 0..steps-1`` (float64, decreasing), as guided-diffusion's ``get_named_beta_schedule``.

    ``"linear"``: ``beta`` from ``1e-4`` to ``0.02`` (scaled by ``1000 / steps``); ``"cosine"`` (improved DDPM):
    ``abar(t) = cos((t/T + 0.008) / 1.008 * pi/2)^2`` with each ``beta`` clipped at 0.999.

    >>> a = vp_alphas_cumprod("linear")
    >>> round(float(a[0]), 6), len(a)
    (0.9999, 1000)
    """
    if schedule == "linear":
        scale = 1000 / steps
        betas = torch.linspace(scale * 1e-4, scale * 0.02, steps, dtype=torch.float64)
    elif schedule == "cosine":
        abar = [math.cos((i / steps + 0.008) / 1.008 * math.pi / 2) ** 2 for i in range(steps + 1)]
        betas = torch.tensor([min(1 - abar[i + 1] / abar[i], 0.999) for i in range(steps)], dtype=torch.float64)
    else:
        raise ValueError(f"unknown noise schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    return torch.cumprod(1 - betas, dim=0)


def vp_sigmas(schedule: str, steps: int = 1000) -> torch.Tensor:
    """The VE noise levels ``sigma_t = sqrt((1 - abar_t) / abar_t)`` of the discrete steps: ``[steps]`` float64,
    increasing (linear: 0.0100 .. 157.4; cosine: 0.0064 .. about 1.6e4)."""
    abar = vp_alphas_cumprod(schedule, steps)
    return ((1 - abar) / abar).sqrt()


class VPEpsDenoiser(nn.Module):
    """``D(x, sigma, cond) = x - sigma eps(x / sqrt(sigma^2+1), t(sigma), cond)`` around a discrete VP eps-predictor.

    This is EDM's ``iDDPMPrecond``, not its ``VPPrecond``: guided-diffusion networks were trained only at the integer
    steps ``t = 0..steps-1``, so the network gets the index of the discrete ``sigma_t`` nearest to ``sigma`` (nearest
    in ``sigma``, as EDM's ``round_sigma``) rather than a fractional ``t`` it never saw; ``VPPrecond`` feeds the
    continuous time of a continuously-trained VP model. As in ``iDDPMPrecond`` the scalings use the requested
    ``sigma``; a sampler that wants the network exactly on its training grid places its steps with
    :meth:`round_sigma`. Learned-variance channels (``learn_sigma``) are dropped.

    :param net: ``net(x [B,C,H,W], t [B], cond) -> [B, C or 2C, H, W]`` predicting ``eps``, e.g. :class:`ADM`.
    :param schedule: ``"linear"`` or ``"cosine"``.
    :param steps: number of discrete training steps (1000 for every released model).
    :param in_channels: image channels ``C`` (default: ``net.config.in_channels``).

    >>> net = ADM(ADMConfig(image_size=8, in_channels=1, model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
    ...                     attention_resolutions=(), learn_sigma=True))
    >>> D = VPEpsDenoiser(net, "linear")
    >>> D(torch.zeros(2, 1, 8, 8), torch.tensor(2.0), None).shape, int(D.timestep(D.sigmas[417:418])[0])
    (torch.Size([2, 1, 8, 8]), 417)
    """

    def __init__(self, net: nn.Module, schedule: str = "linear", steps: int = 1000, in_channels: int | None = None):
        super().__init__()
        self.net, self.schedule, self.steps = net, schedule, steps
        self.in_channels = in_channels or net.config.in_channels
        self.sigmas = vp_sigmas(schedule, steps)  # [steps] float64 (an attribute, so .to(dtype) leaves it exact)

    @property
    def sigma_min(self) -> float:
        """The smallest discrete noise level ``sigma_0``."""
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        """The largest discrete noise level ``sigma_{steps-1}``."""
        return float(self.sigmas[-1])

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """``[B]`` noise levels -> ``[B]`` int64 index of the nearest discrete ``sigma_t``."""
        sigma = torch.as_tensor(sigma).reshape(-1, 1).to(torch.float64)
        return (sigma - self.sigmas.to(sigma.device)[None]).abs().argmin(dim=1)

    def round_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        """``sigma`` moved to the nearest discrete noise level (same shape and dtype)."""
        sigma = torch.as_tensor(sigma)
        return self.sigmas.to(sigma.device)[self.timestep(sigma)].reshape(sigma.shape).to(sigma.dtype)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """:param x: ``[B, C, H, W]`` noisy images ``x_0 + sigma eps`` (``x_0`` in ``[-1, 1]``).
        :param sigma: scalar or ``[B]`` noise levels > 0.
        :param cond: class labels for a class-conditional network (``[B]`` indices or ``[B, num_classes]`` one-hot
            weights), ignored by an unconditional one.
        :return: ``[B, C, H, W]`` denoised estimate, in ``x``'s dtype.
        """
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1).expand(len(x), 1, 1, 1)
        t = self.timestep(sigma.flatten())
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32  # the net casts to its own dtype
        eps = self.net((x / (sigma**2 + 1).sqrt()).to(dtype), t.to(dtype), cond)[:, : self.in_channels]
        return x - sigma * eps.to(x.dtype)


def build_teacher(config: dict, net: ADM) -> nn.Module:
    """The denoiser a converted ``config.json``'s ``"precond"`` section describes, around ``net``.

    ``{"type": "vp-eps", "schedule": ..., "steps": 1000}`` -> :class:`VPEpsDenoiser`;
    ``{"type": "edm", "sigma_data": 0.5}`` -> :class:`~pagoda_inverse.core.precond.EDMPrecond`.
    """
    precond = config.get("precond") or {}
    kind = precond.get("type")
    if kind == "vp-eps":
        return VPEpsDenoiser(net, precond.get("schedule", ""), int(precond.get("steps", 1000)))
    if kind == "edm":
        return EDMPrecond(net, float(precond.get("sigma_data", 0.5)))
    raise ValueError(f"unknown precond type {kind!r}; choose from {', '.join(PRECONDS)}")


def load_adm_teacher(folder: str | Path) -> nn.Module:
    """Load a teacher folder written by ``pagoda-inv convert`` (``config.json`` with an ``"adm"`` and a
    ``"precond"`` section, ``model.safetensors`` with ``net.*``): the denoiser ``D(x, sigma, cond)`` in eval mode.

    Any mismatch between the config and the tensors is a one-line :class:`CheckpointError`.
    """
    folder = Path(folder)
    tensors, config = load_checkpoint(folder)
    if "adm" not in config:
        raise CheckpointError(f"{folder / 'config.json'}: has no 'adm' section; not a converted ADM checkpoint")
    try:
        with torch.device("meta"):  # no memory until the weights are assigned
            net = ADM(ADMConfig.from_dict(config["adm"]))
        teacher = build_teacher(config, net)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{folder / 'config.json'}: invalid 'adm' or 'precond' section ({err})") from None
    state = split_prefix(tensors, "net")
    if problem := state_mismatch(net.config, state):
        raise CheckpointError(f"{folder / 'model.safetensors'}: {problem}; the weights do not match config.json")
    net.load_state_dict(state, assign=True)  # the loaded tensors become the parameters (no second copy)
    return teacher.eval().requires_grad_(False)
