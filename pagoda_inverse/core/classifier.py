"""A small CNN classifier on full-resolution images: the feature extractor of FD/KID and the judge of control accuracy.

``fmnist-clf`` is trained on Fashion-MNIST's training split only (never on generated images) and is used to
score generators by the Fréchet / kernel distance of its penultimate features (``FD-FMNIST``, ``KID-FMNIST``: not
FID, whose Inception weights cannot be obtained offline) and by the share of samples it assigns the requested class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture of :class:`Classifier`; stored in its checkpoint's ``config.json``.

    :param in_channels: image channels (1 for Fashion-MNIST).
    :param resolution: input resolution (32 for the shipped model); must be divisible by 8.
    :param channels: width of the first of the three stages (doubled at each 2x down-sampling; a multiple of 8).
    :param feature_dim: size of the penultimate feature vector used for FD/KID.
    :param num_classes: number of output classes.
    """

    in_channels: int = 1
    resolution: int = 32
    channels: int = 32
    feature_dim: int = 128
    num_classes: int = 10

    def to_dict(self) -> dict:
        return asdict(self)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 conv + GroupNorm + ReLU layers, then 2x max-pooling (GroupNorm: no batch statistics, so training
    and evaluation agree and data-parallel ranks hold no diverging buffers)."""

    def conv_norm_relu(c: int) -> list[nn.Module]:
        return [nn.Conv2d(c, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.ReLU(inplace=True)]

    return nn.Sequential(*conv_norm_relu(c_in), *conv_norm_relu(c_out), nn.MaxPool2d(2))


class Classifier(nn.Module):
    """Three conv stages (R -> R/8), global average pooling, a feature layer and a linear head.

    Input images are ``[B, C, R, R]`` in ``[-1, 1]``; :meth:`features` gives ``[B, feature_dim]`` (post-ReLU),
    :meth:`forward` gives ``[B, num_classes]`` logits.

    >>> clf = Classifier(ClassifierConfig(channels=8, feature_dim=16)).eval()
    >>> clf(torch.zeros(2, 1, 32, 32)).shape, clf.features(torch.zeros(2, 1, 32, 32)).shape
    (torch.Size([2, 10]), torch.Size([2, 16]))
    """

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        if config.resolution % 8:
            raise ValueError(f"classifier resolution must be divisible by 8, got {config.resolution}")
        self.config = config
        c = config.channels
        self.trunk = nn.Sequential(_block(config.in_channels, c), _block(c, 2 * c), _block(2 * c, 4 * c))
        self.feature = nn.Linear(4 * c, config.feature_dim)
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, feature_dim]`` of images ``[B, C, R, R]`` in ``[-1, 1]``."""
        if x.shape[-1] != self.config.resolution or x.shape[-2] != self.config.resolution:
            raise ValueError(f"classifier expects {self.config.resolution}px images, got {tuple(x.shape[-2:])}")
        h = self.trunk(x).mean(dim=(2, 3))
        return F.relu(self.feature(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@torch.no_grad()
def classify(clf: Classifier, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features [N, feature_dim] float64, predicted labels [N])`` of images ``[N, C, R, R]`` in ``[-1, 1]``,
    computed in batches on the classifier's device and returned on the CPU."""
    clf.eval()
    device = next(clf.parameters()).device
    feats, preds = [], []
    for chunk in images.split(batch_size):
        f = clf.features(chunk.to(device).float().clamp(-1, 1))
        feats.append(f.double().cpu())
        preds.append(clf.head(f).argmax(1).cpu())
    return torch.cat(feats), torch.cat(preds)


def load_classifier(name_or_path: str = "fmnist-clf") -> Classifier:
    """Load an embedded classifier by name or a classifier checkpoint folder (safetensors + JSON, never pickle).

    >>> load_classifier("fmnist-clf").config.resolution
    32
    """
    from pagoda_inverse.core.checkpoint import load_checkpoint, load_module_state, split_prefix
    from pagoda_inverse.core.model import resolve_model_path
    from pagoda_inverse.utils.errors import CheckpointError

    folder = resolve_model_path(name_or_path)
    if (folder / "classifier" / "config.json").is_file():
        folder = folder / "classifier"
    tensors, config = load_checkpoint(folder)
    if config.get("kind") != "classifier":
        raise CheckpointError(f"{folder / 'config.json'}: kind {config.get('kind')!r} is not a classifier checkpoint")
    try:
        clf = Classifier(ClassifierConfig(**config["classifier"]))
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{folder / 'config.json'}: invalid 'classifier' section ({err})") from None
    load_module_state(clf, split_prefix(tensors, "net"), folder / "model.safetensors")
    return clf.eval().requires_grad_(False)
