"""A PaGoDA model bundle: frozen teacher (the encoder), one-step generator G, and the caption embeddings.

A model folder holds ``teacher/``, ``decoder/`` and optionally ``encoder/``, ``guidance/`` and ``colour/``
checkpoint folders (each ``config.json`` + ``model.safetensors``), ``posterior/<family>/`` posterior encoders and a
``card.md``; a single checkpoint folder also
loads (teacher-only or decoder-only). A folder written by ``pagoda-inv convert`` (an imported guided-diffusion /
diffusers / EDM network) loads as a teacher-only model: its denoiser is the imported network behind its own
preconditioning, and its conditions are one-hot class vectors (class-conditional) or ignored (unconditional); see
:mod:`pagoda_inverse.core.parts`.
Embedded models live in ``pagoda_inverse/models/<name>/``; ``load_model("fmnist")`` picks one by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from pagoda_inverse.core.checkpoint import load_config
from pagoda_inverse.core.colour_net import ColourNet
from pagoda_inverse.core.generator import Generator
from pagoda_inverse.core.guidance import GuidanceMap
from pagoda_inverse.core.learned_encoder import LearnedEncoder
from pagoda_inverse.core.parts import as_decoder, as_encoder, image_geometry, load_part, part_bank, teacher_denoiser
from pagoda_inverse.core.posterior import load_posterior
from pagoda_inverse.core.text import CaptionBank
from pagoda_inverse.utils.errors import CheckpointError, UserError
from pagoda_inverse.utils.io import read_json

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
#: The checkpoint folders a model folder may hold (besides ``posterior/<family>/``), in export order.
MODEL_PARTS = ("teacher", "decoder", "encoder", "guidance", "classifier", "colour")
DEFAULT_MODEL = "fmnist"
#: The RGB patch model: the CLI's default for colour photos and colorization.
PHOTO_MODEL = "photo"


def embedded_models() -> list[str]:
    """Names of the models shipped inside the package."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def resolve_model_path(name_or_path: str | Path) -> Path:
    """An embedded model name or an existing folder -> the model folder."""
    if str(name_or_path) in embedded_models():
        return MODELS_DIR / str(name_or_path)
    path = Path(name_or_path)
    if path.is_dir():
        return path
    names = ", ".join(embedded_models()) or "none installed"
    raise UserError(f"model {str(name_or_path)!r}: neither an embedded model ({names}) nor an existing folder")


def _guidance_map(net: torch.nn.Module, config: dict, folder: Path) -> GuidanceMap:
    if not isinstance(config.get("w_max"), int | float):
        raise CheckpointError(f"{folder / 'config.json'}: has no numeric 'w_max' (the trained CFG range)")
    return GuidanceMap(net, float(config["w_max"]), sigma_max=float(config.get("sigma_max", 80.0)))


#: The networks a model folder may hold, in load order: how each is wrapped for its role (from its network, config
#: and folder), and whether its config describes the model (geometry, captions; a decoder's through its
#: ``teacher_config``). The first such part present gives the model's config.
_PARTS = {
    "teacher": (lambda net, config, folder: teacher_denoiser(net, config), True),
    "decoder": (lambda net, config, folder: as_decoder(net, config), True),
    "encoder": (lambda net, config, folder: as_encoder(net, config), True),
    "guidance": (_guidance_map, True),
    "colour": (lambda net, config, folder: ColourNet(net), False),
}


#: The model folder's file of typed geometry (:class:`ModelGeometry`), written by export.
GEOMETRY_FILE = "model.json"


@dataclass(frozen=True)
class ModelGeometry:
    """What a model is, in types: derived from its parts when it loads, stored by export as ``model.json`` (checked
    against the parts at load, so a folder whose parts were swapped behind it is refused).

    :param channels: image channels ``C`` (1 or 3).
    :param teacher_resolution: ``r``, the side of the teacher's images and of the latents.
    :param resolution: ``R``, the side of G's images (``r`` without a decoder).
    :param sigma_max: the noise level the latents are scaled by (G's input; ``None`` without a decoder).
    :param patch_prior: trained on random crops of larger images, so images of any size are solved in overlapping
        tiles (:func:`~pagoda_inverse.solvers.tiled.solve_tiled`): the ``photo`` crops, or a folder's with
        ``DataConfig.crops``.
    """

    channels: int
    teacher_resolution: int
    resolution: int
    sigma_max: float | None
    patch_prior: bool


@dataclass
class PagodaModel:
    """What the solvers and ``generate`` use.

    :param teacher: EDM denoiser ``D(x, sigma, cond)`` at the teacher resolution ``r`` (``None`` if absent): an
        :class:`~pagoda_inverse.core.precond.EDMPrecond`, or for an imported ADM the wrapper of
        :mod:`pagoda_inverse.core.adm_teacher`.
    :param decoder: the one-step generator ``G(z [B,C,r,r], cond) -> [B,C,R,R]`` of the ``decoder/`` part (``None``
        if absent).
    :param encoder: learned one-step encoder ``E(x [B,C,r,r], cond) -> z`` (``None`` if absent).
    :param guidance: guidance map ``M(z, cond, w) -> z_w`` for one-step classifier-free guidance (``None`` if
        absent; then CFG extrapolates G's outputs).
    :param colour: luma-to-colour network ``C(gray [B,3,H,W]) -> [B,3,H,W]`` of an RGB model, the posterior-mean
        colour given the luma (``None`` if absent; the ``colour_net`` solver needs it).
    :param bank: caption embeddings: canonical class captions, null caption, training/held-out captions.
    :param config: the ``config.json`` of the teacher (or of the decoder when there is no teacher).
    :param solver_defaults: the model's recommended solver settings, ``{solver: {hyper-parameter: value}}``, with
        optional per-operator-family updates under ``"families"`` (``{family: {solver: {...}}}``), from the folder's
        ``solver_defaults.json``; :func:`pagoda_inverse.solvers.solve` applies them beneath the caller's own
        hyper-parameters (:func:`pagoda_inverse.solvers.model_settings`).
    :param generation_defaults: the model's recommended generation settings (``{"cfg_scale": w}`` from the folder's
        ``generation.json``); ``pagoda-inv generate`` uses them when ``--cfg`` is not given.
    :param posteriors: ``{family: PosteriorEncoder}`` from the folder's ``posterior/<family>/`` parts: amortized
        posterior encoders into G for the ``one_step`` solver (:mod:`pagoda_inverse.core.posterior`).
    """

    path: Path
    teacher: torch.nn.Module | None
    decoder: Generator | None
    bank: CaptionBank
    config: dict
    encoder: LearnedEncoder | None = None
    guidance: GuidanceMap | None = None
    colour: ColourNet | None = None
    solver_defaults: dict = field(default_factory=dict)
    posteriors: dict = field(default_factory=dict)
    generation_defaults: dict = field(default_factory=dict)

    @property
    def geometry(self) -> ModelGeometry:
        """The model's :class:`ModelGeometry`, from its config and decoder."""
        channels, r = image_geometry(self.config)
        data = self.config.get("data", {})
        return ModelGeometry(
            channels=channels,
            teacher_resolution=r,
            resolution=self.decoder.net.config.out_resolution if self.decoder is not None else r,
            sigma_max=float(self.decoder.sigma_max) if self.decoder is not None else None,
            patch_prior=data.get("dataset") == "photo" or bool(data.get("crops")),
        )

    @property
    def channels(self) -> int:
        """Image channels ``C``."""
        return self.geometry.channels

    @property
    def teacher_resolution(self) -> int:
        """The teacher's (and the latents') resolution ``r``."""
        return self.geometry.teacher_resolution

    @property
    def resolution(self) -> int:
        """Output resolution of G (the teacher's when there is no decoder)."""
        return self.geometry.resolution

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, R, R)`` of the images G makes (the solvers' operators act on these)."""
        return self.channels, self.resolution, self.resolution

    @property
    def device(self) -> torch.device:
        """Where the model's networks and caption embeddings are (see :meth:`to`)."""
        return self.bank.null_embedding.device

    def to(self, device: torch.device | str) -> PagodaModel:
        """Move every network and the caption embeddings to ``device`` (in place) and return the model.

        >>> load_model("fmnist").to("cpu").device
        device(type='cpu')
        """
        for net in (self.teacher, self.decoder, self.encoder, self.guidance, self.colour, *self.posteriors.values()):
            if net is not None:
                net.to(device)
        self.bank = self.bank.to(device)
        return self

    def class_condition(self, labels: torch.Tensor) -> torch.Tensor:
        """``[B]`` class indices -> ``[B, D]`` canonical-caption embeddings (no text encoder needed)."""
        labels = torch.as_tensor(labels).long().to(self.device)
        self._require_conditional("the class")
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.bank.num_classes):
            raise UserError(f"class must be in 0..{self.bank.num_classes - 1}, got {labels.tolist()}")
        return self.bank.class_embeddings[labels]

    def prompt_labels(self, prompts: list[str]) -> torch.Tensor:
        """Free-text prompts -> ``int64 [B]`` the class each is read as (runs the text encoder):
        :meth:`~pagoda_inverse.core.text.CaptionBank.recognise` with ``k = 1``, the training captions and the phrase
        bank :func:`~pagoda_inverse.core.text.class_phrase_embeddings` voting."""
        from pagoda_inverse.core.text import TextEncoder, class_phrase_embeddings

        self._require_conditional("the prompt")
        embeddings = TextEncoder().encode(list(prompts)).to(self.device)
        return self.bank.recognise(embeddings, k=1, phrases=class_phrase_embeddings())

    def prompt_condition(self, prompts: list[str], snap: bool = True) -> torch.Tensor:
        """Free-text prompts -> ``[B, D]`` conditions (runs the text encoder).

        :param snap: condition on the canonical caption of the class each prompt is read as (:meth:`prompt_labels`),
            the condition ``--class`` gives. Training captions name only the class (each image gets a random template
            and synonym), so no other caption carries more. ``benchmarks/prompts.py`` measures it on 60 held-out
            everyday prompts (``datasets/prompts-heldout.txt``). ``False`` (or a bank without training captions): the
            raw embedding.
        """
        from pagoda_inverse.core.text import TextEncoder

        self._require_conditional("the prompt")
        if snap and len(self.bank.train_embeddings):
            return self.class_condition(self.prompt_labels(prompts))
        return TextEncoder().encode(list(prompts)).to(self.device)

    @property
    def patch_prior(self) -> bool:
        """Whether images of any size are solved in overlapping tiles (:attr:`ModelGeometry.patch_prior`)."""
        return self.geometry.patch_prior

    @property
    def conditional(self) -> bool:
        """Whether the model takes a class or prompt (``False`` for unconditional models such as ``photo``)."""
        return self.bank.num_classes > 0

    def _require_conditional(self, what: str) -> None:
        if not self.conditional:
            raise UserError(f"model {self.path.name!r} is unconditional; drop {what} (it takes no class or prompt)")

    def null_condition(self, n: int) -> torch.Tensor:
        """``[n, D]`` copies of the null-caption embedding (unconditional)."""
        return self.bank.null_embedding.expand(n, -1).clone()


def load_model(name_or_path: str | Path = DEFAULT_MODEL) -> PagodaModel:
    """Load an embedded model by name or a model/checkpoint folder (safetensors + JSON only, never pickle).

    >>> model = load_model("fmnist")
    >>> model.teacher_resolution, model.resolution, model.channels
    (8, 32, 1)
    """
    path = resolve_model_path(name_or_path)
    parts = {name: path / name for name in MODEL_PARTS if name != "classifier"}  # the classifier: load_classifier
    if (path / "config.json").is_file():
        kind = load_config(path).get("kind")
        if kind not in parts:
            raise CheckpointError(f"{path / 'config.json'}: kind {kind!r} is not a {'/'.join(parts)} checkpoint")
        parts = {kind: path}
    loaded, configs, tensors = {}, {}, {}
    for name, (wrap, _) in _PARTS.items():  # each part present: its network, wrapped for its role
        if parts.get(name) is not None and parts[name].is_dir():
            net, part_config, tensors[name] = load_part(parts[name])
            loaded[name], configs[name] = wrap(net, part_config, parts[name]), (part_config, parts[name])
    first = describing_part(configs, path)  # the part whose config gives the geometry and the captions
    config, tensors = configs[first][0].get("teacher_config", configs[first][0]), tensors[first]
    defaults = read_solver_defaults(path)
    bank = part_bank(config, tensors)
    teacher, decoder, encoder, guidance, colour = (loaded.get(n) for n in _PARTS)
    model = PagodaModel(path, teacher, decoder, bank, config, encoder, guidance, colour, defaults)
    model.generation_defaults = read_generation_defaults(path)
    check_geometry(model)
    folders = sorted(p for p in (path / "posterior").glob("*") if p.is_dir()) if decoder is not None else []
    model.posteriors = {p.name: load_posterior(p, model) for p in folders}
    return model


def describing_part(configs: dict[str, tuple[dict, Path]], path: Path) -> str:
    """The first network (in :data:`_PARTS` order) of ``configs`` (``{part: (config, folder)}``, the parts of the model
    in ``path``; a classifier is no network of the model) whose config describes the model (geometry, captions),
    after checking that the parts agree: a :class:`CheckpointError` naming both folders where two parts are for
    different images, a colour network in a grayscale model, or no describing part."""
    described = {n: (configs[n][0].get("teacher_config", configs[n][0]), configs[n][1]) for n in _PARTS
                 if n in configs and _PARTS[n][1]}  # fmt: skip
    first = next(iter(described), None)
    if first is None:
        raise CheckpointError(f"{path}: holds no teacher/ or decoder/ checkpoint (config.json + model.safetensors)")
    (c0, r0), folder0 = image_geometry(described[first][0]), described[first][1]
    for config, folder in described.values():  # parts of one model share its geometry
        c, r = image_geometry(config)
        if (c, r) != (c0, r0):
            raise CheckpointError(f"{folder}: is for {c}-channel {r}px images but {folder0} for {c0}-channel {r0}px; "
                                  "export the parts of one model together")  # fmt: skip
    if "colour" in configs and c0 != 3:
        raise CheckpointError(f"{configs['colour'][1]}: a colour network needs an RGB model; this one is grayscale")
    return first


def check_geometry(model: PagodaModel) -> None:
    """Raise :class:`CheckpointError` when the folder's ``model.json`` (written by export) disagrees with the
    geometry of the parts it holds; a folder without one (a run's checkpoint) is described by its parts alone."""
    stored = _read_json(Path(model.path) / GEOMETRY_FILE)
    if stored is None:
        return
    actual = asdict(model.geometry)
    wrong = [f"{k} {stored.get(k)!r} (the parts: {v!r})" for k, v in actual.items() if stored.get(k) != v]
    if wrong or set(stored) != set(actual):
        raise CheckpointError(
            f"{Path(model.path) / GEOMETRY_FILE}: does not describe the parts beside it: "
            + ("; ".join(wrong) or f"keys {sorted(stored)}, expected {sorted(actual)}")
            + "; re-export the model (pagoda-inv export --overwrite)"
        )


def _read_json(path: Path):
    """The JSON in ``path``, or ``None`` when there is no such file; invalid JSON is a :class:`CheckpointError`."""
    return read_json(path, CheckpointError, "; fix or delete the file") if path.is_file() else None


def read_generation_defaults(folder: Path) -> dict:
    """``folder/generation.json`` as ``{"cfg_scale": w}`` (``{}`` when absent); anything else is a
    :class:`CheckpointError` naming the file."""
    path = Path(folder) / "generation.json"
    if (defaults := _read_json(path)) is not None:
        check_generation_defaults(defaults, path)
    return {} if defaults is None else defaults


def check_generation_defaults(defaults, source) -> None:
    """Raise :class:`CheckpointError` unless ``defaults`` is ``{"cfg_scale": w}`` with a number ``w >= 0`` (plus an
    optional ``"why"`` text)."""
    ok = isinstance(defaults, dict) and set(defaults) <= {"cfg_scale", "why"} and "cfg_scale" in defaults
    scale = defaults.get("cfg_scale") if isinstance(defaults, dict) else None
    if not ok or isinstance(scale, bool) or not isinstance(scale, int | float) or not scale >= 0:
        raise CheckpointError(f'{source}: expected {{"cfg_scale": w >= 0, "why": "..."}}, got {defaults!r}')


def read_solver_defaults(folder: Path) -> dict:
    """``folder/solver_defaults.json`` as ``{solver: {hyper-parameter: value}}`` (plus per-family updates under
    ``"families"``; ``{}`` when absent); invalid JSON or another shape is a :class:`CheckpointError` naming the file.
    The solver names, families and hyper-parameters are checked against the solvers by
    :func:`pagoda_inverse.solvers.solve` (and by ``export`` before it writes the file)."""
    path = Path(folder) / "solver_defaults.json"
    defaults = _read_json(path)
    if defaults is None:
        return {}
    if not isinstance(defaults, dict) or not all(isinstance(v, dict) for v in defaults.values()):
        raise CheckpointError(f'{path}: must map solver names to objects, e.g. {{"one_step": {{"samples": 4}}}}')
    return defaults
