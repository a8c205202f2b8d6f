"""Training images in memory: Fashion-MNIST from Debian's files, crops of the RGB photos, or a user's image folder
(whole images or random crops of them), in ``[-1, 1]``."""

from __future__ import annotations

import torch

from .config import DataConfig

#: Crops per split of the ``photo`` dataset when ``limit`` is not set (see :func:`~pagoda_inverse.datasets.photos.photo_crops`).
PHOTO_CROPS = {"train": 24000, "test": 1024}


def caption_bank(data: DataConfig):
    """The conditioning of a dataset's model: the caption bank (text encoder) for fmnist and image folders, none
    for the unconditional ``photo`` dataset."""
    from pagoda_inverse.core.text import CaptionBank

    return CaptionBank.unconditional() if data.dataset == "photo" else CaptionBank.build()


def load_images(
    data: DataConfig, split: str = "train", limit: int | None = None, channels: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a split as ``(images [N, C, R, R] float32 in [-1, 1], labels [N] int64 (-1 = unlabelled))``.

    ``limit`` (or ``data.limit``) keeps only the first images; ``channels``: an image folder's channels (1 or 3;
    fmnist is always 1, photo 3).
    """
    from pagoda_inverse.datasets import ImageFolderDataset, load_fmnist, to_model_range
    from pagoda_inverse.datasets.photos import photo_crops, random_crops

    limit = limit if limit is not None else data.limit
    if data.dataset == "fmnist":
        images, labels = load_fmnist(split, root=data.root, limit=limit)
        return to_model_range(images), labels
    if data.dataset == "photo":
        n = PHOTO_CROPS[split] if limit is None else min(limit, PHOTO_CROPS[split])
        images = photo_crops(split, n, size=data.resolution, seed=0 if split == "train" else 1)
        return to_model_range(images), torch.full((n,), -1, dtype=torch.int64)
    folder = ImageFolderDataset(data.dataset, size=None if data.crops else data.resolution, channels=channels)
    if data.crops:  # a patch prior: random crops of the whole images, unlabelled
        n = data.crops if limit is None else min(limit, data.crops)
        crops = random_crops([folder[i]["image"] for i in range(len(folder))], n, size=data.resolution,
                             seed=0 if split == "train" else 1)  # fmt: skip
        return crops, torch.full((n,), -1, dtype=torch.int64)
    n = len(folder) if limit is None else min(limit, len(folder))
    items = [folder[i] for i in range(n)]
    return torch.stack([it["image"] for it in items]), torch.tensor([it["label"] for it in items])
