"""The photo model's choices, made on whole *training* photos (never the held-out ones): which sampler serves each
task family, and the colour network's saturation. Writes docs/photo-choices.md.

    python benchmarks/photo_choices.py --model MODEL_DIR     # MODEL_DIR holds every candidate posterior encoder

- super-resolution x4 (noiseless area down-sampling) and deblurring (Gaussian 2 px, 13x13, sigma_y 0.02): the PSNR
  of ``one_step`` through the family's posterior encoder (where the folder has one) and of ``encode_perturb``, with
  the model's settings, beside the classical baselines, on ``--solver-photos`` training photos;
- colorization: the gain over the grayscale copy of ``colour_net`` at chroma scales ``s`` (``x = gray + s (C(gray) -
  gray)``), and of ``one_step`` (the model's samples) with its estimate shrunk toward the gray copy by ``shrink``, on
  every colour training photo; the shipped ``saturation`` and colorize ``shrink`` are those of the largest mean gain,
  and the colorization with the larger one is the default.

Training photos are shrunk to a longer side of at most 640 px and cropped to multiples of 4, as the held-out ones
are in ``benchmarks/photo.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from core import page_head, psnr
from photo import whole_photos

from pagoda_inverse.core.model import load_model
from pagoda_inverse.ops import make_operator
from pagoda_inverse.solvers import not_applicable, solve
from pagoda_inverse.solvers.tiled import solve_tiled

#: The chroma scales tried for colour_net.
SATURATIONS = (1.2, 1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
#: The shares of the way toward the gray copy tried for one_step's colorize estimate.
SHRINKS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
#: A photo whose gray copy is this close (PSNR, dB) is a grayscale photo.
GRAY_PSNR = 60
#: (task, operator, its parameters, baselines).
TASKS = [
    ("superres x4", "downsample_area", {"factor": 4}, ("bicubic",)),
    ("deblur", "gaussian_blur", {"sigma": 2.0, "size": 13, "sigma_y": 0.02}, ("wiener", "richardson_lucy")),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="photo", help="the model folder with the candidate posterior encoders")
    p.add_argument("--solver-photos", type=int, default=4, help="training photos for the sampler comparison")
    p.add_argument("--out", type=Path, default=Path("docs/photo-choices.md"))
    args = p.parse_args()
    command = f"python benchmarks/photo_choices.py --model {args.model} --solver-photos {args.solver_photos}"
    model = load_model(args.model)
    photos = whole_photos("train")  # prepared as the held-out ones are
    step = max(1, len(photos) // args.solver_photos)
    few = dict(list(photos.items())[::step][: args.solver_photos])

    lines = [*page_head("The photo model's choices, on training photos", command)]
    lines += [
        f"Whole training photos (their crops trained the model; {len(photos)} in all, shrunk to at most 640 px as the",
        "held-out photos are in [docs/photo.md](photo.md)). PSNR in dB; the model's settings otherwise.",
        "",
    ]
    for task, operator, params, baselines in TASKS:
        columns = [*baselines, "one_step", "encode_perturb"]
        lines += [f"## {task}", "", "| photo | " + " | ".join(columns) + " |", "|" + " --- |" * (len(columns) + 1)]
        totals: dict[str, list[float]] = {c: [] for c in columns}
        for name, x in few.items():
            op = make_operator(operator, shape=tuple(x.shape[1:]), seeds=[0], **params)
            y = op(x, generator=torch.Generator().manual_seed(0))
            cells = []
            for solver in columns:
                if solver == "one_step" and not_applicable(solver, op, model) is not None:
                    cells.append("no encoder")
                    continue
                run = solve if solver in baselines else solve_tiled
                estimate = run(solver, model, op, y, **({} if solver in baselines else {"seed": 0})).estimate
                value = psnr(estimate.clamp(-1, 1), x)
                totals[solver].append(value)
                cells.append(f"{value:.2f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
            print(task, name, cells, flush=True)
        means = [f"{statistics.mean(v):.2f}" if v else "-" for v in totals.values()]
        lines += ["| mean | " + " | ".join(means) + " |", ""]

    gains: dict[float, list[float]] = {s: [] for s in SATURATIONS}
    shrink_gains: dict[float, list[float]] = {s: [] for s in SHRINKS}
    gray_photos = []
    for name, x in photos.items():
        op = make_operator("colorize", shape=tuple(x.shape[1:]))
        y = op(x)
        gray = op.initial_estimate(y)
        gray_psnr = psnr(gray, x)
        if gray_psnr > GRAY_PSNR:  # a grayscale photo: its gray copy is exact, there is no colour to find
            gray_photos.append(name)
            continue
        net = solve_tiled("colour_net", model, op, y, seed=0, saturation=1.0).estimate
        for s in SATURATIONS:  # the luma is y's at every s: the blend only scales the chroma
            gains[s].append(psnr(gray + s * (net - gray), x) - gray_psnr)
        # one_step's estimate at shrink 0; a shrink's is its blend with the gray copy (the whole-image consistency
        # step is affine and keeps the gray copy, so blending after it is the same as solving with that shrink).
        mean = solve_tiled("one_step", model, op, y, seed=0, shrink=0.0).estimate
        for s in SHRINKS:
            shrink_gains[s].append(psnr(torch.lerp(mean, gray, s), x) - gray_psnr)
        print("colorize", name, f"{gains[SATURATIONS[0]][-1]:+.2f}", f"{shrink_gains[0.0][-1]:+.2f}", flush=True)
    best = max(SATURATIONS, key=lambda s: statistics.mean(gains[s]))
    best_shrink = max(SHRINKS, key=lambda s: statistics.mean(shrink_gains[s]))
    default = "one_step" if statistics.mean(shrink_gains[best_shrink]) > statistics.mean(gains[best]) else "colour_net"
    count = len(photos) - len(gray_photos)
    lines += [
        "## Colorization: colour_net's saturation",
        "",
        f"Gain over the grayscale copy (dB) of `colour_net` with its chroma scaled by s, on the {count} colour photos",
        f"among the training photos (the {len(gray_photos)} grayscale ones, {', '.join(gray_photos) or '-'}, are left",
        f"out: their gray copy is exact, above {GRAY_PSNR} dB, and any colour would dominate the mean). The shipped",
        "`saturation` is the s of the largest mean gain.",
        "",
        "| s | mean gain | median | worst | photos below gray |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {s} | {statistics.mean(g):+.2f} | {statistics.median(g):+.2f} | {min(g):+.2f} | "
            f"{sum(v < 0 for v in g)} of {len(g)} |"
            for s, g in gains.items()
        ],
        "",
        f"Chosen: saturation = {best}.",
        "",
        "## Colorization: one_step's shrink toward the gray copy",
        "",
        "Gain over the grayscale copy (dB) of `one_step` (the model's settings) with its estimate pulled toward the",
        f"gray copy by the share `shrink`, on the same {count} photos. The shipped colorize `shrink` is the one of the",
        "largest mean gain.",
        "",
        "| shrink | mean gain | median | worst | photos below gray |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {s} | {statistics.mean(g):+.2f} | {statistics.median(g):+.2f} | {min(g):+.2f} | "
            f"{sum(v < 0 for v in g)} of {len(g)} |"
            for s, g in shrink_gains.items()
        ],
        "",
        f"Chosen: shrink = {best_shrink}. Default colorization (the larger mean gain at its chosen setting): {default}.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"saturation {best}, colorize shrink {best_shrink}, default colorization {default}")


if __name__ == "__main__":
    sys.exit(main())
