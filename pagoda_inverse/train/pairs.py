"""The training data of the decoder stages: cached (latent, image, condition) pairs and their teacher."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pagoda_inverse.core.checkpoint import load_config
from pagoda_inverse.core.encode import file_digest, load_latent_cache
from pagoda_inverse.core.parts import load_part, part_bank, section_of, teacher_denoiser
from pagoda_inverse.core.text import CaptionBank
from pagoda_inverse.core.unet import UNet
from pagoda_inverse.datasets import area_pool
from pagoda_inverse.train.config import DataConfig
from pagoda_inverse.train.data import load_images
from pagoda_inverse.utils.errors import CheckpointError, UserError


def load_teacher(teacher_dir: Path) -> tuple[nn.Module, dict, CaptionBank]:
    """The teacher's denoiser ``D(x, sigma, cond)`` (eval mode), its config and its conditioning, for a teacher
    trained here or one written by ``pagoda-inv convert``; refuses a checkpoint of another kind."""
    kind = load_config(teacher_dir).get("kind")
    if kind != "teacher":
        raise CheckpointError(f"{teacher_dir}: is a {kind!r} checkpoint; pass a teacher checkpoint")
    net, config, tensors = load_part(Path(teacher_dir))
    return teacher_denoiser(net, config), config, part_bank(config, tensors)


def load_teacher_checkpoint(teacher_dir: Path) -> tuple[UNet, dict, CaptionBank]:
    """The teacher's U-Net backbone, its config and caption bank, for the stages that need the toolkit's own
    teacher (``train guidance``); an imported (converted) teacher is a one-line :class:`UserError`."""
    teacher, config, bank = load_teacher(teacher_dir)
    if section_of(config) != "unet":
        raise UserError(f"{teacher_dir}: an imported (converted) teacher; this stage needs one trained by pagoda-inv")
    return teacher.net.train().requires_grad_(True), config, bank


def teacher_digest(teacher_dir: Path) -> str:
    """Identity of a teacher checkpoint (what a latent cache records)."""
    return file_digest(Path(teacher_dir) / "model.safetensors")


@dataclass
class TrainingPairs:
    """A teacher (its denoiser), its latent cache and the images (``[N, C, R, R]`` in ``[-1, 1]``) the latents were
    made from (the teacher's own dataset, or for an imported teacher the one ``encode --dataset`` named).

    ``conditions[i]`` is the condition image ``i`` was encoded under (canonical class caption, or null).
    """

    teacher: nn.Module
    teacher_config: dict
    bank: CaptionBank
    cache: dict[str, torch.Tensor]
    manifest: dict
    data: DataConfig
    images: torch.Tensor
    labels: torch.Tensor
    conditions: torch.Tensor

    def targets(self, resolution: int) -> torch.Tensor:
        """The images area-downsampled to ``resolution``."""
        factor = self.images.shape[-1] // resolution
        return area_pool(self.images, factor)

    def batch(self, targets: torch.Tensor, j: torch.Tensor):
        """Pairs ``j``: ``(z, x, c)``, see :func:`pair_batch`."""
        return pair_batch(self.cache, targets, self.conditions, self.bank.null_embedding, j)


def pair_batch(cache: dict, targets: torch.Tensor, cond_table: torch.Tensor, null: torch.Tensor, j: torch.Tensor):
    """Encoded pairs ``(z, x, c)``: latent ``j``, its image in the latent's exact orientation, its condition."""
    idx = cache["index"][j]
    x = targets[idx]
    x = torch.where(cache["flip"][j, None, None, None], x.flip(-1), x)
    c = torch.where(cache["null"][j, None], null[None], cond_table[idx])
    return cache["latents"][j], x, c


def load_training_pairs(teacher_dir: Path, latents_dir: Path) -> TrainingPairs:
    """Load a teacher and a latent cache made by it (refusing a cache of another teacher) with its images."""
    teacher, tcfg, bank = load_teacher(teacher_dir)
    cache, manifest = load_latent_cache(latents_dir)
    if manifest.get("teacher_sha256") != teacher_digest(teacher_dir):
        raise UserError(f"{latents_dir}: latents were encoded with another teacher than {teacher_dir}")
    data = DataConfig(**(manifest.get("data") or tcfg["data"]))  # an imported teacher's data: in the manifest
    images, labels = load_images(data, manifest["split"], limit=manifest["config"]["limit"],
                                 channels=manifest.get("channels", 1))  # fmt: skip
    if not bank.num_classes:
        labels = labels.clamp(max=-1)  # an unconditional imported teacher: as encoded, under the null condition
    return TrainingPairs(teacher, tcfg, bank, cache, manifest, data, images, labels, bank.conditions(labels))
