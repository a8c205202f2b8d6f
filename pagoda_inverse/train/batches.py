"""Per-step batch helpers shared by the training loops."""

from __future__ import annotations

import torch

from pagoda_inverse.core.text import CaptionBank


def sample_condition(
    bank: CaptionBank, labels: torch.Tensor, generator: torch.Generator, dropout: float
) -> torch.Tensor:
    """Caption embeddings ``[B, D]`` for ``labels [B]``: a random training caption of each class, replaced by the
    null embedding with probability ``dropout`` (condition dropout for classifier-free guidance).
    Unlabelled images (label -1) always get the null embedding.
    """
    known = labels >= 0
    cond = bank.null_embedding.expand(len(labels), -1).clone()
    if known.any():
        cond[known] = bank.sample(labels[known], generator)
    drop = torch.rand(len(labels), generator=generator) < dropout
    cond[drop] = bank.null_embedding
    return cond


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image of ``[B, C, H, W]`` horizontally with probability 1/2."""
    flip = torch.rand(len(x), generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def preview_conditions(bank: CaptionBank, rows: int = 8) -> tuple[torch.Tensor, int]:
    """Conditions of a preview grid and its row length: ``rows`` rows of one sample per class (canonical captions),
    or, for an unconditional bank, an 8-wide grid of null conditions."""
    if bank.num_classes == 0:
        return bank.null_embedding.expand(rows * 8, -1).clone(), 8
    return bank.class_embeddings[torch.arange(bank.num_classes).repeat(rows)], bank.num_classes
