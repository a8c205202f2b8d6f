"""The shared parts of a training step: the warm-up + cosine learning rate, the update of one network and the
run's bookkeeping.

Every single-network stage (teacher, learned encoder, guidance map, classifier, colour network) ends its step the
same way; the decoder's GAN step updates its two networks with :func:`update` (G's reporting the reconstruction
term, not G's whole loss) and reports the discriminator's loss and the adaptive weight through :func:`bookkeeping`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch

from pagoda_inverse.core.ema import ema_update
from pagoda_inverse.train.config import LoopConfig
from pagoda_inverse.train.distributed import init_distributed
from pagoda_inverse.train.state import RunLog, save_synced_train_state

#: A training function's progress callback: called with ``{"step", "total", "loss", ...}`` after each step.
Callback = Callable[[dict], None] | None


def begin_run(run_dir: Path, loop: LoopConfig, device: str | None, callback: Callback):
    """A stage's ``(dist, log, callback)``: this process's rank (``device``: :func:`init_distributed`; the batch
    checked to split over the ranks), the run folder's log (rank 0 writes it) and the progress callback (rank 0's)."""
    dist = init_distributed(device)
    dist.check_batch(loop.batch_size)
    return dist, RunLog(run_dir, enabled=dist.is_main), callback if dist.is_main else None


def update(dist, loss: torch.Tensor, net: torch.nn.Module, opt: torch.optim.Optimizer,
           ema: torch.nn.Module | None = None, ema_decay: float = 0.0,
           report: torch.Tensor | None = None) -> float:  # fmt: skip
    """Backward on this rank's ``loss``, gradient mean over ranks, one optimizer step and the EMA update (when
    ``ema`` is given); returns the loss (or the scalar ``report``, e.g. one term of it) averaged over ranks (for
    logging)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    dist.average_gradients_(net)
    opt.step()
    if ema is not None:
        ema_update(ema, net, ema_decay)
    return dist.mean((loss if report is None else report).item())


def warmup(step: int, warmup_steps: int) -> float:
    """The linear warm-up factor of step ``step`` (0-based): ``(step + 1) / warmup_steps`` up to 1; 1 throughout
    without a warm-up (``warmup_steps`` 0).

    >>> warmup(1, 4), warmup(9, 4), warmup(0, 0)
    (0.5, 1.0, 1.0)
    """
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0


def warmup_cosine_lr(opt: torch.optim.Optimizer, lr: float, step: int, warmup_steps: int, steps: int) -> None:
    """Set ``opt``'s learning rate for step ``step`` (0-based) of ``steps``: linear warm-up over ``warmup_steps``
    times a cosine decay from ``lr`` to 0 (times a parameter group's ``lr_scale`` where it has one)."""
    warm = warmup(step, warmup_steps)
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0) * warm * 0.5 * (1 + math.cos(math.pi * step / steps))


def bookkeeping(dist, run_dir: Path, loop: LoopConfig, step: int, loss: float, modules: dict, optimizers: dict, log,
                callback: Callback, extra: dict | None = None, summary: str | None = None) -> None:  # fmt: skip
    """After step ``step`` (0-based) of ``loop.steps``: the progress callback (with the ``extra`` measurements), a log
    line every ``loop.log_every`` steps (``summary``, default the loss), and a checkpoint (weights in sync across
    ranks) every ``loop.checkpoint_every`` steps and at the end."""
    if callback is not None:
        callback({"step": step + 1, "total": loop.steps, "loss": loss, **(extra or {})})
    if (step + 1) % loop.log_every == 0:
        log(f"step {step + 1}/{loop.steps} {summary or f'loss {loss:.4f}'}")
    if (step + 1) % loop.checkpoint_every == 0 or step + 1 == loop.steps:
        save_synced_train_state(dist, run_dir, step + 1, modules, optimizers)
