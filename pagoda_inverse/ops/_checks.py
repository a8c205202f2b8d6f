"""Input validation shared by the operators: one-line :class:`OperatorParameterError` messages naming the parameter."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from pagoda_inverse.utils.errors import UserError


class OperatorParameterError(UserError, ValueError):
    """A bad operator parameter (kernel, mask, sigma, factor, shape). ``str(err)`` is a one-line message.

    It is a :class:`ValueError` (what the operator API promises) and a
    :class:`~pagoda_inverse.utils.errors.UserError` (what the CLI maps to exit code 2).
    """


def fail(message: str) -> OperatorParameterError:
    """Build the error to raise; keeps every message on one line."""
    return OperatorParameterError(" ".join(str(message).split()))


def check_nonneg(value, name: str) -> None:
    """Raise unless every entry of ``value`` (number, sequence or tensor) is finite and >= 0."""
    t = torch.as_tensor(value, dtype=torch.float64)
    if t.numel() == 0 or not bool(torch.isfinite(t).all()):
        raise fail(f"{name} must be a finite number >= 0, got {_short(value)}")
    if bool((t < 0).any()):
        raise fail(f"{name} must be >= 0, got {_short(value)}")


def check_positive(value, name: str) -> None:
    """Raise unless every entry of ``value`` is finite and > 0."""
    t = torch.as_tensor(value, dtype=torch.float64)
    if t.numel() == 0 or not bool(torch.isfinite(t).all()):
        raise fail(f"{name} must be a finite number > 0, got {_short(value)}")
    if bool((t <= 0).any()):
        raise fail(f"{name} must be > 0, got {_short(value)}")


def check_int(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < minimum:
        raise fail(f"{name} must be an integer >= {minimum}, got {_short(value)}")
    return int(value)


def check_choice(value: str, name: str, choices: Sequence[str]) -> str:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise fail(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def check_image(x: torch.Tensor, name: str = "x", channels: int | None = None) -> None:
    """Raise unless ``x`` is a floating (B, C, H, W) tensor (with ``channels`` channels when given)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise fail(f"{name} must be a (B, C, H, W) tensor, got {shape}")
    if not x.is_floating_point():
        raise fail(f"{name} must be float32 or float64, got {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise fail(f"{name} must have {channels} channel(s), got shape {tuple(x.shape)}")


def check_batch(param_batch: int, x_batch: int, name: str) -> None:
    """Per-image parameters: a batch of 1 broadcasts, otherwise the batch sizes must match."""
    if param_batch not in (1, x_batch):
        raise fail(
            f"{name} holds {param_batch} per-image entries but the batch has {x_batch} image(s); give one "
            f"shared entry or one per image"
        )


def check_divisible(size: Sequence[int], factor: int, name: str = "factor") -> None:
    """Raise unless ``factor`` divides both H and W of ``size`` (…, H, W), saying which sizes work."""
    h, w = int(size[-2]), int(size[-1])
    if h % factor or w % factor:
        good = f"{round_up(h, factor)}x{round_up(w, factor)}"
        raise fail(
            f"{name}={factor} does not divide the image size {h}x{w}; H and W must be multiples of {factor} "
            f"(e.g. {good}), so crop or pad the image"
        )


def round_up(n: int, m: int) -> int:
    """The smallest multiple of ``m`` that is >= ``n``."""
    return int(math.ceil(n / m) * m)


def _short(value) -> str:
    text = repr(value.tolist() if isinstance(value, torch.Tensor) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_batch_scalar(value, like: torch.Tensor, name: str) -> torch.Tensor | float:
    """A float, or a ``[B]`` tensor reshaped to ``[B, 1, 1, 1]`` on ``like``'s device and dtype."""
    if isinstance(value, (int, float)):
        return float(value)
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape(-1)
    check_batch(t.numel(), like.shape[0], name)  # one value broadcasts
    return t.reshape(-1, 1, 1, 1)
