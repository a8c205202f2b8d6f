"""One-step posterior sampling through the posterior encoders: samples, mean, std map and calibration.

For centred-box inpainting and x4 super-resolution (the ``inpaint_box`` and ``superres_x4`` task suites: same
images, operators, noise and seeds as ``pagoda-inv bench``), ``one_step`` draws ``K`` samples per test image. Reported:
PSNR of the K-sample mean and of one sample; calibration, the share of true pixels inside each pixel's central
interval of the samples at nominal levels 10%..90% (over the hidden pixels for the box, all pixels for
super-resolution), with a reliability plot; the samples' std on hidden and observed pixels; and, from the model's
``posterior/<family>/config.json``, each encoder's training time and held-out scores. Writes ``docs/posterior.md``,
its figures, and the "Posterior encoders" section of the model card::

    python benchmarks/posterior.py --images 256 --samples 16

Beside them, for every task suite of :data:`SIDE_BY_SIDE`: one ``one_step`` sample (two seeds) next to one output of
the best peer (DDRM where it applies, else DiffPIR) and the truth, and the realism table (one sample's residual ratio,
FD-FMNIST and conditional FD, with the real-images floor) read from the bench run in
``docs/results-realism/results.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from core import POSTERIOR_HEADING, encoder_table

from pagoda_inverse.bench.engine import SOLVER_SEED_OFFSET
from pagoda_inverse.bench.report import machine_description
from pagoda_inverse.bench.tasks import load_task
from pagoda_inverse.core.model import load_model
from pagoda_inverse.ops import make_operator
from pagoda_inverse.solvers import solve
from pagoda_inverse.train.config import DataConfig
from pagoda_inverse.train.data import load_images
from pagoda_inverse.utils.images import save_panels
from pagoda_inverse.utils.metrics import interval_coverage, interval_ranks, psnr

TASKS = ("inpaint_box", "superres_x4")
#: The task suites shown side by side with a peer (the peer: DDRM where it applies, else DiffPIR).
SIDE_BY_SIDE = {"superres_x4": "diffpir", "inpaint_box": "ddrm", "inpaint_random": "ddrm",
                "deblur_gaussian": "diffpir", "deblur_motion": "diffpir", "denoise": "ddrm"}  # fmt: skip
REALISM_COLUMNS = ("psnr", "psnr_sample", "residual_ratio", "fd_sample", "cfid")
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _generators(seeds, offset: int = 0):
    return [torch.Generator().manual_seed(int(s) + offset) for s in seeds]


def run_task(model, name: str, images: torch.Tensor, samples: int, batch: int = 32) -> dict:
    """``one_step`` with K samples on the task's operator, batch by batch as ``pagoda-inv bench`` does."""
    spec = load_task(name)
    xs, ys, outs, hidden, paired, seconds = [], [], [], [], [], 0.0
    for b0 in range(0, len(images), batch):
        seeds = list(range(b0, min(b0 + batch, len(images))))
        x = images[seeds[0] : seeds[-1] + 1]
        op = make_operator(spec.operator, shape=tuple(x.shape[1:]), batch=len(x), seeds=seeds, sigma_y=spec.sigma_y,
                           **spec.operator_params)  # fmt: skip
        y = op(x, generator=_generators(seeds))
        # Independent draws for calibration (the rank-based coverage needs exchangeable samples), then the solver's
        # default antithetic pairs for its estimate.
        t0 = time.perf_counter()
        res = solve("one_step", model, op, y, samples=samples, antithetic=False,
                    generator=_generators(seeds, SOLVER_SEED_OFFSET))  # fmt: skip
        seconds += time.perf_counter() - t0
        paired.append(
            solve("one_step", model, op, y, samples=samples, generator=_generators(seeds, SOLVER_SEED_OFFSET)).estimate
        )
        xs.append(x)
        ys.append(y)
        outs.append(res)
        hidden.append(op.A_adjoint_A(torch.ones_like(x)) == 0)
    x, y = torch.cat(xs), torch.cat(ys)
    s = torch.cat([r.samples for r in outs], 1)
    hid = torch.cat(hidden)
    where = hid if name.startswith("inpaint") else None
    std = s.std(0)
    row = {
        "task": name,
        "images": len(x),
        "samples": samples,
        "nfe": outs[0].info["nfe"],
        "posterior": outs[0].info.get("posterior"),
        "psnr_mean": psnr(s.mean(0), x).mean().item(),
        "psnr_paired": psnr(torch.cat(paired), x).mean().item(),
        "psnr_mean8": psnr(s[:8].mean(0), x).mean().item(),
        "psnr_one": psnr(s[0], x).mean().item(),
        "seconds_per_image": seconds / len(x),
        "coverage": {f"{lv:.1f}": interval_coverage(s, x, lv, where) for lv in LEVELS},
        "std_scored": std[where].mean().item() if where is not None else std.mean().item(),
    }
    if where is not None:
        row["std_observed"] = std[~where].mean().item()
    return row | {"_x": x, "_y": y, "_s": s}


def reliability_plot(rows: list[dict], path: Path) -> None:
    """Empirical vs nominal coverage of the samples' central intervals, one line per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrated")
    expected = [interval_ranks(rows[0]["samples"], lv)[2] for lv in LEVELS]
    for r in rows:
        ax.plot(expected, [r["coverage"][f"{lv:.1f}"] for lv in LEVELS], marker="o", label=r["task"])
    ax.set_xlabel("coverage of a calibrated sampler")
    ax.set_ylabel("share of true pixels inside")
    ax.set_title(f"one_step posterior, K = {rows[0]['samples']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def figure(row: dict, path: Path, show: int = 6) -> None:
    """Per image: observation, four samples, the mean, the per-pixel std (scaled to its largest value), truth."""
    s, std = row["_s"][:, :show], row["_s"][:, :show].std(0)
    scaled = std / std.flatten(1).amax(1).clamp_min(1e-8)[:, None, None, None] * 2 - 1
    columns = {"observation": row["_y"][:show]}
    columns |= {f"sample {k + 1}": s[k] for k in range(4)}
    columns |= {f"mean of {len(s)}": s.mean(0), "std (scaled)": scaled, "truth": row["_x"][:show]}
    save_panels(columns, path)


def side_by_side(model, name: str, peer: str, images: torch.Tensor, path: Path) -> None:
    """Observation, two ``one_step`` samples (the model's settings), one output of ``peer`` (its task-file settings)
    and the truth for ``images`` with the task's operator, noise and seeds, as ``pagoda-inv bench`` runs them."""
    spec = load_task(name)
    seeds = list(range(len(images)))
    op = make_operator(spec.operator, shape=tuple(images.shape[1:]), batch=len(images), seeds=seeds,
                       sigma_y=spec.sigma_y, **spec.operator_params)  # fmt: skip
    y = op(images, generator=_generators(seeds))
    ours = solve("one_step", model, op, y, samples=2, generator=_generators(seeds, SOLVER_SEED_OFFSET))
    settings = {k: v for k, v in spec.solvers.get(peer, {}).items() if k != "optional"}
    theirs = solve(peer, model, op, y, generator=_generators(seeds, SOLVER_SEED_OFFSET), **settings)
    columns = {"observation": y, "one_step sample 1": ours.samples[0], "one_step sample 2": ours.samples[1],
               f"{peer} (its output)": theirs.samples[0], "truth": images}  # fmt: skip
    save_panels(columns, path)


def realism_table(results: Path) -> list[str]:
    """The realism columns of a bench run's ``results.json`` as a markdown table (one row per task and solver)."""
    import json

    if not results.is_file():
        return [f"(no bench run at {results})"]
    payload = json.loads(results.read_text())
    head = "| task | solver | PSNR, estimate | PSNR, 1 sample | residual ratio, 1 sample | FD-FMNIST, 1 sample | cFD-FMNIST |"
    lines = [head, "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in payload["results"]:
        for solver, s in r["scores"].items():
            if "skipped" in s or not any(k in s for k in REALISM_COLUMNS[2:]):
                continue
            cells = [f"{s[k]:.4g}" if isinstance(s.get(k), float) else "-" for k in REALISM_COLUMNS]
            lines.append(f"| {r['task']['name']} | {solver} | " + " | ".join(cells) + " |")
    return lines + ["", f"From `{results}` ({payload['config'].get('command', '')}; {payload['results'][0]['images']} "
                    "images per task)."]  # fmt: skip


def update_card(path: Path, section: str) -> None:
    """Replace (or append) the card's posterior-encoder section."""
    text = path.read_text()
    if POSTERIOR_HEADING in text:
        head, rest = text.split(POSTERIOR_HEADING, 1)
        tail = rest[rest.find("\n## ") :] if "\n## " in rest else ""
        text = head.rstrip() + "\n\n" + section + tail
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--model", default="fmnist")
    parser.add_argument("--out", type=Path, default=Path("docs/posterior.md"))
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("docs/results-realism/results.json"),
        help="the bench run whose realism columns the page shows (the one-command run with the realism metrics)",
    )
    parser.add_argument("--side-by-side", type=int, default=4, help="images per task in the side-by-side figures")
    parser.add_argument("--cards", type=Path, nargs="*", default=None,
                        help="model cards to update (default: the model folder's card.md and docs/models/MODEL.md)")  # fmt: skip
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model = load_model(args.model)
    images = load_images(DataConfig(), "test", limit=args.images)[0]
    t_start = time.perf_counter()
    rows = [run_task(model, name, images, args.samples) for name in TASKS]
    img_dir = args.out.parent / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    for r in rows:
        figure(r, img_dir / f"posterior-{r['task']}.png")
    reliability_plot(rows, img_dir / "posterior-reliability.png")
    for name, peer in SIDE_BY_SIDE.items():
        side_by_side(model, name, peer, images[: args.side_by_side], img_dir / f"posterior-side-{name}.png")
    command = f"python benchmarks/posterior.py --images {args.images} --samples {args.samples}"
    if args.model != "fmnist":
        command += f" --model {args.model}"
    lines = [
        "# One-step posterior sampling",
        "",
        f"Machine: {machine_description()}. Wall time {(time.perf_counter() - t_start) / 60:.1f} min. Command: "
        f"`{command}`",
        "",
        f"`one_step` with the `{args.model}` model's posterior encoders: the encoder's trunk runs once per image, then "
        "each sample is one pass of its per-sample head and of G and the data-consistency step; the estimate is the "
        "mean of the K samples. Samples, std and coverage come from K independent draws (the coverage below assumes "
        "exchangeable samples); `one_step`'s default draws its noises in antithetic pairs (eps, -eps), whose mean is "
        "the 'mean of K antithetic' column (docs/one-step-tuning.md). "
        f"The first {args.images} Fashion-MNIST test images with the task suites' operators, "
        "noise (sigma_y 0.05) and seeds, as `pagoda-inv bench` runs them.",
        "",
        "| task | K | NFE | PSNR, mean of K | PSNR, mean of K antithetic | PSNR, mean of 8 | PSNR, 1 sample | 90% "
        "coverage | 50% coverage | std scored pixels | std observed pixels | s/img |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        observed = f"{r['std_observed']:.4f}" if "std_observed" in r else "-"
        lines.append(f"| {r['task']} | {r['samples']} | {r['nfe']} | {r['psnr_mean']:.2f} | {r['psnr_paired']:.2f} | "
                     f"{r['psnr_mean8']:.2f} | "
                     f"{r['psnr_one']:.2f} | {r['coverage']['0.9']:.3f} | {r['coverage']['0.5']:.3f} | "
                     f"{r['std_scored']:.4f} | {observed} | {r['seconds_per_image']:.4f} |")  # fmt: skip
    lines += [
        "",
        "Scored pixels: the hidden box for `inpaint_box`, every pixel for `superres_x4`. Coverage: the share of true "
        "pixels inside each pixel's central interval of the K samples, between the j-th smallest and j-th largest "
        f"sample with j = round((K + 1)(1 - level) / 2); for a calibrated sampler that share is exactly "
        f"(K + 1 - 2j) / (K + 1) ({interval_ranks(args.samples, 0.9)[2]:.3f} for the 90% interval at "
        f"K = {args.samples}, {interval_ranks(args.samples, 0.5)[2]:.3f} for 50%), the reliability plot's "
        "diagonal. Std in [-1, 1] units.",
        "",
        "![reliability](img/posterior-reliability.png)",
        "",
    ]
    lines += [
        "## One sample beside the peers'",
        "",
        "A posterior sampler is judged by its samples. Per task: one sample's residual `||A x - y||` over the truth's "
        "(1 for a sample of the posterior: it explains y as well as the truth does; below 1 when it copies y's noise), "
        "FD-FMNIST of one sample per image against the test images outside the run (`fmnist-clf` features, not FID) "
        "and the conditional FD of (observation, sample) against (observation, truth) pairs (Soloveitchik et al. 2021; "
        "the observation is A^+ y in the same features). The `real images` row scores the run's own true images: the "
        "floor at this image count.",
        "",
        *realism_table(args.results),
        "",
        "Why one `one_step` sample is less realistic than the peers' (what the encoders feed G, measured on training "
        "images): [posterior-realism.md](posterior-realism.md).",
        "",
    ]
    for name, peer in SIDE_BY_SIDE.items():
        lines += [f"### {name}", "", f"Observation, two one_step samples (the model's settings), one {peer} output "
                  "and the truth; the first test images, the bench's operators, noise and seeds.", "",
                  f"![{name} side by side](img/posterior-side-{name}.png)", ""]  # fmt: skip
    for r in rows:
        lines += [f"## {r['task']}", "", "Observation, four samples, their mean, the per-pixel std (each image's "
                  "scaled to its largest value) and the truth; the first six test images.", "",
                  f"![{r['task']}](img/posterior-{r['task']}.png)", ""]  # fmt: skip
    section = [POSTERIOR_HEADING, "", "Amortized posterior encoders into G, one per operator family "
               "(`pagoda-inv train posterior --family F`, energy score; `one_step` uses them).", "",
               *encoder_table(model), ""]  # fmt: skip
    lines += section
    args.out.write_text("\n".join(lines).rstrip() + "\n")
    cards = (
        args.cards if args.cards is not None else [model.path / "card.md", Path("docs/models") / f"{args.model}.md"]
    )
    for card in cards:
        if card.is_file():
            update_card(card, "\n".join(section))
    print(f"wrote {args.out}")
    for r in rows:
        print(f"{r['task']}: mean-of-{r['samples']} {r['psnr_mean']:.2f} dB, one sample {r['psnr_one']:.2f} dB, "
              f"90% coverage {r['coverage']['0.9']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
