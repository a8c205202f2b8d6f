"""Classifier-free guidance sweep of generation: FD/KID-FMNIST and control accuracy against the CFG scale.

For each generation task (class labels; held-out caption phrasings) and each scale ``w``, the task's samplers
draw the same seeded samples (``pagoda_inverse.bench.generation.run_generation`` with the scale replaced) and
are scored in ``fmnist-clf`` features against ``--split`` (the test split by default; ``train`` to choose a scale).
Writes ``docs/generation/cfg-sweep.md`` and its plot:

    python benchmarks/cfg_sweep.py --images 2000 --scales 1 1.5 2 3 4
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from core import page_head

from pagoda_inverse.bench.generation import run_generation
from pagoda_inverse.bench.tasks import select_tasks


def plot_sweep(rows: list, path: Path) -> None:
    """Control accuracy and FD-FMNIST against the CFG scale, one line per (task, sampler)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, metric, name in ((axes[0], "accuracy", "control accuracy"), (axes[1], "fd", "FD-FMNIST")):
        for task, label in dict.fromkeys((t, lab) for t, lab, _, _ in rows):
            pts = [(w, s[metric]) for t, lab, w, s in rows if (t, lab) == (task, label)]
            ax.plot(*zip(*pts, strict=True), marker="o", label=f"{task} / {label}")
        ax.set_xlabel("CFG scale w")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=2000, help="samples per sampler and scale (the first seeds)")
    p.add_argument("--scales", type=float, nargs="+", default=[1, 1.5, 2, 3, 4])
    p.add_argument("--tasks", default="generate_class,generate_prompt")
    p.add_argument("--samplers", default="pagoda_onestep", help="comma-separated sampler labels of the tasks")
    p.add_argument(
        "--split", default="test", help="reference split of FD/KID: 'train' to choose a scale, 'test' to report"
    )
    p.add_argument("--out", type=Path, default=Path("docs/generation/cfg-sweep.md"))
    args = p.parse_args()
    samplers = args.samplers.split(",")
    start = time.perf_counter()
    rows = []  # (task, sampler, scale, scores)
    for spec in select_tasks(args.tasks):
        for w in args.scales:
            seeds = tuple(range(args.images))  # the same seeds for every task and scale
            result = run_generation(replace(spec, cfg_scale=w, split=args.split), samplers=samplers, seeds=seeds)
            for label, s in result["scores"].items():
                rows.append((spec.name, label, w, s))
                print(f"{spec.name} {label} w={w:g}: FD {s['fd']:.3f} accuracy {s['accuracy']:.4f}", flush=True)
    minutes = (time.perf_counter() - start) / 60

    plot = args.out.with_suffix(".png")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_sweep(rows, plot)

    lines = page_head("Generation against the CFG scale", "python " + " ".join(sys.argv))
    lines += [
        f"{args.images} samples per row (seeds 0-{args.images - 1}, conditions balanced), scored against the "
        f"Fashion-MNIST {args.split} split in `fmnist-clf` features; {minutes:.1f} min in all. With `w != 1` the one-step "
        "sampler is `G_w(M(z, c, w), c)` when the model has a guidance map (the map's pass at the teacher's "
        "resolution, then G on the conditional and null batch), else `G_w(z, c)`; throughput is measured by "
        "`pagoda-inv bench --task generate`, not here.",
        "",
        "| task | sampler | CFG scale | NFE/sample | FD-FMNIST ↓ | KID-FMNIST ↓ | control accuracy ↑ |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {t} | {lab} | {w:g} | {s['nfe']} | {s['fd']:.3f} | {s['kid']:.4f} | {100 * s['accuracy']:.1f}% |"
            for t, lab, w, s in rows
        ],
        "",
        f"![CFG sweep]({plot.name})",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
