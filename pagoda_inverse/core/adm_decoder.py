"""PaGoDA's one-step decoder G and learned encoder E when the teacher is an imported ADM (``pagoda-inv convert``).

With the toolkit's own teachers G is a copy of the teacher's :class:`~pagoda_inverse.core.unet.UNet` with growth
stages inside it (:mod:`pagoda_inverse.core.generator`). An imported teacher is an :class:`~pagoda_inverse.nets.adm.ADM`
behind its own preconditioning (``"vp-eps"``: guided-diffusion's discrete VP noise predictor; ``"edm"``), so G is
built the same way around that network:

- ``G(z, c) = D(z; sigma_max, c)`` at initialisation: the teacher's denoiser at the highest noise level, evaluated
  exactly as :func:`~pagoda_inverse.core.adm_teacher.build_teacher` does (for ``"vp-eps"``:
  ``z - sigma eps(z / sqrt(sigma^2 + 1), t(sigma))``; the skip term is kept, it is the whole image there);
- each PaGoDA growth stage continues from the ADM's last decoder features ``h [B, width(0), r, r]`` (before its
  head) with one 2x up-sampling residual block plus ``grow_blocks`` plain residual blocks (guided-diffusion's
  ``ResBlock``, conditioned on the same noise/class embedding) and a zero-initialised head whose output is a residual
  on the previous image up-sampled (nearest / bilinear / bicubic), as in :class:`~pagoda_inverse.core.unet.UNet`: a
  freshly grown G is the previous G up-sampled.

The state dict names are ``denoiser.net.<guided-diffusion names>``, ``grow.<stage>.<block>.*`` and ``grow_out.*``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from pagoda_inverse.core.adm_teacher import VPEpsDenoiser, build_teacher
from pagoda_inverse.core.generator import Generator
from pagoda_inverse.core.learned_encoder import LearnedEncoder
from pagoda_inverse.core.sigmas import SIGMA_MAX, noise_label, precond_scalings
from pagoda_inverse.core.unet import check_grow_stages, run_growth_stages
from pagoda_inverse.nets.adm import ADM, ADMConfig, ResBlock, _norm, _zero


@dataclass(frozen=True)
class ADMDecoderConfig:
    """Architecture of :class:`ADMDecoderNet`; stored as the ``"adm_decoder"`` section of a decoder's ``config.json``.

    :param adm: the teacher's network.
    :param precond: the teacher's ``"precond"`` section (``{"type": "vp-eps", "schedule": ..., "steps": 1000}`` or
        ``{"type": "edm", "sigma_data": 0.5}``).
    :param grow_channels: widths of the appended 2x stages (empty: G at the teacher's resolution).
    :param grow_blocks: plain residual blocks after each stage's up-sampling block.
    :param grow_upsample: per stage, how the previous image is up-sampled under the stage's residual head.
    """

    adm: ADMConfig
    precond: dict = field(default_factory=lambda: {"type": "vp-eps", "schedule": "linear", "steps": 1000})
    grow_channels: tuple[int, ...] = ()
    grow_blocks: int = 2
    grow_upsample: tuple[str, ...] = ()

    def __post_init__(self):
        check_grow_stages(self)
        for width in self.grow_channels:  # the stages use the ADM's GroupNorm: whole groups
            groups = min(self.adm.norm_groups, max(width // self.adm.min_channels_per_group, 1))
            if width < 1 or width % groups:
                raise ValueError(f"growth width {width} is not divisible into the ADM's {groups} norm groups")

    @property
    def in_channels(self) -> int:
        """Image channels ``C``."""
        return self.adm.in_channels

    @property
    def resolution(self) -> int:
        """The teacher's (and the latent's) resolution ``r``."""
        return self.adm.image_size

    @property
    def out_resolution(self) -> int:
        """Output resolution ``r * 2**len(grow_channels)``."""
        return self.resolution * 2 ** len(self.grow_channels)

    def grown(self, width: int | None = None, upsample: str = "nearest") -> ADMDecoderConfig:
        """This config with one more 2x stage of ``width`` channels (default: the previous stage's width, else the
        ADM's top-level width)."""
        last = self.grow_channels[-1] if self.grow_channels else self.adm.width(0)
        return replace(
            self, grow_channels=(*self.grow_channels, width or last), grow_upsample=(*self.grow_upsample, upsample)
        )

    def to_dict(self) -> dict:
        return {"adm": self.adm.to_dict(), "precond": dict(self.precond), "grow_channels": list(self.grow_channels),
                "grow_blocks": self.grow_blocks, "grow_upsample": list(self.grow_upsample)}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> ADMDecoderConfig:
        """Inverse of :meth:`to_dict`; bad fields raise ``ValueError`` / ``TypeError``."""
        d = dict(d)
        adm = ADMConfig.from_dict(d.pop("adm"))
        for key in ("grow_channels", "grow_upsample"):
            d[key] = tuple(d.get(key, ()))
        return cls(adm=adm, **d)


class ADMDecoderNet(nn.Module):
    """The teacher's denoiser plus PaGoDA growth stages: ``forward(z [B,C,r,r], sigma, cond, grow_offset) ->
    [B, C, R, R]`` with ``R = config.out_resolution``.

    >>> cfg = ADMDecoderConfig(ADMConfig(image_size=8, in_channels=1, model_channels=32, channel_mult=(1, 2),
    ...                                  num_res_blocks=1, attention_resolutions=()), grow_channels=(32,))
    >>> ADMDecoderNet(cfg)(torch.zeros(2, 1, 8, 8), 80.0, None).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(self, config: ADMDecoderConfig):
        super().__init__()
        self.config = cfg = config
        self.denoiser = build_teacher({"precond": cfg.precond}, ADM(cfg.adm))
        ch = cfg.adm.width(0)
        #: ``(C, r, r)`` of the features entering each growth stage (what ``forward``'s ``grow_offset`` shifts).
        self.grow_in_shapes = []
        self.grow, self.grow_out = nn.ModuleList(), nn.ModuleList()
        for level, width in enumerate(cfg.grow_channels):
            self.grow_in_shapes.append((ch, cfg.resolution * 2**level, cfg.resolution * 2**level))
            stage = nn.ModuleList([ResBlock(ch, width, cfg.adm, up=True)])
            stage.extend(ResBlock(width, width, cfg.adm) for _ in range(cfg.grow_blocks))
            self.grow.append(stage)
            self.grow_out.append(
                nn.Sequential(_norm(width, cfg.adm), nn.SiLU(), _zero(nn.Conv2d(width, cfg.in_channels, 3, padding=1)))
            )
            ch = width

    @property
    def adm(self) -> ADM:
        """The teacher-resolution trunk (a copy of the teacher's network at initialisation)."""
        return self.denoiser.net

    def forward(
        self, z: torch.Tensor, sigma: float, cond: torch.Tensor | None, grow_offset: Sequence[torch.Tensor] = ()
    ) -> torch.Tensor:
        """:param z: ``[B, C, r, r]`` noisy input (a latent at ``sigma``).
        :param sigma: the noise level (``sigma_max`` for G).
        :param cond: the ADM's condition (``[B, num_classes]`` weights or ``[B]`` labels; ignored when unconditional).
        :param grow_offset: ``[B, *grow_in_shapes[i]]`` added to the features entering the first stages.
        """
        c = self.config.in_channels
        s = torch.full((len(z),), float(sigma), device=z.device, dtype=torch.float32)
        if isinstance(self.denoiser, VPEpsDenoiser):  # iDDPM form: x - sigma eps(x / sqrt(sigma^2 + 1), t(sigma))
            t = self.denoiser.timestep(s).to(torch.float32)
            h, emb = self.adm.features(z / math.sqrt(float(sigma) ** 2 + 1), t, cond)
            x = z - float(sigma) * self.adm.out(h)[:, :c].to(z.dtype)
        else:  # EDM form: c_skip x + c_out F(c_in x; ln(sigma) / 4)
            c_skip, c_out, c_in = precond_scalings(s[0], self.denoiser.sigma_data)
            h, emb = self.adm.features(c_in * z, noise_label(s), cond)
            x = c_skip * z + c_out * self.adm.out(h)[:, :c].to(z.dtype)
        return run_growth_stages(self, x, h, emb, grow_offset)

    def last_layer_weight(self) -> torch.Tensor:
        """The newest output conv weight (where PaGoDA's adaptive adversarial weight measures gradient norms)."""
        return (self.grow_out[-1] if len(self.grow_out) else self.adm.out)[-1].weight

    def trunk_trainable(self, name: str) -> bool:
        """Whether parameter ``name`` stays trainable when growing (PaGoDA's ``--activate_from``): the ADM's
        top-level decoder blocks (the last ``num_res_blocks + 1`` output blocks), its head, the stages and heads."""
        top = {len(self.adm.output_blocks) - 1 - i for i in range(self.config.adm.num_res_blocks + 1)}
        if name.startswith("denoiser.net.output_blocks."):
            return int(name.split(".")[3]) in top
        return name.startswith(("denoiser.net.out.", "grow.", "grow_out."))


class ADMGenerator(Generator):
    """One-step generator around an :class:`ADMDecoderNet`: ``forward(z [B,C,r,r], cond) -> [B,C,R,R]``, the latent
    ``z`` at the ``sigma_max`` scale (raw output, clamp only for display)."""

    @classmethod
    def from_teacher(cls, teacher: nn.Module, sigma_max: float = SIGMA_MAX) -> ADMGenerator:  # type: ignore[override]
        """A generator whose trunk is a copy of the imported teacher ``teacher`` (a ``VPEpsDenoiser`` or an
        ``EDMPrecond`` around an :class:`ADM`), no growth stages yet."""
        if isinstance(teacher, VPEpsDenoiser):
            precond = {"type": "vp-eps", "schedule": teacher.schedule, "steps": teacher.steps}
        else:
            precond = {"type": "edm", "sigma_data": float(teacher.sigma_data)}
        net = ADMDecoderNet(ADMDecoderConfig(teacher.net.config, precond))
        net.denoiser.net.load_state_dict(copy.deepcopy(teacher.net.state_dict()))
        return cls(net, sigma_max=sigma_max)

    def forward(self, z: torch.Tensor, cond: torch.Tensor, grow_offset: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        return self.net(z.float(), self.sigma_max, None if cond is None else cond.float(), grow_offset)


class ADMLearnedEncoder(LearnedEncoder):
    """Learned one-step encoder whose network is an :class:`ADM` (initialised from an imported teacher):
    ``E(x, c) = sigma_max * F(x; t = 0, c)[:, :C]``, ``x [B,C,r,r]`` in ``[-1, 1]`` -> ``z`` at the ``sigma_max``
    scale."""

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        t = torch.zeros(len(x), device=x.device)
        c = self.net.config.in_channels
        return self.sigma_max * self.net(x.float(), t, None if cond is None else cond.float())[:, :c]
