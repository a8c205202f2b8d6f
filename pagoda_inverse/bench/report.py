"""Write a bench run's outputs: results.json, results.csv, results.md, PNG grids and a quality-vs-time plot."""

from __future__ import annotations

import csv
import io
import os
import platform
from pathlib import Path

import torch

from pagoda_inverse.bench.engine import REAL_ROW
from pagoda_inverse.utils.atomic import atomic_path, write_json_atomic, write_text_atomic
from pagoda_inverse.utils.device import native_bf16
from pagoda_inverse.utils.images import save_grid

COLUMNS = [
    ("psnr", "PSNR (dB) ↑"),
    ("psnr_sample", "PSNR, 1 sample"),
    ("ssim", "SSIM ↑"),
    ("lpips", "LPIPS ↓"),
    ("consistency", "‖Ax−y‖/√m"),
    ("residual_ratio", "residual ratio, 1 sample (1 = truth)"),
    ("fd_sample", "FD-FMNIST, 1 sample ↓"),
    ("cfid", "cFD-FMNIST ↓"),
    ("diversity", "diversity"),
    ("seconds_per_image", "s/img"),
    ("nfe", "NFE"),
]
GENERATION_COLUMNS = [
    ("fd", "FD-FMNIST ↓"),
    ("kid", "KID-FMNIST ↓"),
    ("fid", "FID ↓"),
    ("accuracy", "control accuracy ↑"),
]
GENERATION_COLUMNS += [("samples_per_second", "samples/s ↑"), ("nfe", "NFE/sample")]
BEST = {"psnr": max, "ssim": max, "lpips": min, "fd": min, "kid": min, "fid": min, "accuracy": max, "fd_sample": min,
        "cfid": min}  # bold per task, among the solvers (not the real-images row)  # fmt: skip
#: Shown only when a run computed them (LPIPS, FID: from the user's weight files).
OPTIONAL_COLUMNS = ("psnr_sample", "lpips", "fid", "residual_ratio", "fd_sample", "cfid")


def is_generation(result: dict) -> bool:
    """True for the result of a generation task (samplers, FD/KID), False for an inverse-problem task."""
    return "samplers" in result["task"]


def tables(results: list[dict]) -> list[tuple[list[tuple[str, str]], list[dict]]]:
    """``(columns, rows)`` of one table per kind present: inverse-problem tasks first, then generation tasks."""
    out = []
    for columns, kind in ((COLUMNS, False), (GENERATION_COLUMNS, True)):
        group = [r for r in results if is_generation(r) == kind]
        if group:
            rows = summary_rows(group)
            shown = [c for c in columns if c[0] not in OPTIONAL_COLUMNS or any(c[0] in row for row in rows)]
            out.append((shown, rows))
    return out


def machine_description(device: str | torch.device = "cpu") -> str:
    """Processor (model, cores, and whether it computes bfloat16 natively: ``precision="auto"`` and so every timing
    depend on it), where the solvers ran and the torch version, for the report header."""
    device = torch.device(device)
    where = f"on {torch.cuda.get_device_name(device)} ({device})" if device.type == "cuda" else "on the CPU"
    cpu = f"{cpu_model()} ({platform.machine()}, {os.cpu_count()} cores, {'' if native_bf16('cpu') else 'no '}native bf16)"
    return f"{cpu}, solvers {where}, torch {torch.__version__}"


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``; else what :mod:`platform` knows)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def summary_rows(results: list[dict]) -> list[dict]:
    """One flat row per (task, solver), skipped solvers included with their reason."""
    return [{"task": r["task"]["name"], "solver": solver, **s} for r in results for solver, s in r["scores"].items()]


def markdown_table(rows: list[dict], columns: list[tuple[str, str]] = COLUMNS) -> str:
    """Rows as a markdown table, the best value of each quality metric per task in bold; solvers skipped as not
    applicable to a task are listed under the table, one line each, rather than as empty rows."""
    best: dict[tuple[str, str], float] = {}
    for row in rows:
        if row["solver"] == REAL_ROW:
            continue
        for key, pick in BEST.items():
            if isinstance(row.get(key), float):
                best[row["task"], key] = pick(best.get((row["task"], key), row[key]), row[key])
    head = "| task | solver | " + " | ".join(label for _, label in columns) + " |"
    lines = [head, "|" + " --- |" * (len(columns) + 2)]
    skipped = [f"- {row['task']} / {row['solver']}: {row['skipped']}" for row in rows if "skipped" in row]
    for row in rows:
        if "skipped" in row:
            continue
        cells = []
        for key, _ in columns:
            v = row.get(key)
            text = "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
            cells.append(f"**{text}**" if key in BEST and v == best.get((row["task"], key)) else text)
        lines.append(f"| {row['task']} | {row['solver']} | " + " | ".join(cells) + " |")
    if skipped:
        lines += ["", "Skipped (not applicable):", "", *skipped]
    return "\n".join(lines)


def quality_time_plot(rows: list[dict], path: Path) -> None:
    """PSNR against seconds per image (log axis), one marker per (task, solver)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for task in sorted({r["task"] for r in rows}):
        pts = [r for r in rows if r["task"] == task and "psnr" in r]
        ax.plot([r["seconds_per_image"] for r in pts], [r["psnr"] for r in pts], "o", label=task)
        for r in pts:
            ax.annotate(
                r["solver"], (r["seconds_per_image"], r["psnr"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
    ax.set_xscale("log")
    ax.set_xlabel("wall time per image (s, log scale)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_report(out_dir: Path, results: list[dict], config: dict) -> list[Path]:
    """Write every output of a bench run into ``out_dir`` (which must exist); returns the written paths."""
    out_dir = Path(out_dir)
    rows = summary_rows(results)
    written = []
    payload = {"config": config, "results": [{k: v for k, v in r.items() if k != "examples"} for r in results]}
    write_json_atomic(out_dir / "results.json", payload)
    metric_keys = [k for k, _ in COLUMNS] + [k for k, _ in GENERATION_COLUMNS if k not in dict(COLUMNS)]
    keys = ["task", "solver"] + metric_keys + ["images", "skipped"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out_dir / "results.csv", buf.getvalue())
    write_json_atomic(out_dir / "config.json", config)
    total = sum(r["timing"]["total_seconds"] for r in results)
    md = [
        f"# Benchmark: {', '.join(r['task']['name'] for r in results)}",
        "",
        f"Machine: {machine_description(config.get('device', 'cpu'))}. Total wall time {total / 60:.1f} min. Command: `{config.get('command', '')}`",
        "",
    ]
    for columns, group_rows in tables(results):
        md += [markdown_table(group_rows, columns), ""]
    for r in results:
        ex = r["examples"]
        name = f"grid-{r['task']['name']}.png"
        # Columns: observation | each solver | truth; rows: the first images.
        grid = torch.stack([ex[k] for k in ex], dim=1).flatten(0, 1)
        save_grid(grid, out_dir / name, nrow=len(ex), scale=max(1, 64 // grid.shape[-1]))
        written.append(out_dir / name)
        t = r["timing"]
        md += [
            f"## {r['task']['name']}",
            "",
            r["task"]["description"] + (f" CFG scale {r['task']['cfg_scale']:g}." if "cfg_scale" in r["task"] else ""),
            "",
            f"Columns: {' | '.join(ex)}.",
            "",
            f"![{name}]({name})",
            "",
            f"{r['images']} images; total {t['total_seconds']:.1f} s, engine overhead {100 * t['engine_overhead']:.1f}%, "
            f"peak memory {t['peak_memory_mb']:.0f} MB.",
            "",
        ]
    if any("psnr" in row for row in rows):
        quality_time_plot(rows, out_dir / "quality_vs_time.png")
        md += ["![quality vs time](quality_vs_time.png)", ""]
        written.append(out_dir / "quality_vs_time.png")
    write_text_atomic(out_dir / "results.md", "\n".join(md))
    return [out_dir / n for n in ("results.json", "results.csv", "results.md", "config.json")] + written
