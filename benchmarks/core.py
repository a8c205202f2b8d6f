"""Measure the PaGoDA core on this machine and write docs/core.md (+ sample grids under docs/img/).

Reports: training wall time of each stage (from the run logs), PF-ODE encoding throughput, the encode -> teacher
decode round-trip RMSE, the decoder's reconstruction PSNR on the test split's latents, and one-step G vs teacher
Heun sampling throughput in the same process.

    python benchmarks/core.py --teacher-run runs/00000-teacher-fmnist --train-latents runs/latents-train \
        --test-latents runs/latents-test --decoder-run runs/00002-decoder-fmnist
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

import torch

from pagoda_inverse.core.encode import load_latent_cache
from pagoda_inverse.core.model import load_model
from pagoda_inverse.core.ode import decode_heun, encode_heun, sample_heun
from pagoda_inverse.core.precond import guided_denoiser
from pagoda_inverse.train.config import DataConfig
from pagoda_inverse.train.data import load_images
from pagoda_inverse.train.decoder import pair_batch
from pagoda_inverse.utils.images import save_grid


def run_seconds(run_dir: Path) -> float:
    """Wall time of a training run: the time stamp of the last line of its log."""
    last = (Path(run_dir) / "log.txt").read_text().strip().splitlines()[-1]
    return float(re.match(r"\[\s*([\d.]+)s\]", last).group(1))


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for images in [-1, 1] (peak-to-peak 2)."""
    mse = (x.clamp(-1, 1) - y).pow(2).mean((1, 2, 3))
    return 10 * torch.log10(4 / mse)


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher-run", type=Path, required=True)
    p.add_argument("--decoder-run", type=Path, required=True)
    p.add_argument("--train-latents", type=Path, required=True)
    p.add_argument("--test-latents", type=Path, required=True)
    p.add_argument(
        "--encode-log", type=Path, help="file holding the 'encoded split ... in N s' line of the train split"
    )
    p.add_argument("--n", type=int, default=1000, help="test images for throughput / round trip")
    p.add_argument("--out", type=Path, default=Path("docs/core.md"))
    args = p.parse_args()

    model = load_model(args.teacher_run / "teacher")
    G = load_model(args.decoder_run / "decoder").generator
    data = DataConfig(**model.config["data"])
    images, labels = load_images(data, "test", limit=args.n)
    low = torch.nn.functional.avg_pool2d(images, data.factor)
    cond = model.class_condition(labels)
    rows: list[tuple[str, str]] = []

    # Training wall times, from the run logs.
    rows.append(("teacher training (full train split)", f"{run_seconds(args.teacher_run) / 60:.1f} min"))
    rows.append(("decoder training", f"{run_seconds(args.decoder_run) / 60:.1f} min"))
    cache, manifest = load_latent_cache(args.train_latents)
    if args.encode_log and args.encode_log.is_file():
        m = re.search(r"encoded split 'train' in ([\d.]+) s", args.encode_log.read_text())
        if m:
            rows.append((f"encoding {manifest['num_latents']} train latents", f"{float(m.group(1)) / 60:.1f} min"))

    # Encoding throughput and round trip on test images (same Heun grid both ways).
    steps = manifest["config"]["num_steps"]
    den = guided_denoiser(model.teacher, cond, clamp=manifest["config"]["clamp"])
    z, t_enc = timed(encode_heun, den, low, steps)
    rows.append(
        (f"PF-ODE encoding throughput (Heun, {steps} points, {2 * (steps - 1)} NFE)", f"{len(low) / t_enc:.0f} img/s")
    )
    back = decode_heun(guided_denoiser(model.teacher, cond), z, steps)
    rmse = float((back - low).pow(2).mean().sqrt())
    rows.append(("round trip: teacher decode of the encoding vs the 8x8 image", f"RMSE {rmse:.4f} ([-1,1] units)"))
    rows.append(("latent std (ideal: sigma_max = 80)", f"{float(cache['latents'].std()):.1f}"))

    # Decoder reconstruction PSNR on the test split's latents (one pass of G).
    test_cache, _ = load_latent_cache(args.test_latents)
    test_images, test_labels = load_images(data, "test")
    targets = torch.nn.functional.avg_pool2d(test_images, data.resolution // G.net.config.out_resolution)
    table = model.class_condition(test_labels)
    keep = torch.nonzero(~test_cache["null"]).flatten()
    zt, xt, ct = pair_batch(test_cache, targets, table, model.bank.null_embedding, keep)
    rec = torch.cat([G(zt[i : i + 500], ct[i : i + 500]) for i in range(0, len(zt), 500)])
    rows.append((f"decoder reconstruction PSNR, {len(zt)} test latents", f"{float(psnr(rec, xt).mean()):.2f} dB"))

    # Sampling throughput, same process: one-step G vs teacher Heun (18 points, 35 NFE).
    n = 512
    noise = torch.randn(n, *low.shape[1:], generator=torch.Generator().manual_seed(0))
    c = model.class_condition(torch.arange(n) % 10)
    G(noise[:8] * 80, c[:8])
    _, t_g = timed(lambda: torch.cat([G(noise[i : i + 256] * 80, c[i : i + 256]) for i in range(0, n, 256)]))

    def heun():
        return torch.cat(
            [
                sample_heun(guided_denoiser(model.teacher, c[i : i + 256]), noise[i : i + 256], 18)
                for i in range(0, n, 256)
            ]
        )

    samples, t_h = timed(heun)
    rows.append(("sampling: one-step G", f"{n / t_g:.0f} img/s"))
    rows.append(("sampling: teacher Heun, 18 points (35 NFE)", f"{n / t_h:.1f} img/s"))
    rows.append(("speed-up of G over teacher Heun", f"{t_h / t_g:.0f}x"))

    # Pictures: teacher Heun (CFG 2) and one-step G (CFG 1 and 2), 8 seeds x 10 classes.
    args.out.parent.joinpath("img").mkdir(parents=True, exist_ok=True)
    grid_c = model.class_condition(torch.arange(10).repeat(8))
    grid_z = torch.randn(80, *low.shape[1:], generator=torch.Generator().manual_seed(1))
    from pagoda_inverse.core.generator import generate_guided

    pictures = {
        "teacher_heun_cfg2.png": sample_heun(
            guided_denoiser(model.teacher, grid_c, model.bank.null_embedding, 2.0), grid_z, 18
        ),
        "decoder_onestep.png": G(grid_z * 80, grid_c),
        "decoder_onestep_cfg2.png": generate_guided(G, grid_z * 80, grid_c, model.bank.null_embedding, 2.0),
        "decoder_reconstructions.png": torch.cat([xt[:10], rec[:10]]),
    }
    for name, x in pictures.items():
        save_grid(x.clamp(-1, 1), args.out.parent / "img" / name, nrow=10, scale=8)

    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    lines = [
        "# PaGoDA core on Fashion-MNIST: measured figures",
        "",
        f"Machine: {machine} (the 2-core CPU machine, no GPU). Written by:",
        "",
        "```",
        "python benchmarks/core.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "```",
        "",
        "| quantity | value |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in rows],
        "",
        "Teacher Heun samples (CFG 2), rows = seeds, columns = classes 0-9:",
        "",
        "![teacher](img/teacher_heun_cfg2.png)",
        "",
        "One-step decoder G (same latents, CFG 1), and with CFG 2:",
        "",
        "![G](img/decoder_onestep.png)",
        "",
        "![G cfg2](img/decoder_onestep_cfg2.png)",
        "",
        "Test images at 8x8 (top) and G's one-step reconstructions from their PF-ODE latents (bottom):",
        "",
        "![rec](img/decoder_reconstructions.png)",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(json.dumps(dict(rows), indent=2))


if __name__ == "__main__":
    main()
