"""A small ADM/EDM-style U-Net taking one conditioning vector, with optional PaGoDA growth levels.

The network ``F(x, c_noise, cond)`` maps ``[B, C, R, R]`` to ``[B, C_out, R * 2**len(grow_channels), ...]``.
``cond`` is one vector per image (a 384-d sentence embedding for the shipped models); it is added to the
noise-level embedding and reaches every residual block through a scale/shift. PaGoDA's progressive growing
(Kim et al. 2024, sec. 3.3) appends, after the last decoder level and without skip connections, one 2x
up-sampling residual block plus ``grow_blocks`` plain residual blocks per stage; see ``UNetConfig.grown``.
Each stage's zero-initialised output head adds a residual to the up-sampled image of the previous scale
(progressive-GAN style; nearest, bilinear or bicubic per stage), so a freshly grown network reproduces the previous
one up-sampled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from pagoda_inverse.nets.adm import _resample, _zero

#: Interpolation modes for the image under a growth stage's residual head (see ``UNetConfig.grow_upsample``).
UPSAMPLE_MODES = ("nearest", "bilinear", "bicubic")


def check_grow_stages(cfg) -> None:
    """Validate a frozen config's ``grow_channels`` / ``grow_upsample`` (one mode per growth stage, each one of
    :data:`UPSAMPLE_MODES`); an unstated ``grow_upsample`` (every checkpoint before the option) becomes nearest."""
    if cfg.grow_channels and not cfg.grow_upsample:
        object.__setattr__(cfg, "grow_upsample", ("nearest",) * len(cfg.grow_channels))
    if len(cfg.grow_upsample) != len(cfg.grow_channels):
        raise ValueError(f"grow_upsample {cfg.grow_upsample} needs one mode per growth stage {cfg.grow_channels}")
    if unknown := set(cfg.grow_upsample) - set(UPSAMPLE_MODES):
        raise ValueError(f"unknown grow_upsample mode(s) {sorted(unknown)}; choose from {UPSAMPLE_MODES}")


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of :class:`UNet`; stored in every checkpoint's ``config.json``.

    :param in_channels: image channels at the input (1 for Fashion-MNIST, 3 for RGB).
    :param resolution: input resolution R (the teacher's resolution).
    :param channels: base width; level ``i`` has ``channels * channel_mult[i]`` channels.
    :param channel_mult: one multiplier per resolution level (R, R/2, ...).
    :param num_blocks: residual blocks per level in the encoder (the decoder has one more).
    :param attn_resolutions: resolutions at which self-attention follows each block.
    :param cond_dim: size of the conditioning vector.
    :param grow_channels: widths of the appended 2x levels (empty for a teacher).
    :param grow_blocks: plain residual blocks after each appended up-sampling block.
    :param grow_upsample: per growth stage, how the previous scale's image is up-sampled under the stage's residual
        head: ``"nearest"`` (the default, and the shipped ``fmnist`` model), ``"bilinear"`` or ``"bicubic"``.
    """

    in_channels: int = 1
    resolution: int = 8
    channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2)
    num_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (4,)
    cond_dim: int = 384
    dropout: float = 0.0
    grow_channels: tuple[int, ...] = ()
    grow_blocks: int = 2
    grow_upsample: tuple[str, ...] = ()

    def __post_init__(self):
        check_grow_stages(self)

    @property
    def out_resolution(self) -> int:
        """Output resolution ``R * 2**len(grow_channels)``."""
        return self.resolution * 2 ** len(self.grow_channels)

    def grown(self, width: int | None = None, upsample: str = "nearest") -> UNetConfig:
        """This config with one more 2x growth stage of ``width`` channels (default: the last level's width) whose
        residual head sits on the previous image up-sampled by ``upsample``."""
        last = self.grow_channels[-1] if self.grow_channels else self.channels * self.channel_mult[0]
        return replace(
            self, grow_channels=(*self.grow_channels, width or last), grow_upsample=(*self.grow_upsample, upsample)
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        d = dict(d)
        for key in ("channel_mult", "attn_resolutions", "grow_channels", "grow_upsample"):
            d[key] = tuple(d.get(key, ()))
        return cls(**d)


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, ch), ch, eps=1e-6)


def _head(ch: int, out_channels: int) -> nn.Sequential:
    """GroupNorm -> SiLU -> zero-initialised 3x3 conv to image channels."""
    return nn.Sequential(_norm(ch), nn.SiLU(), _zero(nn.Conv2d(ch, out_channels, 3, padding=1)))


class PositionalEmbedding(nn.Module):
    """Sinusoidal embedding of a scalar per image: ``[B] -> [B, dim]``."""

    def __init__(self, dim: int, max_positions: int = 10000):
        super().__init__()
        self.dim, self.max_positions = dim, max_positions

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(self.max_positions) * torch.arange(half, device=t.device) / half)
        args = t.float()[:, None] * freqs[None] * 1000
        return torch.cat([args.cos(), args.sin()], dim=1)


class ResBlock(nn.Module):
    """Residual block with embedding scale/shift; ``up``/``down`` resample by 2 (nearest / average)."""

    def __init__(self, cin: int, cout: int, emb_dim: int, *, up=False, down=False, dropout=0.0):
        super().__init__()
        self.up, self.down = up, down
        self.norm0, self.conv0 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.affine = nn.Linear(emb_dim, 2 * cout)
        self.norm1, self.dropout = _norm(cout), nn.Dropout(dropout)
        self.conv1 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = _resample(F.silu(self.norm0(x)), self.up, self.down)
        h = self.conv0(h)
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm1(h) * (1 + scale) + shift)
        h = self.conv1(self.dropout(h))
        return h + self.skip(_resample(x, self.up, self.down))


class Attention(nn.Module):
    """Single-head self-attention over pixels, residual, zero-initialised output."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm, self.qkv = _norm(ch), nn.Conv2d(ch, 3 * ch, 1)
        self.proj = _zero(nn.Conv2d(ch, ch, 1))

    def forward(self, x, emb=None):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


def upsample_image(x: torch.Tensor, mode: str) -> torch.Tensor:
    """2x up-sampling of ``[B, C, H, W]`` images with ``mode`` in :data:`UPSAMPLE_MODES` (half-pixel centres)."""
    return F.interpolate(x, scale_factor=2, mode=mode, **({} if mode == "nearest" else {"align_corners": False}))


def run_growth_stages(net: nn.Module, x: torch.Tensor, h: torch.Tensor, emb: torch.Tensor,
                      grow_offset: Sequence[torch.Tensor] = ()) -> torch.Tensor:  # fmt: skip
    """A grown G's stages on top of the base image ``x`` and the trunk's features ``h``: per stage, ``h`` plus its
    offset (where given), the stage's blocks, and the image up-sampled 2x (``net.config.grow_upsample``) plus the
    stage's head (``net.grow``, ``net.grow_out``: one each per stage). Returns the full-resolution image."""
    if len(grow_offset) > len(net.grow):
        raise ValueError(f"{len(grow_offset)} growth offsets for a network with {len(net.grow)} growth stages")
    for level, (stage, head, mode) in enumerate(zip(net.grow, net.grow_out, net.config.grow_upsample, strict=True)):
        if level < len(grow_offset):
            h = h + grow_offset[level]
        for block in stage:
            h = block(h, emb)
        x = upsample_image(x, mode) + head(h).to(x.dtype)
    return x


class UNet(nn.Module):
    """The backbone ``F``: ``forward(x [B,C,R,R], noise_labels [B], cond [B,cond_dim]) -> [B,C,R',R']``.

    >>> net = UNet(UNetConfig(channels=8, channel_mult=(1, 2), attn_resolutions=(), cond_dim=4))
    >>> net(torch.zeros(2, 1, 8, 8), torch.zeros(2), torch.zeros(2, 4)).shape
    torch.Size([2, 1, 8, 8])
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = cfg = config
        ch0 = cfg.channels
        emb = 4 * ch0
        self.noise_embed = PositionalEmbedding(ch0)
        self.noise_mlp = nn.Sequential(nn.Linear(ch0, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.cond_embed = nn.Linear(cfg.cond_dim, emb, bias=False)
        self.conv_in = nn.Conv2d(cfg.in_channels, ch0, 3, padding=1)

        # Encoder: blocks per level, a down-sampling block between levels; remember every skip width.
        self.enc = nn.ModuleList()
        skips, ch, res = [ch0], ch0, cfg.resolution
        for level, mult in enumerate(cfg.channel_mult):
            if level > 0:
                self.enc.append(ResBlock(ch, ch, emb, down=True, dropout=cfg.dropout))
                res //= 2
                skips.append(ch)
            for _ in range(cfg.num_blocks):
                self.enc.append(self._block(ch, ch0 * mult, emb, res))
                ch = ch0 * mult
                skips.append(ch)

        self.mid = nn.ModuleList([ResBlock(ch, ch, emb, dropout=cfg.dropout), Attention(ch)])
        self.mid.append(ResBlock(ch, ch, emb, dropout=cfg.dropout))

        # Decoder: one more block per level, each consuming one skip; an up-sampling block between levels.
        self.dec = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for _ in range(cfg.num_blocks + 1):
                self.dec.append(self._block(ch + skips.pop(), ch0 * mult, emb, res))
                ch = ch0 * mult
            if level > 0:
                self.dec.append(ResBlock(ch, ch, emb, up=True, dropout=cfg.dropout))
                res *= 2

        # Output head at the teacher resolution (the teacher's own head).
        self.out = _head(ch, cfg.in_channels)
        #: ``(C, r, r)`` of the features entering each growth stage (what ``forward``'s ``grow_offset`` shifts).
        self.grow_in_shapes = []

        # PaGoDA growth: per stage one 2x up block then plain blocks, no skips, still conditioned; each stage adds
        # a zero-initialised head whose output is a residual on the up-sampled image of the previous scale.
        self.grow = nn.ModuleList()
        self.grow_out = nn.ModuleList()
        for level, width in enumerate(cfg.grow_channels):
            self.grow_in_shapes.append((ch, cfg.resolution * 2**level, cfg.resolution * 2**level))
            stage = nn.ModuleList([ResBlock(ch, width, emb, up=True)])
            stage.extend(ResBlock(width, width, emb) for _ in range(cfg.grow_blocks))
            self.grow.append(stage)
            self.grow_out.append(_head(width, cfg.in_channels))
            ch = width

    def _block(self, cin, cout, emb, res):
        block = ResBlock(cin, cout, emb, dropout=self.config.dropout)
        return nn.ModuleList([block, Attention(cout)] if res in self.config.attn_resolutions else [block])

    def forward(
        self, x: torch.Tensor, noise_labels: torch.Tensor, cond: torch.Tensor, grow_offset: Sequence[torch.Tensor] = ()
    ) -> torch.Tensor:
        """``grow_offset``: ``[B, *grow_in_shapes[i]]`` added to the features entering growth stage ``i`` for the
        first ``len(grow_offset)`` stages (not to the heads' images before them), as intermediate-layer optimisation
        does."""
        emb = F.silu(self.noise_mlp(self.noise_embed(noise_labels)) + self.cond_embed(cond))
        h = self.conv_in(x)
        skips = [h]
        for block in self.enc:  # a resampling ResBlock, or a level's block (and its attention)
            for layer in [block] if isinstance(block, ResBlock) else block:
                h = layer(h, emb)
            skips.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for block in self.dec:  # the same; a level's block takes a skip
            if not isinstance(block, ResBlock):
                h = torch.cat([h, skips.pop()], dim=1)
            for layer in [block] if isinstance(block, ResBlock) else block:
                h = layer(h, emb)
        return run_growth_stages(self, self.out(h), h, emb, grow_offset)

    def last_layer_weight(self) -> torch.Tensor:
        """The newest output conv weight: where PaGoDA's adaptive adversarial weight measures gradient norms."""
        return (self.grow_out[-1] if len(self.grow_out) else self.out)[-1].weight

    def trunk_trainable(self, name: str) -> bool:
        """Whether parameter ``name`` stays trainable when growing (PaGoDA's ``--activate_from``): the last decoder
        level's blocks (the highest teacher resolution), the growth stages and the heads."""
        top = {len(self.dec) - i - 1 for i in range(self.config.num_blocks + 1)}  # the top level's blocks
        if name.startswith("dec."):
            return int(name.split(".")[1]) in top
        return name.startswith(("grow.", "grow_out.", "out."))
