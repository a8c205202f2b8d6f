"""Run folders and resumable training state (safetensors + JSON, never pickle).

A run folder ``runs/00007-teacher-fmnist/`` holds ``config.json`` (the resolved config), ``log.txt``,
``train_state.safetensors`` + ``train_state.json`` (weights, EMA, optimizer moments, step) written atomically
every ``checkpoint_every`` steps, and the final checkpoint folder(s).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import torch

from pagoda_inverse.core.checkpoint import load_tensors, save_tensors, split_prefix
from pagoda_inverse.utils.atomic import write_json_atomic, write_text_atomic
from pagoda_inverse.utils.errors import CheckpointError, UserError


def new_run_dir(root: str | Path, name: str) -> Path:
    """Create ``root/NNNNN-name`` with the next free number."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
    run = root / f"{max(numbers, default=-1) + 1:05d}-{name}"
    run.mkdir()
    return run


class RunLog:
    """Appends time-stamped lines to ``run/log.txt`` (only when ``enabled``: rank 0 of a torchrun job)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = Path(run_dir) / "log.txt"
        self.start = time.time()
        self.enabled = enabled

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(f"[{time.time() - self.start:8.1f}s] {message}\n")


def write_config(run_dir: Path, kind: str, config: dict) -> None:
    """Save the resolved config as ``run_dir/config.json``."""
    write_json_atomic(Path(run_dir) / "config.json", {"kind": kind, "config": config})


def read_run_config(run_dir: Path, kind: str) -> dict:
    """The config a run was started with; refuses a run of another kind."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise UserError(f"{path}: missing; --resume needs a run folder made by 'pagoda-inv train {kind}'")
    saved = json.loads(path.read_text())
    if saved.get("kind") != kind:
        raise UserError(f"{run_dir}: is a {saved.get('kind')!r} run, not a {kind!r} run; pass the right folder")
    return saved["config"]


def check_resume_config(run_dir: Path, kind: str, config: dict) -> None:
    """Refuse to resume when the requested config differs from the run's saved one. Both are compared with every
    field filled in, so a run saved before a field was added resumes at that field's default (its old behaviour)."""
    from pagoda_inverse.train.config import from_dict, to_dict

    def filled(d: dict) -> dict:
        try:
            return json.loads(json.dumps(to_dict(from_dict(kind, d))))  # defaults filled; tuples -> lists, as stored
        except UserError as err:  # a field this version does not know
            raise UserError(f"{run_dir}/config.json: not a {kind!r} config of this version ({err})") from None

    saved, config = filled(read_run_config(run_dir, kind)), filled(config)
    if saved != config:
        diff = _differences(saved, config)
        raise UserError(f"{run_dir}/config.json: differs from the requested config in {diff}; resume without options")


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The dotted keys (``loop.steps``) whose values differ between two nested dicts."""
    keys = []
    for k in sorted(set(a) | set(b)):
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            keys += _differences(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            keys.append(f"{prefix}{k}")
    return keys


def _flatten_optimizer(name: str, opt: torch.optim.Optimizer):
    sd = opt.state_dict()
    tensors = {
        f"{name}.state.{idx}.{key}": torch.as_tensor(v) for idx, s in sd["state"].items() for key, v in s.items()
    }
    return tensors, sd["param_groups"]


#: Run folder -> (this session's start, seconds trained in earlier sessions), set by :func:`load_train_state`.
_CLOCKS: dict[str, tuple[float, float]] = {}


def _clock_key(run_dir: Path) -> str:
    return str(Path(run_dir).resolve())


def training_seconds(run_dir: Path) -> float:
    """Seconds spent training the run in ``run_dir``, summed over every session of a resumed run: each session counts
    from its :func:`load_train_state` call; earlier sessions' time up to their last checkpoint travels in the
    checkpoint (time after a session's last checkpoint is redone, so it is not counted)."""
    start, before = _CLOCKS.get(_clock_key(run_dir), (time.perf_counter(), 0.0))
    return before + time.perf_counter() - start


def save_train_state(run_dir: Path, step: int, modules: dict, optimizers: dict) -> None:
    """Save every module's weights, every optimizer's state and the step in one atomic write.

    The step and the optimizers' hyper-parameters travel in the safetensors file's metadata, so a kill at any
    moment leaves either the previous or the new state, never a mix; ``train_state.json`` is a readable copy.
    """
    tensors = {f"{name}.{k}": v for name, module in modules.items() for k, v in module.state_dict().items()}
    groups = {}
    for name, opt in optimizers.items():
        flat, groups[name] = _flatten_optimizer(f"opt_{name}", opt)
        tensors.update(flat)
    meta = json.dumps({"step": step, "param_groups": groups, "seconds": training_seconds(run_dir)})
    save_tensors(Path(run_dir) / "train_state.safetensors", tensors, metadata={"train_state": meta})
    write_text_atomic(Path(run_dir) / "train_state.json", meta)


def save_synced_train_state(dist, run_dir: Path, step: int, modules: dict, optimizers: dict) -> None:
    """A checkpoint of a (possibly data-parallel) run: check that every rank holds the same weights (see
    :class:`~pagoda_inverse.train.distributed.Distributed`), then rank 0 saves with :func:`save_train_state`."""
    dist.check_in_sync_(*modules.values())
    if dist.is_main:
        save_train_state(run_dir, step, modules, optimizers)


def load_train_state(run_dir: Path, modules: dict, optimizers: dict) -> int:
    """Restore what :func:`save_train_state` wrote; returns the step to continue from (0 if none saved)."""
    path = Path(run_dir) / "train_state.safetensors"
    _CLOCKS[_clock_key(run_dir)] = (time.perf_counter(), 0.0)
    if not path.is_file():
        return 0
    tensors, metadata = load_tensors(path, with_metadata=True)
    if "train_state" not in metadata:
        raise CheckpointError(f"{path}: has no train_state metadata; it was not written by pagoda-inv training")
    meta = json.loads(metadata["train_state"])
    _CLOCKS[_clock_key(run_dir)] = (time.perf_counter(), float(meta.get("seconds", 0.0)))
    for name, module in modules.items():
        module.load_state_dict(split_prefix(tensors, name))
    for name, opt in optimizers.items():
        state: dict[int, dict] = {}
        for key, value in split_prefix(tensors, f"opt_{name}.state").items():
            idx, field = key.split(".", 1)
            state.setdefault(int(idx), {})[field] = value
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"][name]})
    return int(meta["step"])


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """The RNG for one training step: depends only on ``(seed, step, stream)``, so a resumed run sees the same
    batches. Stream 0 draws the global batch (identical on every rank); other streams are for per-rank draws."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step + stream * 2**40)
