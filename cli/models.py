"""``pagoda-inv models`` / ``photos`` / ``export``: the embedded models and their cards, the photo manifest, and
assembling a model folder."""

from __future__ import annotations

from pathlib import Path

import typer


def models() -> None:
    """List the embedded models (name, resolutions, first line of the model card)."""
    from pagoda_inverse.core.checkpoint import load_config
    from pagoda_inverse.core.model import MODEL_PARTS, MODELS_DIR, embedded_models
    from pagoda_inverse.core.parts import output_resolution

    names = embedded_models()
    if not names:
        print("no embedded models installed")
    for name in names:
        folder = MODELS_DIR / name
        card = folder / "card.md"
        summary = card.read_text().splitlines()[0].lstrip("# ") if card.is_file() else ""
        parts = [p for p in MODEL_PARTS if (folder / p / "config.json").is_file()]
        configs = {p: load_config(folder / p) for p in parts}
        res = {p: c["classifier"]["resolution"] if "classifier" in c else output_resolution(c)
               for p, c in configs.items()}  # fmt: skip
        families = sorted(p.parent.name for p in folder.glob("posterior/*/config.json"))
        desc = ", ".join(
            [*(f"{p} {r}px" for p, r in res.items()), *([f"posterior ({'/'.join(families)})"] * bool(families))]
        )
        print(f"{name:16s} {desc:46s} {summary}")


def photos(as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON.")) -> None:
    """List the photos the ``photo`` model is trained and tested on: package, author, licence, split, file."""
    import json

    from pagoda_inverse.datasets.photos import photo_manifest

    rows = photo_manifest()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"{r['split']:5s} {r['name']:22s} {r['package']:28s} {r['licence']:40s} {r['size']:9s} {r['author']}")
    missing = [r for r in rows if r["file"] is None]
    if missing:
        packages = " ".join(dict.fromkeys(r["package"] for r in missing))
        print(f"missing: {', '.join(r['name'] for r in missing)}; install them with: apt-get install -y {packages}")


def export(
    out: Path = typer.Option(..., "--out", help="Model folder to write (e.g. pagoda_inverse/models/fmnist)."),
    teacher: Path | None = typer.Option(None, "--teacher", help="Teacher checkpoint folder."),
    decoder: Path | None = typer.Option(None, "--decoder", help="Decoder checkpoint folder."),
    encoder: Path | None = typer.Option(None, "--encoder", help="Learned encoder checkpoint folder."),
    guidance: Path | None = typer.Option(None, "--guidance", help="Guidance map checkpoint folder (one-step CFG)."),
    classifier: Path | None = typer.Option(None, "--classifier", help="Classifier checkpoint folder."),
    colour: Path | None = typer.Option(None, "--colour", help="Colour network checkpoint folder ('train colour')."),
    posterior: list[Path] = typer.Option(
        [], "--posterior", help="Posterior encoder checkpoint folder ('train posterior'); repeat for several families."
    ),
    card: Path | None = typer.Option(None, "--card", help="Markdown model card to include as card.md."),
    solver_defaults: str | None = typer.Option(
        None,
        "--solver-defaults",
        help='The model\'s recommended solver settings as JSON, e.g. \'{"one_step": {"samples": 4}}\', with '
        'per-family ones under "families", e.g. \'{"families": {"superres": {"one_step": {"samples": 2}}}}\'.',
    ),
    generation_defaults: str | None = typer.Option(
        None,
        "--generation-defaults",
        help='The model\'s recommended guidance for generate as JSON, e.g. \'{"cfg_scale": 2, "why": "lowest FD"}\'.',
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace parts of an existing model folder."),
) -> None:
    """Assemble a model folder (fp16 safetensors + config.json + card.md) usable with --model."""
    from pagoda_inverse.train.export import export_model
    from pagoda_inverse.utils.errors import UserError

    if card is not None and not card.is_file():
        raise UserError(f"{card}: no such model card; pass a markdown file")
    text = card.read_text() if card else ""

    def parse(text: str | None, option: str):
        import json

        try:
            return None if text is None else json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"{option}: not valid JSON ({err})") from None

    defaults = parse(solver_defaults, "--solver-defaults")
    generation = parse(generation_defaults, "--generation-defaults")
    parts = {
        "teacher": teacher,
        "decoder": decoder,
        "encoder": encoder,
        "guidance": guidance,
        "classifier": classifier,
        "colour": colour,
    }
    print(export_model(out, **parts, posteriors=posterior, card=text, solver_defaults=defaults,
                       generation_defaults=generation, overwrite=overwrite))  # fmt: skip
