"""``pagoda-inv encode``: PF-ODE encoding of a dataset split into a resumable latent cache."""

from __future__ import annotations

from pathlib import Path

import typer

from pagoda_inverse.cli.options import DataRootOpt, PresetOpt, QuietOpt

EPILOG = """Examples:

  pagoda-inv encode --teacher runs/00000-teacher-smoke/teacher --preset smoke --out runs/latents-smoke

  pagoda-inv encode --teacher runs/00000-teacher-fmnist/teacher --out runs/latents-train

  pagoda-inv encode --teacher runs/00000-teacher-fmnist/teacher --split test --out runs/latents-test

  pagoda-inv encode --teacher converted/imagenet64/teacher --dataset ~/imagenet/train --resolution 512 \
      --out runs/latents-imagenet64
"""


def encode(
    teacher: Path = typer.Option(
        ..., "--teacher", help="Teacher checkpoint folder (from 'train teacher' or 'pagoda-inv convert')."
    ),
    out: Path = typer.Option(..., "--out", help="Cache folder; re-running the same command resumes it."),
    preset: PresetOpt = "fmnist",
    split: str | None = typer.Option(None, help="Dataset split: train or test."),
    num_steps: int | None = typer.Option(None, min=2, help="Heun grid points (2*(N-1) teacher evaluations)."),
    limit: int | None = typer.Option(None, min=1, help="Encode only the first N images."),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        help="Imported (converted) teachers only: fmnist, photo or a folder of images (the teacher's channels; "
        "labels, the teacher's class indices, from the folder's labels.csv).",
    ),
    resolution: int | None = typer.Option(
        None,
        "--resolution",
        min=1,
        help="Imported teachers only: full image resolution, a multiple of the teacher's (the decoder grows to it) "
        "(default: the teacher's).",
    ),
    data_root: DataRootOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Encode images into PF-ODE latents with the frozen teacher (PaGoDA's encoder), cached on disk."""
    import time

    from pagoda_inverse.cli.display import console, emit, progress_callback
    from pagoda_inverse.core.checkpoint import load_config
    from pagoda_inverse.core.parts import image_geometry
    from pagoda_inverse.train.config import resolve
    from pagoda_inverse.train.encode import encode_dataset, imported_teacher_data

    cfg = resolve("encode", preset, split=split, num_steps=num_steps, limit=limit)
    data = None
    if dataset is not None:
        tcfg = load_config(teacher)
        if "data" in tcfg:
            raise typer.BadParameter(
                "this teacher encodes the data it was trained on; drop it", param_hint="--dataset"
            )
        data = imported_teacher_data(tcfg, dataset, data_root, resolution or image_geometry(tcfg)[1])
    elif resolution is not None or data_root is not None:
        raise typer.BadParameter("needs --dataset (imported teachers only)", param_hint="--resolution/--data-root")
    start = time.time()
    with progress_callback("encode", None, quiet) as cb:
        encode_dataset(teacher, out, cfg, data=data, callback=cb)
    console.print(f"encoded split {cfg.split!r} in {time.time() - start:.1f} s")
    emit(out)
