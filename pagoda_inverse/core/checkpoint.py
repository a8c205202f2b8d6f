"""Checkpoints as ``model.safetensors`` + ``config.json`` (never pickle), written atomically.

A checkpoint folder holds:

- ``config.json``: ``{"format": "pagoda-inv", "kind": ..., "unet": {...}, ...}`` (the resolved config);
- ``model.safetensors``: tensors, e.g. ``net.*`` (backbone weights) and ``captions.*`` (caption embeddings);
- optionally ``train_state.safetensors`` + ``train_state.json``: optimizer/EMA/RNG state for ``--resume``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pagoda_inverse.utils.atomic import atomic_path, write_json_atomic
from pagoda_inverse.utils.errors import CheckpointError
from pagoda_inverse.utils.io import read_json

FORMAT = "pagoda-inv"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    """Save contiguous CPU tensors to a safetensors file atomically."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        flat = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}  # no shared storage
        save_file(flat, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})


def load_tensors(path: Path, *, with_metadata: bool = False):
    """Load a safetensors file (with ``with_metadata``: ``(tensors, metadata)``); any failure is a
    :class:`CheckpointError` naming the file."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(
            f"{path}: missing; the checkpoint folder is incomplete (re-run the command that made it)"
        )
    try:
        if with_metadata:
            with safe_open(str(path), "pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a valid safetensors file ({err}); re-create or re-download it") from None


def save_checkpoint(folder: str | Path, tensors: dict[str, torch.Tensor], config: dict, *, half: bool = False):
    """Write ``config.json`` and ``model.safetensors`` into ``folder`` (created if needed; parent must exist).

    :param half: store floating tensors as float16 (shipped models); float32 otherwise.
    """
    folder = Path(folder)
    folder.mkdir(exist_ok=True)
    if half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    save_tensors(folder / "model.safetensors", tensors)
    write_json_atomic(folder / "config.json", {"format": FORMAT, **config})


def load_config(folder: str | Path) -> dict:
    """Read and check ``folder/config.json``."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(
            f"{path}: missing; pass a checkpoint folder made by pagoda-inv (config.json + model.safetensors)"
        )
    config = read_json(path, CheckpointError, "; re-create the checkpoint")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f'{path}: not a pagoda-inv config (missing "format": "{FORMAT}")')
    return config


def load_checkpoint(folder: str | Path, *, dtype: torch.dtype = torch.float32) -> tuple[dict[str, torch.Tensor], dict]:
    """Return ``(tensors, config)``; floating tensors are cast to ``dtype``."""
    config = load_config(folder)
    tensors = load_tensors(Path(folder) / "model.safetensors")
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}, config


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose key starts with ``prefix + '.'``, with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def load_module_state(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """``load_state_dict(strict=True)`` with a one-line :class:`CheckpointError` on any mismatch."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        first = (missing or unexpected or wrong)[0]
        what = "missing" if missing else "unexpected" if unexpected else "wrong-shaped"
        raise CheckpointError(
            f"{source}: {what} tensor {first!r} ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(wrong)} wrong-shaped); the weights do not match config.json"
        )
    module.load_state_dict(state)
