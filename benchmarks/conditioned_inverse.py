"""Conditioned inverse problems and posterior spread, on the Fashion-MNIST test split.

For heavy inpainting (a centred box hiding a quarter of the image, or most of it) and x4 super-resolution, each
PaGoDA solver runs without a condition and conditioned on the image's true class; ``fmnist-clf`` then classifies
the estimates (control accuracy: the share assigned the true class). The posterior samples' per-pixel standard
deviation is averaged over the hidden and the observed pixels (one_step, K samples). Writes
``docs/conditioned.md``::

    python benchmarks/conditioned_inverse.py --images 256 --samples 8 --cfg-scales 1 2 --solvers one_step latent_map latent_ilo
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from pagoda_inverse.bench.report import machine_description
from pagoda_inverse.core.classifier import classify, load_classifier
from pagoda_inverse.core.model import load_model
from pagoda_inverse.ops import make_operator
from pagoda_inverse.solvers import solve
from pagoda_inverse.train.config import DataConfig
from pagoda_inverse.train.data import load_images

#: (label, operator, parameters): the observations, from a quarter of the image hidden to most of it.
SETTINGS = [
    ("box 16x16 (1/4 hidden)", "inpaint_mask", {}),
    ("box 24x24 (9/16 hidden)", "inpaint_box", {"box": 24, "position": "center"}),
    ("random, 90% dropped", "inpaint_random", {"drop": 0.9}),
    ("superres x4", "downsample_area", {"factor": 4}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--sigma-y", type=float, default=0.05)
    parser.add_argument(
        "--cfg-scales", type=float, nargs="+", default=[1.0], help="guidance scales of the conditioned runs"
    )
    parser.add_argument("--solvers", nargs="+", default=["one_step", "latent_map", "latent_ilo"])
    parser.add_argument(
        "--settings", nargs="+", type=int, default=None, help="run only these observations (0-based rows of SETTINGS)"
    )
    parser.add_argument(
        "--conditioned-only", action="store_true", help="skip the unconditioned run of each solver and observation"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/conditioned.md"))
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model, clf = load_model("fmnist"), load_classifier("fmnist-clf")
    x, labels = load_images(DataConfig(), "test", limit=args.images)
    seeds = list(range(args.images))
    _, truth_pred = classify(clf, x)
    rows, spread = [], []
    t_start = time.perf_counter()
    settings = SETTINGS if args.settings is None else [SETTINGS[i] for i in args.settings]
    for label, name, params in settings:
        op = make_operator(name, shape=(1, 32, 32), batch=len(x), seeds=seeds, sigma_y=args.sigma_y, **params)
        y = op(x, generator=[torch.Generator().manual_seed(s) for s in seeds])
        for solver in args.solvers:
            kwargs = {"samples": args.samples} if solver == "one_step" else {}
            truth = model.class_condition(labels)
            runs = ([] if args.conditioned_only else [("none", None, 1.0)]) + [
                ("true class" + ("" if w == 1 else f", CFG {w:g}"), truth, w) for w in args.cfg_scales
            ]
            for cond_name, cond, w in runs:
                gens = [torch.Generator().manual_seed(s + 1_000_003) for s in seeds]
                with torch.enable_grad():  # the latent solvers optimise through G
                    out = solve(solver, model, op, y, cond=cond, generator=gens, cfg_scale=w, **kwargs)
                _, pred = classify(clf, out.estimate.clamp(-1, 1))
                accuracy = float((pred == labels).double().mean())
                rows.append((label, solver, cond_name, accuracy))
                print(f"{label} {solver} cond={cond_name}: accuracy {100 * accuracy:.1f}%", flush=True)
                if solver == "one_step" and name.startswith("inpaint") and cond is None:
                    hidden = op.mask.expand_as(out.std) == 0
                    spread.append((label, float(out.std[hidden].mean()), float(out.std[~hidden].mean())))
    lines = [
        "# Conditioned inverse problems and posterior spread",
        "",
        f"`python benchmarks/conditioned_inverse.py --images {args.images} --samples {args.samples} --cfg-scales "
        f"{' '.join(f'{w:g}' for w in args.cfg_scales)} --solvers {' '.join(args.solvers)}"
        + ("" if args.settings is None else f" --settings {' '.join(map(str, args.settings))}")
        + (" --conditioned-only" if args.conditioned_only else "")
        + f" --out {args.out}` on "
        f"{machine_description()} ({time.perf_counter() - t_start:.0f} s): the first {args.images} Fashion-MNIST "
        f"test images, sigma_y = {args.sigma_y:g} in [-1, 1] units, the embedded `fmnist` model. Control accuracy is "
        "the share of estimates that `fmnist-clf` assigns the image's true class "
        f"(on the clean images themselves: {100 * float((truth_pred == labels).double().mean()):.1f}%).",
        "",
        "| observation | solver | condition | control accuracy |",
        "| --- | --- | --- | ---: |",
        *[f"| {o} | {s} | {c} | {100 * a:.1f}% |" for o, s, c, a in rows],
        "",
    ]
    if spread:  # one_step ran on an inpainting observation
        lines += [
            f"Posterior spread of `one_step` ({args.samples} samples per image, unconditioned): the mean per-pixel "
            "standard deviation over the hidden and the observed pixels.",
            "",
            "| observation | std, hidden pixels | std, observed pixels |",
            "| --- | ---: | ---: |",
            *[f"| {o} | {h:.4f} | {v:.4f} |" for o, h, v in spread],
            "",
        ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
