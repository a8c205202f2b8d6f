"""Stage 2: train PaGoDA's one-step decoder G on cached (latent, image) pairs plus an adversarial loss.

Per step (Kim et al. 2024, sec. 3.2; the released code's ``pgd_losses``):

- generator: ``L = L_rec + w_adv * lambda_ad * L_G`` with ``L_rec = d(G(z_enc(x), c), x)`` on encoded pairs and
  ``L_G = -D(G(eps, c'), c')`` on fresh prior noise ``eps ~ N(0, sigma_max^2 I)`` with the conditions ``c'`` of
  a real batch; ``lambda_ad`` is the adaptive weight clipped to ``[0.01, 10]``;
- discriminator: hinge loss on that real batch vs the same fakes (both DiffAugment-ed);
- EMA 0.999 of G; the EMA weights are saved.

G is initialised as a copy of the teacher's backbone (for an imported ADM teacher, an
:class:`~pagoda_inverse.core.adm_decoder.ADMGenerator`); the teacher is never run here (only its latents).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from pagoda_inverse.core.checkpoint import save_checkpoint
from pagoda_inverse.core.generator import Generator
from pagoda_inverse.core.losses import adaptive_weight, hinge_d_loss, hinge_g_loss, structural_distance
from pagoda_inverse.core.parts import backbone_section, decoder_from_teacher
from pagoda_inverse.nets.discriminator import Discriminator, diff_augment
from pagoda_inverse.train.batches import preview_conditions, random_hflip, sample_condition
from pagoda_inverse.train.config import DecoderConfig, to_dict
from pagoda_inverse.train.loop import Callback, begin_run, bookkeeping, update
from pagoda_inverse.train.pairs import load_training_pairs
from pagoda_inverse.train.state import load_train_state, step_generator
from pagoda_inverse.utils.device import autocast
from pagoda_inverse.utils.images import save_grid


def train_decoder(
    cfg: DecoderConfig,
    run_dir: Path,
    teacher_dir: Path,
    latents_dir: Path,
    *,
    generator: Generator | None = None,
    stage: str = "decoder",
    callback: Callback = None,
    device: str | None = None,
) -> Path:
    """Train (or resume) G; returns the ``run_dir/<stage>`` checkpoint folder (EMA weights).

    :param generator: start from this G (progressive growing) instead of a copy of the teacher; parameters with
        ``requires_grad=False`` stay frozen. Targets are at ``G``'s output resolution.
    """
    dist, log, callback = begin_run(run_dir, cfg.loop, device, callback)
    pairs = load_training_pairs(teacher_dir, latents_dir)
    cache, manifest, bank, labels = pairs.cache, pairs.manifest, pairs.bank, pairs.labels
    G = generator if generator is not None else decoder_from_teacher(pairs.teacher)
    res = G.net.config.out_resolution
    targets = pairs.targets(res)

    torch.manual_seed(cfg.loop.seed)
    D = Discriminator(G.net.config.in_channels, res, cfg.disc_channels, bank.embed_dim).to(dist.device)
    G = G.to(dist.device)
    dist.broadcast_(G, D)
    G_ema = copy.deepcopy(G).requires_grad_(False)
    opt_g = torch.optim.RAdam([p for p in G.parameters() if p.requires_grad], lr=cfg.loop.lr)
    opt_d = torch.optim.RAdam(D.parameters(), lr=cfg.lr_d)
    modules = {"G": G, "G_ema": G_ema, "D": D}
    optimizers = {"G": opt_g, "D": opt_d}
    start = load_train_state(run_dir, modules, optimizers)
    log(f"{stage}: {len(cache['latents'])} pairs, targets {res}px, start step {start}, {dist.world_size} rank(s)")
    last_w = G.net.last_layer_weight()

    for step in range(start, cfg.loop.steps):
        g = step_generator(cfg.loop.seed, step)
        # Global batch: encoded pairs, real images with the conditions given to the fakes, prior noise.
        z, x, c = pairs.batch(targets, torch.randint(len(cache["index"]), (cfg.loop.batch_size,), generator=g))
        r = torch.randint(len(targets), (cfg.loop.batch_size,), generator=g)
        c_r = sample_condition(bank, labels[r], g, cfg.cond_dropout)
        noise = torch.randn(z.shape, generator=g)
        real = random_hflip(targets[r], g)
        z, x, c, c_r, noise, real = (dist.local(t) for t in (z, x, c, c_r, noise, real))
        aug = step_generator(cfg.loop.seed, step, stream=1 + dist.rank)  # this rank's augmentations
        # Generator step: reconstruction on the encoded pairs + adaptive-weighted adversarial term on fresh noise.
        with autocast(cfg.precision, dist.device):  # the networks at cfg.precision, the losses in fp32
            rec = structural_distance(G(z, c).float(), x).mean()
            fake = G(noise * G.sigma_max, c_r).float()
        loss, lam = rec, 0.0
        if step >= cfg.adv_start:
            with autocast(cfg.precision, dist.device):
                adv = hinge_g_loss(D(diff_augment(fake, aug), c_r).float())
            lam = dist.mean(float(adaptive_weight(rec, adv, last_w)))
            loss = rec + cfg.adv_weight * lam * adv
        rec_mean = update(dist, loss, G, opt_g, G_ema, cfg.loop.ema_decay, report=rec)
        # Discriminator step: hinge loss, real batch vs the same fakes.
        with autocast(cfg.precision, dist.device):
            logits_real, logits_fake = D(diff_augment(real, aug), c_r), D(diff_augment(fake.detach(), aug), c_r)
        loss_d = update(dist, hinge_d_loss(logits_real.float(), logits_fake.float()), D, opt_d)
        info = {"loss_d": loss_d, "lambda": float(lam)}
        line = f"rec {rec_mean:.4f} d {loss_d:.3f} lambda {lam:.3f}"
        bookkeeping(dist, run_dir, cfg.loop, step, rec_mean, modules, optimizers, log, callback, info, line)

    out = Path(run_dir) / stage
    dist.barrier()
    if not dist.is_main:
        return out
    config = {
        "kind": "decoder",
        **backbone_section(G.net),
        "sigma_max": G.sigma_max,
        "teacher_sha256": manifest["teacher_sha256"],
        "teacher_config": pairs.teacher_config,
        "train": to_dict(cfg),
    }
    save_checkpoint(out, {f"net.{k}": v for k, v in G_ema.net.state_dict().items()} | bank.to_tensors(), config)
    # Preview: one-step samples, 8 seeds x classes (rows = seeds).
    with torch.no_grad():
        cond, nrow = preview_conditions(bank)
        noise = torch.randn(len(cond), *cache["latents"].shape[1:], generator=torch.Generator().manual_seed(0))
        samples = G_ema(noise.to(dist.device) * G.sigma_max, cond.to(dist.device))
    save_grid(samples, Path(run_dir) / "samples.png", nrow=nrow, scale=max(1, 128 // res))
    log(f"saved {out}")
    return out
