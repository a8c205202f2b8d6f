"""Measure the ``photo`` model on this machine; write docs/photo.md (+ pictures in docs/img/) and the model card.

- training wall time of every stage (from the run logs and the encode log);
- on the held-out test crops (64x64, never patches of training photos): G's reconstruction PSNR from the cached
  PF-ODE latents, beside bicubic up-sampling of the 16x16 crop; G throughput;
- on the held-out whole photos (datasets/photos.py, the wallpapers area-downsampled x4 to 640x400): x4
  super-resolution (noiseless area down-sampling) and colorization (rec601 luma), solved in overlapping tiles with
  ``one_step`` (and, for colorization, the colour network's ``colour_net``), against bicubic / the grayscale copy:
  PSNR and measurement consistency, and side-by-side crops;
- a 1024x768 photo super-resolved x4 to 4096x3072 through ``pagoda-inv solve superres``: wall time and peak RSS.

Usage (see scripts/train_photo.sh):

    python benchmarks/photo.py --teacher-run runs/00008-teacher-photo --decoder-run runs/00009-decoder-photo \
        --grow-runs runs/00010-grow-photo runs/00011-grow-photo \
        --test-latents runs/photo-latents-test --encode-log runs/photo-encode-train.log \
        --colour-run runs/00020-colour-photo --posterior-runs runs/00021-posterior-photo --model MODEL_DIR
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

import torch
import torch.nn.functional as F
from core import POSTERIOR_HEADING, batched, encoder_table, page_head, psnr, rows_table, run_seconds, timed
from PIL import Image

from pagoda_inverse.core.encode import load_latent_cache
from pagoda_inverse.core.model import load_model
from pagoda_inverse.datasets.photos import load_photo, photo_sources, shrink_to
from pagoda_inverse.ops import make_operator
from pagoda_inverse.ops.consistency import data_consistency
from pagoda_inverse.solvers import solve
from pagoda_inverse.solvers.tiled import solve_tiled
from pagoda_inverse.train.colour import gray_copy
from pagoda_inverse.train.config import DataConfig
from pagoda_inverse.train.data import load_images
from pagoda_inverse.train.pairs import pair_batch
from pagoda_inverse.utils.images import save_panels


def held_out_photos(max_side: int = 640) -> dict[str, torch.Tensor]:
    """The test photos as ``[1, 3, H, W]`` in [-1, 1]: area-downsampled by an integer factor until the longer side is
    at most ``max_side``, then cropped to multiples of 4 (for x4 super-resolution)."""
    out = {}
    for source in photo_sources("test"):
        x = shrink_to(load_photo(source)[None].float() / 127.5 - 1, max_side)
        h, w = (s - s % 4 for s in x.shape[-2:])
        out[Path(source.name).stem] = x[..., :h, :w]
    return out


def run_family(run: Path) -> str:
    """The operator family of a ``train posterior`` run folder."""
    return json.loads((run / "config.json").read_text())["config"]["family"]


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
    """x4 super-resolution (area, noiseless) of ``images`` training crops by ``one_step`` with the model's settings
    and with v1's (18 PF-ODE steps, 4 samples, eta 0.3, fp32): PSNR and time. Training data, like the crops the
    settings were chosen on."""
    x = load_images(data, "train", limit=4096)[0][:: 4096 // images][:images].float()
    op = make_operator("downsample_area", factor=4, shape=tuple(x.shape[1:]))
    y = op(x)
    rows = []
    v1 = {"num_steps": 18, "samples": 4, "eta": 0.3, "precision": "fp32"}
    for label, settings in [("the model's settings", {}), ("v1's settings (18 steps, 4 samples, eta 0.3, fp32)", v1)]:
        res, seconds = timed(
            lambda s=settings: solve("one_step", model, op, y, generator=torch.Generator().manual_seed(0), **s)
        )
        rows.append((f"one_step on {images} training crops (x4 super-resolution), {label}",
                     f"{psnr(res.estimate.clamp(-1, 1), x):.2f} dB in {seconds:.1f} s ({res.info['nfe']} NFE)"))  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher-run", type=Path, required=True)
    p.add_argument("--decoder-run", type=Path, required=True)
    p.add_argument("--grow-runs", type=Path, nargs="+", required=True)
    p.add_argument("--test-latents", type=Path, required=True)
    p.add_argument("--encode-log", type=Path, help="stderr of the train-split encode (holds its wall time)")
    p.add_argument("--colour-run", type=Path, help="the 'train colour' run of the model's colour network")
    p.add_argument("--posterior-runs", type=Path, nargs="*", default=[], help="the model's 'train posterior' runs")
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

    # Training wall times, from the run logs.
    stages = [("teacher (16x16)", args.teacher_run), ("decoder G at 16x16", args.decoder_run)]
    stages += [(f"grow stage {i + 1} (to {16 * 2 ** (i + 1)}x{16 * 2 ** (i + 1)})", r) for i, r in enumerate(args.grow_runs)]  # fmt: skip
    stages += [("colour network (64x64)", args.colour_run)] if args.colour_run else []
    stages += [(f"posterior encoder, {run_family(r)}", r) for r in args.posterior_runs]
    total = 0.0
    for name, run in stages:
        total += run_seconds(run)
        rows.append((f"training time: {name}", f"{run_seconds(run) / 60:.1f} min"))
    if args.encode_log and args.encode_log.is_file():
        m = re.search(r"encoded split 'train' in ([\d.]+) s", args.encode_log.read_text())
        if m:
            total += float(m.group(1))
            rows.append(("encoding time: train latents (PF-ODE)", f"{float(m.group(1)) / 60:.1f} min"))
    rows.append(("total training time, all stages", f"{total / 60:.1f} min"))

    # Held-out crops: each stage's reconstruction from the cached PF-ODE latents.
    cache, manifest = load_latent_cache(args.test_latents)
    crops, labels = load_images(data, "test")
    null = model.null_condition(len(crops))
    idx = torch.arange(len(cache["index"]))
    z, x, c = pair_batch(cache, crops, null, model.bank.null_embedding, idx)
    low = F.avg_pool2d(x, data.factor)
    steps = manifest["config"]["num_steps"]
    for run in [args.decoder_run, *args.grow_runs]:
        G_stage = load_model(run / "decoder").decoder
        res = G_stage.net.config.out_resolution
        target = F.adaptive_avg_pool2d(x, res)
        reference = F.interpolate(low, size=res, mode="bicubic", align_corners=False) if res > low.shape[-1] else None
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
    noise = torch.randn(256, *z.shape[1:], generator=torch.Generator().manual_seed(0))
    G(noise[:8] * G.sigma_max, c[:8])
    _, t_g = timed(lambda: batched(lambda a, b: G(a * G.sigma_max, b), noise, c[:256], size=64))
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
    q = model.posteriors.get("colorize")

    # Held-out whole photos, solved in tiles.
    photo_rows, colour_rows = [], []
    panels = {"observation": [], "baseline": [], "PaGoDA one_step (tiled)": [], "truth": []}
    color_panels = {"grayscale input": [], "PaGoDA one_step (tiled)": [], "colour_net (tiled)": [], "truth": []}
    sample_panels: dict[str, list[torch.Tensor]] = {}
    for name, x in held_out_photos().items():
        shape = tuple(x.shape[1:])
        for task, operator, params, baseline in [
            ("superres x4", "downsample_area", {"factor": 4}, "bicubic"),
            ("colorize", "colorize", {}, "gray"),
        ]:
            op = make_operator(operator, shape=shape, seeds=[0], **params)
            y = op(x)
            base = solve(baseline, model, op, y).estimate
            base_dc = data_consistency(op, base, y)
            start = time.perf_counter()
            res = solve_tiled("one_step", model, op, y, seed=0)
            seconds = time.perf_counter() - start
            consistency = float((op.A(res.estimate) - y).abs().max())
            single = solve_tiled("one_step", model, op, y, seed=0, samples=1).estimate  # one sample, not a mean
            if task == "colorize" and model.colour is not None:
                start = time.perf_counter()
                net = solve_tiled("colour_net", model, op, y, seed=0).estimate
                colour_rows.append(
                    f"| {name} | {shape[2]}x{shape[1]} | {psnr(base, x):.2f} | {psnr(res.estimate, x):.2f} | "
                    f"{psnr(net, x):.2f} | {psnr(net, x) - psnr(base, x):+.2f} | "
                    f"{float((op.A(net) - y).abs().max()):.1e} | {time.perf_counter() - start:.1f} |"
                )
                color_panels["colour_net (tiled)"].append(centre_crop(net.clamp(-1, 1), 96))
            if task == "colorize" and q is not None:  # the posterior samples beside their mean and the colour network
                for k, sample in enumerate(res.samples[:4, 0]):
                    sample_panels.setdefault(f"sample {k + 1}", []).append(centre_crop(sample[None].clamp(-1, 1), 96))
                sample_panels.setdefault(f"mean of {len(res.samples)}", []).append(
                    centre_crop(res.estimate.clamp(-1, 1), 96)
                )
            photo_rows.append(
                f"| {name} | {shape[2]}x{shape[1]} | {task} | {psnr(base, x):.2f} ({baseline}) | {psnr(base_dc, x):.2f} | "
                f"{psnr(single.clamp(-1, 1), x):.2f} | {psnr(res.estimate.clamp(-1, 1), x):.2f} | {consistency:.1e} | "
                f"{res.info['tiles']} | {seconds:.1f} |"
            )
            crop = lambda t: centre_crop(t, 96)  # noqa: E731
            if task == "colorize":
                color_panels["grayscale input"].append(crop(base))
                color_panels["PaGoDA one_step (tiled)"].append(crop(res.estimate.clamp(-1, 1)))
                color_panels["truth"].append(crop(x))
            else:
                panels["observation"].append(crop(F.interpolate(y, scale_factor=4, mode="nearest")))
                panels["baseline"].append(crop(base.clamp(-1, 1)))
                panels["PaGoDA one_step (tiled)"].append(crop(res.estimate.clamp(-1, 1)))
                panels["truth"].append(crop(x))
    img = args.out.parent / "img"
    img.mkdir(parents=True, exist_ok=True)
    panels["bicubic"] = panels.pop("baseline")
    order = ["observation", "bicubic", "PaGoDA one_step (tiled)", "truth"]
    save_panels({k: torch.cat(panels[k]) for k in order}, img / "photo-superres.png", cell=2.2)
    save_panels({k: torch.cat(v) for k, v in color_panels.items() if v}, img / "photo-colorize.png", cell=2.2)
    if sample_panels:
        sample_panels["truth"] = color_panels["truth"]
        save_panels({k: torch.cat(v) for k, v in sample_panels.items()}, img / "photo-colorize-samples.png", cell=2.2)
    grid_noise = torch.randn(16, *z.shape[1:], generator=torch.Generator().manual_seed(1))
    save_panels({"one-step samples": G(grid_noise * G.sigma_max, null[:16]).clamp(-1, 1)}, img / "photo-samples.png")

    large = None
    if not args.skip_large:
        with tempfile.TemporaryDirectory() as tmp:
            large = large_photo_run(str(args.model), Path(tmp))

    table_md = rows_table(rows)
    families = ", ".join(f"`posterior/{f}/`" for f in model.posteriors)
    posterior_table = encoder_table(model)
    one = model.solver_defaults.get("one_step", {})  # the model's one_step settings (train_photo.sh sets them)
    settings = ", ".join(f"{k}={v}" for k, v in one.items()) or "none"
    page = [
        *page_head("The photo model: measured figures", command),
        *table_md,
        "",
        "## Held-out photos, solved in tiles",
        "",
        "Whole test photos (never cropped for training; the wallpapers area-downsampled x4), noiseless measurements.",
        f"`one_step` runs with the model's own settings (`solver_defaults.json`: {settings}), as the CLI does.",
        *(
            [
                f"Where the model has a posterior encoder for the task's family ({families}), one_step draws its samples",
                "through it (one pass of the encoder and of G per sample and tile); elsewhere it samples around the",
                "encoding of the interpolated observation.",
            ]
            if model.posteriors
            else []
        ),  # fmt: skip
        "64x64 tiles, overlap 16, blended with a raised-cosine window, then one whole-image data-consistency step.",
        "PSNR in dB over the whole photo; consistency is max |A x - y| in [-1, 1] units. The baseline + DC column is",
        "the baseline pulled onto the measurements by the same data-consistency step as the PaGoDA solvers (for",
        "colorization the grayscale copy already meets them): what G adds beyond a consistent interpolation.",
        "",
        "The `one_step, 1 sample` column is one posterior sample instead of the mean of the model's K; consistency,",
        "tiles and seconds are those of the model's settings.",
        "",
        "| photo | size | task | baseline PSNR | baseline + DC PSNR | one_step, 1 sample | one_step, model settings | "
        "consistency | tiles | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *photo_rows,
        "",
        "Centre crops (96x96) of the x4 super-resolution, one row per photo:",
        "",
        "![superres](img/photo-superres.png)",
        "",
        *(
            [
                "## Colorization by the colour network",
                "",
                "`colour_net` colorizes with the model's luma-to-colour network (`pagoda-inv train colour`: a U-Net",
                "regressing a crop's colour from its luma, so the posterior-mean colour), in one pass over the whole",
                "photo (larger photos than 768x768 go in 768 px tiles), then the same consistency step (the measured",
                "luma replaces the estimate's). PSNR in dB over the whole photo; the gain is over the grayscale copy;",
                "consistency is max |A x - y|.",
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
    ]
    if large is not None:
        page += [
            "## A 1024x768 photo to 4096x3072",
            "",
            f"`{large['command']}` ({large['tiles']} tiles) took **{large['seconds']:.0f} s** wall time with a peak",
            f"resident memory of **{large['peak_rss_mb']:.0f} MB**; the output is {large['output']}.",
            "",
        ]
    args.out.write_text("\n".join(page))
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
        f"- Solver settings shipped with the model (`solver_defaults.json`, applied beneath your own): one_step {settings}.",
        f"  Where it has no posterior encoder for the task, one_step encodes with the PF-ODE in {one['num_steps']} steps (those of",
        f"  G's training latents), perturbs the encoding by eta {one['eta']} (the solver's default is 0.3), averages {one['samples']} samples",
        f"  and runs its networks in {one['precision']}; the table below compares them with v1's settings on training crops, where",
        "  they were chosen. There is no learned one-step encoder: trained for v2, it reconstructed the test crops at",
        "  16.9 dB, far below the PF-ODE's latents, and was dropped. The time of the 4096x3072 run (made from a held-out",
        f"  photo) was looked at when choosing {one['samples']} samples; its output was not.",
        "- Colorization: the colour network (`colour/`, `pagoda-inv train colour`) regresses a 64x64 crop's colour",
        "  from its luma with a squared error (the posterior-mean colour); `pagoda-inv solve colorize` uses it",
        "  (solver `colour_net`) by default.",
        *(
            [
                "- Colour samples: the posterior encoder `posterior/colorize/` (`pagoda-inv train posterior --family",
                "  colorize --preset photo`, energy score on G's data-consistent samples) makes `one_step` draw",
                "  colourings in one pass: `pagoda-inv solve colorize --samples K` writes K of them, their mean and the",
                "  per-pixel std. Its held-out scores are in the table below.",
            ]
            if q is not None
            else [
                "  G's own samples (`one_step`, no posterior encoder) give diverse but less accurate colours.",
            ]
        ),
        f"- Benchmark: `{command}` (full results: docs/photo.md)",
        "",
        *table_md,
        "",
        *([POSTERIOR_HEADING, "", *posterior_table, ""] if posterior_table else []),
    ]
    args.card.parent.mkdir(parents=True, exist_ok=True)
    args.card.write_text("\n".join(card))
    print(json.dumps({"rows": dict(rows), "photos": photo_rows, "large": large}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
