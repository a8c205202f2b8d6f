"""Put two ``pagoda-inv bench`` runs of the same tasks and solvers on two devices side by side.

Prints a markdown table: per task and solver, PSNR and SSIM on each device, seconds per image on each, and the
speed-up of the second over the first. Usage (the GPU figures of docs/examples/custom-dataset.md)::

    pagoda-inv bench --task superres_x4,inpaint_box --limit 64 --device cpu --out runs/bench-cpu-64 ...
    python benchmarks/device_bench.py runs/bench-cpu-64/results.json runs/gpu-check/bench-cuda.json \
        --labels "CPU" "H200"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def scores(path: Path) -> dict[tuple[str, str], dict]:
    """``{(task, solver): scores}`` of a bench ``results.json``, the skipped solvers left out."""
    results = json.loads(path.read_text())["results"]
    return {(r["task"]["name"], solver): s for r in results for solver, s in r["scores"].items() if "skipped" not in s}


def side_by_side(first: dict, second: dict, labels: tuple[str, str]) -> list[str]:
    """Markdown rows of the (task, solver) pairs both runs scored, in the first run's order."""
    a, b = labels
    lines = [
        f"| task | solver | NFE | PSNR {a} | PSNR {b} | SSIM {a} | SSIM {b} | s/img {a} | s/img {b} | speed-up |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (task, solver), x in first.items():
        y = second.get((task, solver))
        if y is None:
            continue
        speedup = x["seconds_per_image"] / y["seconds_per_image"]
        lines.append(
            f"| {task} | {solver} | {x['nfe']} | {x['psnr']:.2f} | {y['psnr']:.2f} | {x['ssim']:.4f} | "
            f"{y['ssim']:.4f} | {x['seconds_per_image']:.3g} | {y['seconds_per_image']:.3g} | {speedup:.1f}x |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path, help="results.json of the first device's run (e.g. the CPU)")
    parser.add_argument("second", type=Path, help="results.json of the second device's run (e.g. the GPU)")
    parser.add_argument("--labels", nargs=2, default=("CPU", "GPU"), help="column labels of the two runs")
    args = parser.parse_args()
    print("\n".join(side_by_side(scores(args.first), scores(args.second), tuple(args.labels))))


if __name__ == "__main__":
    main()
