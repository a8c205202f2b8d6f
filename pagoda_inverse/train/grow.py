"""PaGoDA progressive growing (Kim et al. 2024, sec. 3.3): append a 2x stage to G, copy weights by name and shape,
freeze the trunk, and train against targets at the new resolution with the same cached latents.

The new stage is an up-sampling residual block plus plain blocks and a new output head, all with zero-initialised
output convolutions, and the new head adds a residual to the up-sampled previous image: at initialisation the
grown G is exactly the previous G up-sampled (``DecoderConfig.upsample``: nearest, bilinear or bicubic). The teacher
is never run or retrained.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pagoda_inverse.core.generator import Generator
from pagoda_inverse.core.model import load_model
from pagoda_inverse.train.config import DecoderConfig
from pagoda_inverse.train.decoder import train_decoder
from pagoda_inverse.train.loop import Callback
from pagoda_inverse.utils.errors import CheckpointError


def grow_generator(G: Generator, width: int | None = None, upsample: str = "nearest") -> Generator:
    """A new generator with one more 2x stage; every tensor whose name and shape match is copied from ``G``.

    :param width: channels of the new stage (default: the previous last level's width).
    :param upsample: how the new stage up-samples the previous image under its residual head.
    """
    grown = type(G.net)(G.net.config.grown(width, upsample))  # a UNet, or an ADMDecoderNet (imported teacher)
    own = grown.state_dict()
    copied = {k: v for k, v in G.net.state_dict().items() if k in own and own[k].shape == v.shape}
    grown.load_state_dict(copied, strict=False)
    return type(G)(grown, sigma_max=G.sigma_max, sigma_data=G.sigma_data)


def freeze_trunk(G: Generator) -> list[str]:
    """Freeze everything but the last decoder level (highest teacher resolution), the growth stages and the heads.

    Mirrors the released code's ``--activate_from``: embeddings, encoder, middle block and the lower decoder levels
    stay fixed. Returns the names of the trainable parameters.
    """
    for name, p in G.net.named_parameters():  # a UNet, or an imported teacher's ADM: the same rule on its names
        p.requires_grad_(G.net.trunk_trainable(name))
    return [name for name, p in G.net.named_parameters() if p.requires_grad]


def grow_decoder(cfg: DecoderConfig, run_dir: Path, decoder_dir: Path, teacher_dir: Path, latents_dir: Path, *,
                 width: int | None = None, callback: Callback = None, device: str | None = None) -> Path:  # fmt: skip
    """Grow the decoder in ``decoder_dir`` by one 2x stage and train it; returns ``run_dir/decoder``.

    On ``--resume`` the same grown architecture is rebuilt and its state restored from the run folder.
    """
    G = load_model(decoder_dir).decoder
    if G is None:
        raise CheckpointError(f"{decoder_dir}: not a decoder checkpoint; growing needs one from 'train decoder'")
    torch.manual_seed(cfg.loop.seed)  # the new stage's random weights: the same in every run and on every device
    G = grow_generator(G, width, cfg.upsample)
    freeze_trunk(G)
    return train_decoder(cfg, run_dir, teacher_dir, latents_dir, generator=G, callback=callback, device=device)
