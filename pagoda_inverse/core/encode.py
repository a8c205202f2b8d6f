"""PaGoDA's deterministic encoder over a dataset: PF-ODE latents cached on disk (Kim et al. 2024, sec. 3.1).

Each cached latent is paired with the exact orientation of its image (a flip flag, never a flipped latent)
and with the condition it was encoded under (the canonical class caption, or the null caption for a share
of the images so the decoder also learns its unconditional branch for classifier-free guidance).

Cache folder layout (written atomically, resumable after a kill: finished shards are kept)::

    manifest.json                      config, teacher identity, number of latents and shards
    shard-00000.safetensors ...        latents [n, C, r, r] fp32, index [n] int64, flip [n] bool, null [n] bool
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from pagoda_inverse.core.checkpoint import load_tensors, save_tensors
from pagoda_inverse.core.ode import encode_heun
from pagoda_inverse.core.precond import guided_denoiser
from pagoda_inverse.utils.atomic import write_json_atomic
from pagoda_inverse.utils.errors import UserError


def file_digest(path: Path) -> str:
    """SHA-256 of a file (identifies the teacher a cache was made with)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def encode_jobs(
    num_images: int, flips: str, null_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The list of latents to compute: ``(index [M], flip [M] bool, null [M] bool)``, fixed by ``seed``.

    :param flips: ``"random"`` (one seeded orientation per image), ``"both"`` (two latents per image) or ``"none"``.
    :param null_fraction: share of images encoded a second time under the null caption.
    """
    g = torch.Generator().manual_seed(seed)
    index = torch.arange(num_images)
    if flips == "both":
        index, flip = index.repeat_interleave(2), torch.tensor([False, True]).repeat(num_images)
    elif flips == "random":
        flip = torch.rand(num_images, generator=g) < 0.5
    elif flips == "none":
        flip = torch.zeros(num_images, dtype=torch.bool)
    else:
        raise ValueError(f"flips must be 'random', 'both' or 'none', got {flips!r}")
    null = torch.zeros(len(index), dtype=torch.bool)
    extra = torch.randperm(num_images, generator=g)[: int(round(null_fraction * num_images))].sort().values
    extra_flip = torch.rand(len(extra), generator=g) < 0.5 if flips != "none" else torch.zeros(len(extra), dtype=bool)
    return (
        torch.cat([index, extra]),
        torch.cat([flip, extra_flip]),
        torch.cat([null, torch.ones(len(extra), dtype=torch.bool)]),
    )


def encode_to_cache(
    teacher: torch.nn.Module,
    images: torch.Tensor,
    conditions: torch.Tensor,
    null_embedding: torch.Tensor,
    out_dir: Path,
    cfg,
    *,
    identity: dict,
    callback: Callable[[dict], None] | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> Path:
    """Encode ``images`` into the cache folder ``out_dir``, skipping shards already written.

    With ``world_size > 1`` (``torchrun``) rank ``r`` encodes shards ``r, r + W, r + 2W, ...``; the shards do not
    depend on who computed them, so a cache can be finished with another world size.

    :param teacher: EDM denoiser ``D(x, sigma, cond)`` at the teacher's resolution (eval mode); the batches run on
        its device, the cache is written from the CPU.
    :param images: ``[N, C, r, r]`` in ``[-1, 1]`` at the teacher's resolution.
    :param conditions: ``[N, D]`` condition of each image (its canonical class caption embedding).
    :param null_embedding: ``[D]``.
    :param cfg: an :class:`pagoda_inverse.train.config.EncodeConfig`.
    :param identity: what the latents depend on besides ``cfg`` (teacher digest, split); stored in the manifest.
    :param callback: called per batch with ``{"step": latents done, "total": M}`` (this rank's share).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = next(teacher.parameters()).device
    index, flip, null = encode_jobs(len(images), cfg.flips, cfg.null_fraction, cfg.seed)
    num_shards = (len(index) + cfg.shard_size - 1) // cfg.shard_size
    manifest = {"config": asdict(cfg), **identity, "num_latents": len(index), "num_shards": num_shards}
    manifest_path = out_dir / "manifest.json"
    if manifest_path.is_file():
        if json.loads(manifest_path.read_text()) != manifest:
            raise UserError(f"{manifest_path}: the cache was made with another teacher or config; use a new --out")
    else:
        write_json_atomic(manifest_path, manifest)

    mine = range(rank, num_shards, world_size)
    total = sum(min((k + 1) * cfg.shard_size, len(index)) - k * cfg.shard_size for k in mine)
    done = 0
    for k in mine:
        sl = slice(k * cfg.shard_size, min((k + 1) * cfg.shard_size, len(index)))
        path = out_dir / f"shard-{k:05d}.safetensors"
        if path.is_file():  # finished before an interruption (shards are written atomically)
            done += sl.stop - sl.start
            continue
        latents = []
        for start in range(sl.start, sl.stop, cfg.batch_size):
            j = slice(start, min(start + cfg.batch_size, sl.stop))
            # The exact orientation and condition of each job's image.
            x = images[index[j]]
            x = torch.where(flip[j, None, None, None], x.flip(-1), x)
            cond = torch.where(null[j, None], null_embedding[None], conditions[index[j]])
            with torch.no_grad():
                den = guided_denoiser(teacher, cond.to(device), clamp=cfg.clamp)
                latents.append(encode_heun(den, x.to(device), cfg.num_steps).cpu())
            done += j.stop - j.start
            if callback is not None:
                callback({"step": done, "total": total})
        tensors = {"latents": torch.cat(latents).float(), "index": index[sl], "flip": flip[sl], "null": null[sl]}
        save_tensors(path, tensors)
    return out_dir


def load_latent_cache(cache_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """All shards of a finished cache, concatenated: ``({"latents", "index", "flip", "null"}, manifest)``."""
    cache_dir = Path(cache_dir)
    manifest_path = cache_dir / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(f"{manifest_path}: missing; pass a folder made by 'pagoda-inv encode'")
    manifest = json.loads(manifest_path.read_text())
    paths = [cache_dir / f"shard-{k:05d}.safetensors" for k in range(manifest["num_shards"])]
    if missing := [p.name for p in paths if not p.is_file()]:
        raise UserError(f"{cache_dir}: incomplete cache ({len(missing)} shards missing); finish it with --resume")
    shards = [load_tensors(p) for p in paths]
    return {key: torch.cat([s[key] for s in shards]) for key in ("latents", "index", "flip", "null")}, manifest
