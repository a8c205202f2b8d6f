"""Tiny random-weight ADMs shared by the ADM, teacher and converter tests."""

from __future__ import annotations

import torch

from pagoda_inverse.nets.adm import ADM, ADMConfig

#: A 2-level class-conditional network with attention at 4x4, learned variance and BigGAN up/down: every block kind.
TINY = ADMConfig(image_size=8, in_channels=3, model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                 attention_resolutions=(2,), num_classes=5, learn_sigma=True, num_heads=4, num_head_channels=16,
                 use_new_attention_order=True, use_scale_shift_norm=True, resblock_updown=True)  # fmt: skip

#: guided-diffusion's flags for :data:`TINY` (what a researcher's launch script would hold).
TINY_FLAGS = {"image_size": 8, "num_channels": 32, "channel_mult": "1,2", "num_res_blocks": 1,
              "attention_resolutions": "4", "class_cond": True, "num_classes": 5, "learn_sigma": True,
              "num_head_channels": 16, "use_new_attention_order": True, "resblock_updown": True,
              "use_scale_shift_norm": True, "noise_schedule": "cosine", "diffusion_steps": 1000,
              "timestep_respacing": "250", "use_checkpoint": False}  # fmt: skip


def randomize(
    module: torch.nn.Module, seed: int = 0, std: float = 0.05, constant_only: bool = False
) -> torch.nn.Module:
    """Draw every parameter from ``N(0, std)`` (zero-initialised output layers would hide most of the network);
    GroupNorm weights from ``1 + N(0, std)``. ``constant_only``: only the parameters whose entries are all equal (the
    zero-initialised layers and the norms; fast for large networks). Returns ``module``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if constant_only and p.numel() > 1 and p.min() != p.max():
                continue
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64) * std
            is_norm_weight = name.endswith("weight") and p.dim() == 1
            p.copy_((noise + 1 if is_norm_weight else noise).to(p.dtype))
    return module


def tiny_adm(config: ADMConfig = TINY, seed: int = 0, dtype: torch.dtype = torch.float32) -> ADM:
    """A random-weight :class:`ADM` in eval mode."""
    return randomize(ADM(config), seed).to(dtype).eval()
