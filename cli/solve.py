"""``pagoda-inv solve {superres,inpaint,deblur,colorize,denoise}``: solve one inverse problem on an image file."""

from __future__ import annotations

import functools
import inspect
import itertools
from pathlib import Path
from typing import Annotated

import typer

from pagoda_inverse.cli.options import DeviceOpt, PreviewOpt
from pagoda_inverse.solvers import SOLVERS

app = typer.Typer(help="Solve an inverse problem on an image with a PaGoDA model.", no_args_is_help=True)

InputOpt = Annotated[Path, typer.Option("--input", "-i", help="Observation image (or clean image with --simulate).")]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Output image; its suffix names the format of every file written (.png, .jpg/.jpeg, .webp) "
        "\\[default: INPUT-TASK.png].",
        rich_help_panel="Output",
    ),
]


_SAMPLER_LEAD = (
    "one_step (the default where the model has a posterior encoder for this task, as fmnist does), "
    "encode_perturb (the default otherwise: samples around the encoding of the observation)"
)


def _solver_option(family: str, default_first=("one_step", "encode_perturb"), lead: str = _SAMPLER_LEAD):
    """The ``--solver`` option of a task: the registry's solvers that apply to its operator family."""
    names = [n for n, entry in SOLVERS.items() if entry.applies(family) and n not in default_first]
    return Annotated[
        str | None,
        typer.Option("--solver", help=f"{lead}, {', '.join(names)}.", rich_help_panel="Solver"),
    ]


SamplesOpt = Annotated[
    int | None,
    typer.Option(
        "--samples",
        "-k",
        min=1,
        help="Posterior samples (K > 1 also writes a grid and a std map) \\[default: the model's, else 1].",
        rich_help_panel="Solver",
    ),
]
SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed",
        help="Seed of the solver's noise, of the random mask or motion kernel, and of the noise --simulate adds.",
        rich_help_panel="Solver",
    ),
]
SigmaOpt = Annotated[
    float | None,
    typer.Option(
        "--sigma-y",
        min=0.0,
        help="Measurement noise std of the input in [-1, 1] units (with --simulate: the noise added); 0 takes its "
        "pixels as exact \\[default: the task suites' level, printed when used: 0.05; denoise 0.2; colorize 0].",
        show_default=False,
        rich_help_panel="Operator",
    ),
]
ClassOpt = Annotated[
    int | None, typer.Option("--class", min=0, help="Condition on a class index.", rich_help_panel="Solver")
]
PromptOpt = Annotated[
    str | None, typer.Option("--prompt", help="Condition on a text prompt.", rich_help_panel="Solver")
]
SimulateOpt = Annotated[
    bool,
    typer.Option(
        "--simulate",
        help="Treat --input as the clean image: degrade it first (the operator plus noise of std --sigma-y) and "
        "report PSNR.",
    ),
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.", rich_help_panel="Output")]
TileBatchOpt = Annotated[
    int | None,
    typer.Option(
        "--tile-batch",
        min=1,
        help="Tiles per solver call when the image is larger than the model (bounds the memory) \\[default: 64 on the "
        "CPU, 256 on a GPU].",
        show_default=False,
        rich_help_panel="Solver",
    ),
]
AutoModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Embedded model name or a checkpoint folder (default: photo for colour images and colorize, else fmnist).",
        rich_help_panel="Model",
    ),
]


def _run(
    task: str,
    operator: str,
    params: dict,
    *,
    input,
    output,
    solver,
    samples,
    seed,
    sigma_y,
    class_,
    prompt,
    model,
    tile_batch,
    simulate,
    overwrite,
    preview_scale,
    device,
):
    """Shared body of the task commands."""
    from pagoda_inverse.utils.atomic import check_output_path
    from pagoda_inverse.utils.images import image_format, make_grid, save_image

    output = output or input.with_name(f"{input.stem}-{task}.png")
    image_format(output)  # the suffix names the format (.png, .jpg, .webp); every output shares it
    grid = samples is not None and samples > 1  # the user asked for K > 1 samples: also a grid and a std map
    extra = [output.with_name(f"{output.stem}-{name}{output.suffix}") for name in ("samples", "std")] if grid else []
    if simulate:
        extra.append(output.with_name(f"{output.stem}-observed{output.suffix}"))
    previews = (
        [p.with_name(f"{p.stem}-x{preview_scale}{p.suffix}") for p in (output, *extra)] if preview_scale > 1 else []
    )
    for path in (output, *extra, *previews):
        if path.resolve() == input.resolve():
            raise typer.BadParameter(f"{path} is the input; inputs are never overwritten", param_hint="--output")
        check_output_path(path, "--output")  # missing folders are created; a file in the way is refused now
        if path.exists() and not overwrite:
            raise typer.BadParameter(f"{path} exists; pass --overwrite to replace it", param_hint="--output")

    from pagoda_inverse.cli.display import console, progress_callback
    from pagoda_inverse.solvers.image import SAMPLING_SOLVERS as SAMPLING
    from pagoda_inverse.solvers.image import solve_image
    from pagoda_inverse.utils.io import open_image

    with progress_callback("solving") as callback:  # a bar over the tiles of a tiled solve
        out = solve_image(input, operator, params, model=model, solver=solver,
                          samples=samples, seed=seed, sigma_y=sigma_y, class_=class_, prompt=prompt,
                          simulate=simulate, tile_batch=tile_batch, device=device, log=console.print,
                          callback=callback)  # fmt: skip
    result, y, solver = out.result, out.observation, out.solver
    with open_image(input) as header:  # read without error by solve_image
        if header.mode in ("RGBA", "LA", "PA") or "transparency" in header.info:
            console.print(f"note: {input} has an alpha channel; it is dropped (pixels keep their colour)")
    for message in out.notes:
        console.print(f"note: {message}")
    if out.tiled:
        tile, overlap = result.info["tile"], result.info["overlap"]
        console.print(
            f"{result.info['tiles']} tiles of {tile}x{tile}, overlap {overlap}"
            if tile
            else "one pass over the whole image"
        )
    # Every output at its true size; the enlarged previews (--preview-scale) are separate files.
    pictures = [(result.estimate[0], output)]
    if grid:
        std = result.std[0] / result.std.max().clamp(min=1e-8) * 2 - 1  # normalised to [-1, 1] for display
        pictures += [(make_grid(result.samples[:, 0].float()), extra[0]), (std, extra[1])]
    if simulate:  # the observation at its own size (an x4 super-resolution input is 4 times smaller): solvable again
        pictures.append((y[0], extra[-1]))
    for (picture, path), preview in itertools.zip_longest(pictures, previews):
        save_image(picture, path)
        if preview is not None:
            save_image(picture, preview, scale=preview_scale)
    if simulate:
        from pagoda_inverse.utils.metrics import psnr

        console.print(f"PSNR vs the clean input: {float(psnr(result.estimate, out.clean)):.2f} dB")
    k = result.samples.shape[0]
    what = f"the mean of {k} samples, " if k > 1 else "a single sample, " if solver in SAMPLING else ""
    console.print(
        f"{solver}: {what}{result.info['nfe']} network evaluations per image or tile, {result.info['seconds']:.2f} s"
    )
    for path in (output, *extra, *previews):
        print(path)


def _task(task: str, *, epilog: str, solver=None):
    """Register ``fn`` (the task's own operator options -> ``(operator, params)``) as ``pagoda-inv solve TASK``, with
    ``--input``, ``--output`` before its options and the shared ones after them (``solver``: the ``--solver``
    option's annotation; default: this task's applicable solvers, the PaGoDA samplers first)."""
    shared = [
        ("solver", solver or _solver_option(task), None),
        ("samples", SamplesOpt, None),
        ("seed", SeedOpt, 0),
        ("sigma_y", SigmaOpt, None),
        ("class_", ClassOpt, None),
        ("prompt", PromptOpt, None),
        ("model", AutoModelOpt, None),
        ("tile_batch", TileBatchOpt, None),
        ("simulate", SimulateOpt, False),
        ("overwrite", OverwriteOpt, False),
        ("preview_scale", PreviewOpt, 1),
        ("device", DeviceOpt, None),
    ]

    def register(fn):
        kw = inspect.Parameter.KEYWORD_ONLY
        own = [p.replace(kind=kw) for p in inspect.signature(fn, eval_str=True).parameters.values()]
        first = [inspect.Parameter("input", kw, annotation=InputOpt),
                 inspect.Parameter("output", kw, default=None, annotation=OutputOpt)]  # fmt: skip
        params = first + own + [inspect.Parameter(n, kw, default=d, annotation=hint) for n, hint, d in shared]

        @functools.wraps(fn)
        def command(**options) -> None:
            operator, operator_params = fn(**{p.name: options.pop(p.name) for p in own})
            _run(task, operator, operator_params, **options)

        command.__signature__ = inspect.Signature(params)  # what Typer reads the options from
        command.__annotations__ = {p.name: p.annotation for p in params}
        app.command(task, epilog=epilog)(command)
        return command

    return register


@_task(
    "superres", epilog="Example: pagoda-inv solve superres --input small.png --scale 4 --solver one_step --samples 8"
)
def superres(
    scale: int = typer.Option(4, "--scale", help="Up-sampling factor (2, 4 or 8).", rich_help_panel="Operator"),
) -> tuple[str, dict]:
    """Super-resolution: the input is the low-resolution image (area down-sampling by --scale)."""
    if scale not in (2, 4, 8):
        raise typer.BadParameter(f"{scale} is not supported; use 2, 4 or 8", param_hint="--scale")
    return "downsample_area", {"factor": scale}


@_task("inpaint", epilog="Example: pagoda-inv solve inpaint --input holes.png --mask mask.png --samples 8")
def inpaint(
    mask: Path | None = typer.Option(None, "--mask", help="Mask PNG (white = observed).", rich_help_panel="Operator"),
    box: bool = typer.Option(
        False, "--box", help="A centred box hole of half the image size.", rich_help_panel="Operator"
    ),
    drop_frac: float | None = typer.Option(
        None, "--drop-frac", min=0.0, max=1.0, help="Random pixels, this fraction REMOVED.", rich_help_panel="Operator"
    ),
) -> tuple[str, dict]:
    """Inpainting with a mask file, a box hole, or randomly dropped pixels (exactly one of them)."""
    if sum([mask is not None, box, drop_frac is not None]) != 1:
        raise typer.BadParameter(
            "give exactly one of --mask PATH, --box, --drop-frac F", param_hint="--mask/--box/--drop-frac"
        )
    if mask is not None:
        return "inpaint_mask", {"mask": str(mask)}
    return ("inpaint_mask", {}) if box else ("inpaint_random", {"drop": drop_frac})


@_task("deblur", epilog="Example: pagoda-inv solve deblur --input blurry.png --blur-sigma 1.0 --sigma-y 0.02")
def deblur(
    kernel: Path | None = typer.Option(
        None, "--kernel", help="Blur kernel (.npy or grayscale PNG).", rich_help_panel="Operator"
    ),
    blur_sigma: float | None = typer.Option(
        None, "--blur-sigma", min=0.0, help="Gaussian blur std in pixels.", rich_help_panel="Operator"
    ),
    motion: bool = typer.Option(
        False, "--motion", help="Random motion blur (seeded by --seed).", rich_help_panel="Operator"
    ),
) -> tuple[str, dict]:
    """Deblurring with a kernel file, a Gaussian blur or a random motion blur (exactly one of them)."""
    if sum([kernel is not None, blur_sigma is not None, motion]) != 1:
        raise typer.BadParameter("give exactly one of --kernel PATH, --blur-sigma S, --motion", param_hint="--kernel")
    if kernel is not None:
        return "blur_kernel", {"kernel": str(kernel)}
    if motion:
        return "motion_blur", {"size": 9}
    return "gaussian_blur", {"sigma": blur_sigma, "size": 2 * int(3 * blur_sigma + 0.5) + 1}


@_task("denoise", epilog="Example: pagoda-inv solve denoise --input noisy.png --sigma-y 0.2")
def denoise() -> tuple[str, dict]:
    """Denoising of Gaussian noise of std --sigma-y."""
    return "denoise", {}


_COLORIZE_LEAD = (
    "one_step (the default where the model has a posterior encoder for colorization, as photo does: the mean of K "
    "colourings, pulled toward the gray copy by the model's shrink; --samples K > 1 also writes them and a std map), "
    "colour_net (the model's colour network: the default of a model without that encoder), encode_perturb"
)


@_task("colorize", epilog="Example: pagoda-inv solve colorize --input gray.png --samples 4",
       solver=_solver_option("colorize", ("colour_net", "one_step", "encode_perturb"), _COLORIZE_LEAD))  # fmt: skip
def colorize() -> tuple[str, dict]:
    """Colorization of a grayscale image (needs an RGB model)."""
    return "colorize", {}
