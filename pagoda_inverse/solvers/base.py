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
from pagoda_inverse.datasets import downsample
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


def to_teacher(model: PagodaModel, x: torch.Tensor) -> torch.Tensor:
    """Area-downsample ``[B, C, R, R]`` to the teacher resolution (the encoder's own input degradation)."""
    factor = x.shape[-1] // model.teacher_resolution
    return downsample(x, factor)


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
    return encode(model, to_teacher(model, x.clamp(-1, 1)), cond, method=method, num_steps=num_steps)


#: Relative residual at which the noisy data-consistency solve stops (conjugate gradients, where the operator has no
#: closed form): its error is about 1e-4 of the correction (a blur at sigma_y 0.05 measured 1.3e-4 at most, against
#: 1.5e-6 at 1e-6) for two thirds of the iterations.
DC_TOL = 1e-4


def data_consistency(
    op: LinearOperator, x: torch.Tensor, y: torch.Tensor, prior_std: float | torch.Tensor = 0.2
) -> torch.Tensor:
    """Pull ``x`` onto the measurements.

    Noiseless (``sigma_y = 0``): the null-space projection ``x + A^+(y - A x)`` (then ``A x = y`` exactly), after
    ``op.back_project_steps`` steps of iterative back-projection ``x <- x + B (y - A x)`` with the operator's smooth
    approximate inverse ``B`` (area down-sampling: bilinear), so that a decoded image's low-frequency error is
    corrected smoothly rather than block by block (``tests/solvers/test_contract.py`` checks that it removes a smooth
    error the projection alone leaves; docs/photo.md measures G with it against bicubic with it).
    Noisy: the MAP estimate under ``y ~ N(A x, sigma_y^2)`` and a Gaussian prior ``N(x_G, prior_std^2)`` around
    the decoded image, ``(A^T A + gamma I)^{-1} (A^T y + gamma x_G)`` with ``gamma = sigma_y^2 / prior_std^2``.
    The default ``prior_std = 0.2`` makes the residual match ``sigma_y`` on ``superres_x4`` with the ``fmnist``
    model (the discrepancy principle): ``pagoda-inv bench`` on 64 images gave a residual of 0.044 for
    ``sigma_y = 0.05`` (0.071 with 0.1, 0.018 with 0.4). A per-image ``sigma_y`` or ``prior_std`` (``[B]``, e.g. a
    posterior encoder's learned widths, differentiable) gives each image its own ``gamma``, so an image's result
    does not depend on the others in its batch.
    """
    sigma_y = torch.as_tensor(op.sigma_y, dtype=x.dtype, device=x.device).reshape(-1)
    prior_std = torch.as_tensor(prior_std, dtype=x.dtype, device=x.device).reshape(-1)
    noiseless = sigma_y == 0
    if noiseless.all():
        for _ in range(op.back_project_steps):  # smooth corrections first, then the exact projection
            x = x + op.back_project(y - op.A(x))
        return op.project(x, y)
    if sigma_y.numel() == 1 and prior_std.numel() == 1 and not prior_std.requires_grad:
        return op.tikhonov(y, x0=x, gamma=float(sigma_y / prior_std) ** 2, tol=DC_TOL)
    # Per-image gammas; noiseless rows get the smooth steps and a near-projection.
    if noiseless.any():
        smooth = x
        for _ in range(op.back_project_steps):
            smooth = smooth + op.back_project(y - op.A(smooth))
        x = torch.where(noiseless.reshape(-1, 1, 1, 1), smooth, x)
    gamma = (sigma_y / prior_std).pow(2).expand(len(x)).clamp_min(1e-10)
    return op.tikhonov(y, x0=x, gamma=gamma, tol=DC_TOL)
