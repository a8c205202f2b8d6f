"""Data-parallel training under ``torchrun``: one global batch per step, split in equal rank slices.

Every rank draws the *global* batch of each step from the same per-step generator (image indices, flips,
captions, noise levels, noise), keeps its own slice ``[rank * b, (rank + 1) * b)`` with ``b = batch / world``,
and the gradients are averaged over ranks before each optimizer step. This is DistributedDataParallel's
algorithm (rank-0 broadcast of the initial weights, then a gradient mean per step), with the per-step sampler
playing the role of a DistributedSampler: the ranks see disjoint slices of one batch, and a run on W ranks
follows the single-process run up to floating-point summation order. The gradient mean is one flat all-reduce
after ``backward`` rather than DDP's reducer hooks, because the decoder's GAN step runs G twice per step and
differentiates the adaptive weight with ``autograd.grad``, which DDP's hooks do not support.

Device and backend: each rank trains on ``cuda:LOCAL_RANK`` with the nccl backend when torch sees a GPU, else on
the CPU with gloo; ``PAGODA_DEVICE=cpu`` (or ``cuda``) forces the choice (see :func:`training_device`). The data
stay on the CPU (the per-step draws use CPU generators, so the batches do not depend on the device) and each rank
moves its slice to its device. Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) the collectives are
no-ops, so the same loops run single-process. Only rank 0 logs and writes checkpoints.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

import torch

from pagoda_inverse.utils.device import resolve_device
from pagoda_inverse.utils.errors import UserError


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in a ``torchrun`` job.

    :param rank: this process's rank in ``0 .. world_size - 1``.
    :param world_size: number of processes (1 without ``torchrun``).
    :param device: where this rank's model and batch slices live.

    >>> d = Distributed(rank=1, world_size=2)
    >>> d.local(torch.arange(8)).tolist(), d.is_main
    ([4, 5, 6, 7], False)
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def from_env(cls, device: str | torch.device | None = None) -> Distributed:
        """Rank, world size and local rank from ``torchrun``'s environment (``RANK``, ``WORLD_SIZE``,
        ``LOCAL_RANK``), without joining the job; the device from :func:`training_device`."""
        return cls(
            rank=int(os.environ.get("RANK", "0")),
            world_size=int(os.environ.get("WORLD_SIZE", "1")),
            device=training_device(int(os.environ.get("LOCAL_RANK", "0")), device),
        )

    @property
    def backend(self) -> str:
        """The process-group backend for this device: nccl on CUDA, gloo on the CPU."""
        return "nccl" if self.device.type == "cuda" else "gloo"

    @property
    def is_main(self) -> bool:
        """True on the rank that logs and writes checkpoints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def check_batch(self, batch_size: int, what: str = "--batch-size") -> int:
        """The per-rank batch size; a world size that does not divide ``batch_size`` is a :class:`UserError`."""
        if batch_size % self.world_size:
            raise UserError(
                f"torchrun world size {self.world_size} does not divide the batch size {batch_size}; "
                f"use --nproc-per-node that divides it, or set {what} to a multiple of {self.world_size}"
            )
        return batch_size // self.world_size

    def local(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a global-batch tensor ``[B, ...]`` -> ``[B / world_size, ...]``, on its device."""
        b = len(x) // self.world_size
        return x[self.rank * b : (self.rank + 1) * b].to(self.device)

    def broadcast_(self, *modules: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank (DDP's start-of-training broadcast)."""
        if self.active:
            for module in modules:
                for t in list(module.parameters()) + list(module.buffers()):
                    torch.distributed.broadcast(t.data, src=0)

    def average_gradients_(self, *modules: torch.nn.Module) -> None:
        """Replace every ``.grad`` of ``modules`` by its mean over ranks (one flat all-reduce)."""
        if not self.active:
            return
        grads = [p.grad for m in modules for p in m.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.flatten() for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.world_size
        for g, mean in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            g.copy_(mean.view_as(g))

    def check_in_sync_(self, *modules: torch.nn.Module) -> None:
        """Raise if any rank's weights differ from rank 0's (checked at every checkpoint)."""
        if not self.active:
            return
        flat = torch.cat([t.detach().double().flatten() for m in modules for t in m.state_dict().values()])
        flat = flat.to(self.device)
        ref = flat.clone()
        torch.distributed.broadcast(ref, src=0)
        diff = (flat - ref).abs().max().reshape(1)
        torch.distributed.all_reduce(diff, op=torch.distributed.ReduceOp.MAX)
        if diff.item() > 0:
            raise RuntimeError(f"data-parallel ranks diverged: max weight difference {diff.item():.3g}")

    def share(self, value: int) -> int:
        """Rank 0's ``value`` on every rank (e.g. the number of a run folder rank 0 created)."""
        if not self.active:
            return value
        t = torch.tensor([int(value)], dtype=torch.int64, device=self.device)
        torch.distributed.broadcast(t, src=0)
        return int(t.item())

    def gather_json(self, obj) -> list:
        """Every rank's JSON-serialisable ``obj``, in rank order, on every rank (sent as UTF-8 bytes: no pickle)."""
        if not self.active:
            return [obj]
        on = {"device": self.device}
        data = torch.tensor(list(json.dumps(obj).encode()), dtype=torch.uint8, **on)
        sizes = [torch.zeros(1, dtype=torch.int64, **on) for _ in range(self.world_size)]
        torch.distributed.all_gather(sizes, torch.tensor([len(data)], **on))
        longest = int(max(s.item() for s in sizes))
        buffers = [torch.zeros(longest, dtype=torch.uint8, **on) for _ in range(self.world_size)]
        padding = torch.zeros(longest - len(data), dtype=torch.uint8, **on)
        torch.distributed.all_gather(buffers, torch.cat([data, padding]))
        return [json.loads(bytes(b[: int(n.item())].tolist()).decode()) for b, n in zip(buffers, sizes, strict=True)]

    def mean(self, value: float) -> float:
        """The mean of a scalar over ranks (for logging a global loss)."""
        if not self.active:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return float(t.item()) / self.world_size

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


def training_device(local_rank: int = 0, device: str | torch.device | None = None) -> torch.device:
    """The device a training process uses: ``device`` (a training function's ``device=`` argument, ``train
    --device``), else ``$PAGODA_DEVICE``: ``auto`` (default: ``cuda:local_rank`` when torch sees a GPU, else the CPU),
    ``cpu`` or ``cuda``; anything else, or ``cuda`` without a GPU, is a :class:`UserError`
    (see :func:`pagoda_inverse.utils.device.resolve_device`)."""
    return resolve_device(device, local_rank)


def init_distributed(device: str | torch.device | None = None) -> Distributed:
    """Join the ``torchrun`` job described by the environment (``RANK``, ``WORLD_SIZE``) on ``device`` (see
    :func:`training_device`); a no-op without it.

    The process group (nccl on CUDA, gloo on the CPU) is created once per process; a CUDA rank first selects
    its own GPU.
    """
    dist = Distributed.from_env(device)
    if dist.device.type == "cuda":
        torch.cuda.set_device(dist.device)
    if dist.active and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(dist.backend)
    return dist


def shutdown_distributed() -> None:
    """Leave the process group, if one was joined (gloo aborts a process that exits while still in it)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # no rank tears down while another is still in a collective
        torch.distributed.destroy_process_group()


def exit_distributed(code: int) -> None:
    """Leave the process group and end the process with ``code`` at once (outputs flushed): gloo's background
    threads can otherwise abort the interpreter's normal shutdown ("terminate called without an active
    exception"), which torchrun reports as a failed rank."""
    shutdown_distributed()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
