"""Robustness of ``one_step`` outside its posterior encoders' training ranges, beside DiffPIR; writes docs/robustness.md.

Each fmnist encoder was trained on one operator family over a range of its parameters and of ``sigma_y <= 0.2``
(:func:`~pagoda_inverse.ops.families.sample_family_operator`). Here each operator lies outside that range (a wider or
longer blur kernel, more dropped pixels, a larger hole, more noise); the images, seeds and DiffPIR's settings are
those of the family's task suite (the first ``--images`` test images, image ``i`` from seed ``i``), ``one_step``
runs with the model's own settings. Reported: PSNR of each solver's estimate and its time per image::

    python benchmarks/robustness.py --images 32
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from pagoda_inverse.bench.engine import SOLVER_SEED_OFFSET
from pagoda_inverse.bench.report import machine_description
from pagoda_inverse.bench.tasks import load_task
from pagoda_inverse.core.model import load_model
from pagoda_inverse.ops import make_operator
from pagoda_inverse.solvers import solve
from pagoda_inverse.train.config import DataConfig
from pagoda_inverse.train.data import load_images
from pagoda_inverse.utils.metrics import psnr

#: (label, task suite whose seeds and DiffPIR settings apply, operator, its parameters, sigma_y, what lies outside).
CASES = [
    ("Gaussian blur 4 px, 13x13", "deblur_gaussian", "gaussian_blur", {"sigma": 4.0, "size": 13}, 0.05,
     "width 0.5-3 px, 9x9 kernels"),
    ("motion blur 13x13", "deblur_motion", "motion_blur", {"size": 13}, 0.05, "9x9 kernels"),
    ("95% of pixels dropped", "inpaint_random", "inpaint_random", {"drop": 0.95}, 0.05, "30-90% dropped"),
    ("24 px box hole", "inpaint_box", "inpaint_box", {"box": 24}, 0.05, "sides 1/4-5/8 of the image (8-20 px)"),
    ("denoise, sigma_y 0.3", "denoise", "denoise", {}, 0.3, "sigma_y <= 0.2"),
    ("x4 super-resolution, sigma_y 0.3", "superres_x4", "downsample_area", {"factor": 4}, 0.3, "sigma_y <= 0.2"),
]  # fmt: skip
SOLVERS = ("one_step", "diffpir")


def run_case(model, images: torch.Tensor, task: str, operator: str, params: dict, sigma_y: float) -> dict:
    """``{solver: (PSNR, seconds per image)}`` for one operator on ``images`` (the task's seeds)."""
    spec = load_task(task)
    seeds = list(spec.seeds[: len(images)])
    op = make_operator(operator, shape=tuple(images.shape[1:]), batch=len(images), seeds=seeds, sigma_y=sigma_y,
                       **params)  # fmt: skip
    y = op(images, generator=[torch.Generator().manual_seed(s) for s in seeds])
    out = {}
    for name in SOLVERS:
        hparams = spec.solvers.get(name, {}) if name != "one_step" else {}  # one_step: the model's own settings
        generators = [torch.Generator().manual_seed(s + SOLVER_SEED_OFFSET) for s in seeds]
        t0 = time.perf_counter()
        estimate = solve(name, model, op, y, generator=generators, **hparams).estimate
        out[name] = (psnr(estimate, images).mean().item(), (time.perf_counter() - t0) / len(images))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("docs/robustness.md"))
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model = load_model("fmnist")
    images = load_images(DataConfig(), "test", limit=args.images)[0]
    lines = [
        "# Robustness outside the encoders' training ranges",
        "",
        f"`python benchmarks/robustness.py --images {args.images}`: the first {args.images} **test** images "
        "(an evaluation: nothing here was tuned), per operator the family task suite's seeds and DiffPIR settings, "
        f"`one_step` with the `fmnist` model's own settings. Machine: {machine_description(torch.device('cpu'))}.",
        "",
        "| operator | outside the training range of | one_step PSNR | DiffPIR PSNR | one_step - DiffPIR | "
        "one_step s/img | DiffPIR s/img |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, task, operator, params, sigma_y, outside in CASES:
        r = run_case(model, images, task, operator, params, sigma_y)
        (p1, t1), (p2, t2) = r["one_step"], r["diffpir"]
        lines.append(f"| {label} | {outside} | {p1:.2f} | {p2:.2f} | {p1 - p2:+.2f} | {t1:.3f} | {t2:.2f} |")
        print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
