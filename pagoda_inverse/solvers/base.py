"""What every solver shares: the result type, resolution changes, encoding a measurement-consistent estimate,
and the data-consistency step.

One signature for all solvers (k-diffusion style, plain functions)::

    solve_<method>(model, op, y, *, cond=None, generator=None, callback=None, **hparams) -> SolverResult

``op`` acts on images at G's output resolution ``R`` (``[B, C, R, R]`` in ``[-1, 1]``); ``y`` is its measurement;
``generator`` is a ``torch.Generator`` or one per image (then image ``i`` depends only on generator ``i``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from pagoda_inverse.control.codec import encode
from pagoda_inverse.core.model import PagodaModel
from pagoda_inverse.datasets import area_resize
from pagoda_inverse.ops.base import LinearOperator
from pagoda_inverse.utils.errors import UserError


@dataclass
class SolverResult:
    """A solver's output.

    :param estimate: ``[B, C, R, R]``, nominally in ``[-1, 1]``: the posterior mean over samples (or the MAP estimate).
    :param samples: ``[K, B, C, R, R]`` the individual samples (``K = 1`` for deterministic solvers).
    :param latents: ``[K, B, C, r, r]`` the latents that were decoded (``None`` for latent-free baselines).
    :param info: ``{"solver", "nfe" (network evaluations per image), "seconds", ...}``.
    """

    estimate: torch.Tensor
    samples: torch.Tensor
    latents: torch.Tensor | None = None
    info: dict = field(default_factory=dict)

    @property
    def std(self) -> torch.Tensor:
        """``[B, C, R, R]`` per-pixel standard deviation over the samples (zeros when ``K = 1``)."""
        if len(self.samples) < 2:
            return torch.zeros_like(self.estimate)
        return self.samples.std(0)


class Timer:
    """Wall-clock seconds since creation (``Timer().seconds``)."""

    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def result(samples: torch.Tensor, latents, timer: Timer, solver: str, nfe: int, **info) -> SolverResult:
    """Pack ``[K, B, ...]`` samples into a :class:`SolverResult` (estimate = sample mean).

    Samples are not clamped: the data-consistency step may move pixels slightly outside ``[-1, 1]``, and clamping
    would undo the exact consistency; image writers clamp.
    """
    return SolverResult(
        samples.mean(0), samples, latents, {"solver": solver, "nfe": nfe, "seconds": timer.seconds, **info}
    )


def check_model_and_op(model: PagodaModel, op: LinearOperator, y: torch.Tensor, *, need: str = "decoder") -> int:
    """Validate that ``model`` has what the solver needs and that ``op`` acts on G's resolution; returns ``R``."""
    if need == "decoder" and model.decoder is None:
        raise UserError(f"{model.path}: this solver needs a one-step decoder (decoder/ checkpoint)")
    res = model.resolution
    if op.in_shape is not None and tuple(op.in_shape[-2:]) != (res, res):
        raise UserError(f"the operator acts on {tuple(op.in_shape)} images but the model works at {res}x{res}")
    if not torch.isfinite(y).all():
        raise UserError("the measurement y contains NaN or inf values")
    return res


def condition(model: PagodaModel, cond: torch.Tensor | None, batch: int) -> torch.Tensor:
    """``[B, D]`` conditions: the given ones, or the null caption (unconditional) when ``cond`` is ``None``."""
    if cond is None:
        return model.null_condition(batch)
    cond = cond.expand(batch, -1) if cond.dim() == 1 or len(cond) == 1 else cond
    if len(cond) != batch:
        raise UserError(f"cond has {len(cond)} rows for {batch} measurements")
    return cond


def prepare(model: PagodaModel, op: LinearOperator, y: torch.Tensor, cond, encoder: str | None):
    """The common start of the PaGoDA solvers: a timer, checks, the encoder to use and ``[B, D]`` conditions."""
    timer = Timer()
    check_model_and_op(model, op, y)
    return timer, encoder or default_encoder(model), condition(model, cond, len(y))


def encoder_nfe(model: PagodaModel, method: str, num_steps: int) -> int:
    """Network evaluations of one encoding."""
    return 1 if method == "learned" else 2 * (num_steps - 1)


def default_encoder(model: PagodaModel) -> str:
    """The learned encoder when the model has one (1 NFE), else the PF-ODE."""
    return "learned" if model.encoder is not None else "ode"


def encode_estimate(
    model: PagodaModel, x: torch.Tensor, cond: torch.Tensor, method: str, num_steps: int
) -> torch.Tensor:
    """Latents of a full-resolution estimate ``x`` (clamped, area-downsampled to the teacher's resolution)."""
    low = area_resize(x.clamp(-1, 1), model.teacher_resolution)  # the encoder's own input degradation
    return encode(model, low, cond, method=method, num_steps=num_steps)
