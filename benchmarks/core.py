"""Measure the PaGoDA core on this machine; write docs/core.md (+ grids in docs/img/) and the model card.

Reports the training wall time of every stage (from the run logs), PF-ODE encoding throughput, the
encode -> teacher-decode round trip, the decoders' reconstruction PSNR on the test split's latents (8x8 G and the
grown G against the full-resolution test images, beside bicubic up-sampling of the 8x8 image), the learned
encoder's latent error and the PSNR of decoding through it, the guidance map's error on held-out seeds, and
one-step G vs teacher Heun sampling throughput measured in the same process. Usage (see scripts/train_fmnist.sh):

    python benchmarks/core.py --teacher-run runs/00000-teacher-fmnist --decoder-run runs/00001-decoder-fmnist \
        --grow-runs runs/00002-grow-fmnist runs/00003-grow-fmnist --encoder-run runs/00004-encoder-fmnist \
        --guidance-run runs/00019-guidance-fmnist --train-latents runs/latents-train --test-latents runs/latents-test \
        --encode-log runs/encode-train.log
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from solver_defaults import card_line, derive

from pagoda_inverse.bench.report import machine_description
from pagoda_inverse.core.encode import load_latent_cache
from pagoda_inverse.core.generator import generate_guided
from pagoda_inverse.core.model import load_model
from pagoda_inverse.core.ode import decode_heun, encode_heun, sample_heun
from pagoda_inverse.core.precond import guided_denoiser
from pagoda_inverse.train.config import DataConfig, from_dict
from pagoda_inverse.train.data import load_images
from pagoda_inverse.train.pairs import pair_batch
from pagoda_inverse.utils.images import save_grid
from pagoda_inverse.utils.seeding import randn_for_seeds


def run_seconds(run_dir: Path) -> float:
    """Wall time of a training run, summed over its sessions: each process stamps its log lines from its own start,
    so a resumed run's log restarts its clock; every session counts up to its last line (work redone after an
    interruption counts twice: it was spent)."""
    stamps = [
        float(m.group(1)) for m in re.finditer(r"^\[\s*([\d.]+)s\]", (Path(run_dir) / "log.txt").read_text(), re.M)
    ]
    return sum(t for t, after in zip(stamps, [*stamps[1:], 0.0], strict=True) if after < t)


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean per-image PSNR in dB for images in [-1, 1] (peak-to-peak 2)."""
    mse = (x.clamp(-1, 1) - y).pow(2).mean((1, 2, 3))
    return float((10 * torch.log10(4 / mse)).mean())


def batched(fn, *tensors, size: int = 500) -> torch.Tensor:
    return torch.cat([fn(*(t[i : i + size] for t in tensors)) for i in range(0, len(tensors[0]), size)])


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def rows_table(rows: list[tuple[str, str]]) -> list[str]:
    """A two-column markdown table of ``(quantity, value)`` rows."""
    return ["| quantity | value |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in rows]]


def page_head(title: str, command: str) -> list[str]:
    """The first lines of a measured-figures page: the title, this machine, and the command that printed it."""
    machine = f"{machine_description()}, {torch.get_num_threads()} torch threads"
    return [
        f"# {title}",
        "",
        f"Machine: the project's 2-core CPU machine ({machine}). Every number below was printed by:",
        "",
        "```",
        command,
        "```",
        "",
    ]


POSTERIOR_HEADING = "## Posterior encoders"

# Which held-out images a posterior encoder was scored on, by its training dataset ({n} images from index {start}).
HELDOUT_WORDING = {
    "fmnist": "{n} Fashion-MNIST test images from index {start} (the benchmarks use the first 256)",
    "photo": "{n} 64x64 test crops of the held-out photos from index {start}",
}


def _encoders(n: int) -> str:
    return "the encoder" if n == 1 else f"all {n} encoders"


def encoder_table(model) -> list[str]:
    """Markdown rows: each posterior encoder's training time and held-out scores (from its config.json), the total
    training time and which held-out images they were scored on."""
    lines = ["| family | training time | held-out operator (sigma_y 0.05) | mean-of-K PSNR | 1-sample PSNR | 90% coverage |",
             "| --- | ---: | --- | ---: | ---: | ---: |"]  # fmt: skip
    metrics, total, dataset = {}, 0.0, ""
    for family in model.posteriors:
        config = json.loads((model.path / "posterior" / family / "config.json").read_text())
        metrics, minutes = config["metrics"], (config.get("train_seconds") or float("nan")) / 60
        before = config.get("init", {})  # a fine-tuned encoder: the training of the checkpoint it started from
        earlier = before.get("train_seconds", 0.0) / 60
        dataset, total = config["train"]["data"]["dataset"], total + minutes + earlier
        time = f"{minutes:.1f} min ({from_dict('posterior', config['train']).loop.steps} steps)"
        if before:
            time = f"{earlier:.1f} + {time[:-1]} after {before['steps']})"
        for i, (label, s) in enumerate(metrics["heldout"].items()):
            head = f"{family} | {time}" if i == 0 else " | "
            lines.append(f"| {head} | {label} | {s['psnr_mean']:.2f} (K={metrics['eval_samples']}) | "
                         f"{s['psnr_one']:.2f} | {s['coverage90']:.3f} |")  # fmt: skip
    if not metrics:
        return []
    return lines + ["", f"Training time of {_encoders(len(model.posteriors))}: {total:.1f} min (each family's training "
                    "clock, without loading and the held-out scoring).", "",
                    "Held-out: " + HELDOUT_WORDING.get(dataset, "{n} test images from index {start}").format(
                        n=metrics["eval_images"], start=metrics["eval_first_test_index"])
                    + ", scored once at the end of training; nothing was tuned on them."]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher-run", type=Path, required=True)
    p.add_argument("--decoder-run", type=Path, required=True)
    p.add_argument("--grow-runs", type=Path, nargs="*", default=[])
    p.add_argument("--encoder-run", type=Path)
    p.add_argument("--guidance-run", type=Path, help="run folder of 'pagoda-inv train guidance'")
    p.add_argument("--train-latents", type=Path, required=True)
    p.add_argument("--test-latents", type=Path, required=True)
    p.add_argument("--encode-log", type=Path, help="stderr of the train-split encode (holds its wall time)")
    p.add_argument("--n", type=int, default=1000, help="test images for the encoding throughput and round trip")
    p.add_argument("--out", type=Path, default=Path("docs/core.md"))
    p.add_argument("--card", type=Path, default=Path("docs/models/fmnist.md"))
    args = p.parse_args()
    command = "python benchmarks/core.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items()
        if v not in (None, [])
    )

    model = load_model(args.teacher_run / "teacher")
    G8 = load_model(args.decoder_run / "decoder").decoder
    G = load_model(args.grow_runs[-1] / "decoder").decoder if args.grow_runs else G8
    E = load_model(args.encoder_run / "encoder").encoder if args.encoder_run else None
    M = load_model(args.guidance_run / "guidance").guidance if args.guidance_run else None
    data = DataConfig(**model.config["data"])
    rows: list[tuple[str, str]] = []

    # Training wall times, from the run logs.
    times = [("teacher (8x8, full train split)", args.teacher_run)]
    times += [("decoder G at 8x8", args.decoder_run)]
    times += [
        (f"grow stage {i + 1} (to {8 * 2 ** (i + 1)}x{8 * 2 ** (i + 1)})", r) for i, r in enumerate(args.grow_runs)
    ]
    times += [("learned encoder", args.encoder_run)] if args.encoder_run else []
    times += [("guidance map (pairs + regression)", args.guidance_run)] if args.guidance_run else []
    cache, manifest = load_latent_cache(args.train_latents)
    total = 0.0
    for name, run in times:
        seconds = run_seconds(run)
        total += seconds
        rows.append((f"training time: {name}", f"{seconds / 60:.1f} min"))
    if args.encode_log and args.encode_log.is_file():
        m = re.search(r"encoded split 'train' in ([\d.]+) s", args.encode_log.read_text())
        if m:
            total += float(m.group(1))
            rows.append(
                (f"encoding time: {manifest['num_latents']} train latents", f"{float(m.group(1)) / 60:.1f} min")
            )
    rows.append(("total training time, all stages", f"{total / 60:.1f} min"))

    # Encoding throughput and round trip on test images (same Heun grid both ways).
    images, labels = load_images(data, "test", limit=args.n)
    low = F.avg_pool2d(images, data.factor)
    cond = model.class_condition(labels)
    steps, clamp = manifest["config"]["num_steps"], manifest["config"]["clamp"]
    z, t_enc = timed(lambda: encode_heun(guided_denoiser(model.teacher, cond, clamp=clamp), low, steps))
    rows.append(
        (f"PF-ODE encoding throughput (Heun, {steps} points = {2 * (steps - 1)} NFE)", f"{len(low) / t_enc:.0f} img/s")
    )
    back = decode_heun(guided_denoiser(model.teacher, cond), z, steps)
    rows.append(
        (
            "round trip: teacher PF-ODE decode of the encoding vs the 8x8 image",
            f"RMSE {float((back - low).pow(2).mean().sqrt()):.4f} ([-1, 1] units), PSNR {psnr(back, low):.2f} dB",
        )
    )
    rows.append(("std of the cached train latents (ideal: sigma_max = 80)", f"{float(cache['latents'].std()):.1f}"))

    # Reconstruction from the test split's cached latents (pairs encoded under the class caption).
    test_cache, _ = load_latent_cache(args.test_latents)
    full, test_labels = load_images(data, "test")
    table = model.bank.conditions(test_labels)
    keep = torch.nonzero(~test_cache["null"]).flatten()
    zt, x8, ct = pair_batch(test_cache, F.avg_pool2d(full, data.factor), table, model.bank.null_embedding, keep)
    rec8 = batched(G8, zt, ct)
    rows.append((f"G 8x8: reconstruction PSNR vs the 8x8 test image ({len(zt)} latents)", f"{psnr(rec8, x8):.2f} dB"))
    pictures = {"decoder_reconstructions.png": torch.cat([x8[:10], rec8[:10]])}
    if args.grow_runs:
        _, xf, _ = pair_batch(test_cache, full, table, model.bank.null_embedding, keep)
        rec = batched(G, zt, ct)
        bicubic = F.interpolate(x8, size=full.shape[-1], mode="bicubic", align_corners=False)
        res = G.net.config.out_resolution
        rows.append(
            (
                f"grown G {res}x{res}: PSNR of G(encode(8x8 image)) vs the {res}x{res} test image",
                f"{psnr(rec, xf):.2f} dB",
            )
        )
        rows.append(
            (
                f"reference: bicubic up-sampling of the 8x8 image vs the {res}x{res} test image",
                f"{psnr(bicubic, xf):.2f} dB",
            )
        )
        pictures["superres_by_construction.png"] = torch.cat(
            [F.interpolate(x8[:10], size=res, mode="nearest"), bicubic[:10], rec[:10], xf[:10]]
        )
    if E is not None:
        z_learned = batched(E, x8, ct)
        rel = float((z_learned - zt).norm() / zt.norm())
        rows.append(("learned encoder: relative latent error norm(E(x) - z) / norm(z) on test", f"{rel:.3f}"))
        rec_e = batched(G, z_learned, ct)
        target = xf if args.grow_runs else x8
        rows.append(("decode PSNR through the learned encoder (1 NFE + 1 NFE)", f"{psnr(rec_e, target):.2f} dB"))
        rows.append(
            ("decode PSNR through the ODE encoder (34 NFE + 1 NFE)", f"{psnr(batched(G, zt, ct), target):.2f} dB")
        )

    if M is not None:
        # Held-out guidance pairs (seeds the training never drew), canonical class captions: how much of the
        # teacher's guided displacement z_w - z the map misses.
        gcfg = json.loads((args.guidance_run / "config.json").read_text())["config"]
        hz = 80 * randn_for_seeds(range(10**6, 10**6 + 1000), low.shape[1:])
        hc = model.class_condition(torch.arange(1000) % 10)
        for w in (2.0, 4.0):
            den = guided_denoiser(model.teacher, hc, model.bank.null_embedding, w)
            x_w = sample_heun(den, hz / 80, gcfg["num_steps"]).clamp(-1, 1)
            z_w = encode_heun(guided_denoiser(model.teacher, hc, clamp=True), x_w, gcfg["num_steps"])
            miss = float((batched(lambda a, b, w=w: M(a, b, w), hz, hc) - z_w).norm() / (z_w - hz).norm())
            name = f"guidance map, w = {w:g}: norm(M(z) - z_w) / norm(z_w - z), 1000 held-out seeds"
            rows.append((name, f"{miss:.3f}"))

    # Sampling throughput in this process: one-step G vs teacher Heun (18 points = 35 NFE).
    n = 512
    noise = torch.randn(n, *low.shape[1:], generator=torch.Generator().manual_seed(0))
    c = model.class_condition(torch.arange(n) % 10)
    G(noise[:8] * 80, c[:8])
    G8(noise[:8] * 80, c[:8])
    _, t_g8 = timed(lambda: batched(lambda a, b: G8(a * 80, b), noise, c, size=256))
    _, t_g = timed(lambda: batched(lambda a, b: G(a * 80, b), noise, c, size=256))
    _, t_h = timed(
        lambda: batched(lambda a, b: sample_heun(guided_denoiser(model.teacher, b), a, 18), noise, c, size=256)
    )
    res = G.net.config.out_resolution
    rows.append(("sampling throughput: one-step G at 8x8 (before growing)", f"{n / t_g8:.0f} img/s"))
    rows.append((f"sampling throughput: one-step G at {res}x{res}", f"{n / t_g:.0f} img/s"))
    rows.append(("sampling throughput: teacher Heun at 8x8, 18 points (35 NFE)", f"{n / t_h:.1f} img/s"))
    rows.append(("speed-up over teacher Heun (same run): G 8x8 / G grown", f"{t_h / t_g8:.0f}x / {t_h / t_g:.0f}x"))

    # Sample grids: 8 seeds (rows) x 10 classes (columns).
    grid_c = model.class_condition(torch.arange(10).repeat(8))
    grid_z = torch.randn(80, *low.shape[1:], generator=torch.Generator().manual_seed(1))
    null = model.bank.null_embedding
    pictures["teacher_heun_cfg2.png"] = sample_heun(guided_denoiser(model.teacher, grid_c, null, 2.0), grid_z, 18)
    pictures["decoder_8x8.png"] = G8(grid_z * 80, grid_c)
    pictures["decoder_onestep.png"] = G(grid_z * 80, grid_c)
    pictures["decoder_onestep_cfg2.png"] = generate_guided(G, grid_z * 80, grid_c, null, 2.0)
    if M is not None:
        guided_z = M(grid_z * 80, grid_c, 2.0)
        pictures["decoder_onestep_guided_cfg2.png"] = generate_guided(G, guided_z, grid_c, null, 2.0)
    (args.out.parent / "img").mkdir(parents=True, exist_ok=True)
    for name, x in pictures.items():
        save_grid(x.clamp(-1, 1), args.out.parent / "img" / name, nrow=10, scale=max(1, 64 // x.shape[-1]))

    table_md = rows_table(rows)
    page = [
        *page_head("PaGoDA core on Fashion-MNIST: measured figures", command),
        *table_md,
        "",
        "Teacher Heun samples at 8x8 (CFG 2); rows are seeds, columns classes 0-9:",
        "",
        "![teacher](img/teacher_heun_cfg2.png)",
        "",
        "One-step G at 8x8 from the same latents (CFG 1):",
        "",
        "![G8](img/decoder_8x8.png)",
        "",
        f"One-step G at {res}x{res} (CFG 1, then CFG 2):",
        "",
        "![G](img/decoder_onestep.png)",
        "",
        "![G cfg2](img/decoder_onestep_cfg2.png)",
        "",
        *(
            [
                "With the guidance map, CFG 2: `G_2(M(z, c, 2), c)`, the teacher's guided sample in one pass:",
                "",
                "![G guided](img/decoder_onestep_guided_cfg2.png)",
                "",
            ]
            if M is not None
            else []
        ),
        "Test images at 8x8 (top) and the 8x8 G's one-step reconstructions from their PF-ODE latents (bottom):",
        "",
        "![rec](img/decoder_reconstructions.png)",
        "",
    ]
    if "superres_by_construction.png" in pictures:
        page += [
            "Super-resolution by construction (rows: 8x8 input, bicubic, G(encode(input)), ground truth):",
            "",
            "![sr](img/superres_by_construction.png)",
            "",
        ]
    args.out.write_text("\n".join(page))
    card = [
        "# fmnist: PaGoDA on Fashion-MNIST (teacher 8x8, one-step G grown to 32x32, learned encoder, guidance map)",
        "",
        "- Data: Fashion-MNIST train split (60,000 images, Debian package `dataset-fashion-mnist`, MIT licence,",
        "  Zalando SE), 28 px padded to 32, area-downsampled x4 to 8x8 for the teacher; 10 classes; conditioning",
        "  on all-MiniLM-L6-v2 embeddings of template captions (10 train templates x 4 synonyms per class).",
        "- Training: `scripts/train_fmnist.sh` on the 2-core CPU machine (the exact commands are in that script);",
        "  the weights here are its outputs stored as float16.",
        card_line(derive("fmnist")),
        f"- Benchmark: `{command}`",
        "",
        *table_md,
        "",
    ]
    args.card.parent.mkdir(parents=True, exist_ok=True)
    args.card.write_text("\n".join(card))
    print(json.dumps(dict(rows), indent=2))


if __name__ == "__main__":
    main()
