"""One-step generation throughput of the shipped models on one device (samples per second at a given batch size).

Two numbers per model and guidance scale: ``generate()`` end to end (the per-seed noise drawn on the CPU, moved, G,
clamped, as ``pagoda-inv generate`` does it) and the network pass alone (G, plus the guidance map when guided, on
noise already on the device). Each is the best of ``--repeats`` timings of ``--batches`` batches after two warm-up
batches, timed to the end of the device work. Usage::

    python benchmarks/throughput.py --device cuda --batch 256 --models fmnist photo --json runs/throughput.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from pagoda_inverse.control.generate import generate
from pagoda_inverse.core.generator import one_step
from pagoda_inverse.core.model import load_model
from pagoda_inverse.utils.device import resolve_device, synchronize


def best_seconds(fn, device: torch.device, batches: int, repeats: int) -> float:
    """The fastest of ``repeats`` wall-clock timings of ``batches`` calls of ``fn`` (after two warm-up calls)."""
    for _ in range(2):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


@torch.no_grad()
def measure(name: str, device: torch.device, batch: int, batches: int, repeats: int) -> list[dict]:
    """Rows ``{model, cfg, batch, generate_per_s, network_per_s}`` for CFG 1 and the model's default (if any)."""
    model = load_model(name).to(device)
    scales = sorted({1.0, float(model.generation_defaults.get("cfg_scale", 1.0))}) if model.conditional else [1.0]
    cond = model.class_condition(torch.arange(batch) % 10) if model.conditional else model.null_condition(batch)
    shape = (batch, model.channels, model.teacher_resolution, model.teacher_resolution)
    z = torch.randn(shape, device=device) * model.decoder.sigma_max
    rows, seeds = [], list(range(batch))
    for w in scales:
        end_to_end = best_seconds(lambda w=w: generate(model, cond, seeds, cfg_scale=w, batch_size=batch), device,
                                  batches, repeats)  # fmt: skip
        network = best_seconds(lambda w=w: one_step(model, z, cond, cfg_scale=w), device, batches, repeats)
        rows.append({"model": name, "cfg": w, "batch": batch, "resolution": model.resolution,
                     "generate_per_s": batch * batches / end_to_end, "network_per_s": batch * batches / network})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["fmnist", "photo"])
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: $PAGODA_DEVICE, auto)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    device = resolve_device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# {where}, torch {torch.__version__}, {platform.machine()}")
    print("| model | output | CFG | batch | generate() samples/s | network only samples/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    rows = [row for name in args.models for row in measure(name, device, args.batch, args.batches, args.repeats)]
    for r in rows:
        print(f"| {r['model']} | {r['resolution']}x{r['resolution']} | {r['cfg']:g} | {r['batch']} | "
              f"{r['generate_per_s']:,.0f} | {r['network_per_s']:,.0f} |")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": where, "torch": torch.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
