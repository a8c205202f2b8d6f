"""Latent-space solvers through the one-step generator: MAP optimisation and Langevin posterior sampling.

Both work on the normalised latent ``u = z / sigma_max`` (prior ``N(0, I)``) with the potential

    U(u) = ||A G(sigma_max u) - y||^2 / (2 s^2) + ||u||^2 / 2,    s = max(sigma_y, sigma_floor) (or likelihood_std),

``latent_map`` minimises it (Adam, GAN-inversion style); ``latent_ilo`` then also frees the features entering
G's growth stages (intermediate-layer optimisation); ``latent_langevin`` samples ``exp(-U)`` with the
unadjusted Langevin algorithm ``u <- u - tau grad U + sqrt(2 tau) xi`` (the noise-space posterior sampling of
Purohit et al., arXiv 2410.02078, with a one-step map like G). All start at the encoding of ``A^+ y`` (or of a
classical solver's estimate, ``init``) and end with the data-consistency step.
"""

from __future__ import annotations

import itertools

import torch

from pagoda_inverse.core.generator import one_step, one_step_nfe
from pagoda_inverse.ops.consistency import data_consistency
from pagoda_inverse.ops.families import operator_family
from pagoda_inverse.ops.rng import randn_like
from pagoda_inverse.solvers.base import SolverResult, encode_estimate, encoder_nfe, prepare, result
from pagoda_inverse.utils.errors import UserError


def _decode(model, u, c, cfg_scale: float = 1.0, offsets=()) -> torch.Tensor:
    """``[B, C, R, R]`` raw images of the normalised latents: :func:`~pagoda_inverse.core.generator.one_step` of
    ``sigma_max u`` (through the guidance map when guided, as in generation), the features entering G's first
    ``len(offsets)`` growth stages shifted by ``offsets``."""
    return one_step(model, u * model.decoder.sigma_max, c, cfg_scale=cfg_scale, grow_offset=offsets)


def _potential(model, op, y, c, u, s, cfg_scale: float = 1.0, offsets=(), offset_weight: float = 0.0, base=()):
    """``(U(u) [B], x [B, C, R, R])``: the potential per image (plus ``offset_weight ||d||^2 / 2`` for each free growth
    feature offset ``d``, applied on top of the fixed ``base`` offsets) and the decoded images it was computed from."""
    x = _decode(model, u, c, cfg_scale, _shifted(base, offsets))
    s = s.to(x.device) if torch.is_tensor(s) else s
    energy = (op.A(x) - y).pow(2).flatten(1).sum(1) / (2 * s**2) + u.pow(2).flatten(1).sum(1) / 2
    for d in offsets:
        energy = energy + offset_weight * d.pow(2).flatten(1).sum(1) / 2
    return energy, x


def _noise_level(op, sigma_floor: float, likelihood_std: float | None = None) -> float | torch.Tensor:
    """The potential's ``s``: ``likelihood_std`` when given, else ``max(sigma_y, sigma_floor)`` (a ``[B]`` tensor for
    a per-image ``sigma_y``, so that each image's potential uses its own noise level)."""
    if likelihood_std is not None:
        if not likelihood_std > 0:
            raise UserError(f"likelihood_std must be > 0, got {likelihood_std}")
        return float(likelihood_std)
    sigma = torch.as_tensor(op.sigma_y, dtype=torch.float32)
    return max(float(sigma), sigma_floor) if sigma.numel() == 1 else sigma.reshape(-1).clamp_min(sigma_floor)


def _start(model, op, y, c, init: str | None, encoder: str, num_steps: int):
    """``(u [B, C, r, r], base offsets)``: normalised latents of the starting estimate and the growth-feature offsets
    every decode keeps (empty unless ``init = "posterior"``).

    ``init``: ``None`` encodes ``op.initial_estimate(y)``; a latent-free solver's name (e.g. ``wiener`` for blur,
    whose pseudo-inverse amplifies the noise) encodes its estimate; ``"posterior"`` takes the central latent and
    offsets of the model's posterior encoder for the operator's family (``q`` at zero noise, 1 NFE).
    """
    if init == "posterior":
        q = model.posteriors.get(operator_family(op))
        if q is None:
            raise UserError(f"init 'posterior': model {model.path.name!r} has no posterior encoder for this operator")
        maps, vector = q.describe(op, y, model.image_shape)
        u, offsets = q(maps, vector, c, maps.new_zeros(1, len(y), q.config.noise_channels, *maps.shape[-2:]))
        return u[0], [d[0] for d in offsets]
    if init is None:
        x0 = op.initial_estimate(y)
    else:
        from pagoda_inverse.solvers import LATENT_FREE, solve

        if init not in LATENT_FREE:
            raise UserError(
                f"init {init!r} is neither 'posterior' nor a latent-free solver; choose from posterior, "
                f"{', '.join(LATENT_FREE)}"
            )
        x0 = solve(init, model, op, y).estimate
    return encode_estimate(model, x0, c, encoder, num_steps) / model.decoder.sigma_max, []


def _shifted(base: list, free: list) -> list:
    """Per growth stage, the base offset plus the free one (either may be missing)."""
    return [b + f for b, f in itertools.zip_longest(base, free, fillvalue=0)]


def solve_latent_map(
    model,
    op,
    y,
    *,
    cond=None,
    generator=None,
    callback=None,
    steps: int = 100,
    lr: float = 0.05,
    sigma_floor: float = 0.02,
    likelihood_std: float | None = None,
    init: str | None = None,
    encoder: str | None = None,
    num_steps: int = 18,
    consistency: bool = True,
    prior_std: float = 0.2,
    cfg_scale: float = 1.0,
) -> SolverResult:
    """MAP latent: ``argmin_u U(u)`` by Adam from the encoding of ``A^+ y`` (2 NFE per step: forward + backward).

    :param sigma_floor: lower bound on the likelihood's noise level ``s`` (keeps noiseless problems well posed).
    :param likelihood_std: ``s`` itself (a tempered likelihood when above ``sigma_y``). G cannot reproduce a real
        image to within ``sigma_y``, and a larger ``s`` weighs the Gaussian latent prior more: a more typical latent
        where much of the image is hidden (the inpainting tasks' settings, chosen on 256 training images, raise
        PSNR by about 1 dB). The data-consistency step restores the fit to the observed pixels.
    :param init: start from this latent-free solver's estimate instead of ``op.initial_estimate(y)``, or from the
        model's posterior encoder (``"posterior"``: its central latent and growth-feature offsets, kept under the
        optimised latent).
    :param cfg_scale: classifier-free guidance when ``cond`` is given (through the model's guidance map when it has
        one; twice the NFE, plus the map's pass, when != 1).
    """
    out = solve_latent_ilo(
        model, op, y, cond=cond, callback=callback, steps=steps, refine_steps=0, lr=lr, sigma_floor=sigma_floor,
        likelihood_std=likelihood_std, init=init, encoder=encoder, num_steps=num_steps, consistency=consistency,
        prior_std=prior_std, cfg_scale=cfg_scale,
    )  # fmt: skip
    out.info["solver"] = "latent_map"
    return out


def solve_latent_ilo(
    model,
    op,
    y,
    *,
    cond=None,
    generator=None,
    callback=None,
    steps: int = 20,
    refine_steps: int = 20,
    lr: float = 0.1,
    refine_latent_lr: float | None = None,
    refine_weight: float = 3.0,
    refine_levels: int = 1,
    cond_lr: float = 0.0,
    average_last: int = 0,
    sigma_floor: float = 0.02,
    likelihood_std: float | None = None,
    init: str | None = None,
    encoder: str | None = None,
    num_steps: int = 18,
    consistency: bool = True,
    prior_std: float = 0.1,
    cfg_scale: float = 1.0,
) -> SolverResult:
    """Intermediate-layer optimisation (Daras et al., ICML 2021, arXiv 2102.07364) through PaGoDA's grown G.

    G's range is only as rich as its teacher-resolution latent (``fmnist``: 64 numbers for a 32x32 image). After
    ``steps`` of ``latent_map``, the features entering the first ``refine_levels`` growth stages
    (``[B, *G.net.grow_in_shapes[i]]``; the first is the teacher-resolution trunk's output) get free offsets
    ``h_i -> h_i + d_i`` with the Gaussian penalty ``refine_weight ||d_i||^2 / 2``, and ``u`` and the ``d_i`` are
    optimised together for ``refine_steps``; the growth stages then still shape every image, from a richer input.
    Needs a G with at least ``refine_levels`` growth stages.

    :param lr: Adam step of the latent, and of the offsets during refinement.
    :param refine_latent_lr: the latent's Adam step during refinement (default ``lr``); smaller values let the
        offsets add detail around a settled latent (better for blur; the box hole wants the latent free).
    :param refine_weight: precision of the offsets' Gaussian prior (larger: closer to ``latent_map``).
    :param refine_levels: how many growth stages get an input offset (2 on ``fmnist``: the 8x8 and 16x16 features;
        finer detail, which blur removes).
    :param cond_lr: Adam step of the condition vector, optimised along with the latent from the start (0: fixed).
        The condition pathway is part of G's range: starting from the null caption (or ``cond``), it lets G take
        on the class the observation suggests (random inpainting: +0.10 dB on 256 training images,
        docs/ilo-tuning.md).
    :param average_last: the estimate is the mean of the images decoded at the last ``average_last`` steps and
        the final one (no extra network evaluations; Adam's last iterates scatter around the optimum).
    :param likelihood_std: the likelihood's ``s`` (default ``max(sigma_y, sigma_floor)``); see ``latent_map``.
    :param prior_std: the data-consistency prior around the estimate; tighter than ``latent_map``'s 0.2 because the
        refined estimate is closer to the truth (on 64 training images, 0.1 was as good or better on every task).
    :param init: start from this latent-free solver's estimate (``wiener`` for blur) instead of
        ``op.initial_estimate(y)``, or from the posterior encoder's latent and offsets (``"posterior"``; the freed
        offsets are then added to the encoder's, and their penalty is on the addition).
    """
    timer, encoder, c = prepare(model, op, y, cond, encoder)
    grow_in = model.decoder.net.grow_in_shapes
    if refine_steps and not 1 <= refine_levels <= len(grow_in):
        raise UserError(
            f"{model.path}: latent_ilo refines the features entering G's growth stages (refine_levels="
            f"{refine_levels}); this G has {len(grow_in)}"
        )
    if not 0 <= average_last <= steps + refine_steps:
        raise UserError(f"average_last must be between 0 and steps + refine_steps, got {average_last}")
    if cond_lr < 0:
        raise UserError(f"cond_lr must be >= 0, got {cond_lr}")
    s = _noise_level(op, sigma_floor, likelihood_std)
    with torch.no_grad():
        u, base = _start(model, op, y, c, init, encoder, num_steps)
    u, c, offsets = u.clone().requires_grad_(True), c.clone().requires_grad_(cond_lr > 0), []
    cond_group = [{"params": [c], "lr": cond_lr}] if cond_lr else []
    opt = torch.optim.Adam([{"params": [u]}, *cond_group], lr=lr)
    x_sum = 0.0
    for step in range(steps + refine_steps):
        if step == steps:  # refinement: free the features entering the growth stages too (fresh Adam moments)
            offsets = [
                torch.zeros(len(u), *shape, device=u.device, requires_grad=True) for shape in grow_in[:refine_levels]
            ]
            latent_lr = lr if refine_latent_lr is None else refine_latent_lr
            opt = torch.optim.Adam([{"params": [u], "lr": latent_lr}, {"params": offsets}, *cond_group], lr=lr)
        # Gradient step on the per-image potential (images are independent: sum over the batch).
        energy, x = _potential(model, op, y, c, u, s, cfg_scale, offsets, refine_weight, base)
        if step >= steps + refine_steps - average_last:  # the last iterates, for the average
            x_sum = x_sum + x.detach()
        opt.zero_grad(set_to_none=True)
        energy.sum().backward()
        opt.step()
        if callback is not None:
            callback({"step": step + 1, "total": steps + refine_steps, "energy": energy.detach()})
    with torch.no_grad():
        x = (x_sum + _decode(model, u, c, cfg_scale, _shifted(base, offsets))) / (average_last + 1)
        x = data_consistency(op, x, y, prior_std) if consistency else x
    start_nfe = 1 if init == "posterior" else encoder_nfe(model, encoder, num_steps)  # q at zero noise, or encoding
    nfe = start_nfe + (2 * (steps + refine_steps) + 1) * one_step_nfe(model, cfg_scale)
    return result(x[None], (u.detach() * model.decoder.sigma_max)[None], timer, "latent_ilo", nfe, encoder=encoder)


def solve_latent_langevin(
    model,
    op,
    y,
    *,
    cond=None,
    generator=None,
    callback=None,
    samples: int = 4,
    steps: int = 100,
    step_size: float = 2e-4,
    init_eta: float = 0.3,
    sigma_floor: float = 0.02,
    encoder: str | None = None,
    num_steps: int = 18,
    consistency: bool = True,
    prior_std: float = 0.2,
) -> SolverResult:
    """Posterior samples ``u ~ exp(-U)`` by unadjusted Langevin dynamics, ``K = samples`` chains per image.

    :param step_size: ``tau``; stability needs ``tau`` well below ``s^2 / ||A J_G||^2``.
    :param init_eta: chains start at ``sqrt(1 - eta^2) u_enc + eta xi`` (spread-out starts).
    """
    timer, encoder, c = prepare(model, op, y, cond, encoder)
    s = _noise_level(op, sigma_floor)
    with torch.no_grad():
        u0 = _start(model, op, y, c, None, encoder, num_steps)[0]
    # K chains per image; chain j of image i draws from image i's generator only.
    chains = [(1 - init_eta**2) ** 0.5 * u0 + init_eta * randn_like(u0, generator) for _ in range(samples)]
    for step in range(steps):
        for j, u in enumerate(chains):
            u = u.detach().requires_grad_(True)
            energy = _potential(model, op, y, c, u, s)[0]
            (grad,) = torch.autograd.grad(energy.sum(), u)
            # Langevin step: drift down the potential plus sqrt(2 tau) Gaussian noise.
            chains[j] = (u - step_size * grad + (2 * step_size) ** 0.5 * randn_like(u0, generator)).detach()
        if callback is not None:
            callback({"step": step + 1, "total": steps, "energy": energy.detach()})
    with torch.no_grad():
        xs = torch.stack([_decode(model, u, c) for u in chains])
        if consistency:
            xs = torch.stack([data_consistency(op, x, y, prior_std) for x in xs])
    nfe = encoder_nfe(model, encoder, num_steps) + samples * (2 * steps + 1)
    z = torch.stack(chains) * model.decoder.sigma_max
    return result(xs, z, timer, "latent_langevin", nfe, encoder=encoder)
