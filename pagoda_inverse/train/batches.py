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
