"""Assemble a model folder (``teacher/``, ``decoder/``, ``encoder/``, ``guidance/``, ``classifier/``, ``colour/``,
``posterior/<family>/`` + ``card.md``, ``solver_defaults.json`` and the typed geometry ``model.json``) from training
outputs, as fp16."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from pagoda_inverse.core.checkpoint import load_checkpoint, load_config, save_checkpoint
from pagoda_inverse.core.encode import file_digest
from pagoda_inverse.core.model import GEOMETRY_FILE, MODEL_PARTS, describing_part, load_model
from pagoda_inverse.utils.atomic import write_json_atomic, write_text_atomic
from pagoda_inverse.utils.errors import CheckpointError, UserError


def export_model(
    out: Path,
    *,
    teacher: Path | None = None,
    decoder: Path | None = None,
    encoder: Path | None = None,
    guidance: Path | None = None,
    classifier: Path | None = None,
    colour: Path | None = None,
    posteriors: Sequence[Path] = (),
    card: str = "",
    solver_defaults: dict | None = None,
    generation_defaults: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Copy checkpoint folders into ``out/{teacher,decoder,encoder,guidance,classifier,colour}`` in float16; write
    ``out/card.md``, ``out/model.json`` (the :class:`~pagoda_inverse.core.model.ModelGeometry` of what the folder
    then holds) and, if given, ``out/solver_defaults.json`` (``{solver: {hyper-parameter: value}}``, checked
    against the solvers' signatures; :func:`pagoda_inverse.solvers.solve` applies them beneath the caller's
    settings) and, if given, ``out/generation.json`` (``{"cfg_scale": w, "why": ...}``, the guidance ``pagoda-inv
    generate`` uses without ``--cfg``). Each of ``posteriors`` (a ``train posterior`` output) goes to ``out/posterior/<family>/``; it must have
    been trained for the decoder that ``out`` holds (or gets in this call).

    Every source is read and checked before anything is written; a non-empty ``out`` is refused unless
    ``overwrite`` (then the parts given replace those of the same name, one atomic file at a time).
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out}: exists and is not empty; pass --overwrite to replace its parts")
    parts = dict(zip(MODEL_PARTS, (teacher, decoder, encoder, guidance, classifier, colour), strict=True))
    loaded = {}
    for name, src in parts.items():
        if src is None:
            continue
        tensors, config = load_checkpoint(src)
        if config.get("kind") != name:
            raise CheckpointError(f"{src}: is a {config.get('kind')!r} checkpoint, expected a {name}")
        config.pop("format", None)
        loaded[name] = tensors, config
    families = {}
    for src in posteriors:
        tensors, config = load_checkpoint(src)
        if config.get("kind") != "posterior":
            raise CheckpointError(f"{src}: is a {config.get('kind')!r} checkpoint, expected a posterior encoder")
        config.pop("format", None)
        families[config["posterior"]["family"]] = tensors, config
    if families:
        _check_posterior_decoder(out, decoder, families)
    if generation_defaults is not None:
        from pagoda_inverse.core.model import check_generation_defaults

        check_generation_defaults(generation_defaults, "generation defaults")
    if solver_defaults is not None:
        from pagoda_inverse.solvers import check_solver_defaults

        check_solver_defaults(solver_defaults)
    # The parts the folder will hold (those given, and those of ``out`` they leave) must be one model's.
    after = {n: (config, parts[n]) for n, (_, config) in loaded.items()}
    after |= {n: (load_config(out / n), out / n) for n in MODEL_PARTS if n not in after and (out / n).is_dir()}
    networks = set(after) - {"classifier"}  # a folder of the classifier alone has no model geometry
    if networks:
        describing_part(after, out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (tensors, config) in loaded.items():
        save_checkpoint(out / name, tensors, config, half=True)
    for family, (tensors, config) in families.items():
        (out / "posterior").mkdir(exist_ok=True)
        save_checkpoint(out / "posterior" / family, tensors, config, half=True)
    if card:
        write_text_atomic(out / "card.md", card)
    if solver_defaults is not None:
        write_json_atomic(out / "solver_defaults.json", solver_defaults)
    if generation_defaults is not None:
        write_json_atomic(out / "generation.json", generation_defaults)
    if networks:  # the typed geometry of what the folder now holds
        (out / GEOMETRY_FILE).unlink(missing_ok=True)
        write_json_atomic(out / GEOMETRY_FILE, asdict(load_model(out).geometry))
    return out


def _check_posterior_decoder(out: Path, decoder: Path | None, families: dict) -> None:
    """Refuse posterior encoders trained for another decoder than ``out/decoder`` (when no new decoder is exported
    in the same call; its fp16 copy then replaces the one they were trained for)."""
    if decoder is not None or not (out / "decoder" / "model.safetensors").is_file():
        raise UserError(f"{out}: export posterior encoders into a model folder that already holds its decoder")
    digest = file_digest(out / "decoder" / "model.safetensors")
    for family, (_, config) in families.items():
        made_for = config.get("generator", {})
        if made_for.get("decoder_sha256") != digest:
            raise CheckpointError(
                f"the {family} posterior encoder was trained for the decoder of model {made_for.get('model')!r}, not "
                f"the one in {out / 'decoder'}; retrain it with 'pagoda-inv train posterior --model {out}'"
            )
