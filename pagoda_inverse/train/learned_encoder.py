"""Train the learned one-step encoder on the cached (image, latent) pairs: ``L = mean (e - t)^2 + mean |e - t|``
with ``e = E(x, c) / sigma_max`` and ``t = z / sigma_max`` (the released code's L2 + L1 ``pgd_encoder`` loss)."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from pagoda_inverse.core.checkpoint import save_checkpoint
from pagoda_inverse.core.parts import backbone_section, encoder_from_teacher
from pagoda_inverse.train.config import EncoderConfig, to_dict
from pagoda_inverse.train.loop import Callback, begin_run, bookkeeping, update
from pagoda_inverse.train.pairs import load_training_pairs
from pagoda_inverse.train.state import load_train_state, step_generator


def train_encoder(
    cfg: EncoderConfig,
    run_dir: Path,
    teacher_dir: Path,
    latents_dir: Path,
    *,
    callback: Callback = None,
    device: str | None = None,
) -> Path:
    """Train (or resume) the learned encoder; returns the ``run_dir/encoder`` checkpoint folder (EMA weights)."""
    dist, log, callback = begin_run(run_dir, cfg.loop, device, callback)
    pairs = load_training_pairs(teacher_dir, latents_dir)
    cache, manifest, bank = pairs.cache, pairs.manifest, pairs.bank
    low = pairs.targets(pairs.data.teacher_resolution)

    torch.manual_seed(cfg.loop.seed)
    E = encoder_from_teacher(pairs.teacher).to(dist.device)
    dist.broadcast_(E)
    E_ema = copy.deepcopy(E).requires_grad_(False)
    opt = torch.optim.Adam(E.parameters(), lr=cfg.loop.lr)
    modules, optimizers = {"E": E, "E_ema": E_ema}, {"E": opt}
    start = load_train_state(run_dir, modules, optimizers)
    log(f"encoder: {len(cache['latents'])} pairs, start step {start}, {dist.world_size} rank(s)")
    for step in range(start, cfg.loop.steps):
        g = step_generator(cfg.loop.seed, step)
        # Regress the cached latent of each pair (image in the latent's orientation, its condition), on this
        # rank's slice of the global batch; gradient mean over ranks.
        j = torch.randint(len(cache["index"]), (cfg.loop.batch_size,), generator=g)
        z, x, c = (dist.local(t) for t in pairs.batch(low, j))
        err = (E(x, c) - z) / E.sigma_max
        loss = update(dist, err.square().mean() + err.abs().mean(), E, opt, E_ema, cfg.loop.ema_decay)
        bookkeeping(dist, run_dir, cfg.loop, step, loss, modules, optimizers, log, callback)

    out = Path(run_dir) / "encoder"
    dist.barrier()
    if not dist.is_main:
        return out
    config = {
        "kind": "encoder",
        **backbone_section(E.net),
        "sigma_max": E.sigma_max,
        "teacher_sha256": manifest["teacher_sha256"],
        "train": to_dict(cfg),
    }
    save_checkpoint(out, {f"net.{k}": v for k, v in E_ema.net.state_dict().items()} | bank.to_tensors(), config)
    log(f"saved {out}")
    return out
