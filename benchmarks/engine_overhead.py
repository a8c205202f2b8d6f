"""The bench engine's own overhead: a `pinv` run on 1,000 test images per inverse-problem task, in one process.

Overhead is everything but the solver calls: loading the model and the images, degrading them (operator and
noise, per-image seeds), scoring (PSNR, SSIM, consistency, diversity) and bookkeeping. Writes ``docs/overhead.md``.

    python benchmarks/engine_overhead.py --images 1000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pagoda_inverse.bench.engine import run_task
from pagoda_inverse.bench.report import machine_description
from pagoda_inverse.bench.tasks import load_task

TASKS = ("superres_x4", "inpaint_box", "inpaint_random", "deblur_gaussian", "deblur_motion", "denoise")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("docs/overhead.md"))
    args = parser.parse_args()
    t0 = time.perf_counter()
    import piq  # noqa: F401 - the SSIM metric's import (seconds), timed apart from the runs below

    piq_import = time.perf_counter() - t0
    rows = []
    for name in TASKS:
        t = run_task(load_task(name), solvers=["pinv"], seeds=tuple(range(args.images)))["timing"]
        engine = t["total_seconds"] - t["solver_seconds"]
        rows.append((name, t, engine))
        print(f"{name}: total {t['total_seconds']:.2f} s, pinv {t['solver_seconds']:.3f} s, overhead "
              f"{100 * t['engine_overhead']:.1f}%", flush=True)  # fmt: skip
    lines = [
        "# Bench engine overhead",
        "",
        f"`python benchmarks/engine_overhead.py --images {args.images}` on {machine_description()}: each task with "
        f"the `pinv` solver on {args.images} test images in one process. Overhead is everything but the solver calls "
        "(setup = loading the model and the images; metrics = PSNR, SSIM, consistency, diversity; the rest is "
        f"degrading the images and bookkeeping). Importing piq for SSIM took {piq_import:.2f} s before the runs.",
        "",
        "| task | total (s) | pinv (s) | setup (s) | metrics (s) | other (s) | overhead | engine ms/image |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, t, engine in rows:
        other = engine - t["setup_seconds"] - t["metric_seconds"]
        lines.append(
            f"| {name} | {t['total_seconds']:.2f} | {t['solver_seconds']:.3f} | {t['setup_seconds']:.2f} | "
            f"{t['metric_seconds']:.2f} | {other:.2f} | {100 * t['engine_overhead']:.1f}% | "
            f"{1000 * engine / args.images:.2f} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
