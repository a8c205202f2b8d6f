"""Stage 2: train PaGoDA's one-step decoder G on cached (latent, image) pairs plus an adversarial loss.

Per step (Kim et al. 2024, sec. 3.2; the released code's ``pgd_losses``):

- generator: ``L = L_rec + w_adv * lambda_ad * L_G`` with ``L_rec = d(G(z_enc(x), c), x)`` on encoded pairs and
  ``L_G = -D(G(eps, c'), c')`` on fresh prior noise ``eps ~ N(0, sigma_max^2 I)`` with the conditions ``c'`` of
  a real batch; ``lambda_ad`` is the adaptive weight clipped to ``[0.01, 10]``;
- discriminator: hinge loss on that real batch vs the same fakes (both DiffAugment-ed);
- EMA 0.999 of G; the EMA weights are saved.

G is initialised as a copy of the teacher's backbone; the teacher is never run here (only its latents).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch

from pagoda_inverse.core.checkpoint import load_checkpoint, load_module_state, save_checkpoint, split_prefix
from pagoda_inverse.core.discriminator import Discriminator, diff_augment
from pagoda_inverse.core.ema import ema_update
from pagoda_inverse.core.encode import file_digest, load_latent_cache
from pagoda_inverse.core.generator import Generator
from pagoda_inverse.core.losses import adaptive_weight, hinge_d_loss, hinge_g_loss, structural_distance
from pagoda_inverse.core.text import CaptionBank
from pagoda_inverse.core.unet import UNet, UNetConfig
from pagoda_inverse.train.batches import random_hflip, sample_condition
from pagoda_inverse.train.config import DataConfig, DecoderConfig, to_dict
from pagoda_inverse.train.data import load_images
from pagoda_inverse.train.state import RunLog, load_train_state, save_train_state, step_generator
from pagoda_inverse.utils.errors import CheckpointError, UserError
from pagoda_inverse.utils.images import save_grid


def load_teacher_checkpoint(teacher_dir: Path) -> tuple[UNet, dict, CaptionBank]:
    """The teacher backbone, its config and caption bank; refuses a checkpoint of another kind."""
    tensors, config = load_checkpoint(teacher_dir)
    if config.get("kind") != "teacher":
        raise CheckpointError(f"{teacher_dir}: is a {config.get('kind')!r} checkpoint; pass a teacher checkpoint")
    net = UNet(UNetConfig.from_dict(config["unet"]))
    load_module_state(net, split_prefix(tensors, "net"), Path(teacher_dir) / "model.safetensors")
    return net, config, CaptionBank.from_tensors(tensors)


def pair_batch(cache: dict, targets: torch.Tensor, cond_table: torch.Tensor, null: torch.Tensor, j: torch.Tensor):
    """Encoded pairs ``(z, x, c)``: latent ``j``, its image in the latent's exact orientation, its condition."""
    idx = cache["index"][j]
    x = targets[idx]
    x = torch.where(cache["flip"][j, None, None, None], x.flip(-1), x)
    c = torch.where(cache["null"][j, None], null[None], cond_table[idx])
    return cache["latents"][j], x, c


def train_decoder(
    cfg: DecoderConfig,
    run_dir: Path,
    teacher_dir: Path,
    latents_dir: Path,
    *,
    generator: Generator | None = None,
    stage: str = "decoder",
    callback: Callable[[dict], None] | None = None,
) -> Path:
    """Train (or resume) G; returns the ``run_dir/<stage>`` checkpoint folder (EMA weights).

    :param generator: start from this G (progressive growing) instead of a copy of the teacher; parameters with
        ``requires_grad=False`` stay frozen. Targets are at ``G``'s output resolution.
    """
    log = RunLog(run_dir)
    teacher_net, tcfg, bank = load_teacher_checkpoint(teacher_dir)
    cache, manifest = load_latent_cache(latents_dir)
    if manifest.get("teacher_sha256") != file_digest(Path(teacher_dir) / "model.safetensors"):
        raise UserError(f"{latents_dir}: latents were encoded with another teacher than {teacher_dir}")
    G = generator if generator is not None else Generator.from_teacher(teacher_net)
    data = DataConfig(**tcfg["data"])
    images, labels = load_images(data, manifest["split"], limit=manifest["config"]["limit"])
    res = G.net.config.out_resolution
    targets = torch.nn.functional.avg_pool2d(images, data.resolution // res) if res < data.resolution else images
    cond_table = torch.where((labels >= 0)[:, None], bank.class_embeddings[labels.clamp(min=0)], bank.null_embedding)

    torch.manual_seed(cfg.seed)
    D = Discriminator(G.net.config.in_channels, res, cfg.disc_channels, bank.embed_dim)
    G_ema = copy.deepcopy(G).requires_grad_(False)
    opt_g = torch.optim.RAdam([p for p in G.parameters() if p.requires_grad], lr=cfg.lr_g)
    opt_d = torch.optim.RAdam(D.parameters(), lr=cfg.lr_d)
    modules = {"G": G, "G_ema": G_ema, "D": D}
    start = load_train_state(run_dir, modules, {"G": opt_g, "D": opt_d})
    log(f"{stage}: {len(cache['latents'])} pairs, targets {res}px, start step {start}")
    last_w = G.net.last_layer_weight()

    for step in range(start, cfg.steps):
        g = step_generator(cfg.seed, step)
        # Generator step. Reconstruction on encoded pairs.
        z, x, c = pair_batch(
            cache,
            targets,
            cond_table,
            bank.null_embedding,
            torch.randint(len(cache["index"]), (cfg.batch_size,), generator=g),
        )
        rec = structural_distance(G(z, c), x).mean()
        # Adversarial term on fresh prior noise with the conditions of a real batch.
        r = torch.randint(len(targets), (cfg.batch_size,), generator=g)
        c_r = sample_condition(bank, labels[r], g, cfg.cond_dropout)
        fake = G(torch.randn(z.shape, generator=g) * G.sigma_max, c_r)
        loss, lam = rec, 0.0
        if step >= cfg.adv_start:
            adv = hinge_g_loss(D(diff_augment(fake, g), c_r))
            lam = adaptive_weight(rec, adv, last_w)
            loss = rec + cfg.adv_weight * lam * adv
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        ema_update(G_ema, G, cfg.ema_decay)
        # Discriminator step: hinge loss, real batch vs the same fakes.
        real = random_hflip(targets[r], g)
        loss_d = hinge_d_loss(D(diff_augment(real, g), c_r), D(diff_augment(fake.detach(), g), c_r))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        info = {
            "step": step + 1,
            "total": cfg.steps,
            "loss": rec.item(),
            "loss_d": loss_d.item(),
            "lambda": float(lam),
        }
        if callback is not None:
            callback(info)
        if (step + 1) % cfg.log_every == 0:
            log(
                f"step {step + 1}/{cfg.steps} rec {info['loss']:.4f} d {info['loss_d']:.3f} lambda {info['lambda']:.3f}"
            )
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            save_train_state(run_dir, step + 1, modules, {"G": opt_g, "D": opt_d})

    out = Path(run_dir) / stage
    config = {
        "kind": "decoder",
        "unet": G.net.config.to_dict(),
        "sigma_max": G.sigma_max,
        "teacher_sha256": manifest["teacher_sha256"],
        "teacher_config": tcfg,
        "train": to_dict(cfg),
    }
    save_checkpoint(out, {f"net.{k}": v for k, v in G_ema.net.state_dict().items()} | bank.to_tensors(), config)
    # Preview: one-step samples, 8 seeds x classes (rows = seeds).
    with torch.no_grad():
        classes = torch.arange(bank.num_classes).repeat(8)
        noise = torch.randn(len(classes), *cache["latents"].shape[1:], generator=torch.Generator().manual_seed(0))
        samples = G_ema(noise * G.sigma_max, bank.class_embeddings[classes])
    save_grid(samples, Path(run_dir) / "samples.png", nrow=bank.num_classes, scale=max(1, 128 // res))
    log(f"saved {out}")
    return out
