"""``pagoda-inv bench``: run task suites and write results.json/csv/md, grids and a quality-vs-time plot."""

from __future__ import annotations

from pathlib import Path

import typer

from pagoda_inverse.cli.options import DeviceOpt

EPILOG = """Examples:

  pagoda-inv bench --task superres_x4 --limit 32

  pagoda-inv bench --task inpaint --solvers pinv,one_step --out runs/bench-inpaint

  pagoda-inv bench --task denoise --limit 16 --json

  pagoda-inv bench --task inpaint_box --solvers dps,ddrm --prior converted/fmnist32 --limit 2
"""


def bench(
    task: str = typer.Option(
        ..., "--task", "-t", help="Task name, family (e.g. inpaint), all, a .toml file, or a comma-separated list."
    ),
    solvers: str | None = typer.Option(
        None, "--solvers", help="Comma-separated subset of the task's solvers (generation tasks: samplers)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N images."),
    seeds: str | None = typer.Option(None, "--seeds", help="Replace the task's seed range, e.g. 100-355."),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder \\[default: runs/bench-TASK].", rich_help_panel="Output"
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Write into an existing output folder.", rich_help_panel="Output"
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print the summary as JSON on stdout.", rich_help_panel="Output"
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Replace the task's model (name or folder)."),
    prior: str | None = typer.Option(
        None,
        "--prior",
        help="The peer solvers' prior (dps, ddrm, diffpir, pigdm): a model name or folder with a teacher at the "
        "task's resolution, e.g. one from 'pagoda-inv convert' (default: the task file's, else fmnist-fullres).",
    ),
    cfg_scale: float | None = typer.Option(
        None, "--cfg-scale", min=0.0, help="Replace a generation task's classifier-free guidance scale (1: no CFG)."
    ),
    lpips_weights: Path | None = typer.Option(
        None, "--lpips-weights", help="torchvision AlexNet weights (.pth/.safetensors): adds LPIPS to inverse tasks."
    ),
    inception_weights: Path | None = typer.Option(
        None, "--inception-weights", help="torchvision Inception-v3 weights: adds FID to generation tasks."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table."),
    device: DeviceOpt = None,
) -> None:
    """Benchmark solvers on task suites (PSNR, SSIM, consistency, diversity, time, NFE, memory) and generators on
    generation tasks (FD/KID-FMNIST, control accuracy, samples/s)."""
    from pagoda_inverse.bench.tasks import parse_seeds, select_tasks
    from pagoda_inverse.train.distributed import Distributed, init_distributed
    from pagoda_inverse.utils.device import resolve_device

    specs = select_tasks(task)
    if cfg_scale is not None:
        from dataclasses import replace

        from pagoda_inverse.bench.tasks import GenerationSpec

        if not any(isinstance(s, GenerationSpec) for s in specs):
            raise typer.BadParameter(f"applies to generation tasks only; {task!r} has none", param_hint="--cfg-scale")
        specs = [replace(s, cfg_scale=cfg_scale) if isinstance(s, GenerationSpec) else s for s in specs]
    out = out or Path("runs") / f"bench-{Path(task).stem.replace(',', '+')}"
    if out.exists() and not overwrite:  # checked on every rank before rank 0 writes anything
        raise typer.BadParameter(f"{out} exists; pass --overwrite or another --out", param_hint="--out")
    from pagoda_inverse.utils.atomic import check_output_folder

    check_output_folder(out, "--out")  # created (with its parents) after the run; a file in the way is refused now
    try:
        seed_list = parse_seeds(seeds) if seeds else None
    except ValueError as err:
        raise typer.BadParameter(f"must be {err}", param_hint="--seeds") from None
    # LPIPS / FID only from the user's weight files (never downloaded); loaded before any task runs.
    lpips = inception = None
    if lpips_weights is not None:
        from pagoda_inverse.bench.backbones import LPIPSMetric

        lpips = LPIPSMetric(lpips_weights)
    if inception_weights is not None:
        from pagoda_inverse.bench.backbones import InceptionFeatures

        inception = InceptionFeatures(inception_weights)
    names = [s.strip() for s in solvers.split(",")] if solvers else None
    if prior is not None:  # a bad prior is one error line now, not a skipped row per solver later
        from pagoda_inverse.solvers.peers import load_prior

        load_prior(prior)
    import json

    from rich.table import Table
    from rich.text import Text

    from pagoda_inverse.bench.engine import merge_shards, run_task
    from pagoda_inverse.bench.generation import run_generation
    from pagoda_inverse.bench.report import summary_rows, tables, write_report
    from pagoda_inverse.bench.tasks import GenerationSpec
    from pagoda_inverse.cli.display import console, progress_callback

    # Under torchrun each rank scores its share of the images; rank 0 merges and writes (generation tasks, whose
    # FD/KID need every sample's features at once, run on rank 0 alone).
    dist = Distributed.from_env()
    if dist.active:
        init_distributed()
    # Each torchrun rank on its own GPU (or the CPU); --device chooses for a single process.
    where = dist.device if dist.active or device is None else resolve_device(device)
    results = []
    for spec in specs:
        with progress_callback(spec.name, None, quiet) as cb:
            if isinstance(spec, GenerationSpec):
                if dist.is_main:
                    results.append(run_generation(spec, samplers=names, model=model, limit=limit, seeds=seed_list,
                                                  inception=inception, device=where, callback=cb))  # fmt: skip
                continue
            part = run_task(spec, solvers=names, model=model, limit=limit, seeds=seed_list, callback=cb,
                            shard=(dist.rank, dist.world_size), lpips=lpips, device=where, prior=prior)  # fmt: skip
            parts = dist.gather_json({k: v for k, v in part.items() if k != "examples"})
            results.append(merge_shards([part, *parts[1:]]))
    if not dist.is_main:
        return
    out.mkdir(parents=True, exist_ok=True)
    import sys

    config = {
        "command": "pagoda-inv " + " ".join(sys.argv[1:]),
        "task": task,
        "solvers": names,
        "model": model,
        "prior": prior,
        "cfg_scale": cfg_scale,
        "limit": limit,
        "seeds": seeds,
        "device": str(where),
        "lpips_weights": str(lpips_weights) if lpips_weights else None,
        "inception_weights": str(inception_weights) if inception_weights else None,
        "tasks": [s.to_dict() for s in specs],
    }
    write_report(out, results, config)
    rows = summary_rows(results)
    if not quiet:
        for columns, group_rows in tables(results):
            header = ["task", "solver", *[label for _, label in columns]]
            cells = [
                [row["task"], row["solver"], f"skipped: {row['skipped']}"]
                if "skipped" in row
                else [row["task"], row["solver"], *[f"{row[k]:.4g}" if k in row else "" for k, _ in columns]]
                for row in group_rows
            ]
            if not console.is_terminal:  # piped or redirected: plain aligned text, never cut to a guessed width
                console.print(plain_table(header, cells), highlight=False, soft_wrap=True)
                continue
            table = Table(*header)
            for row, line in zip(group_rows, cells, strict=True):
                table.add_row(*line[:2], Text(line[2], style="yellow") if "skipped" in row else line[2], *line[3:])
            console.print(table)
        console.print(f"results in {out}")
    if json_out:
        print(json.dumps(rows, indent=2))


def plain_table(header: list[str], rows: list[list[str]]) -> str:
    """Rows of cells as plain text in aligned columns two spaces apart (numeric columns right-aligned), whatever
    their width: the bench table for a pipe or a file, where no terminal width is known.

    >>> print(plain_table(["task", "solver", "PSNR"], [["superres_x4", "one_step", "19.96"], ["denoise", "pinv", "8"]]))
    task         solver     PSNR
    superres_x4  one_step  19.96
    denoise      pinv          8
    """
    import re

    number = re.compile(r"^-?(inf|nan|\d+(\.\d*)?(e[-+]?\d+)?)$")
    columns = range(len(header))
    widths = [max(len(r[i]) for r in [header, *rows] if i < len(r)) for i in columns]
    right = [all(number.match(r[i]) for r in rows if i < len(r) and r[i]) for i in columns]
    lines = []
    for r in [header, *rows]:
        cells = [c.rjust(widths[i]) if right[i] else c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
