"""``pagoda-inv encode``: PF-ODE encoding of a dataset split into a resumable latent cache."""

from __future__ import annotations

from pathlib import Path

import typer

from pagoda_inverse.cli.options import PresetOpt, QuietOpt

EPILOG = """Examples:

  pagoda-inv encode --teacher runs/00000-teacher-smoke/teacher --preset smoke --out runs/latents-smoke

  pagoda-inv encode --teacher runs/00000-teacher-fmnist/teacher --out runs/latents-train

  pagoda-inv encode --teacher runs/00000-teacher-fmnist/teacher --split test --out runs/latents-test
"""


def encode(
    teacher: Path = typer.Option(..., "--teacher", help="Teacher checkpoint folder (from 'train teacher')."),
    out: Path = typer.Option(..., "--out", help="Cache folder; re-running the same command resumes it."),
    preset: PresetOpt = "fmnist",
    split: str | None = typer.Option(None, help="Dataset split: train or test."),
    num_steps: int | None = typer.Option(None, min=2, help="Heun grid points (2*(N-1) teacher evaluations)."),
    limit: int | None = typer.Option(None, min=1, help="Encode only the first N images."),
    quiet: QuietOpt = False,
) -> None:
    """Encode images into PF-ODE latents with the frozen teacher (PaGoDA's encoder), cached on disk."""
    import time

    from pagoda_inverse.cli.display import console, emit, progress_callback
    from pagoda_inverse.train.config import resolve
    from pagoda_inverse.train.encode import encode_dataset

    cfg = resolve("encode", preset, split=split, num_steps=num_steps, limit=limit)
    start = time.time()
    with progress_callback("encode", None, quiet) as cb:
        encode_dataset(teacher, out, cfg, callback=cb)
    console.print(f"encoded split {cfg.split!r} in {time.time() - start:.1f} s")
    emit(out)
