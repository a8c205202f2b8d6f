"""Shared option types and parsers for the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PresetOpt = Annotated[
    str,
    typer.Option(
        "--preset",
        "-p",
        help="Named preset: fmnist (full recipe) or smoke (< 1 min); teacher also: fmnist-fullres (32x32 EDM); "
        "encode/decoder/encoder also: imagenet64, grow: imagenet64-128/256/512 (an imported ImageNet-64 teacher).",
    ),
]
RunsOpt = Annotated[Path, typer.Option("--runs", help="Folder for numbered run folders.", rich_help_panel="Output")]
ResumeOpt = Annotated[
    Path | None, typer.Option("--resume", help="Continue the run in this run folder from its last checkpoint.")
]
StepsOpt = Annotated[int | None, typer.Option(min=1, help="Override the number of training steps.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
BatchSizeOpt = Annotated[
    int | None,
    typer.Option("--batch-size", min=1, help="Override the global batch size (split evenly over torchrun ranks)."),
]
DataRootOpt = Annotated[
    str | None,
    typer.Option("--data-root", help="Fashion-MNIST folder (default: Debian's; PAGODA_FMNIST_DIR also works)."),
]
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset", help="fmnist (default) or a folder of images (read as grayscale, resized to the preset's size)."
    ),
]
CropsOpt = Annotated[
    int | None,
    typer.Option(
        "--crops",
        min=0,
        help="With --dataset FOLDER: train on this many random multi-scale crops of its images instead of each image "
        "whole, so the model solves images of any size in tiles (as photo does).",
    ),
]
PreviewOpt = Annotated[
    int,
    typer.Option(
        "--preview-scale",
        min=1,
        help="Also write each picture enlarged N times for viewing, as NAME-xN.png (the outputs themselves always "
        "hold the images at their true size).",
        rich_help_panel="Output",
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="auto (a GPU when torch sees one), cpu, cuda or cuda:N \\[default: $PAGODA_DEVICE, else auto].",
        rich_help_panel="Model",
    ),
]
ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="Embedded model name or a checkpoint folder.", rich_help_panel="Model")
]


def parse_int_list(text: str) -> list[int]:
    """Parse non-negative integers like ``"0-3,10"`` into ``[0, 1, 2, 3, 10]``."""
    out: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a list of integers like 0-63 or 0,5,9") from None
    if not out:
        raise typer.BadParameter(f"{text!r} is empty; pass e.g. 0-63")
    return out


DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Build the stage at full size from the real inputs, run 2 steps at batch 2 on the CPU, print the time and "
        "peak memory, keep nothing.",
    ),
]
LatentsOpt = Annotated[Path, typer.Option("--latents", help="Latent cache folder (from 'pagoda-inv encode').")]
EncodedTeacherOpt = Annotated[
    Path, typer.Option("--teacher", help="The teacher checkpoint the latents were encoded with.")
]
