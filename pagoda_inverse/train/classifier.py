"""Train the evaluation classifier (``fmnist-clf``): FD/KID features and control accuracy of the generators.

It sees only real training images (never generated ones), so it judges every generator the same way.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.nn import functional as F

from pagoda_inverse.core.checkpoint import save_checkpoint
from pagoda_inverse.core.classifier import Classifier, classify
from pagoda_inverse.nets.discriminator import diff_augment
from pagoda_inverse.train.batches import random_hflip
from pagoda_inverse.train.config import ClassifierTrainConfig, to_dict
from pagoda_inverse.train.data import load_images
from pagoda_inverse.train.loop import Callback, begin_run, bookkeeping, update, warmup_cosine_lr
from pagoda_inverse.train.state import load_train_state, step_generator


def train_classifier(
    cfg: ClassifierTrainConfig, run_dir: Path, *, callback: Callback = None, device: str | None = None
) -> Path:
    """Train (or resume) the classifier on the training split; returns the ``run_dir/classifier`` folder.

    The test-split accuracy is measured at the end and stored in the checkpoint's ``config.json``
    (``metrics.test_accuracy``).
    """
    dist, log, callback = begin_run(run_dir, cfg.loop, device, callback)
    images, labels = load_images(cfg.data)
    torch.manual_seed(cfg.loop.seed)
    clf = Classifier(cfg.net).to(dist.device)
    dist.broadcast_(clf)
    opt = torch.optim.AdamW(clf.parameters(), lr=cfg.loop.lr, weight_decay=cfg.weight_decay)
    modules, optimizers = {"clf": clf}, {"clf": opt}
    start = load_train_state(run_dir, modules, optimizers)
    log(f"classifier: {len(images)} images, {sum(p.numel() for p in clf.parameters())} params, start step {start}")

    clf.train()
    for step in range(start, cfg.loop.steps):
        g = step_generator(cfg.loop.seed, step)
        # Global batch with random flips and translations; this rank's slice.
        idx = torch.randint(len(images), (cfg.loop.batch_size,), generator=g)
        x = random_hflip(images[idx], g) if cfg.hflip else images[idx]
        x = diff_augment(x, g, ratio=cfg.shift)
        x, y = dist.local(x), dist.local(labels[idx])
        # Warm-up then cosine learning-rate decay; cross-entropy; gradient mean over ranks.
        warmup_cosine_lr(opt, cfg.loop.lr, step, cfg.loop.warmup_steps, cfg.loop.steps)
        loss = update(dist, F.cross_entropy(clf(x), y), clf, opt)
        bookkeeping(dist, run_dir, cfg.loop, step, loss, modules, optimizers, log, callback)

    out = Path(run_dir) / "classifier"
    dist.barrier()
    if not dist.is_main:
        return out
    test_images, test_labels = load_images(cfg.data, "test")
    _, pred = classify(clf, test_images)
    accuracy = (pred == test_labels).double().mean().item()
    config = {
        "kind": "classifier",
        "classifier": cfg.net.to_dict(),
        "metrics": {"test_accuracy": accuracy, "test_images": len(test_labels)},
        "train": to_dict(cfg),
    }
    save_checkpoint(out, {f"net.{k}": v for k, v in clf.state_dict().items()}, config)
    log(f"test accuracy {accuracy:.4f} on {len(test_labels)} images; saved {out}")
    return out
