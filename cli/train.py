"""``pagoda-inv train {teacher,decoder,grow,encoder,guidance,classifier,colour,posterior}``: the training stages, each in a
numbered run folder."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Annotated

import typer

from pagoda_inverse.cli.options import (
    BatchSizeOpt,
    CropsOpt,
    DataRootOpt,
    DatasetOpt,
    DeviceOpt,
    DryRunOpt,
    EncodedTeacherOpt,
    LatentsOpt,
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


def _start_run(kind: str, preset: str, runs: Path, resume: Path | None, cfg, device: str | None = None) -> Path:
    """A new numbered run folder with the resolved config, or the checked ``--resume`` folder.

    Under ``torchrun`` the batch size must split evenly over the ranks (checked before anything is written);
    rank 0 creates the folder and the other ranks join it.
    """
    from pagoda_inverse.train.config import to_dict
    from pagoda_inverse.train.distributed import Distributed, init_distributed
    from pagoda_inverse.train.state import check_resume_config, new_run_dir, write_config

    Distributed.from_env(device).check_batch(cfg.loop.batch_size)  # before joining the job: every rank fails fast
    dist = init_distributed(device)
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
    device: str | None = None,
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
    run_dir = _start_run(kind, preset, runs, resume, cfg, device)
    console.print(f"run folder: {run_dir}")
    with progress_callback(kind, cfg.loop.steps, quiet) as cb:
        out = train(cfg, run_dir, *inputs, callback=cb, device=device)
    emit(out)


#: The data options a stage may take (``_stage(data=...)``) and the config field each one overrides.
_DATA_OPTIONS = {
    "data_root": (DataRootOpt, "root"),
    "dataset": (DatasetOpt, "dataset"),
    "crops": (CropsOpt, "crops"),
}


def _stage(kind: str, *, preset: str = "fmnist", data: tuple[str, ...] = (), dry_run: bool = False, epilog=None):
    """Register ``fn(run, **own_options)`` as ``pagoda-inv train KIND`` with the options every stage shares.

    The command's options are ``fn``'s own, then ``--preset`` (default ``preset``), ``--runs``, ``--resume``, the data
    options named in ``data`` (``"data_root"``, ``"dataset"``, ``"crops"``), ``--steps``, ``--batch-size``, ``--quiet``,
    ``--device`` and, with ``dry_run``, ``--dry-run``. ``fn`` gets ``run(train, *inputs, **overrides)``: :func:`_run_stage` with those shared
    options bound (``--steps``, ``--batch-size`` and the data options are config overrides, as ``overrides`` are).
    """
    shared = [
        ("preset", PresetOpt, preset),
        ("runs", RunsOpt, Path("runs")),
        ("resume", ResumeOpt, None),
        *[(name, _DATA_OPTIONS[name][0], None) for name in data],
        ("steps", StepsOpt, None),
        ("batch_size", BatchSizeOpt, None),
        ("quiet", QuietOpt, False),
        ("device", DeviceOpt, None),
        *([("dry_run", DryRunOpt, False)] if dry_run else []),
    ]

    def register(fn):
        own = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]  # the first is ``run``
        kw = inspect.Parameter.KEYWORD_ONLY
        params = [p.replace(kind=kw) for p in own]
        params += [inspect.Parameter(name, kw, default=default, annotation=hint) for name, hint, default in shared]

        @functools.wraps(fn)
        def command(**options) -> None:
            opts = {name: options.pop(name) for name, _, _ in shared}
            overrides = {_DATA_OPTIONS[name][1]: opts[name] for name in data}
            overrides |= {"steps": opts["steps"], "batch_size": opts["batch_size"]}

            def run(train, *inputs, **more):
                _run_stage(kind, opts["preset"], opts["runs"], opts["resume"], opts["quiet"], train, inputs,
                           opts.get("dry_run", False), opts["device"], **overrides, **more)  # fmt: skip

            fn(run, **options)

        command.__signature__ = inspect.Signature(params)  # what Typer reads the options from
        command.__annotations__ = {p.name: p.annotation for p in params}
        app.command(kind, epilog=epilog)(command)
        return command

    return register


@_stage("teacher", data=("data_root", "dataset", "crops"), epilog=TEACHER_EPILOG)
def teacher(run) -> None:
    """Train the low-resolution EDM teacher (stage 1) on area-downsampled images."""
    from pagoda_inverse.train.teacher import train_teacher

    run(train_teacher)


DECODER_EPILOG = """Examples:

  pagoda-inv train decoder --teacher runs/00000-teacher-smoke/teacher --latents runs/00001-encode-smoke --preset smoke

  pagoda-inv train decoder --teacher runs/00003-teacher-fmnist/teacher --latents runs/00004-encode-fmnist
"""


@_stage("decoder", dry_run=True, epilog=DECODER_EPILOG)
def decoder(
    run,
    teacher: Annotated[Path, typer.Option("--teacher", help="Teacher checkpoint folder (from 'train teacher').")],
    latents: LatentsOpt,
) -> None:
    """Train the one-step decoder G at the teacher's resolution (stage 2): reconstruction + adversarial."""
    from pagoda_inverse.train.decoder import train_decoder

    run(train_decoder, teacher, latents)


GROW_EPILOG = """Examples:

  pagoda-inv train grow --decoder runs/00001-decoder-smoke/decoder --teacher runs/00000-teacher-smoke/teacher \\
      --latents runs/latents-smoke --preset smoke

  pagoda-inv train grow --decoder runs/00002-decoder-fmnist/decoder --teacher runs/00000-teacher-fmnist/teacher \\
      --latents runs/latents-train
"""


@_stage("grow", dry_run=True, epilog=GROW_EPILOG)
def grow(
    run,
    decoder: Annotated[
        Path, typer.Option("--decoder", help="Decoder checkpoint to grow (from 'train decoder' or 'grow').")
    ],
    teacher: EncodedTeacherOpt,
    latents: LatentsOpt,
    width: Annotated[
        int | None, typer.Option(min=1, help="Channels of the new stage (default: keep the last width).")
    ] = None,
) -> None:
    """Grow G by one 2x stage (progressive growing): copy weights, freeze the trunk, train at the new resolution."""
    from pagoda_inverse.train.grow import grow_decoder

    run(functools.partial(grow_decoder, width=width), decoder, teacher, latents)


@_stage("encoder", dry_run=True)
def encoder(run, teacher: EncodedTeacherOpt, latents: LatentsOpt) -> None:
    """Train the learned one-step encoder E(x) ~ PF-ODE latent on cached pairs (the solvers' fast path).

    Example: pagoda-inv train encoder --teacher runs/00000-teacher-fmnist/teacher --latents runs/latents-train
    """
    from pagoda_inverse.train.learned_encoder import train_encoder

    run(train_encoder, teacher, latents)


@_stage("guidance")
def guidance(
    run,
    teacher: Annotated[
        Path, typer.Option("--teacher", help="The teacher checkpoint whose CFG sampler the map learns.")
    ],
) -> None:
    """Train the guidance map M(z, c, w): one-step classifier-free guidance for G (pairs from the teacher's CFG
    sampler and encoder, then a regression).

    Example: pagoda-inv train guidance --teacher runs/00000-teacher-fmnist/teacher
    """
    from pagoda_inverse.train.guidance import train_guidance

    run(train_guidance, teacher)


@_stage("classifier", data=("data_root",))
def classifier(run) -> None:
    """Train the evaluation classifier (fmnist-clf): features for FD/KID-FMNIST, predictions for control accuracy.

    Example: pagoda-inv train classifier --preset fmnist --runs runs
    """
    from pagoda_inverse.train.classifier import train_classifier

    run(train_classifier)


@_stage("colour", preset="photo")
def colour(run) -> None:
    """Train the luma-to-colour network of an RGB model (the 'colour_net' colorization solver): the posterior-mean
    colour of a gray image, by regression on the training crops.

    Example: pagoda-inv train colour --preset photo --runs runs
    """
    from pagoda_inverse.train.colour import train_colour

    run(train_colour)


POSTERIOR_EPILOG = """Examples:

  pagoda-inv train posterior --family inpaint --preset smoke

  pagoda-inv train posterior --family superres --preset fmnist --runs runs

  pagoda-inv train posterior --family colorize --preset photo --model photo
"""


@_stage("posterior", epilog=POSTERIOR_EPILOG)
def posterior(
    run,
    family: Annotated[
        str,
        typer.Option(
            "--family", help="Operator family: superres, inpaint, deblur, denoise or colorize (photo model)."
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="Model (embedded name or folder) whose generator q serves \\[default: the preset's]."
        ),
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(
            "--init",
            help="Start from this posterior checkpoint of the same network (RUN/posterior-FAMILY or "
            "MODEL/posterior/FAMILY): fine-tuning.",
        ),
    ] = None,
    consistency: Annotated[
        str | None,
        typer.Option(
            "--consistency",
            help="learned: q predicts each image's data-consistency width and the step draws a posterior sample "
            "(perturbed observation); fixed: the MAP step with the preset's prior_std \\[default: the preset's].",
        ),
    ] = None,
    trainable: Annotated[
        str | None,
        typer.Option(
            "--trainable",
            help="all; heads: the per-sample heads only (the trunk frozen); or consistency: only the learned "
            "width's read-out (both need --init).",
        ),
    ] = None,
) -> None:
    """Train an amortized posterior encoder q(y, A, eps) for one operator family into the model's frozen G (energy
    score on data-consistent samples): one-step posterior sampling with the 'one_step' solver.

    Export it into the model folder with: pagoda-inv export --out MODEL --posterior RUN/posterior-FAMILY --overwrite
    """
    from pagoda_inverse.ops.families import check_family
    from pagoda_inverse.train.posterior import TRAINABLE, train_posterior
    from pagoda_inverse.utils.errors import UserError

    check_family(family)
    if init is not None and not (init / "config.json").is_file():
        raise UserError(f"--init {init}: no posterior checkpoint there (config.json); pass RUN/posterior-FAMILY")
    if consistency not in (None, "fixed", "learned"):
        raise UserError(f"--consistency {consistency!r}: use fixed or learned")
    if trainable not in (None, *TRAINABLE):
        raise UserError(f"--trainable {trainable!r}: use {', '.join(TRAINABLE)}")
    run(train_posterior, family=family, model=model, init=str(init) if init else None, consistency=consistency,
        trainable=trainable)  # fmt: skip
