"""The ADM U-Net of guided-diffusion (Dhariwal & Nichol 2021), under its own parameter names, for imported checkpoints.

The field's standard diffusion checkpoints use this one network: OpenAI's guided-diffusion models, the FFHQ model of
DPS / DiffPIR / deepinv, OpenAI's consistency models, and (renamed) EDM's ``DhariwalUNet``. :class:`ADM` spans
guided-diffusion's ``UNetModel`` configuration space and names its modules as ``UNetModel`` does, so a guided-diffusion
state dict loads with ``strict=True``:

- ``time_embed.{0,2}`` (noise-level MLP), ``label_emb`` (class embedding), ``out.{0,2}`` (head norm and conv);
- ``input_blocks.N.M`` / ``middle_block.M`` / ``output_blocks.N.M``: block ``N``, layer ``M`` of the encoder, bottleneck
  and decoder;
- a residual block holds ``in_layers.{0,2}``, ``emb_layers.1``, ``out_layers.{0,3}`` and ``skip_connection``;
- an attention block holds ``norm``, ``qkv`` and ``proj_out`` (1-d convolutions over the flattened pixels);
- a down-sampler holds ``op`` (strided 3x3 conv), an up-sampler ``conv`` (3x3 conv after nearest 2x).

``ADM(cfg)(x [B, C, H, W], timesteps [B], cond) -> [B, C_out, H, W]`` with ``C_out = 2C`` when the network also
predicts the variance (``learn_sigma``). The network is fully convolutional: ``H`` and ``W`` need only be divisible by
``2**(len(channel_mult) - 1)``. It predicts whatever it was trained on (noise for guided-diffusion, ``F`` of EDM's
preconditioning for EDM); :mod:`pagoda_inverse.core.adm_teacher` turns it into the toolkit's denoiser ``D(x, sigma)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F

#: The fields of :class:`ADMConfig` that the tensor shapes of a state dict determine (the others do not change them).
SHAPE_FIELDS = ("in_channels", "model_channels", "channel_mult", "num_res_blocks", "attention_resolutions",
                "num_classes", "learn_sigma", "use_scale_shift_norm", "resblock_updown", "conv_resample")  # fmt: skip

#: guided-diffusion's ``channel_mult`` for each image size when its ``--channel_mult`` flag is empty.
DEFAULT_CHANNEL_MULT = {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}


@dataclass(frozen=True)
class ADMConfig:
    """Architecture of :class:`ADM`, named as guided-diffusion's ``UNetModel`` arguments; stored in ``config.json``.

    :param image_size: resolution the network was trained at (its teacher resolution); the network itself accepts any
        size divisible by ``2**(len(channel_mult) - 1)``.
    :param in_channels: image channels (3 for RGB).
    :param model_channels: base width; level ``i`` has ``int(channel_mult[i] * model_channels)`` channels and the
        noise-level embedding has ``4 * model_channels``.
    :param channel_mult: one width multiplier per resolution level (image_size, image_size/2, ...); may be fractional
        (guided-diffusion's 512 px model starts at 0.5).
    :param num_res_blocks: residual blocks per level in the encoder (the decoder has one more).
    :param attention_resolutions: **down-sampling rates** ``ds = image_size / resolution`` at which self-attention
        follows each residual block, as ``UNetModel`` receives them (guided-diffusion's scripts convert their
        ``--attention_resolutions 32,16,8`` flag to rates; :meth:`from_flags` does the same). The rates, unlike
        resolutions, do not depend on the input size.
    :param dropout: dropout probability inside the residual blocks (inactive in ``eval()``).
    :param num_classes: number of classes of a class-conditional network; 0 for unconditional.
    :param learn_sigma: the output has ``2 * in_channels`` channels: the prediction, then the variance interpolation
        of improved DDPM (ignored by the toolkit's wrappers).
    :param num_heads: attention heads, when ``num_head_channels == -1``.
    :param num_head_channels: channels per attention head (overrides ``num_heads``); -1 to use ``num_heads``.
    :param num_heads_upsample: heads in the decoder's attention blocks; -1 for ``num_heads``.
    :param use_new_attention_order: how ``qkv`` rows are laid out: ``False`` (legacy) ``[head][q|k|v][channel]``,
        ``True`` ``[q|k|v][head][channel]``.
    :param use_scale_shift_norm: the noise embedding scales and shifts the normalised features (else it is added).
    :param resblock_updown: down/up-sample with residual blocks (BigGAN style) instead of a strided / plain conv.
    :param conv_resample: the plain down/up-samplers have a 3x3 conv (always true in guided-diffusion's scripts).
    :param use_fp16: the network was trained with its torso in float16 (see :meth:`ADM.convert_to_fp16`); the
        weights are stored in float32 either way.
    :param norm_groups: GroupNorm groups, at most; a layer of ``c`` channels uses
        ``min(norm_groups, c // min_channels_per_group)`` groups.
    :param min_channels_per_group: 1 for guided-diffusion (always 32 groups); 4 for EDM's ``DhariwalUNet``.
    :param norm_eps: GroupNorm epsilon.
    """

    image_size: int = 64
    in_channels: int = 3
    model_channels: int = 128
    channel_mult: tuple[float, ...] = (1, 2, 3, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (2, 4, 8)
    dropout: float = 0.0
    num_classes: int = 0
    learn_sigma: bool = False
    num_heads: int = 1
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    use_new_attention_order: bool = False
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    conv_resample: bool = True
    use_fp16: bool = False
    norm_groups: int = 32
    min_channels_per_group: int = 1
    norm_eps: float = 1e-5

    def __post_init__(self):
        mult = tuple(int(m) if float(m).is_integer() else float(m) for m in self.channel_mult)
        object.__setattr__(self, "channel_mult", mult)
        object.__setattr__(self, "attention_resolutions", tuple(int(d) for d in self.attention_resolutions))
        positive = (
            "image_size",
            "in_channels",
            "model_channels",
            "num_res_blocks",
            "norm_groups",
            "min_channels_per_group",
        )
        if bad := [name for name in positive if int(getattr(self, name)) < 1]:
            raise ValueError(f"ADMConfig: {', '.join(bad)} must be >= 1")
        if not mult or any(m <= 0 or not float(m * self.model_channels).is_integer() for m in mult):
            raise ValueError(
                f"ADMConfig: channel_mult {mult} must give whole, positive widths of {self.model_channels}"
            )
        if self.num_classes < 0 or not 0 <= self.dropout < 1:
            raise ValueError("ADMConfig: num_classes must be >= 0 and dropout in [0, 1)")
        if self.num_head_channels == -1 and self.num_heads < 1:
            raise ValueError("ADMConfig: num_heads must be >= 1 when num_head_channels is -1")
        # Attention follows the blocks at the rates in attention_resolutions, and the bottleneck always has one.
        levels = [i for i in range(len(mult)) if 2**i in self.attention_resolutions] + [len(mult) - 1]
        heads_up = self.num_heads if self.num_heads_upsample == -1 else self.num_heads_upsample
        for ch in {int(mult[i] * self.model_channels) for i in levels}:
            if self.num_head_channels != -1 and ch % self.num_head_channels:
                raise ValueError(
                    f"ADM: {ch} attention channels are not divisible by num_head_channels {self.num_head_channels}"
                )
            if self.num_head_channels == -1 and (ch % self.num_heads or ch % heads_up):
                raise ValueError(f"ADM: {ch} attention channels are not divisible into {self.num_heads} heads")

    @property
    def out_channels(self) -> int:
        """Output channels: ``in_channels``, doubled with ``learn_sigma``."""
        return self.in_channels * (2 if self.learn_sigma else 1)

    @property
    def emb_channels(self) -> int:
        """Width of the noise-level (and class) embedding, ``4 * model_channels``."""
        return 4 * self.model_channels

    @property
    def downsampling(self) -> int:
        """Total down-sampling factor ``2**(levels - 1)``: input sizes must be multiples of it."""
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def attention_at(self) -> tuple[int, ...]:
        """The resolutions (at ``image_size``) that have attention, e.g. ``(32, 16, 8)`` for ImageNet-64."""
        return tuple(self.image_size // ds for ds in self.attention_resolutions)

    def width(self, level: int) -> int:
        """Channels of resolution level ``level``."""
        return int(self.channel_mult[level] * self.model_channels)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ADMConfig:
        """Inverse of :meth:`to_dict`; an unknown key is a ``ValueError`` naming it."""
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(d) - known):
            raise ValueError(f"ADMConfig: unknown field(s) {unknown}")
        return cls(**d)  # __post_init__ makes channel_mult and attention_resolutions tuples

    @classmethod
    def from_flags(
        cls,
        image_size: int = 64,
        num_channels: int = 128,
        num_res_blocks: int = 2,
        channel_mult: str = "",
        learn_sigma: bool = False,
        class_cond: bool = False,
        attention_resolutions: str = "16,8",
        num_heads: int = 4,
        num_head_channels: int = -1,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = True,
        dropout: float = 0.0,
        resblock_updown: bool = False,
        use_fp16: bool = False,
        use_new_attention_order: bool = False,
        in_channels: int = 3,
        num_classes: int = 1000,
    ) -> ADMConfig:
        """The network of guided-diffusion's command-line flags (``create_model`` in its ``script_util.py``), with its
        defaults: ``channel_mult`` from the image size when empty, attention resolutions turned into rates.

        >>> cfg = ADMConfig.from_flags(image_size=64, num_channels=192, attention_resolutions="32,16,8")
        >>> cfg.channel_mult, cfg.attention_resolutions
        ((1, 2, 3, 4), (2, 4, 8))
        """
        if channel_mult:
            mult = tuple(float(m) for m in str(channel_mult).split(","))
        elif image_size in DEFAULT_CHANNEL_MULT:
            mult = DEFAULT_CHANNEL_MULT[image_size]
        else:
            raise ValueError(f"image_size {image_size}: no default channel_mult (give channel_mult, e.g. '1,2,2,2')")
        rates = [image_size // int(r) for r in str(attention_resolutions).split(",") if r.strip()]
        return cls(
            image_size=image_size, in_channels=in_channels, model_channels=num_channels, channel_mult=mult,
            num_res_blocks=num_res_blocks, attention_resolutions=tuple(rates), dropout=dropout,
            num_classes=num_classes if class_cond else 0, learn_sigma=learn_sigma, num_heads=num_heads,
            num_head_channels=num_head_channels, num_heads_upsample=num_heads_upsample,
            use_new_attention_order=use_new_attention_order, use_scale_shift_norm=use_scale_shift_norm,
            resblock_updown=resblock_updown, use_fp16=use_fp16,
        )  # fmt: skip


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[B] -> [B, dim]``: ``cos(t f_i)`` then ``sin(t f_i)``, ``f_i = max_period**(-i/half)``.

    Computed in float32 as guided-diffusion does (in float64 when ``t`` is float64); an odd ``dim`` gets a zero column.
    """
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=dtype, device=t.device) / half)
    args = t.to(dtype)[:, None] * freqs[None]
    emb = torch.cat([args.cos(), args.sin()], dim=1)
    return F.pad(emb, (0, dim % 2))


class GroupNorm32(nn.GroupNorm):
    """GroupNorm that normalises float16 / bfloat16 features in float32 (guided-diffusion's ``GroupNorm32``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.float16, torch.bfloat16):
            return super().forward(x.float()).to(x.dtype)
        return super().forward(x)


def _norm(ch: int, cfg: ADMConfig) -> GroupNorm32:
    return GroupNorm32(min(cfg.norm_groups, max(ch // cfg.min_channels_per_group, 1)), ch, eps=cfg.norm_eps)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _resample(x: torch.Tensor, up: bool, down: bool) -> torch.Tensor:
    """A residual block's 2x resampling of ``[B, C, H, W]``: nearest up-sampling (``up``), 2x2 average pooling
    (``down``), else none."""
    if up:
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return F.avg_pool2d(x, 2) if down else x


class TimestepSequential(nn.Sequential):
    """Layers applied in turn; residual blocks also receive the embedding ``[B, emb_channels]``."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class ResBlock(nn.Module):
    """Residual block ``[B, cin, H, W] -> [B, cout, H', W']`` conditioned on the embedding; ``up`` / ``down``
    resample both paths by 2 (nearest / 2x2 average) between the first norm and the first conv."""

    def __init__(self, cin: int, cout: int, cfg: ADMConfig, *, up: bool = False, down: bool = False):
        super().__init__()
        self.up, self.down, self.scale_shift = up, down, cfg.use_scale_shift_norm
        self.in_layers = nn.Sequential(_norm(cin, cfg), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(cfg.emb_channels, cout * (2 if self.scale_shift else 1)))
        conv_out = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.out_layers = nn.Sequential(_norm(cout, cfg), nn.SiLU(), nn.Dropout(cfg.dropout), conv_out)
        self.skip_connection = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        norm, act, conv = self.in_layers
        h = conv(_resample(act(norm(x)), self.up, self.down))
        e = self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(_resample(x, self.up, self.down)) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all pixels, residual: ``[B, C, H, W] -> [B, C, H, W]``."""

    def __init__(self, ch: int, num_heads: int, num_head_channels: int, new_order: bool, cfg: ADMConfig):
        super().__init__()
        if num_head_channels != -1 and ch % num_head_channels:
            raise ValueError(
                f"ADM: {ch} attention channels are not divisible by num_head_channels {num_head_channels}"
            )
        self.heads = num_heads if num_head_channels == -1 else ch // num_head_channels
        if ch % self.heads:
            raise ValueError(f"ADM: {ch} attention channels are not divisible into {self.heads} heads")
        self.new_order = new_order
        self.norm = _norm(ch, cfg)
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.proj_out = _zero(nn.Conv1d(ch, ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))  # [B, 3C, T]
        d = c // self.heads
        if self.new_order:  # rows [q|k|v][head][d]
            q, k, v = (t.reshape(b * self.heads, d, -1) for t in qkv.chunk(3, dim=1))
        else:  # rows [head][q|k|v][d]
            q, k, v = qkv.reshape(b * self.heads, 3 * d, -1).split(d, dim=1)
        # Softmax(q^T k / sqrt(d)) over keys, per head: [B*heads, T, d].
        h = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        h = self.proj_out(h.transpose(1, 2).reshape(b, c, -1))
        return (x + h).reshape(b, c, *spatial)


class Downsample(nn.Module):
    """2x down-sampling: a stride-2 3x3 conv ``op`` (or 2x2 average pooling without ``conv_resample``)."""

    def __init__(self, ch: int, use_conv: bool):
        super().__init__()
        self.op = nn.Conv2d(ch, ch, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """2x nearest up-sampling, then a 3x3 conv ``conv`` (none without ``conv_resample``)."""

    def __init__(self, ch: int, use_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1) if use_conv else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class ADM(nn.Module):
    """guided-diffusion's U-Net: ``forward(x [B,C,H,W], timesteps [B], cond) -> [B, C_out, H, W]``.

    >>> cfg = ADMConfig(image_size=8, in_channels=1, model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
    ...                 attention_resolutions=(2,), num_classes=3, learn_sigma=True)
    >>> net = ADM(cfg)
    >>> net(torch.zeros(2, 1, 8, 8), torch.tensor([0.0, 999.0]), torch.tensor([0, 2])).shape
    torch.Size([2, 2, 8, 8])
    >>> sorted(k for k in net.state_dict() if k.startswith("input_blocks.3"))[:3]
    ['input_blocks.3.0.emb_layers.1.bias', 'input_blocks.3.0.emb_layers.1.weight', 'input_blocks.3.0.in_layers.0.bias']
    """

    def __init__(self, config: ADMConfig):
        super().__init__()
        self.config = cfg = config
        mc, emb = cfg.model_channels, cfg.emb_channels
        self.time_embed = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))
        if cfg.num_classes:
            self.label_emb = nn.Embedding(cfg.num_classes, emb)
        heads_up = cfg.num_heads if cfg.num_heads_upsample == -1 else cfg.num_heads_upsample

        def attention(ch: int, heads: int) -> AttentionBlock:
            return AttentionBlock(ch, heads, cfg.num_head_channels, cfg.use_new_attention_order, cfg)

        # Encoder: per level num_res_blocks blocks (+ attention), then a down-sampler; remember every skip width.
        ch = cfg.width(0)
        self.input_blocks = nn.ModuleList([TimestepSequential(nn.Conv2d(cfg.in_channels, ch, 3, padding=1))])
        skips, ds = [ch], 1
        for level in range(len(cfg.channel_mult)):
            for _ in range(cfg.num_res_blocks):
                layers = [ResBlock(ch, cfg.width(level), cfg)]
                ch = cfg.width(level)
                if ds in cfg.attention_resolutions:
                    layers.append(attention(ch, cfg.num_heads))
                self.input_blocks.append(TimestepSequential(*layers))
                skips.append(ch)
            if level < len(cfg.channel_mult) - 1:
                down = ResBlock(ch, ch, cfg, down=True) if cfg.resblock_updown else Downsample(ch, cfg.conv_resample)
                self.input_blocks.append(TimestepSequential(down))
                skips.append(ch)
                ds *= 2

        self.middle_block = TimestepSequential(
            ResBlock(ch, ch, cfg), attention(ch, cfg.num_heads), ResBlock(ch, ch, cfg)
        )

        # Decoder: per level num_res_blocks + 1 blocks, each eating one skip; the level's last one up-samples.
        self.output_blocks = nn.ModuleList()
        for level in reversed(range(len(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(ch + skips.pop(), cfg.width(level), cfg)]
                ch = cfg.width(level)
                if ds in cfg.attention_resolutions:
                    layers.append(attention(ch, heads_up))
                if level and i == cfg.num_res_blocks:
                    layers.append(
                        ResBlock(ch, ch, cfg, up=True) if cfg.resblock_updown else Upsample(ch, cfg.conv_resample)
                    )
                    ds //= 2
                self.output_blocks.append(TimestepSequential(*layers))

        self.out = nn.Sequential(_norm(ch, cfg), nn.SiLU(), _zero(nn.Conv2d(ch, cfg.out_channels, 3, padding=1)))

    @property
    def torso_dtype(self) -> torch.dtype:
        """The dtype the encoder/decoder convolutions run in (float16 after :meth:`convert_to_fp16`)."""
        return self.input_blocks[0][0].weight.dtype

    def convert_to_fp16(self) -> ADM:
        """Store the torso's convolutions in float16, as guided-diffusion's samplers do with ``--use_fp16`` (the
        embeddings, norms and head stay float32). For CUDA; CPU float16 convolutions are slow. Returns ``self``."""
        for blocks in (self.input_blocks, self.middle_block, self.output_blocks):
            for m in blocks.modules():
                if isinstance(m, nn.Conv1d | nn.Conv2d):
                    m.half()
        return self

    def embed(self, timesteps: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The embedding ``[B, emb_channels]`` of ``timesteps [B]`` plus, for a class-conditional network, the class
        term of ``cond``: ``[B]`` integer labels, or ``[B, num_classes]`` weights (one-hot, soft, or zeros for none,
        as EDM feeds its labels). An unconditional network ignores ``cond``."""
        weight = self.time_embed[0].weight
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(weight.dtype))
        if not self.config.num_classes:
            return emb
        if cond is None:
            raise ValueError(f"ADM: a class-conditional network ({self.config.num_classes} classes) needs cond")
        if cond.dim() == 1 and not cond.is_floating_point():
            return emb + self.label_emb(cond)
        if cond.dim() != 2 or cond.shape[1] != self.config.num_classes:
            raise ValueError(
                f"ADM: cond must be [B] labels or [B, {self.config.num_classes}], got {tuple(cond.shape)}"
            )
        return emb + cond.to(weight.dtype) @ self.label_emb.weight

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """:param x: ``[B, in_channels, H, W]``, ``H`` and ``W`` multiples of ``config.downsampling``.
        :param timesteps: ``[B]`` (or a scalar) network time input: the step index 0..999 for guided-diffusion, EDM's
            ``c_noise = ln(sigma) / 4`` for EDM networks.
        :param cond: class labels, see :meth:`embed`.
        :return: ``[B, out_channels, H, W]`` in ``x``'s dtype.
        """
        h, _ = self.features(x, timesteps, cond)
        return self.out(h).to(x.dtype)

    def features(
        self, x: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The torso without the head: ``(h [B, width(0), H, W], emb [B, emb_channels])``, both in the head's dtype;
        ``forward`` is ``out(h)``. PaGoDA's growth stages (:mod:`pagoda_inverse.core.adm_decoder`) continue from
        ``h`` with ``emb``."""
        if x.shape[-1] % self.config.downsampling or x.shape[-2] % self.config.downsampling:
            raise ValueError(f"ADM: input size {tuple(x.shape[-2:])} is not a multiple of {self.config.downsampling}")
        timesteps = torch.as_tensor(timesteps, device=x.device).reshape(-1).expand(len(x))
        emb = self.embed(timesteps, cond)
        h = x.to(self.torso_dtype)
        skips = []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return h.to(self.out[-1].weight.dtype), emb


def first_names(names, n: int = 3) -> str:
    """The first ``n`` of ``names``, comma-separated, with ``...`` when there are more (for one-line errors)."""
    names = list(names)
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def state_mismatch(cfg: ADMConfig, state: Mapping[str, torch.Tensor]) -> str | None:
    """``None`` when ``state`` has exactly the keys and shapes of ``ADM(cfg)``; else one line with the counts and the
    first few missing / unexpected / wrong-shaped keys."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in ADM(cfg).state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {list(state[k].shape)} vs {list(expected[k])}" for k in sorted(set(expected) & set(state))
             if tuple(state[k].shape) != expected[k]]  # fmt: skip
    if not (missing or unexpected or wrong):
        return None
    parts = [f"{len(missing)} missing ({first_names(missing)})" if missing else "",
             f"{len(unexpected)} unexpected ({first_names(unexpected)})" if unexpected else "",
             f"{len(wrong)} wrong-shaped (file vs config: {first_names(wrong, 2)})" if wrong else ""]  # fmt: skip
    return "; ".join(p for p in parts if p)
