"""``pagoda-inv train {teacher,decoder,grow,encoder,guidance,classifier,colour,posterior}``: the training stages, each in a
numbered run folder."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import typer

from pagoda_inverse.cli.options import (
    BatchSizeOpt,
    DataRootOpt,
    DatasetOpt,
    DryRunOpt,
    PresetOpt,
    QuietOpt,
    ResumeOpt,
    RunsOpt,
    StepsOpt,
)

app = typer.Typer(
    help="Train the PaGoDA stages (teacher, decoder, grow, encoder, guidance), the evaluation classifier, the "
    "colour network and the posterior encoders.",
    no_args_is_help=True,
)

TEACHER_EPILOG = """Examples:

  pagoda-inv train teacher --preset smoke

  pagoda-inv train teacher --preset fmnist --runs runs

  pagoda-inv train teacher --resume runs/00003-teacher-fmnist
"""


def _start_run(kind: str, preset: str, runs: Path, resume: Path | None, cfg) -> Path:
    """A new numbered run folder with the resolved config, or the checked ``--resume`` folder.

    Under ``torchrun`` the batch size must split evenly over the ranks (checked before anything is written);
    rank 0 creates the folder and the other ranks join it.
    """
    from pagoda_inverse.train.config import to_dict
    from pagoda_inverse.train.distributed import Distributed, init_distributed
    from pagoda_inverse.train.state import check_resume_config, new_run_dir, write_config

    Distributed.from_env().check_batch(cfg.batch_size)  # before joining the job: every rank fails fast
    dist = init_distributed()
    if resume is not None:
        check_resume_config(resume, kind, to_dict(cfg))
        return resume
    number = -1
    if dist.is_main:
        run_dir = new_run_dir(runs, f"{kind}-{preset}")
        write_config(run_dir, kind, to_dict(cfg))
        number = int(run_dir.name[:5])
    return Path(runs) / f"{dist.share(number):05d}-{kind}-{preset}"


def _resumed_config(kind: str, preset: str, resume: Path | None, **overrides):
    """The config to run: the saved one when resuming without options, else the preset with overrides."""
    from pagoda_inverse.train.config import from_dict, resolve
    from pagoda_inverse.train.state import read_run_config

    if resume is not None and all(v is None for v in overrides.values()):
        return from_dict(kind, read_run_config(resume, kind))
    return resolve(kind, preset, **overrides)


def _run_stage(
    kind: str,
    preset: str,
    runs: Path,
    resume: Path | None,
    quiet: bool,
    train,
    inputs=(),
    dry_run: bool = False,
    **overrides,
):
    """Resolve the config (``overrides``: the command's options), start or resume the run folder, run
    ``train(cfg, run_dir, *inputs, callback=...)`` under a progress bar and print what it returns.

    ``dry_run``: build the stage at full size, run two steps at batch 2 on the CPU in a temporary folder, print what
    it measured and keep nothing (:func:`pagoda_inverse.train.dry_run.dry_run`)."""
    from pagoda_inverse.cli.display import console, emit, progress_callback

    cfg = _resumed_config(kind, preset, resume, **overrides)
    if dry_run:
        from pagoda_inverse.train.dry_run import dry_run as run_dry

        if resume is not None:
            raise typer.BadParameter("a dry run starts no run; drop --resume", param_hint="--dry-run")
        m = run_dry(train, cfg, inputs)
        console.print(
            f"dry run {kind} ({preset}): {m['kind']} of {m['parameters']:,} parameters at {m['resolution']}px, "
            f"2 steps at batch 2 on the CPU in {m['seconds']:.1f} s, peak memory {m['peak_rss_mib']:.0f} MiB; "
            f"nothing written"
        )
        return
    run_dir = _start_run(kind, preset, runs, resume, cfg)
    console.print(f"run folder: {run_dir}")
    with progress_callback(kind, cfg.steps, quiet) as cb:
        out = train(cfg, run_dir, *inputs, callback=cb)
    emit(out)


@app.command("teacher", epilog=TEACHER_EPILOG)
def teacher(
    preset: PresetOpt = "fmnist",
    runs: RunsOpt = Path("runs"),
    resume: ResumeOpt = None,
    data_root: DataRootOpt = None,
    dataset: DatasetOpt = None,
    steps: StepsOpt = None,
    batch_size: BatchSizeOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train the low-resolution EDM teacher (stage 1) on area-downsampled images."""
    from pagoda_inverse.train.teacher import train_teacher

    _run_stage(
        "teacher",
        preset,
        runs,
        resume,
        quiet,
        train_teacher,
        root=data_root,
        dataset=dataset,
        steps=steps,
        batch_size=batch_size,
    )


DECODER_EPILOG = """Examples:

  pagoda-inv train decoder --teacher runs/00000-teacher-smoke/teacher --latents runs/00001-encode-smoke --preset smoke

  pagoda-inv train decoder --teacher runs/00003-teacher-fmnist/teacher --latents runs/00004-encode-fmnist
"""


@app.command("decoder", epilog=DECODER_EPILOG)
def decoder(
    teacher: Path = typer.Option(..., "--teacher", help="Teacher checkpoint folder (from 'train teacher')."),
    latents: Path = typer.Option(..., "--latents", help="Latent cache folder (from 'pagoda-inv encode')."),
    preset: PresetOpt = "fmnist",
    runs: RunsOpt = Path("runs"),
    resume: ResumeOpt = None,
    steps: StepsOpt = None,
    batch_size: BatchSizeOpt = None,
    quiet: QuietOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Train the one-step decoder G at the teacher's resolution (stage 2): reconstruction + adversarial."""
    from pagoda_inverse.train.decoder import train_decoder

    _run_stage("decoder", preset, runs, resume, quiet, train_decoder, (teacher, latents), dry_run, steps=steps,
               batch_size=batch_size)  # fmt: skip


GROW_EPILOG = """Examples:

  pagoda-inv train grow --decoder runs/00001-decoder-smoke/decoder --teacher runs/00000-teacher-smoke/teacher \\
      --latents runs/latents-smoke --preset smoke

  pagoda-inv train grow --decoder runs/00002-decoder-fmnist/decoder --teacher runs/00000-teacher-fmnist/teacher \\
      --latents runs/latents-train
"""


@app.command("grow", epilog=GROW_EPILOG)
def grow(
    decoder: Path = typer.Option(
        ..., "--decoder", help="Decoder checkpoint to grow (from 'train decoder' or 'grow')."
    ),
    teacher: Path = typer.Option(..., "--teacher", help="The teacher checkpoint the latents were encoded with."),
    latents: Path = typer.Option(..., "--latents", help="Latent cache folder (from 'pagoda-inv encode')."),
    width: int | None = typer.Option(None, min=1, help="Channels of the new stage (default: keep the last width)."),
    preset: PresetOpt = "fmnist",
    runs: RunsOpt = Path("runs"),
    resume: ResumeOpt = None,
    steps: StepsOpt = None,
    batch_size: BatchSizeOpt = None,
    quiet: QuietOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Grow G by one 2x stage (progressive growing): copy weights, freeze the trunk, train at the new resolution."""
    from pagoda_inverse.train.grow import grow_decoder

    _run_stage(
        "grow",
        preset,
        runs,
        resume,
        quiet,
        partial(grow_decoder, width=width),
        (decoder, teacher, latents),
        dry_run,
        steps=steps,
        batch_size=batch_size,
    )


@app.command("encoder")
def encoder(
    teacher: Path = typer.Option(..., "--teacher", help="The teacher checkpoint the latents were encoded with."),
    latents: Path = typer.Option(..., "--latents", help="Latent cache folder (from 'pagoda-inv encode')."),
    preset: PresetOpt = "fmnist",
    runs: RunsOpt = Path("runs"),
    resume: ResumeOpt = None,
    steps: StepsOpt = None,
    batch_size: BatchSizeOpt = None,
    quiet: QuietOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Train the learned one-step encoder E(x) ~ PF-ODE latent on cached pairs (the solvers' fast path).

    Example: pagoda-inv train encoder --teacher runs/00000-teacher-fmnist/teacher --latents runs/latents-train
    """
    from pagoda_inverse.train.learned_encoder import train_encoder

    _run_stage("encoder", preset, runs, resume, quiet, train_encoder, (teacher, latents), dry_run, steps=steps,
               batch_size=batch_size)  # fmt: skip


@app.command("guidance")
def guidance(
    teacher: Path = typer.Option(..., "--teacher", help="The teacher checkpoint whose CFG sampler the map learns."),
    preset: PresetOpt = "fmnist",
    runs: RunsOpt = Path("runs"),
    resume: ResumeOpt = None,
    steps: StepsOpt = None,
    batch_size: BatchSizeOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train the guidance map M(z, c, w): one-step classifier-free guidance for G (pairs from the teacher's CFG
    sampler and encoder, then a regression).

    Example: pagoda-inv train guidance --teacher runs/00000-teacher-fmnist/teacher
    """
    from pagoda_inverse.train.guidance import train_guidance

    _run_stage("guidance", preset, runs, resume, quiet, train_guidance, (teacher,), steps=steps, batch_size=batch_size)


@app.command("classifier")
def classifier(
    preset: PresetOpt = "fmnist",
    runs: RunsOpt = Path("runs"),
    resume: ResumeOpt = None,
    data_root: DataRootOpt = None,
    steps: StepsOpt = None,
    batch_size: BatchSizeOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train the evaluation classifier (fmnist-clf): features for FD/KID-FMNIST, predictions for control accuracy.

    Example: pagoda-inv train classifier --preset fmnist --runs runs
    """
    from pagoda_inverse.train.classifier import train_classifier

    _run_stage(
        "classifier", preset, runs, resume, quiet, train_classifier, root=data_root, steps=steps, batch_size=batch_size
    )


@app.command("colour")
def colour(
    preset: PresetOpt = "photo",
    runs: RunsOpt = Path("runs"),
    resume: ResumeOpt = None,
    steps: StepsOpt = None,
    batch_size: BatchSizeOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train the luma-to-colour network of an RGB model (the 'colour_net' colorization solver): the posterior-mean
    colour of a gray image, by regression on the training crops.

    Example: pagoda-inv train colour --preset photo --runs runs
    """
    from pagoda_inverse.train.colour import train_colour

    _run_stage("colour", preset, runs, resume, quiet, train_colour, steps=steps, batch_size=batch_size)


POSTERIOR_EPILOG = """Examples:

  pagoda-inv train posterior --family inpaint --preset smoke

  pagoda-inv train posterior --family superres --preset fmnist --runs runs

  pagoda-inv train posterior --family colorize --preset photo --model photo
"""


@app.command("posterior", epilog=POSTERIOR_EPILOG)
def posterior(
    family: str = typer.Option(
        ..., "--family", help="Operator family: superres, inpaint, deblur, denoise or colorize (photo model)."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Model (embedded name or folder) whose generator q serves \\[default: the preset's]."
    ),
    preset: PresetOpt = "fmnist",
    runs: RunsOpt = Path("runs"),
    resume: ResumeOpt = None,
    steps: StepsOpt = None,
    batch_size: BatchSizeOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train an amortized posterior encoder q(y, A, eps) for one operator family into the model's frozen G (energy
    score on data-consistent samples): one-step posterior sampling with the 'one_step' solver.

    Export it into the model folder with: pagoda-inv export --out MODEL --posterior RUN/posterior-FAMILY --overwrite
    """
    from pagoda_inverse.ops.families import check_family
    from pagoda_inverse.train.posterior import train_posterior

    check_family(family)
    _run_stage(
        "posterior",
        preset,
        runs,
        resume,
        quiet,
        train_posterior,
        family=family,
        model=model,
        steps=steps,
        batch_size=batch_size,
    )
