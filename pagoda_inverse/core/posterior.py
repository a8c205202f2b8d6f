"""Amortized posterior encoder ``q(y, A, eps)`` into PaGoDA's frozen one-step generator.

One network per operator family (:mod:`pagoda_inverse.ops.families`) maps an observation, a description of its
operator and fresh noise to G's normalised latent ``u`` (``z = sigma_max u``) and to offsets of the features entering
G's first growth stages (the features that ``latent_ilo`` frees), so that a posterior sample costs one pass of G:

    x_k = DC(G(sigma_max u_k, c; d_k)),    (u_k, d_k) = head(trunk(describe(A, y), c), eps_k),    eps_k ~ N(0, I).

The operator is described by :func:`describe_operator`: per-pixel maps (a regularised inverse
``(A^T A + gamma I)^{-1} A^T y``, the observation weight ``A^T A 1`` (the mask for inpainting, ``1/f^2`` for
down-sampling by ``f``), normalised-convolution fills of the observed pixels at a few scales, and ``sigma_y``) and a
vector (the ``A^T A`` response to a centred impulse, cropped: the blur's kernel autocorrelation, the down-sampling
footprint). The *trunk*, a small U-Net whose residual blocks take an embedding of that vector, of ``sigma_y`` and of
the condition, runs once per image; the light per-sample *heads* add the noise at each output level (the latent's and
the growth stages') and run once per sample. G and the teacher stay frozen; ``q`` is trained with the energy score
(:mod:`pagoda_inverse.train.posterior`), a proper scoring rule, so its samples approximate the posterior rather than
its mean.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from einops import rearrange, repeat
from torch import nn
from torch.nn import functional as F

from pagoda_inverse.core.checkpoint import load_checkpoint, load_module_state, split_prefix
from pagoda_inverse.core.encode import file_digest
from pagoda_inverse.core.generator import one_step
from pagoda_inverse.core.unet import Attention, ResBlock, _head
from pagoda_inverse.ops.consistency import data_consistency
from pagoda_inverse.utils.device import autocast
from pagoda_inverse.utils.errors import CheckpointError

#: The ``sigma_y`` scale of the features (the largest training noise level), and ``(noise floor, prior std)`` of the
#: regularised inverse among them: the defaults of :class:`PosteriorConfig` and :func:`describe_operator`.
SIGMA_SCALE = 0.2
INVERSE_STD = (0.01, 0.3)
#: How the data-consistency step's prior width is set (:attr:`PosteriorConfig.consistency`).
CONSISTENCY_MODES = ("fixed", "learned")


@dataclass(frozen=True, kw_only=True)
class PosteriorNetConfig:
    """The widths and depths of :class:`PosteriorEncoder` a training run chooses (``train posterior``'s ``net``
    section); :class:`PosteriorConfig` adds what follows from G and the family.

    :param channels: widths of the trunk's levels, from ``R`` down to ``r`` (``log2(R / r) + 1`` entries).
    :param num_blocks: trunk residual blocks per level on the way down (one more on the way up).
    :param head_blocks: residual blocks of each per-sample head (one head per output level).
    :param noise_channels: channels of the noise ``eps`` (at ``R``; pooled and rescaled to unit variance per level).
    :param offset_levels: how many of G's growth stages get an offset from ``q`` (0: the latent only).
    :param emb_dim: size of the embedding the residual blocks take.
    :param fill_scales: Gaussian widths (pixels) of the normalised-convolution fills among the maps.
    """

    channels: tuple[int, ...] = (32, 64, 96)
    num_blocks: int = 1
    head_blocks: int = 1
    noise_channels: int = 4
    offset_levels: int = 2
    emb_dim: int = 128
    fill_scales: tuple[float, ...] = (1.0, 3.0)


@dataclass(frozen=True)
class PosteriorConfig(PosteriorNetConfig):
    """Architecture of :class:`PosteriorEncoder` and the generator it serves; stored in the checkpoint. The fields of
    :class:`PosteriorNetConfig` (keyword-only), and:

    :param family: the operator family (``superres``, ``inpaint``, ``deblur``, ``denoise``, ``colorize``).
    :param in_channels: image channels ``C``.
    :param resolution: G's output resolution ``R``.
    :param latent_resolution: G's latent resolution ``r`` (the teacher's), ``R / r`` a power of 2.
    :param grow_in_shapes: ``(C_i, r 2^i, r 2^i)`` of the features entering G's growth stages (``G.net.grow_in_shapes``).
    :param cond_dim: size of G's condition vector.
    :param probe_size: side of the cropped impulse response in the operator vector.
    :param consistency: the data-consistency step's prior width ``tau`` (``gamma = sigma_y^2 / tau^2``):
        ``"fixed"`` (the solver's ``prior_std`` for every image) or ``"learned"`` (``q`` predicts ``tau`` per image
        from the operator, noise level and condition, trained with the rest by the energy score:
        :meth:`PosteriorEncoder.consistency_std`).
    :param init_consistency_std: ``tau`` a ``"learned"`` read-out starts from (the fixed step's old width).
    :param sigma_scale: the ``sigma_y`` features are ``sigma_y / sigma_scale`` (the largest training noise level).
    :param inverse_noise_floor, inverse_prior_std: the regularised inverse among the maps uses ``gamma =
        (max(sigma_y, inverse_noise_floor) / inverse_prior_std)^2`` (:func:`describe_operator`).
    """

    family: str
    in_channels: int = 1
    resolution: int = 32
    latent_resolution: int = 8
    grow_in_shapes: tuple[tuple[int, int, int], ...] = ()
    cond_dim: int = 384
    probe_size: int = 9
    consistency: str = "fixed"
    init_consistency_std: float = 0.2
    sigma_scale: float = SIGMA_SCALE
    inverse_noise_floor: float = INVERSE_STD[0]
    inverse_prior_std: float = INVERSE_STD[1]

    def __post_init__(self):
        if self.consistency not in CONSISTENCY_MODES:
            raise ValueError(f"consistency must be one of {CONSISTENCY_MODES}, got {self.consistency!r}")
        levels = (self.resolution // self.latent_resolution).bit_length()
        if self.latent_resolution * 2 ** (levels - 1) != self.resolution:
            raise ValueError(f"resolution {self.resolution} is not latent_resolution {self.latent_resolution} x 2^k")
        if len(self.channels) != levels:
            raise ValueError(f"channels needs {levels} entries (one per level from {self.resolution} down), got "
                             f"{len(self.channels)}")  # fmt: skip
        if not 0 <= self.offset_levels <= min(len(self.grow_in_shapes), levels - 1):
            raise ValueError(
                f"offset_levels {self.offset_levels} exceeds G's {len(self.grow_in_shapes)} growth stages"
            )

    @property
    def feature_channels(self) -> int:
        """Per-pixel operator maps: regularised inverse (C), observation weight (C), fills (C each), ``sigma_y`` (1)."""
        return (2 + len(self.fill_scales)) * self.in_channels + 1

    @property
    def probe_dim(self) -> int:
        return self.in_channels * self.probe_size**2 + 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PosteriorConfig:
        d = dict(d)
        d["grow_in_shapes"] = tuple(tuple(int(v) for v in s) for s in d.get("grow_in_shapes", ()))
        d["channels"] = tuple(d["channels"])
        d["fill_scales"] = tuple(float(v) for v in d.get("fill_scales", ()))
        return cls(**d)


def _gaussian_blur(x: torch.Tensor, std: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[B, C, H, W]`` with zero padding (radius ``3 std``)."""
    radius = max(1, round(3 * std))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / std) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(x, k.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)
    return F.conv2d(x, k.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)


@torch.no_grad()
def describe_operator(op, y: torch.Tensor, image_shape: tuple[int, int, int], probe_size: int = 9,
                      fill_scales: tuple[float, ...] = (), sigma_scale: float = SIGMA_SCALE,
                      inverse_std: tuple[float, float] = INVERSE_STD):  # fmt: skip
    """``(maps [B, (2 + S) C + 1, H, W], vector [B, C probe_size^2 + 1])``: what ``q`` sees of an observation and
    its operator (``S = len(fill_scales)``).

    ``maps``: the regularised inverse ``x_reg = (A^T A + gamma I)^{-1} A^T y`` with ``gamma = (max(sigma_y, floor) /
    std)^2`` per image (``inverse_std = (floor, std)``), the observation weight ``w = A^T A 1``, per scale ``s`` the
    normalised convolution ``blur_s(w x_reg) / blur_s(w)`` (a smooth fill of what is observed: for inpainting it
    reaches into the holes) and ``sigma_y / sigma_scale`` as a constant map. ``vector``: ``A^T A delta`` for an
    impulse at the image centre, the ``probe_size`` square around it divided by its largest magnitude, and
    ``sigma_y / sigma_scale``.
    """
    b = len(y)
    c, h, w = image_shape
    sigma = torch.as_tensor(op.sigma_y, dtype=torch.float32).reshape(-1).expand(b).to(y.device)
    gamma = (sigma.clamp_min(inverse_std[0]) / inverse_std[1]) ** 2
    x_reg = op.tikhonov(y, None, gamma, tol=1e-4).float()
    ones = torch.ones(b, c, h, w, device=y.device)
    weight = op.A_adjoint_A(ones).float()
    # Normalised convolution: the weighted local mean of the observed values (0 where nothing is near).
    floor = 1e-3 * weight.amax((1, 2, 3), keepdim=True)
    fills = [_gaussian_blur(weight * x_reg, std) / _gaussian_blur(weight, std).clamp_min(floor) for std in fill_scales]
    impulse = torch.zeros(b, c, h, w, device=y.device)
    impulse[:, :, h // 2, w // 2] = 1
    lo = probe_size // 2
    top, left = h // 2 - lo, w // 2 - lo
    response = op.A_adjoint_A(impulse).float()[:, :, top : top + probe_size, left : left + probe_size]
    response = response / response.flatten(1).abs().amax(1).clamp_min(1e-8)[:, None, None, None]
    s = (sigma / sigma_scale)[:, None]
    maps = torch.cat([x_reg, weight, *fills, s[:, :, None, None].expand(b, 1, h, w)], 1)
    return maps, torch.cat([response.flatten(1), s], 1)


class PosteriorEncoder(nn.Module):
    """``forward(maps, vector, cond, eps) -> (u [K, B, C, r, r], offsets)``; ``offsets[i]`` is
    ``[K, B, *grow_in_shapes[i]]``: the trunk once per image, a head per sample.

    >>> cfg = PosteriorConfig("inpaint", resolution=16, latent_resolution=4, grow_in_shapes=((8, 4, 4), (8, 8, 8)),
    ...                       cond_dim=4, channels=(8, 8, 8), emb_dim=16)
    >>> q = PosteriorEncoder(cfg)
    >>> u, d = q(torch.zeros(2, 5, 16, 16), torch.zeros(2, 82), torch.zeros(2, 4), torch.randn(3, 2, 4, 16, 16))
    >>> tuple(u.shape), [tuple(t.shape) for t in d]
    ((3, 2, 1, 4, 4), [(3, 2, 8, 4, 4), (3, 2, 8, 8, 8)])
    """

    def __init__(self, config: PosteriorConfig):
        super().__init__()
        self.config = cfg = config
        emb = cfg.emb_dim
        self.embed = nn.Sequential(nn.Linear(cfg.probe_dim, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.cond_embed = nn.Linear(cfg.cond_dim, emb, bias=False)
        self.conv_in = nn.Conv2d(cfg.feature_channels, cfg.channels[0], 3, padding=1)
        # Trunk: down path, self-attention at the latent resolution, up path to the finest offset level.
        self.down = nn.ModuleList()
        ch = cfg.channels[0]
        for level, width in enumerate(cfg.channels):
            blocks = nn.ModuleList([ResBlock(ch, width, emb, down=level > 0)])
            blocks.extend(ResBlock(width, width, emb) for _ in range(cfg.num_blocks - 1))
            self.down.append(blocks)
            ch = width
        self.mid = nn.ModuleList([Attention(ch), ResBlock(ch, ch, emb)])
        self.up = nn.ModuleList()
        widths = [ch]
        for level in range(1, max(cfg.offset_levels, 1)):
            width = cfg.channels[-1 - level]
            self.up.append(nn.ModuleList([ResBlock(ch, ch, emb, up=True), ResBlock(ch + width, width, emb)]))
            ch = width
            widths.append(width)
        # Per-sample heads, one per output level: the noise (pooled to that size) enters through a 1x1 conv.
        self.noise_in = nn.ModuleList(nn.Conv2d(cfg.noise_channels, w, 1) for w in widths)
        self.heads = nn.ModuleList(nn.ModuleList(ResBlock(w, w, emb) for _ in range(cfg.head_blocks)) for w in widths)
        # Outputs (zero-initialised: q starts at G's image of u = 0 with no offsets).
        self.latent_head = _head(widths[0], cfg.in_channels)
        self.offset_heads = nn.ModuleList(
            _head(w, shape[0]) for w, shape in zip(widths, cfg.grow_in_shapes[: cfg.offset_levels], strict=False)
        )
        if cfg.consistency == "learned":  # log tau read out of the embedding, starting at init_consistency_std
            self.consistency_head = nn.Linear(emb, 1)
            nn.init.zeros_(self.consistency_head.weight)
            nn.init.constant_(self.consistency_head.bias, math.log(cfg.init_consistency_std))

    def consistency_std(self, vector: torch.Tensor, cond: torch.Tensor) -> torch.Tensor | None:
        """``[B]`` prior widths ``tau`` of the data-consistency step for the operator ``vector`` (from
        :meth:`describe`) and ``cond``, or ``None`` when this encoder leaves them to the solver (``"fixed"``).

        ``tau`` is how far the decoded sample may sit from the truth where the measurement looks: a small ``tau``
        trusts the sample (the step barely moves it), a large one copies the noisy observation into it."""
        if self.config.consistency != "learned":
            return None
        emb = F.silu(self.embed(vector) + self.cond_embed(cond))
        return self.consistency_head(emb).squeeze(-1).float().exp()

    def trunk(self, maps: torch.Tensor, vector: torch.Tensor, cond: torch.Tensor):
        """``(features, emb)``: per output level (latent resolution first) ``[B, width, s, s]``, and ``[B, emb]``."""
        emb = F.silu(self.embed(vector) + self.cond_embed(cond))
        h = self.conv_in(maps)
        skips = []
        for blocks in self.down:
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
        attention, block = self.mid
        h = block(attention(h), emb)
        features = [h]
        skips.pop()
        for up, block in self.up:
            h = block(torch.cat([up(h, emb), skips.pop()], 1), emb)
            features.append(h)
        return features, emb

    def describe(self, op, y: torch.Tensor, image_shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(maps, vector)``: :func:`describe_operator` of ``op`` and ``y [B, ...]`` with this encoder's probe size
        and fill scales, the inputs of :meth:`forward`."""
        cfg = self.config
        return describe_operator(op, y, image_shape, cfg.probe_size, cfg.fill_scales, cfg.sigma_scale,
                                 (cfg.inverse_noise_floor, cfg.inverse_prior_std))  # fmt: skip

    def forward(self, maps: torch.Tensor, vector: torch.Tensor, cond: torch.Tensor, eps: torch.Tensor):
        """:param maps: ``[B, F, R, R]`` and ``vector`` ``[B, C probe^2 + 1]`` from :meth:`describe`.
        :param cond: ``[B, cond_dim]`` G's condition (the null caption when unconditional).
        :param eps: ``[K, B, noise_channels, R, R]`` standard normal noise (zeros: the encoder's central latent).
        """
        k = len(eps)
        features, emb = self.trunk(maps, vector, cond)
        emb = repeat(emb, "b e -> (k b) e", k=k)
        eps = rearrange(eps, "k b ... -> (k b) ...")
        outputs = []
        for f, noise_in, blocks in zip(features, self.noise_in, self.heads, strict=True):
            # Pooling f x f noise pixels: rescale to unit variance; add to this level's features, per sample.
            factor = eps.shape[-1] // f.shape[-1]
            noise = F.avg_pool2d(eps, factor) * factor if factor > 1 else eps
            h = repeat(f, "b ... -> (k b) ...", k=k) + noise_in(noise)
            for block in blocks:
                h = block(h, emb)
            outputs.append(h)
        u = self.latent_head(outputs[0])
        offsets = [head(h) for head, h in zip(self.offset_heads, outputs, strict=False)]
        return rearrange(u, "(k b) ... -> k b ...", k=k), [rearrange(d, "(k b) ... -> k b ...", k=k) for d in offsets]


def posterior_samples(model, q: PosteriorEncoder, op, y, cond, eps: torch.Tensor, prior_std: float = 0.2,
                      cfg_scale: float = 1.0, precision: str = "fp32",
                      obs_noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(x [K, B, C, R, R], z [K, B, C, r, r])``: data-consistent posterior samples for the noises ``eps [K, B, n, R,
    R]`` and the latents they decode from. ``q``'s trunk once per image, its heads and G (guided through the model's
    guidance map when ``cfg_scale != 1``) in one batch over all ``K B`` samples, at ``precision``, then the
    data-consistency step per sample. Differentiable in ``q``'s weights (the training loss goes through it).

    The step: with ``q``'s ``"fixed"`` consistency, the MAP pull onto ``y`` with width ``prior_std``; with its
    ``"learned"`` consistency, a *sample* of the Gaussian posterior around G's sample, its width ``tau`` predicted per
    image by ``q``: the MAP pull onto a perturbed observation ``y + sigma_y obs_noise_k`` (``obs_noise [K, B, ...]``
    standard normal, shaped like ``y``; perturb-then-optimise, exact for a Gaussian prior), so a sample fits ``y`` as
    loosely as the truth does instead of copying its noise.
    """
    k = len(eps)
    maps, vector = q.describe(op, y, model.image_shape)
    tau = q.consistency_std(vector, cond)
    with autocast(precision, y.device):
        u, offsets = q(maps, vector, cond, eps)
        # Sample-major rows: row k B + i is sample k of image i.
        z = rearrange(u, "k b ... -> (k b) ...").float() * model.decoder.sigma_max
        offsets = [rearrange(d, "k b ... -> (k b) ...") for d in offsets]
        x = one_step(model, z, repeat(cond, "b ... -> (k b) ...", k=k), cfg_scale=cfg_scale, grow_offset=offsets)
    x = rearrange(x.float(), "(k b) ... -> k b ...", k=k)
    z = rearrange(z, "(k b) ... -> k b ...", k=k)
    if tau is None:
        return torch.stack([data_consistency(op, xk, y, prior_std) for xk in x]), z
    sigma = torch.as_tensor(op.sigma_y, dtype=y.dtype, device=y.device).reshape(-1, *[1] * (y.dim() - 1))
    ys = y + sigma * obs_noise if obs_noise is not None else y.expand(k, *y.shape)
    return torch.stack([data_consistency(op, xk, yk, tau) for xk, yk in zip(x, ys, strict=True)]), z


def generator_fingerprint(model) -> dict:
    """What a posterior encoder must match in its generator: shapes, condition size and the decoder file's SHA-256."""
    net = model.decoder.net
    decoder = model.path / "decoder" if (model.path / "decoder").is_dir() else model.path
    return {
        "model": model.path.name,
        "in_channels": model.channels,
        "resolution": model.resolution,
        "latent_resolution": model.teacher_resolution,
        "grow_in_shapes": [list(s) for s in net.grow_in_shapes],
        "cond_dim": model.null_condition(1).shape[-1],
        "decoder_sha256": file_digest(decoder / "model.safetensors"),
    }


def check_fingerprint(trained_for: dict, model, source) -> None:
    """Raise :class:`~pagoda_inverse.utils.errors.CheckpointError` naming both models unless the posterior encoder
    at ``source`` (trained for the generator ``trained_for``) fits ``model``'s generator."""
    ours = generator_fingerprint(model)
    if any(trained_for.get(key) != value for key, value in ours.items() if key != "model"):

        def size(f):
            return f"{f.get('in_channels')}-channel {f.get('resolution')}px, latent {f.get('latent_resolution')}px"

        raise CheckpointError(
            f"{source}: trained for the decoder of model {trained_for.get('model')!r} ({size(trained_for)}), not "
            f"for this model {model.path.name!r} ({size(ours)}, decoder {ours['decoder_sha256'][:12]}); retrain it "
            f"with 'pagoda-inv train posterior --model {model.path}'"
        )


def load_posterior(folder: Path, model, family: str | None = None) -> PosteriorEncoder:
    """The posterior encoder in ``folder`` (``config.json`` + ``model.safetensors``, kind ``posterior``), checked
    against ``model``'s generator (:func:`check_fingerprint`) and to be of ``family`` (default: the folder's name, as
    in a model's ``posterior/FAMILY``); frozen, in eval mode."""
    tensors, config = load_checkpoint(folder)
    if config.get("kind") != "posterior" or not isinstance(config.get("posterior"), dict):
        raise CheckpointError(f"{folder / 'config.json'}: not a posterior encoder checkpoint (kind 'posterior')")
    try:
        cfg = PosteriorConfig.from_dict(config["posterior"])
    except (TypeError, ValueError, KeyError) as err:
        raise CheckpointError(f"{folder / 'config.json'}: invalid 'posterior' section ({err})") from None
    if family is not None and cfg.family != family:
        raise CheckpointError(f"{folder}: holds the {cfg.family!r} encoder, not a {family!r} one")
    if family is None and cfg.family != folder.name:
        raise CheckpointError(f"{folder}: holds the {cfg.family!r} encoder; its folder must be named {cfg.family}")
    check_fingerprint(config.get("generator", {}), model, folder)
    q = PosteriorEncoder(cfg)
    load_module_state(q, split_prefix(tensors, "net"), folder / "model.safetensors")
    return q.eval().requires_grad_(False)
