"""The model folder every converter writes, and its card.

``pagoda-inv convert`` writes ``OUT/teacher/{config.json, model.safetensors}`` and ``OUT/card.md``. The teacher's
``config.json`` holds the network (``"adm"``: :class:`~pagoda_inverse.nets.adm.ADMConfig`), how it becomes the denoiser
``D(x, sigma)`` (``"precond"``, see :func:`~pagoda_inverse.core.adm_teacher.build_teacher`) and where it came from
(``"source"``: format, file name, SHA-256); :func:`~pagoda_inverse.core.adm_teacher.load_adm_teacher` loads it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch

from pagoda_inverse.core.checkpoint import save_checkpoint
from pagoda_inverse.core.encode import file_digest
from pagoda_inverse.nets.adm import ADM, ADMConfig, state_mismatch
from pagoda_inverse.utils.atomic import set_normal_mode, write_text_atomic
from pagoda_inverse.utils.errors import CheckpointError, UserError


def check_state(cfg: ADMConfig, state: Mapping[str, torch.Tensor], source: str | Path, what: str) -> None:
    """Raise a one-line :class:`CheckpointError` unless ``state`` fits ``ADM(cfg)`` exactly (``what`` names the
    configuration in the message)."""
    if problem := state_mismatch(cfg, state):
        raise CheckpointError(f"{source}: the tensors do not fit {what}: {problem}")


def write_model_folder(out: str | Path, tensors: Mapping[str, torch.Tensor], teacher_config: dict, card: str) -> Path:
    """Write ``out/teacher/{config.json, model.safetensors}`` (``net.*`` float32 tensors) and ``out/card.md``,
    all or nothing: everything goes into a temporary folder beside ``out``, renamed to ``out`` at the end.

    ``out`` must not exist (a converter never overwrites); its parent must.
    """
    out = Path(out)
    if out.exists():
        raise UserError(f"{out}: already exists; choose a new --out folder (convert never overwrites)")
    if not out.parent.is_dir():
        raise UserError(f"{out}: folder {out.parent} does not exist; create it or choose another --out")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    set_normal_mode(tmp, folder=True)  # mkdtemp's 0700 would make the model folder private
    try:
        net = {f"net.{k}": v.to(torch.float32) if v.is_floating_point() else v for k, v in tensors.items()}
        save_checkpoint(tmp / "teacher", net, {"kind": "teacher", **teacher_config})
        write_text_atomic(tmp / "card.md", card)
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def write_converted(out: str | Path, source_format: str, files: list[Path], cfg: ADMConfig,
                    state: Mapping[str, torch.Tensor], precond: dict, denoiser: str, how: str) -> Path:  # fmt: skip
    """Write a converted teacher with :func:`write_model_folder`: its config (``cfg``, ``precond`` and the source
    record: ``source_format``, the ``files`` with their SHA-256, ``how`` the configuration was found) and its card."""
    digested = {Path(f): file_digest(Path(f)) for f in files}  # read once: the card and the config both name them
    teacher = {"adm": cfg.to_dict(), "precond": precond, "source": source_record(source_format, digested, how)}
    return write_model_folder(out, state, teacher, model_card(source_format, digested, cfg, denoiser, how))


def model_card(source_format: str, files: dict[Path, str], cfg: ADMConfig, denoiser: str, how: str) -> str:
    """The ``card.md`` of a converted model: the source files with their SHA-256 (``files``), the architecture, the
    denoiser."""
    with torch.device("meta"):
        params = sum(p.numel() for p in ADM(cfg).parameters())
    classes = f"{cfg.num_classes} classes" if cfg.num_classes else "unconditional"
    lines = [
        f"# Converted {source_format} model: ADM, {params / 1e6:.1f}M parameters, {cfg.image_size} px, {classes}",
        "",
        f"Written by `pagoda-inv convert --from {source_format}`; configuration: {how}.",
        "",
        *[f"- source `{f.name}` ({f.stat().st_size} bytes), sha256 `{sha}`" for f, sha in files.items()],
        f"- denoiser: {denoiser}",
        f"- attention at {list(cfg.attention_at)} px, channel_mult {list(cfg.channel_mult)}, "
        f"{cfg.num_res_blocks} residual blocks per level, learned variance {'dropped' if cfg.learn_sigma else 'none'}",
        "",
        "The weights keep the licence of their source.",
        "",
    ]
    return "\n".join(lines)


def source_record(source_format: str, files: dict[Path, str], how: str) -> dict:
    """The ``"source"`` section of a converted teacher's ``config.json`` (``files``: ``{path: SHA-256}``)."""
    named = [{"name": f.name, "sha256": sha} for f, sha in files.items()]
    return {"format": source_format, "files": named, "config": how}


def vp_precond(schedule: str) -> dict:
    """The ``"precond"`` section of a 1000-step VP epsilon-predictor."""
    return {"type": "vp-eps", "schedule": schedule, "steps": 1000}


def vp_denoiser(schedule: str) -> str:
    """The card's description of a :func:`vp_precond` denoiser."""
    return f"VP epsilon-prediction, {schedule} schedule, 1000 steps (iDDPM-style nearest step)"
