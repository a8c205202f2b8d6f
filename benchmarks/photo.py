"""Measure the ``photo`` model on this machine; write docs/photo.md (+ pictures in docs/img/) and the model card.

- training wall time of every stage (from the run logs and the encode log; the posterior encoders' from their
  folders); without the run folders, those rows (and G's reconstructions) are carried over from the page's last run
  that had them, under that run's command;
- on the held-out test crops (64x64, never patches of training photos): G's reconstruction PSNR from the cached
  PF-ODE latents, beside bicubic up-sampling of the 16x16 crop; G throughput;
- on the held-out whole photos (datasets/photos.py, the wallpapers area-downsampled x4 to 640x400): x4
  super-resolution (noiseless area down-sampling), deblurring (Gaussian 2 px, sigma_y 0.02) and colorization
  (rec601 luma), solved in overlapping tiles with the solver the CLI picks (and, for colorization, the colour
  network's ``colour_net``), against bicubic and Lanczos / Richardson-Lucy and Wiener / the grayscale copy: PSNR
  and measurement consistency, and side-by-side crops;
- a 1024x768 photo super-resolved x4 to 4096x3072 through ``pagoda-inv solve superres``: wall time and peak RSS.

Usage (see scripts/train_photo.sh):

    python benchmarks/photo.py --teacher-run runs/00008-teacher-photo --decoder-run runs/00009-decoder-photo \
        --grow-runs runs/00010-grow-photo runs/00011-grow-photo \
        --test-latents runs/photo-latents-test --encode-log runs/photo-encode-train.log \
        --colour-run runs/00020-colour-photo --model MODEL_DIR
    python benchmarks/photo.py    # the exported model only: the stage rows carried over from docs/photo.md
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from core import POSTERIOR_HEADING, batched, encoder_table, page_head, psnr, rows_table, run_seconds, timed
from PIL import Image

from pagoda_inverse.core.encode import load_latent_cache
from pagoda_inverse.core.model import load_model
from pagoda_inverse.datasets.photos import load_photo, photo_sources, shrink_to
from pagoda_inverse.ops import make_operator
from pagoda_inverse.ops.consistency import data_consistency
from pagoda_inverse.solvers import default_solver, solve
from pagoda_inverse.solvers.tiled import solve_tiled
from pagoda_inverse.train.colour import gray_copy
from pagoda_inverse.train.config import DataConfig
from pagoda_inverse.train.data import load_images
from pagoda_inverse.train.pairs import pair_batch
from pagoda_inverse.utils.images import save_panels


def whole_photos(split: str = "test", max_side: int = 640) -> dict[str, torch.Tensor]:
    """The photos of ``split`` as ``[1, 3, H, W]`` in [-1, 1]: area-downsampled by an integer factor until the longer
    side is at most ``max_side``, then cropped to multiples of 4 (for x4 super-resolution)."""
    out = {}
    for source in photo_sources(split):
        x = shrink_to(load_photo(source)[None].float() / 127.5 - 1, max_side)
        h, w = (s - s % 4 for s in x.shape[-2:])
        out[Path(source.name).stem] = x[..., :h, :w]
    return out


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    return x[..., (h - size) // 2 : (h + size) // 2, (w - size) // 2 : (w + size) // 2]


def large_photo_run(model: str, out_dir: Path) -> dict:
    """``pagoda-inv solve superres`` on a 1024x768 photo (EveningGlow, 4:3 centre, area-resized): time, peak RSS."""
    source = next(s for s in photo_sources("test") if s.name == "EveningGlow")
    photo = Image.fromarray(load_photo(source).permute(1, 2, 0).numpy())
    w, h = photo.size
    side = min(w, h * 4 // 3)
    photo = photo.crop(((w - side) // 2, 0, (w + side) // 2, side * 3 // 4)).resize((1024, 768), Image.BOX)
    src, dst = out_dir / "large-1024x768.png", out_dir / "large-x4.png"
    photo.save(src)
    cmd = ["pagoda-inv", "solve", "superres", "--input", str(src), "--model", model, "-o", str(dst), "--overwrite"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"large-photo run failed: {proc.stderr}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
    with Image.open(dst) as im:
        size = im.size
    tiles = re.search(r"(\d+) tiles of", proc.stderr)
    return {
        "command": f"pagoda-inv solve superres --input large-1024x768.png --model {model} -o large-x4.png",
        "seconds": seconds,
        "peak_rss_mb": peak_mb,
        "output": f"{size[0]}x{size[1]}",
        "tiles": int(tiles.group(1)) if tiles else None,
    }


def settings_rows(model, data: DataConfig, images: int = 64) -> list[tuple[str, str]]:
    """x4 super-resolution (area, noiseless) of ``images`` training crops with the model's settings: ``one_step``
    through the superres posterior encoder (where the model has one), ``encode_perturb`` (the sampler for the other
    families), and ``encode_perturb`` with v1's settings (18 steps, 4 samples, eta 0.3, fp32): PSNR and time.
    Training data, like the crops the settings were chosen on."""
    x = load_images(data, "train", limit=4096)[0][:: 4096 // images][:images].float()
    op = make_operator("downsample_area", factor=4, shape=tuple(x.shape[1:]))
    y = op(x)
    v1 = {"num_steps": 18, "samples": 4, "eta": 0.3, "precision": "fp32"}
    runs = [("encode_perturb", "the model's settings", {}), ("encode_perturb", "v1's settings (18 steps, 4 samples, eta 0.3, fp32)", v1)]  # fmt: skip
    if "superres" in model.posteriors:
        runs.insert(0, ("one_step", "the model's settings (the superres posterior encoder)", {}))
    rows = []
    for solver, label, settings in runs:
        res, seconds = timed(
            lambda s=settings, m=solver: solve(m, model, op, y, generator=torch.Generator().manual_seed(0), **s)
        )
        rows.append((f"{solver} on {images} training crops (x4 super-resolution), {label}",
                     f"{psnr(res.estimate.clamp(-1, 1), x):.2f} dB in {seconds:.1f} s ({res.info['nfe']} NFE)"))  # fmt: skip
    return rows


#: The first table's rows that need the training run folders (not kept beside the model).
RUN_ROWS = ("training time:", "encoding time:", "G 16x16", "G 32x32", "G 64x64")
EARLIER = "## Earlier stages"


def earlier_rows(page: Path) -> tuple[str, list[tuple[str, str]]]:
    """The command and the run-folder rows (:data:`RUN_ROWS`, but the posterior encoders, whose times their folders
    keep) of the run that last measured them: ``page``'s "Earlier stages" section, else its first table."""
    text = page.read_text()
    part = text.split(EARLIER, 1)[1] if EARLIER in text else text.split("\n## ", 1)[0]
    command = re.search(r"```\n(python benchmarks/photo.py[^\n]*)\n```", part).group(1)
    rows = re.findall(r"^\| (.+?) \| (.+?) \|$", part.split("\n## ", 1)[0], re.M)
    return command, [(k, v) for k, v in rows if k.startswith(RUN_ROWS) and "posterior" not in k]


def lanczos(y: torch.Tensor, factor: int) -> torch.Tensor:
    """``[1, C, h, w]`` in [-1, 1] up-sampled ``factor`` times with PIL's Lanczos filter, per channel in float."""
    channels = [Image.fromarray(c.numpy()) for c in y[0].float()]
    size = (y.shape[-1] * factor, y.shape[-2] * factor)
    return torch.stack([torch.from_numpy(np.array(c.resize(size, Image.LANCZOS))) for c in channels])[None]


def photo_tasks(model, x: torch.Tensor) -> list[dict]:
    """The tasks on held-out photo ``x`` (``[1, 3, H, W]``): x4 super-resolution (noiseless area down-sampling), deblurring (Gaussian
    2 px, 13x13, sigma_y 0.02) and colorization (rec601 luma). Each: the operator, measurement and the baselines'
    estimates (``bicubic``, ``lanczos``, ``gray``, ``richardson_lucy``, ``wiener``)."""
    shape = tuple(x.shape[1:])
    g = torch.Generator().manual_seed(0)
    tasks = []
    for task, operator, params, baselines in [
        ("superres x4", "downsample_area", {"factor": 4}, ("bicubic",)),
        ("deblur", "gaussian_blur", {"sigma": 2.0, "size": 13, "sigma_y": 0.02}, ("richardson_lucy", "wiener")),
        ("colorize", "colorize", {}, ("gray",)),
    ]:
        op = make_operator(operator, shape=shape, seeds=[0], **params)
        y = op(x, generator=g)
        base = {b: solve(b, model, op, y).estimate for b in baselines}
        if task.startswith("superres"):
            base["lanczos"] = lanczos(y, 4)
        tasks.append({"task": task, "op": op, "y": y, "baselines": base})
    return tasks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher-run", type=Path, help="the stage runs (without them, their rows are carried over)")
    p.add_argument("--decoder-run", type=Path)
    p.add_argument("--grow-runs", type=Path, nargs="*", default=[])
    p.add_argument("--test-latents", type=Path)
    p.add_argument("--encode-log", type=Path, help="stderr of the train-split encode (holds its wall time)")
    p.add_argument("--colour-run", type=Path, help="the 'train colour' run of the model's colour network")
    p.add_argument("--model", default="photo", help="the exported model folder (or name) the solvers use")
    p.add_argument("--out", type=Path, default=Path("docs/photo.md"))
    p.add_argument("--card", type=Path, default=Path("docs/models/photo.md"))
    p.add_argument("--skip-large", action="store_true", help="skip the 1024x768 -> 4096x3072 run")
    args = p.parse_args()
    command = "python benchmarks/photo.py " + " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {' '.join(map(str, v)) if isinstance(v, list) else v}")
        for k, v in vars(args).items()
        if v not in (None, [], False)
    )
    torch.manual_seed(0)
    model = load_model(args.model)
    G = model.decoder
    data = DataConfig(**model.config["data"])
    rows: list[tuple[str, str]] = []
    crops, _ = load_images(data, "test")
    null = model.null_condition(len(crops))
    latent_shape = (model.channels, model.teacher_resolution, model.teacher_resolution)

    earlier_command, earlier = None, []
    if args.teacher_run is None:  # the stage rows of the run that measured them, said as such
        earlier_command, earlier = earlier_rows(args.out)
    else:
        # Training wall times, from the run logs.
        stages = [("teacher (16x16)", args.teacher_run), ("decoder G at 16x16", args.decoder_run)]
        stages += [(f"grow stage {i + 1} (to {16 * 2 ** (i + 1)}x{16 * 2 ** (i + 1)})", r) for i, r in enumerate(args.grow_runs)]  # fmt: skip
        stages += [("colour network (64x64)", args.colour_run)] if args.colour_run else []
        for name, run in stages:
            rows.append((f"training time: {name}", f"{run_seconds(run) / 60:.1f} min"))
        if args.encode_log and args.encode_log.is_file():
            m = re.search(r"encoded split 'train' in ([\d.]+) s", args.encode_log.read_text())
            if m:
                rows.append(("encoding time: train latents (PF-ODE)", f"{float(m.group(1)) / 60:.1f} min"))
        # Held-out crops: each stage's reconstruction from the cached PF-ODE latents.
        cache, manifest = load_latent_cache(args.test_latents)
        idx = torch.arange(len(cache["index"]))
        z, x, c = pair_batch(cache, crops, null, model.bank.null_embedding, idx)
        low = F.avg_pool2d(x, data.factor)
        steps = manifest["config"]["num_steps"]
        for run in [args.decoder_run, *args.grow_runs]:
            G_stage = load_model(run / "decoder").decoder
            res = G_stage.net.config.out_resolution
            target = F.adaptive_avg_pool2d(x, res)
            reference = (
                F.interpolate(low, size=res, mode="bicubic", align_corners=False) if res > low.shape[-1] else None
            )
            decoded = batched(G_stage, z, c, size=128)
            rows.append(
                (
                    f"G {res}x{res}: PSNR of G(PF-ODE latent, {2 * (steps - 1)} NFE) vs the {res}x{res} test crop",
                    f"{psnr(decoded, target):.2f} dB"
                    + ("" if reference is None else f" (bicubic from 16x16: {psnr(reference, target):.2f} dB)"),
                )
            )
            if reference is not None:  # both made consistent with the 16x16 crop by the solvers' data-consistency step
                op = make_operator("downsample_area", factor=res // low.shape[-1])
                rows.append(
                    (
                        f"G {res}x{res} + data consistency with the 16x16 crop",
                        f"{psnr(data_consistency(op, decoded, low), target):.2f} dB "
                        f"(bicubic + data consistency: {psnr(data_consistency(op, reference, low), target):.2f} dB)",
                    )
                )
    noise = torch.randn(256, *latent_shape, generator=torch.Generator().manual_seed(0))
    G(noise[:8] * G.sigma_max, null[:8])
    _, t_g = timed(lambda: batched(lambda a, b: G(a * G.sigma_max, b), noise, null[:256], size=64))
    rows.append(("one-step G throughput at 64x64 (batches of 64)", f"{256 / t_g:.0f} img/s"))
    if model.colour is not None:
        gray = gray_copy(crops)
        rows.append(
            (
                f"colour network: PSNR of C(gray copy) vs the {len(crops)} 64x64 test crops",
                f"{psnr(batched(model.colour, gray, size=128), crops):.2f} dB (gray copy: {psnr(gray, crops):.2f} dB)",
            )
        )
    rows += settings_rows(model, data)

    # Held-out whole photos, solved in tiles with the model's settings (the solver the CLI picks per task).
    photo_rows, colour_rows = [], []
    panels: dict[str, list[torch.Tensor]] = {}
    deblur_panels: dict[str, list[torch.Tensor]] = {}
    color_panels: dict[str, list[torch.Tensor]] = {}
    sample_panels: dict[str, list[torch.Tensor]] = {}
    crop = lambda t: centre_crop(t.clamp(-1, 1), 96)  # noqa: E731
    for name, x in whole_photos().items():
        shape = tuple(x.shape[1:])
        for t in photo_tasks(model, x):
            task, op, y = t["task"], t["op"], t["y"]
            solver = default_solver(model, op)
            start = time.perf_counter()
            res = solve_tiled(solver, model, op, y, seed=0)
            seconds = time.perf_counter() - start
            single = solve_tiled(solver, model, op, y, seed=0, samples=1).samples[0]  # one sample, not a mean
            cells = " | ".join(f"{b} {psnr(e.clamp(-1, 1), x):.2f}" for b, e in t["baselines"].items())
            first = next(iter(t["baselines"].values()))
            base_dc = psnr(data_consistency(op, first, y).clamp(-1, 1), x) if task == "superres x4" else None
            photo_rows.append(
                f"| {name} | {shape[2]}x{shape[1]} | {task} | {cells} | "
                + (f"{base_dc:.2f}" if base_dc is not None else "-")
                + f" | {solver} | {psnr(single.clamp(-1, 1), x):.2f} | {psnr(res.estimate.clamp(-1, 1), x):.2f} | "
                f"{float((op.A(res.estimate) - y).abs().max()):.1e} | {res.info['tiles']} | {seconds:.1f} |"
            )
            if task == "superres x4":
                for label, e in [("observation", F.interpolate(y, scale_factor=4, mode="nearest")),
                                 *t["baselines"].items(), (f"{solver} (tiled)", res.estimate), ("truth", x)]:  # fmt: skip
                    panels.setdefault(label, []).append(crop(e))
            elif task == "deblur":
                for label, e in [("observation", y), *t["baselines"].items(), (f"{solver} (tiled)", res.estimate),
                                 ("truth", x)]:  # fmt: skip
                    deblur_panels.setdefault(label, []).append(crop(e))
            else:
                base = t["baselines"]["gray"]
                net = None
                if model.colour is not None:
                    start = time.perf_counter()
                    net = solve_tiled("colour_net", model, op, y, seed=0).estimate
                    colour_rows.append(
                        f"| {name} | {shape[2]}x{shape[1]} | {psnr(base, x):.2f} | {psnr(res.estimate, x):.2f} | "
                        f"{psnr(net, x):.2f} | {psnr(net, x) - psnr(base, x):+.2f} | "
                        f"{float((op.A(net) - y).abs().max()):.1e} | {time.perf_counter() - start:.1f} |"
                    )
                for label, e in [("grayscale input", base), (f"{solver} (tiled)", res.estimate),
                                 ("colour_net (tiled)", net), ("truth", x)]:  # fmt: skip
                    if e is not None:
                        color_panels.setdefault(label, []).append(crop(e))
                if solver == "one_step":  # the posterior samples beside their mean and the colour network
                    for k, sample in enumerate(res.samples[:4, 0]):
                        sample_panels.setdefault(f"sample {k + 1}", []).append(crop(sample[None]))
                    sample_panels.setdefault(f"mean of {len(res.samples)}", []).append(crop(res.estimate))
    img = args.out.parent / "img"
    img.mkdir(parents=True, exist_ok=True)
    save_panels({k: torch.cat(v) for k, v in panels.items()}, img / "photo-superres.png", cell=2.2)
    save_panels({k: torch.cat(v) for k, v in deblur_panels.items()}, img / "photo-deblur.png", cell=2.2)
    save_panels({k: torch.cat(v) for k, v in color_panels.items()}, img / "photo-colorize.png", cell=2.2)
    if sample_panels:
        sample_panels["truth"] = color_panels["truth"]
        save_panels({k: torch.cat(v) for k, v in sample_panels.items()}, img / "photo-colorize-samples.png", cell=2.2)
    grid_noise = torch.randn(16, *latent_shape, generator=torch.Generator().manual_seed(1))
    save_panels({"one-step samples": G(grid_noise * G.sigma_max, null[:16]).clamp(-1, 1)}, img / "photo-samples.png")

    large = None
    if not args.skip_large:
        with tempfile.TemporaryDirectory() as tmp:
            large = large_photo_run(str(args.model), Path(tmp))

    table_md = rows_table(rows)
    posterior_table = encoder_table(model)
    per_family = model.solver_defaults.get("families", {})
    described = lambda solver: ", ".join(  # noqa: E731
        [f"{k}={v}" for k, v in model.solver_defaults.get(solver, {}).items()]
        + [f"{family} {k}={v}" for family, settings in per_family.items() for k, v in settings.get(solver, {}).items()]
    )
    families = ", ".join(model.posteriors) or "none"
    earlier_md = (
        [
            EARLIER,
            "",
            "The training stages before the posterior encoders and G's reconstructions, as measured by",
            "(their run folders are not beside the model, so this run carries these rows over unchanged):",
            "",
            "```",
            earlier_command,
            "```",
            "",
            *rows_table(earlier),
            "",
        ]  # fmt: skip
        if earlier
        else []
    )
    page = [
        *page_head("The photo model: measured figures", command),
        *table_md,
        "",
        "## Held-out photos, solved in tiles",
        "",
        "Whole test photos (never cropped for training; the wallpapers area-downsampled x4): x4 super-resolution",
        "(noiseless area down-sampling), deblurring (Gaussian blur of std 2 px, 13x13, reflect padding, sigma_y 0.02",
        "in [-1, 1] units) and colorization (rec601 luma). Each task runs the solver `pagoda-inv solve` picks:",
        f"`one_step` where the model has a posterior encoder for the task's family ({families}; one pass of the",
        "encoder's trunk per tile and one of its heads and G per sample), else `encode_perturb` (samples around the",
        "encoding of the interpolated observation), both with the model's own settings (`solver_defaults.json`:",
        f"one_step {described('one_step')}; encode_perturb {described('encode_perturb')}), as the CLI does.",
        "64x64 tiles, overlap 16, blended with a raised-cosine window, then one whole-image data-consistency step.",
        "PSNR in dB over the whole photo; consistency is max |A x - y| in [-1, 1] units. Baselines: bicubic and PIL's",
        "Lanczos up-sampling, scikit-image's Richardson-Lucy and Wiener deconvolution, the grayscale copy. The",
        "bicubic + DC column is bicubic pulled onto the measurements by the same data-consistency step as the PaGoDA",
        "solvers: what G adds beyond a consistent interpolation. `1 sample` is one posterior sample instead of the",
        "mean of the model's K; consistency, tiles and seconds are those of the model's settings. The samplers per",
        "family, the colour network's saturation and one_step's colorize shrink follow the measurements on whole",
        "training photos ([the photo model's choices](photo-choices.md)), the other settings on training crops (the",
        "rows above). Not blind: before those training-photo runs, the superres encoder, colour_net's saturation",
        "curve (s 1.2 to 0.4) and one_step's colorization without shrink were also run on these held-out photos, so",
        "their superres and colorize figures are not untouched ones.",
        "",
        "| photo | size | task | baselines | bicubic + DC | solver | 1 sample | model settings | consistency | "
        "tiles | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *photo_rows,
        "",
        "Centre crops (96x96) of the x4 super-resolution, one row per photo:",
        "",
        "![superres](img/photo-superres.png)",
        "",
        "Centre crops of the deblurring:",
        "",
        "![deblur](img/photo-deblur.png)",
        "",
        *(
            [
                "## Colorization by the colour network",
                "",
                "`colour_net` colorizes with the model's luma-to-colour network (`pagoda-inv train colour`: a U-Net",
                "regressing a crop's colour from its luma, so the posterior-mean colour), in one pass over the whole",
                "photo (larger photos than 768x768 go in 768 px tiles), its chroma scaled by the model's saturation",
                f"({described('colour_net') or 'none'}, chosen on training photos: [choices](photo-choices.md)), then",
                "the same consistency step (the measured luma replaces the estimate's). PSNR in dB over the whole",
                "photo; the gain is over the grayscale copy; consistency is max |A x - y|.",
                "",
                "| photo | size | gray copy | one_step, model settings | colour_net | gain | consistency | seconds |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |",
                *colour_rows,
                "",
            ]
            if colour_rows
            else []
        ),
        "Colorization, centre crops:",
        "",
        "![colorize](img/photo-colorize.png)",
        "",
        *(
            [
                "## Colour samples",
                "",
                "The model's posterior encoder for colorization (`posterior/colorize/`, `pagoda-inv train posterior",
                "--family colorize --preset photo`) maps the luma and fresh noise to a latent of G, so each sample is",
                "one pass of G per tile, then the consistency step: `pagoda-inv solve colorize --samples K` writes K",
                "colourings, their mean and the per-pixel std. Centre crops of the held-out photos' samples (the",
                "one_step runs of the table above; every tile draws its own noise):",
                "",
                "![colour samples](img/photo-colorize-samples.png)",
                "",
            ]
            if sample_panels
            else []
        ),
        "Unconditional one-step samples of G at 64x64:",
        "",
        "![samples](img/photo-samples.png)",
        "",
        *([POSTERIOR_HEADING, "", *posterior_table, ""] if posterior_table else []),
        *earlier_md,
    ]
    if large is not None:
        page += [
            "## A 1024x768 photo to 4096x3072",
            "",
            f"`{large['command']}` ({large['tiles']} tiles) took **{large['seconds']:.0f} s** wall time with a peak",
            f"resident memory of **{large['peak_rss_mb']:.0f} MB**; the output is {large['output']}. The model's "
            "settings say `precision=auto`: bf16 networks on a CPU that computes bfloat16 natively (AVX-512 BF16 or "
            "AMX; the same run took 170 s on such a 2-core machine on 2026-11-30), fp32 on one without (see the "
            "machine line above).",
            "",
        ]
    args.out.write_text("\n".join(page))
    perturb = model.solver_defaults.get("encode_perturb", {})
    card = [
        "# photo: unconditional PaGoDA on RGB photo crops (teacher 16x16, G grown to 64x64, colour network"
        + (f", posterior encoders: {', '.join(model.posteriors)})" if model.posteriors else ")"),
        "",
        "- Data: 64x64 multi-scale random crops (scales 1, 2, 4, 8 with area averaging; flips in training) of the",
        f"  {len(photo_sources('train'))} training photos listed by `pagoda-inv photos` (Debian `plasma-workspace-wallpapers`,",
        "  `lomiri-wallpapers-16.04` and `-20.04`, `opencv-doc`, scikit-image, scikit-learn; the author and licence",
        "  of each are in the manifest), each first shrunk to a longer side of at most 2560 px; 4 whole photos are",
        "  held out for testing.",
        "- Training: `scripts/train_photo.sh` on the 2-core CPU machine (the exact commands are in that script);",
        "  the weights here are its outputs stored as float16.",
        "- Solver settings shipped with the model (`solver_defaults.json`, applied beneath your own): one_step "
        f"{described('one_step')}; encode_perturb {described('encode_perturb')}.",
        f"  `pagoda-inv solve` picks one_step for the families with a posterior encoder ({families}), else",
        f"  encode_perturb, which encodes with the PF-ODE in {perturb.get('num_steps')} steps (those of G's training",
        f"  latents) and perturbs the encoding by eta {perturb.get('eta')} (the solver's default is 0.3); the table below",
        "  compares them with v1's settings on training crops, where they were chosen. There is no learned one-step",
        "  encoder: trained for v2, it reconstructed the test crops at 16.9 dB, far below the PF-ODE's latents.",
        "- Colorization: the colour network (`colour/`, `pagoda-inv train colour`) regresses a 64x64 crop's colour",
        "  from its luma with a squared error (the posterior-mean colour; solver `colour_net`). `pagoda-inv solve",
        "  colorize` uses one_step through `posterior/colorize/` (the mean of K colourings pulled toward the gray copy",
        "  by the model's colorize shrink, which scored above colour_net on the training photos); `--samples K`",
        "  also writes the K colourings.",
        "- Posterior encoders (`pagoda-inv train posterior --family F --preset photo`, energy score on G's",
        "  data-consistent samples): one_step draws a sample in one pass of the encoder's head and G per tile. Their",
        "  held-out scores are in the table below.",
        f"- Benchmark: `{command}` (full results: docs/photo.md)",
        "",
        *table_md,
        "",
        *([POSTERIOR_HEADING, "", *posterior_table, ""] if posterior_table else []),
        *earlier_md,
    ]
    args.card.parent.mkdir(parents=True, exist_ok=True)
    args.card.write_text("\n".join(card))
    print(json.dumps({"rows": dict(rows), "photos": photo_rows, "large": large}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
