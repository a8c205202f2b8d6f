"""Stage 2a driver: encode a dataset split with a teacher checkpoint into a latent cache."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from pagoda_inverse.core.encode import encode_to_cache
from pagoda_inverse.core.parts import image_geometry
from pagoda_inverse.datasets import area_pool
from pagoda_inverse.train.config import DataConfig, EncodeConfig
from pagoda_inverse.train.data import load_images
from pagoda_inverse.train.distributed import init_distributed
from pagoda_inverse.train.loop import Callback
from pagoda_inverse.train.pairs import load_teacher, teacher_digest
from pagoda_inverse.utils.errors import UserError


def imported_teacher_data(teacher_config: dict, dataset: str, root: str | None, resolution: int) -> DataConfig:
    """The data an imported teacher (no ``"data"`` section) encodes: ``dataset`` at full ``resolution``, area
    down-sampled by ``resolution / r`` to the teacher's resolution ``r``, with the teacher's channels."""
    r = image_geometry(teacher_config)[1]
    if resolution % r or resolution < r:
        raise UserError(f"--resolution {resolution} is not a multiple of the teacher's resolution {r}")
    return DataConfig(dataset=dataset, root=root, resolution=resolution, factor=resolution // r)


def encode_dataset(teacher_dir: Path, out_dir: Path, cfg: EncodeConfig, *, data: DataConfig | None = None,
                   callback: Callback = None, device: str | None = None) -> Path:  # fmt: skip
    """Encode ``cfg.split`` of the teacher's dataset at the teacher resolution, each image under its canonical
    class caption (unlabelled images: the null caption). Re-running with the same arguments resumes.
    Under ``torchrun`` the shards are split over the ranks; every rank returns once the whole cache exists.

    :param data: the images to encode; required for an imported teacher (``pagoda-inv convert``), which records no
        dataset (see :func:`imported_teacher_data`), and then stored in the cache's manifest (``"data"``, with the
        teacher's ``"channels"``) for the decoder stages.
        A teacher trained here encodes its own dataset (``data`` must be ``None``).
    """
    teacher, tcfg, bank = load_teacher(teacher_dir)
    if "data" in tcfg and data is not None:
        raise UserError(f"{teacher_dir}: this teacher encodes the data it was trained on; drop --dataset")
    if "data" not in tcfg and data is None:
        raise UserError(f"{teacher_dir}: an imported teacher records no dataset; pass --dataset (and --resolution)")
    identity = {"split": cfg.split, "teacher_sha256": teacher_digest(teacher_dir)}
    channels = image_geometry(tcfg)[0]
    if data is not None:
        identity |= {"data": asdict(data), "channels": channels}
    data = data or DataConfig(**tcfg["data"])
    images, labels = load_images(data, cfg.split, limit=cfg.limit, channels=channels)
    if images.shape[1] != channels:
        raise UserError(f"{data.dataset}: {images.shape[1]}-channel images for a {channels}-channel teacher")
    if bank.num_classes and labels.numel() and int(labels.max()) >= bank.num_classes:
        raise UserError(
            f"{data.dataset}: labels up to {int(labels.max())}; the teacher has {bank.num_classes} classes"
        )
    if not bank.num_classes:
        labels = labels.clamp(max=-1)  # an unconditional teacher: every image under the (ignored) null condition
    low = area_pool(images, data.factor)  # the teacher's own down-sampling
    cond = bank.conditions(labels)
    dist = init_distributed(device)
    teacher = teacher.eval().to(dist.device)
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
