"""Train the luma-to-colour network ``C`` (:mod:`pagoda_inverse.core.colour_net`) of an RGB model.

Squared error between ``C(gray copy of x)`` and ``x`` on the training crops (so ``C`` estimates the posterior-mean
colour given the luma), Adam with warm-up and cosine decay, random flips, an EMA of the weights. The held-out test
crops' PSNR, of ``C`` and of the gray copy, is measured at the end and stored in the checkpoint's ``config.json``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch.nn import functional as F

from pagoda_inverse.core.checkpoint import save_checkpoint
from pagoda_inverse.core.colour_net import ColourNet, luma
from pagoda_inverse.core.unet import UNet
from pagoda_inverse.train.batches import random_hflip
from pagoda_inverse.train.config import ColourTrainConfig, to_dict
from pagoda_inverse.train.data import load_images
from pagoda_inverse.train.loop import Callback, begin_run, bookkeeping, update, warmup_cosine_lr
from pagoda_inverse.train.state import load_train_state, step_generator
from pagoda_inverse.utils.device import autocast


def gray_copy(x: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W] -> [B, 3, H, W]``: the luma of ``x`` in every channel (the colorization's observation)."""
    return luma(x).expand(-1, 3, -1, -1)


@torch.no_grad()
def colour_psnr(net: ColourNet, images: torch.Tensor, batch: int = 64) -> tuple[float, float]:
    """Mean per-image PSNR (dB) of ``net``'s colorization of ``images`` and of their gray copy."""
    from pagoda_inverse.utils.metrics import psnr

    ours, gray = [], []
    for x in images.split(batch):
        g = gray_copy(x)
        ours.append(psnr(net(g), x))
        gray.append(psnr(g, x))
    return torch.cat(ours).mean().item(), torch.cat(gray).mean().item()


def train_colour(
    cfg: ColourTrainConfig, run_dir: Path, *, callback: Callback = None, device: str | None = None
) -> Path:
    """Train (or resume) ``C`` on the RGB training split; returns the ``run_dir/colour`` folder."""
    dist, log, callback = begin_run(run_dir, cfg.loop, device, callback)
    images, _ = load_images(cfg.data)
    if images.shape[1] != 3:
        raise ValueError(f"the colour network needs RGB images; dataset {cfg.data.dataset!r} has {images.shape[1]}")
    torch.manual_seed(cfg.loop.seed)
    net = ColourNet(UNet(cfg.unet)).to(dist.device)
    dist.broadcast_(net)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.loop.lr)
    modules, optimizers = {"net": net, "ema": ema}, {"net": opt}
    start = load_train_state(run_dir, modules, optimizers)
    log(f"colour: {len(images)} images, {sum(p.numel() for p in net.parameters())} params, start step {start}")

    for step in range(start, cfg.loop.steps):
        g = step_generator(cfg.loop.seed, step)
        # Global batch with random flips; this rank's slice.
        idx = torch.randint(len(images), (cfg.loop.batch_size,), generator=g)
        x = dist.local(random_hflip(images[idx], g) if cfg.hflip else images[idx])
        # Warm-up then cosine learning-rate decay; squared error of the colorization; Adam step, EMA.
        warmup_cosine_lr(opt, cfg.loop.lr, step, cfg.loop.warmup_steps, cfg.loop.steps)
        with autocast(cfg.precision, dist.device):  # the network at cfg.precision, the loss in fp32
            estimate = net(gray_copy(x)).float()
        loss = update(dist, F.mse_loss(estimate, x), net, opt, ema, cfg.loop.ema_decay)
        bookkeeping(dist, run_dir, cfg.loop, step, loss, modules, optimizers, log, callback)

    out = Path(run_dir) / "colour"
    dist.barrier()
    if not dist.is_main:
        return out
    test_images, _ = load_images(cfg.data, "test")
    ours, gray = colour_psnr(ema.eval(), test_images)
    config = {
        "kind": "colour",
        "unet": cfg.unet.to_dict(),
        "metrics": {"test_psnr": ours, "test_psnr_gray": gray, "test_images": len(test_images)},
        "train": to_dict(cfg),
    }
    save_checkpoint(out, {f"net.{k}": v for k, v in ema.net.state_dict().items()}, config)
    log(f"test PSNR {ours:.2f} dB (gray copy {gray:.2f} dB) on {len(test_images)} crops; saved {out}")
    return out
