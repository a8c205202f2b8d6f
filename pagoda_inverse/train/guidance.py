"""Train the guidance map (:mod:`pagoda_inverse.core.guidance`) of a teacher.

Two phases in one run folder, both resumable and split over ``torchrun`` ranks:

1. **Pairs** (``run_dir/pairs/shard-*.safetensors``): job ``i`` draws its noise from seed ``i``, a condition
   (the canonical class caption, a training caption, or with probability ``null_fraction`` the null caption)
   and a scale ``w ~ U[1, w_max]`` from the config's seed; the teacher's CFG-``w`` Heun sampler turns
   ``sigma_max * eps`` into an image, and its unguided (conditional) PF-ODE encoder turns that image back
   into the target latent ``z_w``.
2. **Regression**: ``L = mean (e - t)^2 + mean |e - t|`` with ``e = M(z, c, w) / sigma_max`` and
   ``t = z_w / sigma_max`` (the learned encoder's loss).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from pagoda_inverse.core.checkpoint import load_tensors, save_checkpoint, save_tensors
from pagoda_inverse.core.guidance import GuidanceMap
from pagoda_inverse.core.ode import encode_heun, sample_heun
from pagoda_inverse.core.precond import EDMPrecond, guided_denoiser
from pagoda_inverse.core.sigmas import SIGMA_MAX
from pagoda_inverse.core.text import CaptionBank
from pagoda_inverse.train.config import GuidanceConfig, to_dict
from pagoda_inverse.train.loop import Callback, begin_run, bookkeeping, update
from pagoda_inverse.train.pairs import load_teacher_checkpoint, teacher_digest
from pagoda_inverse.train.state import load_train_state, step_generator
from pagoda_inverse.utils.errors import UserError
from pagoda_inverse.utils.seeding import randn_for_seeds


def condition_table(bank: CaptionBank) -> torch.Tensor:
    """``[C + M + 1, D]``: the canonical class captions, the training captions, then the null caption."""
    return torch.cat([bank.class_embeddings, bank.train_embeddings, bank.null_embedding[None]])


def guidance_jobs(cfg: GuidanceConfig, bank: CaptionBank) -> tuple[torch.Tensor, torch.Tensor]:
    """``(condition index into condition_table [N], scale w [N])`` of every pair, fixed by ``cfg.loop.seed``: half the
    conditioned jobs take a canonical class caption, half a training caption; ``null_fraction`` take the null."""
    g = torch.Generator().manual_seed(cfg.loop.seed)
    n, c, m = cfg.num_pairs, bank.num_classes, len(bank.train_embeddings)
    canonical = torch.randint(c, (n,), generator=g)
    caption = c + torch.randint(m, (n,), generator=g)
    idx = torch.where(torch.rand(n, generator=g) < 0.5, canonical, caption)
    idx = torch.where(torch.rand(n, generator=g) < cfg.null_fraction, torch.full_like(idx, c + m), idx)
    w = 1 + (cfg.w_max - 1) * torch.rand(n, generator=g)
    return idx, w


def _num_shards(cfg: GuidanceConfig) -> int:
    return (cfg.num_pairs + cfg.shard_size - 1) // cfg.shard_size


def make_pairs(teacher: EDMPrecond, bank: CaptionBank, cfg: GuidanceConfig, out_dir: Path, *, rank: int = 0,
               world_size: int = 1, callback: Callback = None) -> None:  # fmt: skip
    """Compute (or finish) the pair shards in ``out_dir``: rank ``r`` computes shards ``r, r + W, ...``; a shard
    does not depend on who computed it. :func:`load_pairs` reads them once all exist."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table, (cond_idx, w) = condition_table(bank), guidance_jobs(cfg, bank)
    res, channels = teacher.net.config.resolution, teacher.net.config.in_channels
    device = next(teacher.parameters()).device
    mine = list(range(rank, _num_shards(cfg), world_size))
    done, total = 0, sum(min(cfg.shard_size, cfg.num_pairs - k * cfg.shard_size) for k in mine)
    for k in mine:
        sl = range(k * cfg.shard_size, min((k + 1) * cfg.shard_size, cfg.num_pairs))
        path = out_dir / f"shard-{k:05d}.safetensors"
        if path.is_file():  # written (atomically) before an interruption
            done += len(sl)
            continue
        targets = []
        for start in range(sl.start, sl.stop, cfg.pair_batch):
            j = torch.arange(start, min(start + cfg.pair_batch, sl.stop))
            eps = randn_for_seeds(j.tolist(), (channels, res, res), device)
            cond, null, w_j = table[cond_idx[j]].to(device), bank.null_embedding.to(device), w[j].to(device)
            with torch.no_grad():
                # The teacher's guided sample from this noise, one scale per job (CFG per row)...
                x = sample_heun(guided_denoiser(teacher, cond, null, w_j), eps, cfg.num_steps)
                # ...and its unguided conditional PF-ODE latent: where G must start to decode that sample.
                z = encode_heun(guided_denoiser(teacher, cond, clamp=True), x.clamp(-1, 1), cfg.num_steps)
            targets.append(z.cpu())
            done += len(j)
            if callback is not None:
                callback({"step": done, "total": total})
        ids = torch.tensor(list(sl))
        save_tensors(path, {"seed": ids, "cond_index": cond_idx[ids], "w": w[ids], "target": torch.cat(targets)})


def load_pairs(out_dir: Path, cfg: GuidanceConfig, channels: int, res: int) -> dict[str, torch.Tensor]:
    """All shards, concatenated, with each job's noise rebuilt from its seed: ``{"z", "cond_index", "w", "target"}``
    (``z`` and ``target`` at the ``sigma_max`` scale)."""
    parts = [load_tensors(out_dir / f"shard-{k:05d}.safetensors") for k in range(_num_shards(cfg))]
    pairs = {key: torch.cat([p[key] for p in parts]) for key in ("seed", "cond_index", "w", "target")}
    pairs["z"] = SIGMA_MAX * randn_for_seeds(pairs.pop("seed").tolist(), (channels, res, res))
    return pairs


def train_guidance(
    cfg: GuidanceConfig, run_dir: Path, teacher_dir: Path, *, callback: Callback = None, device: str | None = None
) -> Path:
    """Make the pairs, then train (or resume) the map; returns the ``run_dir/guidance`` checkpoint folder (EMA)."""
    dist, log, callback = begin_run(run_dir, cfg.loop, device, callback)
    net, _, bank = load_teacher_checkpoint(teacher_dir)
    if bank.num_classes == 0:
        raise UserError(f"{teacher_dir}: an unconditional teacher has no classifier-free guidance to learn")
    teacher = EDMPrecond(copy.deepcopy(net)).eval().requires_grad_(False).to(dist.device)
    res, channels = net.config.resolution, net.config.in_channels

    pair_dir = Path(run_dir) / "pairs"
    log(f"guidance pairs: {cfg.num_pairs} ({cfg.num_steps}-point Heun, w in [1, {cfg.w_max}])")
    make_pairs(teacher, bank, cfg, pair_dir, rank=dist.rank, world_size=dist.world_size, callback=callback)
    dist.barrier()
    pairs, table = load_pairs(pair_dir, cfg, channels, res), condition_table(bank)

    torch.manual_seed(cfg.loop.seed)
    M = GuidanceMap(copy.deepcopy(net).requires_grad_(True), cfg.w_max).to(dist.device)
    torch.nn.init.zeros_(M.net.out[-1].weight)  # start as the identity map (teacher features, zero output)
    torch.nn.init.zeros_(M.net.out[-1].bias)
    dist.broadcast_(M)
    M_ema = copy.deepcopy(M).requires_grad_(False)
    opt = torch.optim.Adam(M.parameters(), lr=cfg.loop.lr)
    modules, optimizers = {"M": M, "M_ema": M_ema}, {"M": opt}
    start = load_train_state(run_dir, modules, optimizers)
    log(f"guidance map: {cfg.num_pairs} pairs, start step {start}, {dist.world_size} rank(s)")
    for step in range(start, cfg.loop.steps):
        # Regress each pair's guided latent from its noise, condition and scale (this rank's slice).
        j = torch.randint(cfg.num_pairs, (cfg.loop.batch_size,), generator=step_generator(cfg.loop.seed, step))
        z, target, c, w = (dist.local(t) for t in (pairs["z"][j], pairs["target"][j], table[pairs["cond_index"][j]],
                                                     pairs["w"][j]))  # fmt: skip
        err = (M(z, c, w) - target) / M.sigma_max
        loss = update(dist, err.square().mean() + err.abs().mean(), M, opt, M_ema, cfg.loop.ema_decay)
        bookkeeping(dist, run_dir, cfg.loop, step, loss, modules, optimizers, log, callback)

    out = Path(run_dir) / "guidance"
    dist.barrier()
    if not dist.is_main:
        return out
    config = {
        "kind": "guidance",
        "unet": M.net.config.to_dict(),
        "sigma_max": M.sigma_max,
        "w_max": cfg.w_max,
        "teacher_sha256": teacher_digest(teacher_dir),
        "train": to_dict(cfg),
    }
    save_checkpoint(out, {f"net.{k}": v for k, v in M_ema.net.state_dict().items()} | bank.to_tensors(), config)
    log(f"saved {out}")
    return out
