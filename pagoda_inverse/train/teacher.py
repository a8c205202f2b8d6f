"""Stage 1: train the EDM teacher at the low resolution on area-downsampled images (Karras et al. 2022)."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import torch

from pagoda_inverse.core.checkpoint import save_checkpoint
from pagoda_inverse.core.losses import edm_loss, training_noise
from pagoda_inverse.core.ode import sample_heun
from pagoda_inverse.core.precond import EDMPrecond, guided_denoiser
from pagoda_inverse.core.text import CaptionBank
from pagoda_inverse.core.unet import UNet
from pagoda_inverse.datasets import area_pool
from pagoda_inverse.train.loop import Callback, begin_run, bookkeeping, update, warmup
from pagoda_inverse.utils.images import save_grid

from .batches import preview_conditions, random_hflip, sample_condition
from .config import TeacherConfig, to_dict
from .data import caption_bank, load_images
from .state import load_train_state, step_generator


def teacher_checkpoint_config(cfg: TeacherConfig, unet_config) -> dict:
    """The ``config.json`` of a teacher checkpoint."""
    return {"kind": "teacher", "unet": unet_config.to_dict(), "data": to_dict(cfg.data), "train": to_dict(cfg)}


def train_teacher(cfg: TeacherConfig, run_dir: Path, *, bank: CaptionBank | None = None, callback: Callback = None,
                  device: str | None = None) -> Path:  # fmt: skip
    """Train (or resume, if ``run_dir`` holds a train state) the teacher; returns the ``run_dir/teacher`` folder.

    Under ``torchrun`` each rank trains on its slice of every global batch (see :mod:`.distributed`); rank 0 logs
    and writes the checkpoints.

    :param bank: caption embeddings (``None``: build them with the text encoder, once).
    :param callback: called every step with ``{"step", "total", "loss"}``.
    """
    dist, log, callback = begin_run(run_dir, cfg.loop, device, callback)
    images, labels = load_images(cfg.data)
    x_low = area_pool(images, cfg.data.factor)  # anti-aliased (area) down-sampling
    bank = bank or caption_bank(cfg.data)
    unet_cfg = replace(cfg.unet, in_channels=x_low.shape[1], resolution=x_low.shape[-1], cond_dim=bank.embed_dim)
    torch.manual_seed(cfg.loop.seed)
    net = EDMPrecond(UNet(unet_cfg)).to(dist.device)
    dist.broadcast_(net)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.loop.lr, betas=(0.9, 0.99))
    modules, optimizers = {"net": net, "ema": ema}, {"net": opt}
    start = load_train_state(run_dir, modules, optimizers)
    log(
        f"teacher: {len(x_low)} images at {x_low.shape[-1]}px, {sum(p.numel() for p in net.parameters())} params, "
        f"start step {start}, {dist.world_size} rank(s)"
    )

    for step in range(start, cfg.loop.steps):
        g = step_generator(cfg.loop.seed, step)
        # Global batch: random images, random flips, random captions with condition dropout, training noise.
        idx = torch.randint(len(x_low), (cfg.loop.batch_size,), generator=g)
        x = random_hflip(x_low[idx], g) if cfg.hflip else x_low[idx]
        cond = sample_condition(bank, labels[idx], g, cfg.cond_dropout)
        sigma, noise = training_noise(x.shape, g)
        # EDM loss on this rank's slice, gradient mean over ranks, Adam step with linear warm-up, EMA.
        for group in opt.param_groups:
            group["lr"] = cfg.loop.lr * warmup(step, cfg.loop.warmup_steps)
        loss = edm_loss(net, dist.local(x), dist.local(cond), noise=(dist.local(sigma), dist.local(noise)))
        loss = update(dist, loss, net, opt, ema, cfg.loop.ema_decay)
        bookkeeping(dist, run_dir, cfg.loop, step, loss, modules, optimizers, log, callback)

    out = Path(run_dir) / "teacher"
    dist.barrier()
    if not dist.is_main:
        return out
    tensors = {f"net.{k}": v for k, v in ema.net.state_dict().items()} | bank.to_tensors()
    save_checkpoint(out, tensors, teacher_checkpoint_config(cfg, unet_cfg))
    # Preview: one sample per class and seed (or 64 unconditional ones), Heun sampler with CFG 2.
    with torch.no_grad():
        cond, nrow = preview_conditions(bank)
        noise = torch.randn(len(cond), *x_low.shape[1:], generator=torch.Generator().manual_seed(0))
        cond, noise, null = cond.to(dist.device), noise.to(dist.device), bank.null_embedding.to(dist.device)
        den = guided_denoiser(ema, cond, null, cfg_scale=2.0 if bank.num_classes else 1.0)
        samples = sample_heun(den, noise, cfg.sample_steps)
    save_grid(samples, Path(run_dir) / "samples.png", nrow=nrow, scale=4)
    log(f"saved {out}")
    return out
