"""Training images in memory: Fashion-MNIST from Debian's files or a user's image folder, in ``[-1, 1]``."""

from __future__ import annotations

import torch

from .config import DataConfig


def load_images(data: DataConfig, split: str = "train", limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a split as ``(images [N, C, R, R] float32 in [-1, 1], labels [N] int64 (-1 = unlabelled))``.

    ``limit`` (or ``data.limit``) keeps only the first images.
    """
    from pagoda_inverse.datasets import ImageFolderDataset, load_fmnist, to_model_range

    limit = limit if limit is not None else data.limit
    if data.dataset == "fmnist":
        images, labels = load_fmnist(split, root=data.root, limit=limit)
        return to_model_range(images), labels
    folder = ImageFolderDataset(data.dataset, size=data.resolution, channels=1)
    n = len(folder) if limit is None else min(limit, len(folder))
    items = [folder[i] for i in range(n)]
    return torch.stack([it["image"] for it in items]), torch.tensor([it["label"] for it in items])
