"""Training configs as frozen dataclasses with named presets; the resolved config is saved beside every run.

Presets: ``fmnist`` (the shipped model's recipe, sized for a 2-core CPU), ``photo`` (the RGB photo model: 16x16
teacher, G grown to 64x64), ``smoke`` (a tiny run, < 1 minute,
used by the tests) and, for the teacher only, ``fmnist-fullres`` (an EDM model trained directly at 32x32 on the same
data and conditioning: the reference prior of the peer solvers and of the generation benchmark). ``resolve(kind, preset, **overrides)`` gives the config a command runs with.

The ``imagenet64`` family (``encode``, ``decoder``, ``encoder``; ``grow``: ``imagenet64-128``, ``imagenet64-256``,
``imagenet64-512``) is PaGoDA's ImageNet pipeline on an imported teacher (see :data:`IMAGENET64_PIPELINE`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace

from pagoda_inverse.core.classifier import ClassifierConfig
from pagoda_inverse.core.posterior import PosteriorNetConfig
from pagoda_inverse.core.unet import UNetConfig
from pagoda_inverse.utils.errors import UserError


@dataclass(frozen=True)
class DataConfig:
    """Which images to train on.

    :param dataset: ``"fmnist"`` (Debian Fashion-MNIST, padded to 32 px), ``"photo"`` (unconditional RGB crops of the
        photos in ``datasets/photos.py``) or a folder of images.
    :param root: dataset location override (``PAGODA_FMNIST_DIR`` also works for fmnist).
    :param resolution: full image resolution (32 for fmnist).
    :param factor: teacher resolution = ``resolution // factor`` (area down-sampling, anti-aliased).
    :param limit: use only the first ``limit`` images (``None``: all).
    :param crops: for a folder of images: train on this many random multi-scale crops of its images (each split
        its own seed; :func:`~pagoda_inverse.datasets.photos.random_crops`), so the model is a patch prior that
        solves images of any size in tiles, as ``photo`` is; 0: each image resized and centre-cropped whole.
    """

    dataset: str = "fmnist"
    root: str | None = None
    resolution: int = 32
    factor: int = 4
    limit: int | None = None
    crops: int = 0

    @property
    def teacher_resolution(self) -> int:
        return self.resolution // self.factor


@dataclass(frozen=True)
class LoopConfig:
    """The optimisation loop every training stage shares (its ``loop`` section).

    :param steps: optimiser steps (a resumed run continues to this count).
    :param batch_size: images (or pairs) per step, over all ranks together.
    :param lr: learning rate (the decoder's: G's; its discriminator has its own ``lr_d``).
    :param warmup_steps: linear warm-up of the learning rate (0: none; the teacher then keeps ``lr``, the colour
        network, the classifier and the posterior encoders decay it on a cosine).
    :param ema_decay: decay of the weights' exponential moving average, the weights a stage saves (the classifier
        keeps none).
    :param seed: seeds the initial weights and, with the step number, each step's batch.
    :param log_every, checkpoint_every: a log line, and a resumable checkpoint, every that many steps (and at the end).
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 0
    ema_decay: float = 0.999
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500


def _loop(**values) -> LoopConfig:
    """A stage's default loop (for ``field(default_factory=...)``)."""
    return field(default_factory=lambda: LoopConfig(**values))


@dataclass(frozen=True)
class TeacherConfig:
    """EDM teacher at the low resolution (PaGoDA stage 1): Adam, warm-up then a constant rate."""

    data: DataConfig = field(default_factory=DataConfig)
    unet: UNetConfig = field(default_factory=lambda: UNetConfig(channels=32, channel_mult=(1, 2, 2)))
    loop: LoopConfig = _loop(steps=4000, batch_size=256, lr=1e-3, warmup_steps=200)
    cond_dropout: float = 0.1  # probability of the null caption (classifier-free guidance)
    hflip: bool = True
    sample_steps: int = 18  # Heun grid points for the preview grid


@dataclass(frozen=True)
class EncodeConfig:
    """PF-ODE encoding of a split into a sharded latent cache (PaGoDA stage 2a)."""

    split: str = "train"
    num_steps: int = 18  # Heun grid points: 2 * (num_steps - 1) teacher evaluations per latent
    flips: str = "random"  # "random": one orientation per image (seeded); "both": two latents per image
    null_fraction: float = 0.1  # share of images also encoded under the null caption (to train G's CFG branch)
    clamp: bool = True  # clamp D to [-1, 1] during inversion, as the paper's code does
    batch_size: int = 1000
    shard_size: int = 8192
    seed: int = 0
    limit: int | None = None


@dataclass(frozen=True)
class DecoderConfig:
    """One-step decoder G at the teacher resolution (PaGoDA stage 2b): reconstruction + hinge GAN, RAdam for both
    networks (``loop.lr`` is G's rate, ``lr_d`` the discriminator's)."""

    loop: LoopConfig = _loop(steps=3000, batch_size=128, lr=1e-4)
    lr_d: float = 1e-3
    adv_weight: float = 0.2  # w_adv; multiplied by the adaptive weight clipped to [0.01, 10]
    adv_start: int = 0  # first step with the adversarial term
    cond_dropout: float = 0.1
    disc_channels: int = 32
    upsample: str = "nearest"  # growth only: the previous image's up-sampling under the new stage (UPSAMPLE_MODES)
    # G's and D's arithmetic in training: fp32, or bf16 autocast (1.65x faster steps on the CPU).
    precision: str = "fp32"


@dataclass(frozen=True)
class EncoderConfig:
    """Learned one-step encoder regressing the cached PF-ODE latents (L2 + L1), Adam at a constant rate."""

    loop: LoopConfig = _loop(steps=3000, batch_size=256, lr=5e-4)


@dataclass(frozen=True)
class GuidanceConfig:
    """Guidance map ``M(z, c, w)`` regressing the latents of the teacher's CFG samples (L2 + L1).

    Pairs: ``num_pairs`` noises, each with a condition and a scale ``w ~ U[1, w_max]``, through the teacher's
    CFG Heun sampler and its unguided encoder (``num_steps`` grid points each way, ``(2 num_steps - 1) * 2 +
    2 (num_steps - 1)`` teacher evaluations per pair), fixed by ``loop.seed``.
    """

    num_pairs: int = 24000
    w_max: float = 4.5
    null_fraction: float = 0.05
    num_steps: int = 12
    pair_batch: int = 500
    shard_size: int = 2000
    loop: LoopConfig = _loop(steps=2500, batch_size=256, lr=5e-4, checkpoint_every=250)


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """The evaluation classifier (``fmnist-clf``) on full-resolution training images: cross-entropy, AdamW with
    warm-up and cosine decay, random flips and translations; test accuracy is measured at the end."""

    data: DataConfig = field(default_factory=lambda: DataConfig(factor=1))
    net: ClassifierConfig = field(default_factory=ClassifierConfig)
    loop: LoopConfig = _loop(steps=6000, batch_size=128, lr=2e-3, warmup_steps=100, checkpoint_every=250)
    weight_decay: float = 5e-4
    shift: float = 0.0625  # random translation, as a fraction of the size (2 px at 32 px)
    hflip: bool = True


@dataclass(frozen=True)
class ColourTrainConfig:
    """The luma-to-colour network of an RGB model: squared error of the colorization of full-resolution crops, Adam
    with warm-up and cosine decay, random flips, EMA; the test-split PSNR is measured at the end."""

    data: DataConfig = field(default_factory=lambda: DataConfig(dataset="photo", resolution=64, factor=1))
    unet: UNetConfig = field(
        default_factory=lambda: UNetConfig(
            in_channels=3,
            resolution=64,
            channels=24,
            channel_mult=(1, 2, 3, 4),
            num_blocks=1,
            attn_resolutions=(8,),
            cond_dim=1,
        )
    )
    loop: LoopConfig = _loop(steps=1800, batch_size=32, lr=1e-3, warmup_steps=100, ema_decay=0.995,
                             checkpoint_every=100)  # fmt: skip
    hflip: bool = True
    precision: str = "fp32"  # the network's arithmetic in training: fp32, or bf16 autocast


@dataclass(frozen=True)
class PosteriorTrainConfig:
    """An amortized posterior encoder ``q`` for one operator family into a trained model's frozen G (energy score on
    the data-consistent decoded samples, Adam with warm-up and cosine decay, EMA).

    :param family: the operator family (see :data:`pagoda_inverse.ops.families.FAMILIES`).
    :param model: the model (embedded name or folder) whose G ``q`` serves.
    :param net: ``q``'s architecture (the rest of its :class:`~pagoda_inverse.core.posterior.PosteriorConfig` follows
        from G; ``net.channels`` is cut or extended to G's number of levels).
    :param samples: decoded samples per training image (``>= 2``: the energy score's spread term needs two).
    :param cond_dropout: share of images trained under the null caption (the rest under a caption of their class).
    :param prior_std: the data-consistency step's prior width (as the ``one_step`` solver's) when ``consistency`` is
        ``"fixed"``.
    :param consistency: ``"learned"``: ``q`` predicts each image's prior width (noise-aware consistency, starting at
        ``prior_std``; its read-out learns at ``consistency_lr_scale`` times ``loop.lr``); ``"fixed"``: ``prior_std``.
    :param init: a posterior checkpoint folder (``RUN/posterior-FAMILY`` or a model's ``posterior/FAMILY``) of the
        same architecture to start from (fine-tuning); a learned read-out it lacks starts at ``prior_std``.
    :param trainable: ``"all"`` of ``q``; ``"heads"``: the per-sample heads and outputs only (the trunk frozen and
        run without gradients); or ``"consistency"``: only the learned read-out (on an ``init`` encoder; no gradient
        through G, so a step costs about a forward pass).
    :param adv_weight: weight of an adversarial realism term on the samples (0: none): a conditional discriminator
        (:class:`~pagoda_inverse.nets.discriminator.Discriminator`, ``disc_channels`` wide, learning rate ``lr_d``)
        learns training images from data-consistent samples (hinge loss, DiffAugment), and ``q`` adds its hinge
        generator loss, scaled by the adaptive weight (``||grad ES|| / ||grad adv||`` on the finest output head) as
        PaGoDA's decoder does, from step ``adv_start`` on (the discriminator learns from step 0).
    :param precision: arithmetic of ``q`` and G in training (``auto``: ``bf16`` autocast where the device has native
        bfloat16, 1.7x faster steps on an AMX CPU, else ``fp32``; the weights and the optimiser stay in float32).
    :param eval_images: held-out test images (from index ``eval_offset``, away from the benchmark's first 256) scored
        at the end, with ``eval_samples`` samples each.
    """

    family: str = ""
    model: str = "fmnist"
    data: DataConfig = field(default_factory=DataConfig)
    net: PosteriorNetConfig = field(default_factory=PosteriorNetConfig)
    loop: LoopConfig = _loop(steps=2000, batch_size=32, lr=1e-3, warmup_steps=100, ema_decay=0.995,
                             checkpoint_every=100)  # fmt: skip
    precision: str = "auto"
    samples: int = 2
    cond_dropout: float = 0.5
    prior_std: float = 0.2
    consistency: str = "learned"
    consistency_lr_scale: float = 20.0
    init: str = ""
    trainable: str = "all"
    adv_weight: float = 0.0
    adv_start: int = 0
    disc_channels: int = 32
    lr_d: float = 2e-4
    hflip: bool = True
    eval_images: int = 64
    eval_samples: int = 16
    eval_offset: int = 5000


#: The ``photo`` model's data: 64x64 RGB crops of the photos (see ``datasets/photos.py``), teacher at 16x16.
PHOTO_DATA = DataConfig(dataset="photo", resolution=64, factor=4)

#: PaGoDA's ImageNet pipeline (Kim et al. 2024, sec. 5) with an imported 64x64 teacher: the class-conditional
#: ImageNet-64 ADM (guided-diffusion's ``64x64_diffusion.pt`` or EDM's ``edm-imagenet-64x64-cond-adm.pkl``) converted by
#: ``pagoda-inv convert``; images encoded at 64 from 512 px (``encode --dataset DIR --resolution 512``), G trained at
#: 64, then grown 64 -> 128 -> 256 -> 512 (one ``train grow`` per stage, presets ``imagenet64-128/256/512``). The
#: stages, resolutions and the growth order are the paper's; the step counts, learning rates and batch sizes are
#: this toolkit's choices for ONE GPU (an H100/H200 class card), sized by estimate and checked only with
#: ``--dry-run`` (two steps at batch 2 on the CPU), not by a training run.
IMAGENET64_PIPELINE = ("encode", "decoder", "grow:imagenet64-128", "grow:imagenet64-256", "grow:imagenet64-512")

#: Fine-tuning a posterior encoder from a trained one (``--init``): a lower rate, a short warm-up, a fast EMA.
_FINETUNE = dict(lr=5e-4, warmup_steps=20, ema_decay=0.99, log_every=10, checkpoint_every=50)

#: The sections a flat key may address (``resolve``'s overrides, the presets, configs saved before the sections), in
#: the order they are searched.
SECTIONS = ("loop", "data", "net")


def configure(cfg, where: str = "config", **values):
    """``cfg`` with ``values`` set: each key names a field of ``cfg`` or of one of its :data:`SECTIONS` (``steps``
    sets ``cfg.loop.steps``, ``root`` sets ``cfg.data.root``); an unknown key is a one-line :class:`UserError`
    naming it and the valid ones.

    >>> configure(EncoderConfig(), steps=5).loop.steps
    5
    """
    own = _names(cfg)
    sections = [s for s in SECTIONS if s in own]
    nested: dict[str, dict] = {}
    for key in values:
        if key not in own:
            home = next((s for s in sections if key in _names(getattr(cfg, s))), None)
            if home is None:
                valid = own + [k for s in sections for k in _names(getattr(cfg, s)) if k not in own]
                raise UserError(f"{where}: unknown key {key!r}; valid: {', '.join(valid)}")
            nested.setdefault(home, {})[key] = values[key]
    top = {k: v for k, v in values.items() if k in own}
    return replace(cfg, **top, **{s: replace(top.get(s, getattr(cfg, s)), **kv) for s, kv in nested.items()})


def _names(section) -> list[str]:
    return [f.name for f in dataclasses.fields(section)]


#: imagenet64 growth stage 64 -> 128 (the 256 and 512 stages halve the batch as the resolution doubles).
IMAGENET64_GROW = configure(DecoderConfig(), steps=100_000, batch_size=32, lr=5e-5, lr_d=2e-4, disc_channels=64,
                            log_every=100, checkpoint_every=2000, upsample="bilinear")  # fmt: skip

# fmt: off
PRESETS: dict[str, dict[str, object]] = {
    "teacher": {
        "fmnist": TeacherConfig(),
        "fmnist-fullres": configure(
            TeacherConfig(), data=DataConfig(factor=1), steps=2800, batch_size=128, checkpoint_every=200,
            unet=UNetConfig(channels=32, channel_mult=(1, 2, 2, 2), num_blocks=1, attn_resolutions=(8,))),
        "photo": configure(
            TeacherConfig(), data=PHOTO_DATA, steps=5000, batch_size=128, checkpoint_every=250,
            unet=UNetConfig(channels=32, channel_mult=(1, 2, 2), num_blocks=1, attn_resolutions=())),
        "smoke": configure(
            TeacherConfig(), data=DataConfig(limit=256), steps=20, batch_size=32, warmup_steps=5, log_every=5,
            checkpoint_every=10, sample_steps=4,
            unet=UNetConfig(channels=16, channel_mult=(1, 2), attn_resolutions=())),
    },
    "encode": {
        "fmnist": EncodeConfig(),
        "photo": EncodeConfig(num_steps=12, null_fraction=0.0, batch_size=500, limit=12000),
        "smoke": EncodeConfig(num_steps=4, batch_size=64, shard_size=100, limit=256),
        "imagenet64": EncodeConfig(num_steps=32, null_fraction=0.1, batch_size=256, shard_size=16384),
    },
    "decoder": {
        "fmnist": DecoderConfig(),
        "photo": configure(DecoderConfig(), steps=4000, batch_size=64, lr=3e-4, cond_dropout=0.0,
                           checkpoint_every=250),
        "smoke": configure(DecoderConfig(), steps=10, batch_size=16, disc_channels=8, log_every=5, checkpoint_every=5),
        "imagenet64": configure(DecoderConfig(), steps=200_000, batch_size=64, lr=2e-5, lr_d=2e-4, disc_channels=64,
                                log_every=100, checkpoint_every=2000),
    },
    "encoder": {
        "fmnist": EncoderConfig(),
        "photo": configure(EncoderConfig(), steps=1500, batch_size=128, checkpoint_every=250),
        "smoke": configure(EncoderConfig(), steps=6, batch_size=16, log_every=3, checkpoint_every=3),
        "imagenet64": configure(EncoderConfig(), steps=100_000, batch_size=64, lr=2e-5, log_every=100,
                                checkpoint_every=2000),
    },
    "guidance": {
        "fmnist": GuidanceConfig(),
        "smoke": configure(GuidanceConfig(), num_pairs=48, num_steps=4, pair_batch=16, shard_size=32, steps=6,
                           batch_size=16, log_every=3, checkpoint_every=3),
    },
    "classifier": {
        "fmnist": ClassifierTrainConfig(),
        "smoke": configure(ClassifierTrainConfig(), data=DataConfig(factor=1, limit=256), steps=6, batch_size=16,
                           net=ClassifierConfig(channels=8, feature_dim=16), warmup_steps=2, log_every=3,
                           checkpoint_every=3),
    },
    "colour": {
        "photo": ColourTrainConfig(precision="bf16"),
        "smoke": configure(
            ColourTrainConfig(), data=DataConfig(dataset="photo", resolution=16, factor=1, limit=64), steps=6,
            unet=UNetConfig(in_channels=3, resolution=16, channels=8, channel_mult=(1, 2), attn_resolutions=(),
                            cond_dim=1),
            batch_size=8, warmup_steps=2, log_every=3, checkpoint_every=3),
    },
    "posterior": {
        "fmnist": PosteriorTrainConfig(),
        # v3 (learned consistency) from the v2 encoders (--init MODEL/posterior/FAMILY): all of q, or only the
        # consistency read-out (about a forward pass a step: 120 steps, a fast EMA).
        "fmnist-finetune": configure(PosteriorTrainConfig(), **_FINETUNE),
        "fmnist-readout": configure(PosteriorTrainConfig(), lr=1e-3, warmup_steps=10, ema_decay=0.9, batch_size=16,
                                    steps=120, eval_samples=8, trainable="consistency", log_every=10,
                                    checkpoint_every=50),
        # Realism fine-tune from the v3 encoders: the per-sample heads learn against a discriminator trained from
        # scratch (alone for the first adv_start steps), the trunk frozen. Not shipped: on inpaint these settings
        # lowered one sample's FD-FMNIST on 256 training images 12.8 -> 10.6 but raised its residual ratio
        # 1.03 -> 1.27, and the mean lost 0.2 dB (2026-12-07, this CPU).
        "fmnist-realism": configure(PosteriorTrainConfig(), **{**_FINETUNE, "lr": 3e-4}, steps=300, trainable="heads",
                                    adv_weight=1.0, adv_start=150, lr_d=2e-3),
        "photo": configure(PosteriorTrainConfig(), model="photo", data=PHOTO_DATA, batch_size=16, cond_dropout=1.0,
                           eval_images=32, eval_offset=0),
        "smoke": configure(PosteriorTrainConfig(), data=DataConfig(limit=256), steps=6, batch_size=4, warmup_steps=2,
                           net=PosteriorNetConfig(channels=(8, 8, 8), emb_dim=16), eval_images=4, eval_samples=4,
                           eval_offset=0, log_every=3, checkpoint_every=3),
    },
    "grow": {
        "fmnist": configure(DecoderConfig(), steps=2000, batch_size=64, adv_weight=1.0),
        # PSNR-minded: a bicubic base under each new stage and a light adversarial term (the model serves solvers).
        "photo": configure(DecoderConfig(), steps=1600, batch_size=32, lr=3e-4, adv_weight=0.1, cond_dropout=0.0,
                           checkpoint_every=250, upsample="bicubic", precision="bf16"),
        "smoke": configure(DecoderConfig(), steps=6, batch_size=8, disc_channels=8, log_every=3, checkpoint_every=3),
        # imagenet64: one preset per growth stage (the batch halves as the resolution doubles).
        "imagenet64-128": IMAGENET64_GROW,
        "imagenet64-256": configure(IMAGENET64_GROW, batch_size=16),
        "imagenet64-512": configure(IMAGENET64_GROW, batch_size=8),
    },
}
# fmt: on


def resolve(kind: str, preset: str, **overrides):
    """The preset ``preset`` of ``kind`` (a key of :data:`STAGES`) with the non-``None`` ``overrides`` set
    (:func:`configure`: ``steps=...`` reaches ``loop.steps``)."""
    presets = PRESETS[kind]
    if preset not in presets:
        raise UserError(f"unknown {kind} preset {preset!r}; choose one of: {', '.join(presets)}")
    return configure(presets[preset], f"{kind} config", **{k: v for k, v in overrides.items() if v is not None})


def to_dict(cfg) -> dict:
    """A JSON-ready dict of a (nested) config dataclass."""
    return dataclasses.asdict(cfg)


#: The config class of each stage (``pagoda-inv train KIND``, and ``encode``): the one table :func:`from_dict` uses.
STAGES = {"teacher": TeacherConfig, "encode": EncodeConfig, "decoder": DecoderConfig, "grow": DecoderConfig,
          "encoder": EncoderConfig, "guidance": GuidanceConfig, "classifier": ClassifierTrainConfig,
          "colour": ColourTrainConfig, "posterior": PosteriorTrainConfig}  # fmt: skip


def from_dict(kind: str, d: dict):
    """Rebuild a config of ``kind`` (a key of :data:`STAGES`) from :func:`to_dict`'s output (``--resume``, a
    checkpoint's ``train`` record). A config saved before the ``loop`` and ``net`` sections (flat, the decoder's rate
    as ``lr_g``) is read into them.

    >>> from_dict("teacher", {"loop": {"steps": 5}}).loop.steps
    5
    >>> loop = from_dict("teacher", {"steps": 5, "seed": 1}).loop
    >>> loop.steps, loop.seed, loop.batch_size  # the rest at the teacher's defaults
    (5, 1, 256)
    >>> from_dict("teacher", {"stepz": 5})
    Traceback (most recent call last):
    ...
    pagoda_inverse.utils.errors.UserError: teacher config: unknown key 'stepz'; valid: data, unet, loop, cond_dropout, hflip, sample_steps, steps, batch_size, lr, warmup_steps, ema_decay, seed, log_every, checkpoint_every, dataset, root, resolution, factor, limit, crops
    """
    cls = STAGES[kind]
    if not isinstance(d, dict):
        raise UserError(f"{kind} config: not an object")
    d = {("lr" if k == "lr_g" else k): v for k, v in d.items()}  # the decoder's flat layout named G's rate lr_g
    own = {f.name for f in dataclasses.fields(cls)}
    return configure(_build(cls, {k: v for k, v in d.items() if k in own}, f"{kind} config"), f"{kind} config",
                     **{k: _tuples(v) for k, v in d.items() if k not in own})  # fmt: skip


def _tuples(value):
    """JSON lists back to tuples (every sequence field of a config is a tuple)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _build(cls, d: dict, where: str):
    """``cls`` from a JSON dict: nested configs rebuilt, lists back to tuples, missing keys at their defaults; an
    unknown key is a one-line :class:`UserError` naming it and the valid ones."""
    fields = [f.name for f in dataclasses.fields(cls)]
    if not isinstance(d, dict) or (unknown := [k for k in d if k not in fields]):
        what = f"unknown key {unknown[0]!r}" if isinstance(d, dict) else "not an object"
        raise UserError(f"{where}: {what}; valid: {', '.join(fields)}")
    defaults, values = cls(), {}
    for name, value in d.items():
        default = getattr(defaults, name)
        if dataclasses.is_dataclass(default):  # a nested config (its own from_dict where it has one)
            value = type(default).from_dict(value) if hasattr(default, "from_dict") else _build(type(default), value,
                                                                                                 f"{where}.{name}")  # fmt: skip
        else:
            value = _tuples(value)
        values[name] = value
    return cls(**values)
