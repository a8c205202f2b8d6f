"""Where the toolkit computes: ``auto`` (a GPU when torch sees one, else the CPU), ``cpu`` or ``cuda[:N]``.

The choice comes from an explicit ``--device`` / ``device=`` argument, else ``$PAGODA_DEVICE``, else ``auto``. Random
numbers are always drawn on the CPU from per-image generators and then moved, so a sample depends on its seed and not
on the device; on CUDA the toolkit also turns TF32 off (``PAGODA_TF32=1`` keeps it on), so that a GPU run matches the
CPU run up to float32 summation order (the measured agreement is in ``docs/examples/custom-dataset.md``).
"""

from __future__ import annotations

import os

import torch

from pagoda_inverse.utils.errors import UserError

ENV_VAR = "PAGODA_DEVICE"
CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | torch.device | None = None, local_rank: int = 0) -> torch.device:
    """The device for ``name`` (``None``: ``$PAGODA_DEVICE``, default ``auto``).

    ``auto`` is ``cuda:local_rank`` (modulo the GPU count) when torch sees a GPU, else the CPU; ``cuda`` without a GPU,
    a GPU index out of range, or any other name is a :class:`UserError`.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    source = "--device" if name is not None else ENV_VAR
    want = str(name if name is not None else os.environ.get(ENV_VAR, "auto")).strip().lower()
    base, _, index = want.partition(":")
    if base not in CHOICES or (index and (base != "cuda" or not index.isdigit())):
        raise UserError(f"{source}={want!r}: use auto, cpu, cuda or cuda:N")
    if base == "cpu" or (base == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError(f"{source}={want!r} but torch sees no CUDA device; use cpu (or leave it at auto)")
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        raise UserError(f"{source}={want!r}: torch sees {count} CUDA device(s), cuda:0 .. cuda:{count - 1}")
    device = torch.device("cuda", int(index) if index else local_rank % count)
    use_full_float32()
    return device


def use_full_float32() -> None:
    """Turn TF32 matrix and convolution arithmetic off on CUDA (unless ``$PAGODA_TF32=1``): float32 everywhere, as on
    the CPU. TF32 rounds inputs to 10 mantissa bits, which moves a benchmark's PSNR in the second decimal."""
    tf32 = os.environ.get("PAGODA_TF32", "0").strip() == "1"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA launches return before the work is done): call before reading a
    wall clock."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


#: Arithmetic precisions of the networks: ``fp32`` (results match across devices), ``bf16`` (autocast: convolutions
#: and matrix products in bfloat16, about 1.7x faster on CPUs with native bfloat16 (AVX-512 BF16 or AMX) and on GPUs;
#: the images move by about 0.004 RMS in [-1, 1] units; on a CPU without it, e.g. AVX2 only, bfloat16 is emulated and
#: about 12x SLOWER) or ``auto`` (``bf16`` where the device computes it natively, else ``fp32``).
PRECISIONS = ("fp32", "bf16", "auto")


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU that supports it, or a CPU with oneDNN's bfloat16
    kernels (AVX-512 BF16 or AMX)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``fp32`` or ``bf16``: ``precision`` itself, or what ``auto`` means on ``device`` (:func:`native_bf16`)."""
    if precision not in PRECISIONS:
        raise UserError(f"precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(precision: str, device: torch.device | str):
    """A context that runs the networks inside it at ``precision`` (:data:`PRECISIONS`) on ``device``."""
    enabled = resolve_precision(precision, device) == "bf16"
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)
