"""Train an amortized posterior encoder ``q`` (:mod:`pagoda_inverse.core.posterior`) for one operator family.

Each step draws a batch of training images, a random member of the family with a per-image ``sigma_y`` in
``[0, 0.2]`` (:func:`~pagoda_inverse.ops.families.sample_family_operator`) and the noisy observations, then ``K``
posterior samples per image through ``q`` and the frozen G, each pulled onto its observation by the solvers'
data-consistency step. The loss is the energy score (Gneiting & Raftery 2007), a strictly proper scoring rule:

    ES = mean_k ||x_k - x|| - 1/(K(K-1)) sum_{k != l} ||x_k - x_l||     (norms per image, in RMS units),

minimised in expectation only when the samples follow the true posterior, so ``q`` learns a spread and not one
blurred mean. At the end the EMA weights are scored on held-out test images (:func:`evaluate_posterior`).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from pagoda_inverse.core.checkpoint import save_checkpoint
from pagoda_inverse.core.losses import adaptive_weight, hinge_d_loss, hinge_g_loss
from pagoda_inverse.core.model import load_model
from pagoda_inverse.core.posterior import (
    CONSISTENCY_MODES,
    PosteriorConfig,
    PosteriorEncoder,
    generator_fingerprint,
    load_posterior,
    posterior_samples,
)
from pagoda_inverse.datasets import area_resize
from pagoda_inverse.nets.discriminator import Discriminator, diff_augment
from pagoda_inverse.ops import make_operator
from pagoda_inverse.ops.families import check_family, sample_family_operator
from pagoda_inverse.train.batches import random_hflip, sample_condition
from pagoda_inverse.train.config import PosteriorTrainConfig, from_dict, to_dict
from pagoda_inverse.train.data import load_images
from pagoda_inverse.train.loop import Callback, begin_run, bookkeeping, update, warmup_cosine_lr
from pagoda_inverse.train.state import load_train_state, step_generator, training_seconds
from pagoda_inverse.utils.errors import UserError

#: The held-out operators each family is scored on at the end of training (registry name, parameters).
EVAL_OPERATORS = {
    "superres": [("downsample_area", {"factor": 4}), ("downsample_bicubic", {"factor": 4}),
                 ("downsample_area", {"factor": 2}), ("downsample_area", {"factor": 8})],
    "inpaint": [("inpaint_mask", {}), ("inpaint_random", {"drop": 0.7}), ("inpaint_freeform", {})],
    "deblur": [("gaussian_blur", {"sigma": 1.5, "size": 9}), ("motion_blur", {"size": 9})],
    "denoise": [("denoise", {})],
    "colorize": [("colorize", {})],
}  # fmt: skip


#: What of ``q`` a run trains (:attr:`PosteriorTrainConfig.trainable`).
TRAINABLE = ("all", "heads", "consistency")
#: The parameters of ``q`` that run once per image (frozen with ``trainable = "heads"``).
TRUNK_PREFIXES = ("embed.", "cond_embed.", "conv_in.", "down.", "mid.", "up.")


def energy_score(samples: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``[B]`` energy scores of ``samples [K, B, ...]`` (``K >= 2``) against ``truth [B, ...]``, norms in RMS units."""
    k = len(samples)
    flat, target = samples.flatten(2), truth.flatten(1)
    scale = flat.shape[-1] ** 0.5
    fit = (flat - target).norm(dim=-1).mean(0)
    spread = torch.stack([(flat[i] - flat[j]).norm(dim=-1) for i in range(k) for j in range(i + 1, k)]).mean(0)
    return (fit - 0.5 * spread) / scale


@torch.no_grad()
def evaluate_posterior(model, q, family: str, images: torch.Tensor, samples: int, prior_std: float, seed: int = 0):
    """Held-out scores of ``q`` on ``images`` for each of the family's :data:`EVAL_OPERATORS` at ``sigma_y = 0.05``:
    PSNR of the mean of ``samples`` samples and of one sample, and the share of true pixels inside the samples'
    central 90% interval (over the unobserved pixels for inpainting)."""
    from pagoda_inverse.utils.metrics import interval_coverage, psnr

    scores = {}
    seeds = list(range(seed, seed + len(images)))
    shape = tuple(images.shape[1:])
    for name, params in EVAL_OPERATORS[family]:
        op = make_operator(name, shape=shape, batch=len(images), seeds=seeds, sigma_y=0.05, **params)
        y = op(images, generator=torch.Generator().manual_seed(seed))
        g = torch.Generator().manual_seed(seed + 1)
        eps = torch.randn(samples, len(images), q.config.noise_channels, *shape[1:], generator=g)
        obs_noise = torch.randn(samples, *y.shape, generator=g)
        xs = posterior_samples(
            model, q, op, y, model.null_condition(len(images)), eps, prior_std, obs_noise=obs_noise
        )[0]
        hidden = (op.A_adjoint_A(torch.ones_like(images)) == 0) if family == "inpaint" else None
        label = f"{name}" + "".join(f" {k}={v}" for k, v in params.items())
        scores[label] = {
            "psnr_mean": psnr(xs.mean(0), images).mean().item(),
            "psnr_one": psnr(xs[0], images).mean().item(),
            "coverage90": interval_coverage(xs, images, 0.9, hidden),
        }
    return scores


def init_record(folder: Path) -> dict:
    """What a fine-tuned encoder records of the checkpoint it started from: its path, steps and training seconds
    (its own start's included), so the total training time of the chain stays on record."""
    config = json.loads((Path(folder) / "config.json").read_text())
    before = config.get("init", {})
    return {
        "path": str(folder),
        "steps": from_dict("posterior", config["train"]).loop.steps + before.get("steps", 0),
        "train_seconds": config["train_seconds"] + before.get("train_seconds", 0.0),
    }


def initialise_from(q: PosteriorEncoder, folder: Path, model) -> None:
    """Load the weights of the posterior checkpoint in ``folder`` into ``q`` (fine-tuning): same architecture and
    generator; a learned consistency read-out that ``q`` has and the checkpoint lacks keeps its initial value."""
    source = load_posterior(folder, model, family=q.config.family)
    own = q.config  # the consistency settings may differ (a v2 encoder starts a learned one); nothing else may
    if replace(source.config, consistency=own.consistency, init_consistency_std=own.init_consistency_std) != own:
        raise UserError(f"{folder}: its architecture differs from this run's; --init needs the same network")
    missing, unexpected = q.load_state_dict(source.state_dict(), strict=False)
    if unexpected or any(not k.startswith("consistency_head.") for k in missing):
        raise UserError(f"{folder}: weights do not fit this run's network ({(unexpected or missing)[0]})")


def train_posterior(
    cfg: PosteriorTrainConfig, run_dir: Path, *, callback: Callback = None, device: str | None = None
) -> Path:
    """Train (or resume) the posterior encoder of ``cfg.family`` for ``cfg.model``'s G; returns the
    ``run_dir/posterior-<family>`` checkpoint folder (EMA weights, held-out scores and training time in its config)."""
    family = check_family(cfg.family) if cfg.family else None
    if family is None:
        raise UserError("train posterior needs --family (superres, inpaint, deblur, denoise or colorize)")
    if cfg.samples < 2:
        raise UserError(f"samples must be >= 2 for the energy score, got {cfg.samples}")
    if cfg.consistency not in CONSISTENCY_MODES:
        raise UserError(f"consistency {cfg.consistency!r}: use {' or '.join(CONSISTENCY_MODES)}")
    if cfg.trainable not in TRAINABLE:
        raise UserError(f"trainable {cfg.trainable!r}: use {', '.join(TRAINABLE)}")
    if cfg.adv_weight and cfg.trainable == "consistency":
        raise UserError("adv_weight needs trainable 'all' or 'heads' (the read-out alone cannot change a sample)")
    dist, log, callback = begin_run(run_dir, cfg.loop, device, callback)
    model = load_model(cfg.model)
    if model.decoder is None:
        raise UserError(f"model {cfg.model!r} has no one-step decoder; a posterior encoder needs one")
    model.decoder.to(dist.device).requires_grad_(False)
    images, labels = load_images(cfg.data)
    images = area_resize(images, model.resolution)  # G's output size, as the decoder's targets
    shape = tuple(images.shape[1:])
    if shape != tuple(model.image_shape):
        raise UserError(f"the {cfg.data.dataset} images are {shape} but model {cfg.model!r} makes "
                        f"{tuple(model.image_shape)}")  # fmt: skip
    # One trunk level per resolution from G's output down to its latent (the preset's widths cut or extended to fit),
    # offsets for as many growth stages as G has.
    grow_in = tuple(map(tuple, model.decoder.net.grow_in_shapes))
    levels = (model.resolution // model.teacher_resolution).bit_length()
    widths = tuple(cfg.net.channels[:levels]) + (cfg.net.channels[-1],) * max(0, levels - len(cfg.net.channels))
    c_dim = model.null_condition(1).shape[-1]
    net = replace(cfg.net, channels=widths, offset_levels=min(cfg.net.offset_levels, len(grow_in), levels - 1))
    net_cfg = PosteriorConfig(
        family=family, in_channels=model.channels, resolution=model.resolution, grow_in_shapes=grow_in,
        latent_resolution=model.teacher_resolution, cond_dim=c_dim, consistency=cfg.consistency,
        init_consistency_std=cfg.prior_std, **asdict(net),
    )  # fmt: skip
    torch.manual_seed(cfg.loop.seed)
    q = PosteriorEncoder(net_cfg).to(dist.device)
    if cfg.init:
        initialise_from(q, Path(cfg.init), model)
        init = init_record(Path(cfg.init))  # read now: the init folder may be overwritten by an export later
    dist.broadcast_(q)
    q_ema = copy.deepcopy(q).requires_grad_(False)
    # The consistency read-out (one scalar per image) learns faster than the networks around it; with trainable
    # "consistency" it alone learns (q and G then run without gradients: a step costs about one forward pass).
    # With trainable "heads" the trunk is frozen (so run without gradients: a step skips its backward pass).
    readout = [p for n, p in q.named_parameters() if n.startswith("consistency_head.")]
    frozen = {"all": (), "heads": TRUNK_PREFIXES, "consistency": ("",)}[cfg.trainable]
    rest = [p for n, p in q.named_parameters() if not n.startswith(("consistency_head.", *frozen))]
    if cfg.trainable == "consistency" and not readout:
        raise UserError("trainable 'consistency' needs consistency 'learned' (a read-out to train)")
    for n, p in q.named_parameters():
        p.requires_grad_(not n.startswith(frozen) or n.startswith("consistency_head."))
    groups = [{"params": rest}, {"params": readout, "lr_scale": cfg.consistency_lr_scale}]
    opt = torch.optim.Adam([g for g in groups if g["params"]], lr=cfg.loop.lr)
    modules, optimizers = {"q": q, "q_ema": q_ema}, {"q": opt}
    if cfg.adv_weight:  # the realism term's discriminator, trained from scratch beside q
        D = Discriminator(model.channels, model.resolution, cfg.disc_channels, c_dim).to(dist.device)
        dist.broadcast_(D)
        opt_d = torch.optim.RAdam(D.parameters(), lr=cfg.lr_d)
        modules["D"], optimizers["D"] = D, opt_d
        last_w = (q.offset_heads[-1] if q.offset_heads else q.latent_head)[-1].weight
    start = load_train_state(run_dir, modules, optimizers)
    params = sum(p.numel() for p in q.parameters())
    log(f"posterior {family}: {len(images)} images, {params} params, start step {start}, {dist.world_size} rank(s)")
    began = time.perf_counter()
    for step in range(start, cfg.loop.steps):
        g = step_generator(cfg.loop.seed, step)
        # Global batch (random flips, a caption of each image's class or the null caption); this rank's slice.
        idx = torch.randint(len(images), (cfg.loop.batch_size,), generator=g)
        x = dist.local(random_hflip(images[idx], g) if cfg.hflip else images[idx])
        c = dist.local(sample_condition(model.bank, labels[idx], g, cfg.cond_dropout))
        # A random operator of the family with per-image sigma_y, the observations and the samples' noise, from
        # this rank's own stream (each rank's slice gets its own family member).
        g_rank = step_generator(cfg.loop.seed, step, stream=1 + dist.rank)
        op = sample_family_operator(family, shape, len(x), g_rank).to(dist.device)
        y = op(x, generator=g_rank)
        eps = torch.randn(cfg.samples, len(x), cfg.net.noise_channels, *shape[1:], generator=g_rank).to(dist.device)
        obs_noise = torch.randn(cfg.samples, *y.shape, generator=g_rank).to(dist.device)
        # K data-consistent samples per image through q and the frozen G; energy score; Adam step, EMA.
        warmup_cosine_lr(opt, cfg.loop.lr, step, cfg.loop.warmup_steps, cfg.loop.steps)
        xs = posterior_samples(model, q, op, y, c, eps, cfg.prior_std, precision=cfg.precision, obs_noise=obs_noise)[0]
        loss = energy_score(xs, x).mean()
        if cfg.adv_weight and step >= cfg.adv_start:  # realism: the discriminator's hinge loss, adaptive weight
            adv = hinge_g_loss(D(diff_augment(xs.flatten(0, 1), g_rank), c.repeat(cfg.samples, 1)).float())
            lam = adaptive_weight(loss, adv, last_w)
            loss = loss + cfg.adv_weight * lam * adv
        loss = update(dist, loss, q, opt, q_ema, cfg.loop.ema_decay)
        if cfg.adv_weight:  # the discriminator's step: the batch's images vs the same samples, DiffAugment-ed
            real = D(diff_augment(x, g_rank), c).float()
            fake = D(diff_augment(xs.detach().flatten(0, 1), g_rank), c.repeat(cfg.samples, 1)).float()
            loss_d = update(dist, hinge_d_loss(real, fake), D, opt_d)
            if (step + 1) % cfg.loop.log_every == 0:
                log(
                    f"  discriminator hinge {loss_d:.3f}, adaptive weight {float(lam) if step >= cfg.adv_start else 0:.3g}"
                )
        bookkeeping(dist, run_dir, cfg.loop, step, loss, modules, optimizers, log, callback)
    seconds, total_seconds = time.perf_counter() - began, training_seconds(run_dir)

    out = Path(run_dir) / f"posterior-{family}"
    dist.barrier()
    if not dist.is_main:
        return out
    test = area_resize(load_images(cfg.data, "test", limit=cfg.eval_offset + cfg.eval_images)[0], model.resolution)
    scores = evaluate_posterior(model, q_ema.eval(), family, test[cfg.eval_offset :], cfg.eval_samples, cfg.prior_std)
    config = {
        "kind": "posterior",
        "posterior": net_cfg.to_dict(),
        "generator": generator_fingerprint(model),
        "metrics": {"heldout": scores, "eval_images": len(test) - cfg.eval_offset, "eval_samples": cfg.eval_samples,
                    "eval_first_test_index": cfg.eval_offset, "sigma_y": 0.05},
        "train_seconds": total_seconds,  # every session of a resumed run
        "train": to_dict(cfg),
    }  # fmt: skip
    if cfg.init:
        config["init"] = init  # the chain's earlier training
    save_checkpoint(out, {f"net.{k}": v for k, v in q_ema.state_dict().items()}, config)
    for label, s in scores.items():
        log(f"held-out {label}: mean-of-{cfg.eval_samples} {s['psnr_mean']:.2f} dB, one sample {s['psnr_one']:.2f} dB, "
            f"90% coverage {s['coverage90']:.3f}")  # fmt: skip
    log(
        f"trained {cfg.loop.steps - start} steps in {seconds / 60:.1f} min ({total_seconds / 60:.1f} min in all); saved {out}"
    )
    return out
