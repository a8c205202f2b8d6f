"""Tune a solver's hyper-parameters (peers and PaGoDA's own) on TRAINING images (never the test split the bench scores).

For each task, each ``solver:key=value,...`` configuration runs on the first N training images with the task's
operator, noise and per-image seeds, and the script prints PSNR, measurement consistency (RMS residual, to compare
with sigma_y) and seconds per image, and appends a markdown table to ``--out``. Usage::

    python benchmarks/peer_sweep.py --task superres_x4 --images 8 \
        --configs "dps:num_steps=200,weight=1" "dps:num_steps=200,weight=3" "diffpir:lambda_=1" \
        --out docs/peer-tuning.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from pagoda_inverse.bench.tasks import load_task
from pagoda_inverse.core.model import load_model
from pagoda_inverse.ops import make_operator
from pagoda_inverse.solvers import check_hparams, solve
from pagoda_inverse.train.config import DataConfig
from pagoda_inverse.train.data import load_images
from pagoda_inverse.utils import metrics as M


def parse_config(text: str) -> tuple[str, dict]:
    """``"dps:num_steps=200,weight=1"`` -> ``("dps", {"num_steps": 200, "weight": 1.0})`` (ints stay ints;
    ``true`` / ``false`` are booleans)."""
    name, _, rest = text.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if value.lower() in ("true", "false"):
            params[key] = value.lower() == "true"
            continue
        try:
            params[key] = int(value)
        except ValueError:
            try:
                params[key] = float(value)
            except ValueError:
                params[key] = value
    check_hparams(name, params)
    return name, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--configs", nargs="+", required=True)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--model", default=None, help="a model name or folder instead of the task's")
    args = parser.parse_args()
    spec = load_task(args.task)
    model = load_model(args.model or spec.model)
    x = load_images(DataConfig(dataset=spec.dataset, resolution=model.resolution), "train", limit=args.images)[0]
    seeds = list(range(args.images))
    op = make_operator(spec.operator, shape=tuple(x.shape[1:]), batch=len(x), seeds=seeds, sigma_y=spec.sigma_y,
                       **spec.operator_params)  # fmt: skip
    y = op(x, generator=[torch.Generator().manual_seed(s) for s in seeds])
    rows = []
    for text in args.configs:
        name, params = parse_config(text)
        t0 = time.perf_counter()
        out = solve(name, model, op, y, generator=[torch.Generator().manual_seed(s + 1_000_003) for s in seeds],
                    **params)  # fmt: skip
        seconds = (time.perf_counter() - t0) / len(x)
        psnr, cons = float(M.psnr(out.estimate, x).mean()), float(M.consistency(op, out.estimate, y).mean())
        rows.append((text, psnr, cons, seconds))
        print(f"{args.task} {text}: PSNR {psnr:.2f} dB, consistency {cons:.4f}, {seconds:.3f} s/image", flush=True)
    if args.out:
        lines = [
            f"\n## {args.task} (sigma_y {spec.sigma_y:g} in [-1, 1] units; first {args.images} training images)\n",
            f"`python benchmarks/peer_sweep.py --task {args.task} --images {args.images} --configs "
            + " ".join(f'"{c}"' for c in args.configs)
            + "`\n",
            "| configuration | PSNR (dB) | consistency | s/image |",
            "| --- | ---: | ---: | ---: |",
            *[f"| `{c}` | {p:.2f} | {r:.4f} | {s:.3f} |" for c, p, r, s in rows],
        ]
        with open(args.out, "a") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
