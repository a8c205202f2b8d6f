"""``pagoda-inv convert``: a guided-diffusion, diffusers or EDM checkpoint -> a model folder whose teacher is that
network."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

EPILOG = """Examples:

  pagoda-inv convert --from guided-diffusion 64x64_diffusion.pt --out models/imagenet64

  pagoda-inv convert --from guided-diffusion ffhq_10m.pt --config ffhq256 --out models/ffhq256

  pagoda-inv convert --from diffusers ./ddpm-unet --schedule linear --out models/ddpm

  pagoda-inv convert --from edm edm-imagenet-64x64-cond-adm.pkl --out models/edm-imagenet64
"""


class Source(StrEnum):
    """Checkpoint formats ``convert`` reads."""

    guided_diffusion = "guided-diffusion"
    diffusers = "diffusers"
    edm = "edm"


def convert(
    source: Source = typer.Option(..., "--from", help="Format of SRC.", case_sensitive=False),
    src: Path = typer.Argument(..., help="The .pt file (guided-diffusion), model folder (diffusers) or .pkl (EDM)."),
    out: Path = typer.Option(..., "--out", help="Model folder to create (must not exist)."),
    config: str | None = typer.Option(
        None,
        "--config",
        help="guided-diffusion: a preset (imagenet64-cond, imagenet128-cond, imagenet256-cond, imagenet512-cond, "
        "openai256-uncond, ffhq256) or a JSON file of guided-diffusion's flags (default: the preset whose tensor "
        "shapes match).",
    ),
    schedule: str | None = typer.Option(
        None,
        "--schedule",
        help="Noise schedule of a VP epsilon-predictor: linear or cosine (default: the preset's, or a diffusers "
        "pipeline's scheduler config).",
    ),
) -> None:
    """Convert a guided-diffusion, diffusers or EDM checkpoint into a model folder (safetensors + config.json + card.md).

    .pt files are read with torch.load(weights_only=True), EDM pickles without running their code.
    """
    from pagoda_inverse.cli.display import emit

    if source is Source.guided_diffusion:
        from pagoda_inverse.interop.guided_diffusion import convert_guided_diffusion

        folder = convert_guided_diffusion(src, out, config=config, schedule=schedule)
    elif source is Source.diffusers:
        from pagoda_inverse.interop.diffusers_unet import convert_diffusers

        _only_guided_diffusion(config)
        folder = convert_diffusers(src, out, schedule=schedule)
    else:
        from pagoda_inverse.interop.edm_pickle import convert_edm

        _only_guided_diffusion(config)
        if schedule is not None:
            raise typer.BadParameter(
                "EDM networks carry their preconditioning; drop --schedule", param_hint="--schedule"
            )
        folder = convert_edm(src, out)
    emit(folder)


def _only_guided_diffusion(config: str | None) -> None:
    if config is not None:
        raise typer.BadParameter("only --from guided-diffusion takes a configuration", param_hint="--config")
