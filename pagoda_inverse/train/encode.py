"""Stage 2a driver: encode a dataset split with a teacher checkpoint into a latent cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pagoda_inverse.core.encode import encode_to_cache
from pagoda_inverse.core.precond import EDMPrecond
from pagoda_inverse.datasets import downsample
from pagoda_inverse.train.config import DataConfig, EncodeConfig
from pagoda_inverse.train.data import load_images
from pagoda_inverse.train.distributed import init_distributed
from pagoda_inverse.train.pairs import load_teacher_checkpoint, teacher_digest


def encode_dataset(
    teacher_dir: Path, out_dir: Path, cfg: EncodeConfig, *, callback: Callable[[dict], None] | None = None
) -> Path:
    """Encode ``cfg.split`` of the teacher's dataset at the teacher resolution, each image under its canonical
    class caption (unlabelled images: the null caption). Re-running with the same arguments resumes.
    Under ``torchrun`` the shards are split over the ranks; every rank returns once the whole cache exists."""
    net, tcfg, bank = load_teacher_checkpoint(teacher_dir)
    data = DataConfig(**tcfg["data"])
    images, labels = load_images(data, cfg.split, limit=cfg.limit)
    low = downsample(images, data.factor)  # the teacher's own down-sampling
    cond = bank.conditions(labels)
    identity = {"split": cfg.split, "teacher_sha256": teacher_digest(teacher_dir)}
    dist = init_distributed()
    teacher = EDMPrecond(net).eval().to(dist.device)
    encode_to_cache(
        teacher,
        low,
        cond,
        bank.null_embedding,
        out_dir,
        cfg,
        identity=identity,
        callback=callback if dist.is_main else None,
        rank=dist.rank,
        world_size=dist.world_size,
    )
    dist.barrier()
    return Path(out_dir)
