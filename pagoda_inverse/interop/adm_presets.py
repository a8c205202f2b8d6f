"""Named ADM configurations of the field's released checkpoints, and matching a state dict's structure to them.

A guided-diffusion ``.pt`` file holds tensors only: their shapes fix the widths, levels, attention placement, class
count and ``learn_sigma`` (:data:`~pagoda_inverse.nets.adm.SHAPE_FIELDS`), but not the attention heads, the ``qkv``
layout or the noise schedule. A preset supplies those, from the flags its authors published.
"""

from __future__ import annotations

from dataclasses import dataclass

from pagoda_inverse.nets.adm import SHAPE_FIELDS, ADMConfig


@dataclass(frozen=True)
class ADMPreset:
    """A released network: its architecture, its training noise schedule and where it comes from.

    :param config: the architecture.
    :param schedule: the noise schedule its epsilon-prediction was trained on (1000 discrete steps), one of
        :data:`~pagoda_inverse.core.adm_teacher.SCHEDULES`.
    :param source: the checkpoint file(s) it describes.
    """

    config: ADMConfig
    schedule: str
    source: str


_BIG = dict(num_channels=256, num_res_blocks=2, attention_resolutions="32,16,8", learn_sigma=True,
            resblock_updown=True, use_scale_shift_norm=True, use_fp16=True)  # fmt: skip

#: name -> preset. The flags are those of guided-diffusion's README and of DPS's ``ffhq_model_config.yaml``.
PRESETS: dict[str, ADMPreset] = {
    "imagenet64-cond": ADMPreset(
        ADMConfig.from_flags(image_size=64, num_channels=192, num_res_blocks=3, attention_resolutions="32,16,8",
                             num_head_channels=64, use_new_attention_order=True, class_cond=True, learn_sigma=True,
                             resblock_updown=True, use_scale_shift_norm=True, dropout=0.1, use_fp16=True),
        "cosine", "guided-diffusion 64x64_diffusion.pt (ImageNet 64, class-conditional)",
    ),
    "imagenet128-cond": ADMPreset(
        ADMConfig.from_flags(image_size=128, num_heads=4, class_cond=True, **_BIG),
        "linear", "guided-diffusion 128x128_diffusion.pt (ImageNet 128, class-conditional)",
    ),
    "imagenet256-cond": ADMPreset(
        ADMConfig.from_flags(image_size=256, num_head_channels=64, class_cond=True, **_BIG),
        "linear", "guided-diffusion 256x256_diffusion.pt (ImageNet 256, class-conditional)",
    ),
    "openai256-uncond": ADMPreset(
        ADMConfig.from_flags(image_size=256, num_head_channels=64, **_BIG),
        "linear", "guided-diffusion 256x256_diffusion_uncond.pt (ImageNet 256, unconditional; deepinv DiffUNet "
        "large_model=True)",
    ),
    "imagenet512-cond": ADMPreset(
        ADMConfig.from_flags(image_size=512, num_head_channels=64, class_cond=True, **_BIG),
        "linear", "guided-diffusion 512x512_diffusion.pt (ImageNet 512, class-conditional)",
    ),
    "ffhq256": ADMPreset(
        ADMConfig.from_flags(image_size=256, num_channels=128, num_res_blocks=1, attention_resolutions="16",
                             num_heads=4, num_head_channels=64, learn_sigma=True, resblock_updown=True,
                             use_scale_shift_norm=True),
        "linear", "DPS / DiffPIR ffhq_10m.pt (FFHQ 256, unconditional; deepinv DiffUNet large_model=False)",
    ),
}  # fmt: skip

#: Other names for presets (deepinv's two ``DiffUNet`` settings).
ALIASES = {"deepinv-small": "ffhq256", "deepinv-large": "openai256-uncond"}


def get_preset(name: str) -> ADMPreset:
    """The preset called ``name`` (or an alias); an unknown name is a ``ValueError`` listing the choices.

    >>> get_preset("imagenet64-cond").config.attention_at
    (32, 16, 8)
    """
    preset = PRESETS.get(ALIASES.get(name, name))
    if preset is None:
        raise ValueError(f"unknown ADM preset {name!r}; choose from {', '.join([*PRESETS, *ALIASES])}")
    return preset


def shape_signature(config: ADMConfig) -> tuple:
    """The values of the :data:`~pagoda_inverse.nets.adm.SHAPE_FIELDS`: two configs with equal signatures have
    state dicts of identical keys and shapes."""
    return tuple(getattr(config, name) for name in SHAPE_FIELDS)


def matching_presets(config: ADMConfig) -> list[str]:
    """Names of the presets whose tensors have the shapes of ``config``'s (compared on the shape fields).

    >>> matching_presets(get_preset("ffhq256").config)
    ['ffhq256']
    """
    return [name for name, p in PRESETS.items() if shape_signature(p.config) == shape_signature(config)]
