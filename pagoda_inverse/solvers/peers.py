"""Peer diffusion solvers run through deepinv's own implementations: DPS, DDRM, DiffPIR and PiGDM.

The prior is a full-resolution EDM model (default ``fmnist-fullres``, the same data and caption conditioning as
``fmnist``; hyper-parameter ``prior``: any model name or folder with a teacher at the operator's resolution, e.g. a
guided-diffusion / diffusers / EDM network converted by ``pagoda-inv convert``) wrapped as a deepinv ``Denoiser``: deepinv works on ``[0, 1]`` images with noise levels in ``[0, 1]``
units, so the wrapper calls ``D(2x - 1, 2 sigma, cond)`` and maps the result back. Measurements and noise levels
go through :mod:`pagoda_inverse.ops.deepinv_adapter` (``sigma_01 = sigma_y / 2``), so a task's ``sigma_y`` means
the same thing for every solver. Install with ``pip install 'pagoda-inv[peers]'``.

Seeding: DPS, DiffPIR and PiGDM run a whole batch at once from the first image's seed (deepinv draws the noise
of the batch together); DDRM runs image by image (deepinv's DDRM takes one mask), each from its own seed.
NFE counts denoiser calls per image (DPS also back-propagates through each call).
"""

from __future__ import annotations

import functools

import torch

from pagoda_inverse.ops.base import Identity, LinearOperator
from pagoda_inverse.ops.deepinv_adapter import _noise_to_deepinv, image_from_01, measurement_to_01, to_deepinv
from pagoda_inverse.solvers.base import SolverResult, Timer, check_model_and_op, condition, result
from pagoda_inverse.utils.errors import UserError

PRIOR = "fmnist-fullres"
SIGMA_MIN = 0.002  # EDM's smallest noise level ([-1, 1] units); deepinv's schedules end at sigma = 0


@functools.lru_cache(maxsize=4)
def load_prior(name: str, device: str = "cpu"):
    """The EDM prior model on ``device``: a model whose teacher works at the operator's full resolution (cached per
    name and device, so a call on another device gets its own copy instead of moving an earlier caller's)."""
    from pagoda_inverse.core.model import load_model

    return load_model(name).to(device)


@functools.lru_cache(maxsize=1)
def _denoiser_class():
    import deepinv as dinv

    class EDMDenoiser(dinv.models.Denoiser):
        """An EDM denoiser ``D(x, sigma, cond)`` on ``[-1, 1]`` images as a deepinv denoiser on ``[0, 1]`` images.

        ``forward(x [B, C, H, W] in [0, 1] + noise, sigma)`` returns ``E[x0 | x]`` in ``[0, 1]`` (noise levels below
        EDM's ``sigma_min`` are raised to it); ``calls`` counts evaluations. ``cond`` is ``[B, D]`` (or ``[1, D]``, broadcast); CFG with the null caption when
        ``cfg_scale != 1``.
        """

        def __init__(self, precond, cond: torch.Tensor, null: torch.Tensor, cfg_scale: float = 1.0):
            super().__init__(device="cpu")
            self.precond, self.cond, self.null, self.cfg_scale = precond, cond, null, cfg_scale
            self.calls = 0

        def forward(self, x, sigma, **kwargs):
            from pagoda_inverse.core.precond import guided_denoiser

            self.calls += 1
            s = self._handle_sigma(sigma, batch_size=x.shape[0], ndim=x.ndim, device=x.device, dtype=torch.float32)
            cond = self.cond if len(self.cond) == len(x) else self.cond[:1].expand(len(x), -1)
            den = guided_denoiser(self.precond, cond, self.null, self.cfg_scale)
            sigma_pm1 = (2 * s.flatten()).clamp(min=SIGMA_MIN)  # EDM's c_noise = ln(sigma) / 4 needs sigma > 0
            return ((den(2 * x.float() - 1, sigma_pm1) + 1) / 2).to(x.dtype)

    return EDMDenoiser


def _seed(generator, i: int = 0) -> int:
    """The integer seed of image ``i``'s generator (0 without one)."""
    if generator is None:
        return 0
    g = generator[i] if isinstance(generator, list | tuple) else generator
    return int(g.initial_seed())


def prior_condition(prior_model, cond: torch.Tensor | None, batch: int) -> torch.Tensor:
    """``[B, D']`` conditions for the prior: its null condition without ``cond``; else ``cond``, which must be in the
    prior's own conditioning (an imported class-conditional prior takes ``[B, num_classes]`` one-hot rows, see
    :meth:`~pagoda_inverse.core.text.CaptionBank.one_hot`): a width that does not match is a :class:`UserError`."""
    if cond is not None and cond.shape[-1] != prior_model.bank.embed_dim:
        raise UserError(
            f"the condition has {cond.shape[-1]} entries but prior {prior_model.path.name!r} takes "
            f"{prior_model.bank.embed_dim}; solve unconditionally or pass the prior's own condition"
        )
    return condition(prior_model, cond, batch)


def _setup(model, op: LinearOperator, y: torch.Tensor, cond, prior: str, cfg_scale: float):
    """A timer, checks, the prior's denoiser for the conditions, the deepinv physics and the ``[0, 1]`` measurement."""
    timer = Timer()
    prior_model = load_prior(prior, str(y.device))
    if prior_model.teacher is None:
        raise UserError(f"prior {prior!r} has no teacher/ (EDM denoiser) checkpoint; pass prior = 'fmnist-fullres'")
    check_model_and_op(prior_model, op, y, need="teacher")  # the operator acts at the prior's resolution
    if op.in_shape is not None and op.in_shape[0] != prior_model.channels:
        raise UserError(f"prior {prior!r} has {prior_model.channels} channels; the operator acts on {op.in_shape[0]}")
    den = _denoiser_class()(prior_model.teacher, prior_condition(prior_model, cond, len(y)),
                            prior_model.bank.null_embedding, cfg_scale)  # fmt: skip
    return timer, den, to_deepinv(op).to(y.device), measurement_to_01(op, y)


def _finish(x01: torch.Tensor, timer: Timer, solver: str, nfe: int, prior: str) -> SolverResult:
    return result(image_from_01(x01.float())[None], None, timer, solver, nfe, prior=prior)


def solve_dps(
    model, op, y, *, cond=None, generator=None, callback=None, prior: str = PRIOR, num_steps: int = 1000,
    guidance: str = "annealed", weight: float = 1.0, cfg_scale: float = 1.0,
) -> SolverResult:  # fmt: skip
    """DPS (Chung et al. 2023) via ``deepinv.sampling.DPS`` (VP schedule, DDPM steps, gradient of the measurement
    misfit through the denoiser). ``guidance="annealed"`` with ``weight`` 1: deepinv's default ``"norm"`` needs a
    weight in the hundreds (deepinv's DPS documentation)."""
    import deepinv as dinv

    timer, den, physics, y01 = _setup(model, op, y, cond, prior, cfg_scale)
    sampler = dinv.sampling.DPS(den, num_steps=num_steps, guidance=guidance, weight=weight, dtype=torch.float32,
                                device=y.device, rng=torch.Generator(y.device))  # fmt: skip
    x01 = sampler(y01, physics, seed=_seed(generator))
    return _finish(x01.detach(), timer, "dps", den.calls, prior)


def solve_diffpir(
    model, op, y, *, cond=None, generator=None, callback=None, prior: str = PRIOR, num_steps: int = 100,
    zeta: float = 0.1, lambda_: float = 7.0, cfg_scale: float = 1.0,
) -> SolverResult:  # fmt: skip
    """DiffPIR (Zhu et al. 2023) via ``deepinv.sampling.DiffPIR``: denoiser steps alternating with the proximal
    step of the L2 data term (our operator's ``prox_l2``: closed form or CG)."""
    import deepinv as dinv

    timer, den, physics, y01 = _setup(model, op, y, cond, prior, cfg_scale)
    sigma01 = max(float(torch.as_tensor(op.sigma_y).max()) / 2, 1e-3)
    sampler = dinv.sampling.DiffPIR(den, dinv.optim.data_fidelity.L2(), sigma=sigma01, max_iter=num_steps, zeta=zeta,
                                    lambda_=lambda_)  # fmt: skip
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(_seed(generator))
        x01 = sampler(y01, physics)
    return _finish(x01, timer, "diffpir", den.calls, prior)


def solve_pigdm(
    model, op, y, *, cond=None, generator=None, callback=None, prior: str = PRIOR, num_steps: int = 100,
    cfg_scale: float = 1.0,
) -> SolverResult:  # fmt: skip
    """PiGDM (Song et al. 2023) via deepinv's ``PosteriorDiffusion`` with ``PiGDMDataFidelity`` and DDIM steps on
    the VP SDE (the pseudo-inverse guidance solves with CG for operators without an SVD). Noiseless measurements
    are treated as ``sigma_01 = 1e-3`` (deepinv's PiGDM requires Gaussian noise)."""
    import deepinv as dinv

    timer, den, physics, y01 = _setup(model, op, y, cond, prior, cfg_scale)
    if not isinstance(physics.noise_model, dinv.physics.GaussianNoise):  # PiGDM's guidance needs sigma_y > 0
        physics.noise_model = dinv.physics.GaussianNoise(sigma=1e-3).to(y.device)
    timesteps = torch.linspace(1, 0, num_steps, dtype=torch.float64)
    solver = dinv.sampling.DDIMSolver(timesteps=timesteps, rng=torch.Generator(y.device))
    sampler = dinv.sampling.PosteriorDiffusion(data_fidelity=dinv.sampling.PiGDMDataFidelity(), denoiser=den,
                                               sde=dinv.sampling.VariancePreservingDiffusion(device=y.device),
                                               solver=solver, dtype=torch.float32, device=y.device)  # fmt: skip
    x01 = sampler(y01, physics, seed=_seed(generator))
    return _finish(x01.detach(), timer, "pigdm", den.calls, prior)


def _svd_physics(op: LinearOperator, i: int):
    """deepinv ``DecomposablePhysics`` of image ``i`` of ``op`` (DDRM needs its SVD), in ``[0, 1]`` units."""
    import deepinv as dinv

    noise = _noise_to_deepinv(op.noise_model)
    if isinstance(op, Identity):
        return dinv.physics.Denoising(noise_model=noise)
    mask = op.mask[i if len(op.mask) > 1 else 0].expand(op.in_shape).float()  # a binary mask (the registry's entry)
    return dinv.physics.Inpainting(img_size=op.in_shape, mask=mask, noise_model=noise, device=mask.device)


def solve_ddrm(
    model, op, y, *, cond=None, generator=None, callback=None, prior: str = PRIOR, num_steps: int = 100,
    eta: float = 0.85, etab: float = 1.0, cfg_scale: float = 1.0,
) -> SolverResult:  # fmt: skip
    """DDRM (Kawar et al. 2022) via ``deepinv.sampling.DDRM`` on operators with an SVD (inpainting, denoising),
    image by image, each from its own seed."""
    import deepinv as dinv
    import numpy as np

    timer = Timer()
    physics = [_svd_physics(op, i) for i in range(len(y))]  # refuse before any work
    _, den, _, y01 = _setup(model, op, y, cond, prior, cfg_scale)
    all_cond, out = den.cond, []
    for i in range(len(y)):
        den.cond = all_cond[i : i + 1]
        sampler = dinv.sampling.DDRM(den, sigmas=np.linspace(1, 0, num_steps), eta=eta, etab=etab)
        with torch.random.fork_rng():
            torch.manual_seed(_seed(generator, i))
            out.append(sampler(y01[i : i + 1], physics[i]))
    return _finish(torch.cat(out), timer, "ddrm", den.calls // len(y), prior)
