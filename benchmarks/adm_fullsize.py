"""The full-size ImageNet-64 ADM (guided-diffusion's ``64x64_diffusion.pt`` architecture, ~296M parameters) on the CPU:
save -> convert -> load -> one denoiser call, each stage's wall time and peak memory.

Each stage runs in a fresh process, so its peak resident memory (``ru_maxrss``) is its own:

1. ``save``: build the network with random weights and ``torch.save`` its state dict, as guided-diffusion's files are;
2. ``convert``: ``convert_guided_diffusion`` (``torch.load(weights_only=True)``, preset matched from the shapes,
   SHA-256, safetensors written);
3. ``load``: ``load_adm_teacher`` on the converted folder;
4. ``denoise``: one ``D(x, sigma, label)`` call on a ``[B, 3, 64, 64]`` batch (after loading).

Usage::

    python benchmarks/adm_fullsize.py [--batch 1] [--threads N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def stage(name: str, folder: Path, batch: int) -> dict:
    """Run one stage in this process; returns its measurements."""
    import torch

    from pagoda_inverse.interop.adm_presets import get_preset
    from pagoda_inverse.nets.adm import ADM

    pt, out = folder / "64x64_diffusion.pt", folder / "imagenet64"
    t0 = time.perf_counter()
    info: dict = {}
    if name == "save":
        torch.manual_seed(0)
        net = ADM(get_preset("imagenet64-cond").config)
        with torch.no_grad():  # the zero-initialised output convs get weights too, so D is not trivial
            for p in net.parameters():
                if p.dim() > 1 and not p.any():
                    p.normal_(0, 0.01)
        info["parameters"] = sum(p.numel() for p in net.parameters())
        torch.save(net.state_dict(), pt)
        info["file_mib"] = pt.stat().st_size / 2**20
    elif name == "convert":
        from pagoda_inverse.interop.guided_diffusion import convert_guided_diffusion

        convert_guided_diffusion(pt, out)
        info["safetensors_mib"] = (out / "teacher" / "model.safetensors").stat().st_size / 2**20
        info["card"] = (out / "card.md").read_text().splitlines()[0]
    elif name in ("load", "denoise"):
        from pagoda_inverse.core.adm_teacher import load_adm_teacher

        teacher = load_adm_teacher(out / "teacher")
        info["load_s"] = time.perf_counter() - t0
        if name == "denoise":
            x = torch.randn(batch, 3, 64, 64, generator=torch.Generator().manual_seed(0))
            labels = torch.nn.functional.one_hot(torch.arange(batch) % 1000, 1000).float()
            t1 = time.perf_counter()
            with torch.no_grad():
                d = teacher(x, torch.full((batch,), 1.0), labels)
            info["call_s"] = time.perf_counter() - t1
            info["finite"] = bool(torch.isfinite(d).all())
    info.update(stage=name, seconds=time.perf_counter() - t0, peak_mib=_peak_mib(), threads=torch.get_num_threads())
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--keep", type=Path, help="Keep the .pt and the converted folder here.")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:  # a child process: one stage, one JSON line
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(stage(args.stage, args.folder, args.batch)))
        return
    folder = Path(tempfile.mkdtemp(prefix="adm-fullsize-")) if args.keep is None else args.keep
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for name in ("save", "convert", "load", "denoise"):
            cmd = [sys.executable, __file__, "--stage", name, "--folder", str(folder), "--batch", str(args.batch),
                   "--threads", str(args.threads)]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            info = json.loads(done.stdout.strip().splitlines()[-1])
            extra = {k: v for k, v in info.items() if k not in ("stage", "seconds", "peak_mib")}
            print(f"{name:8s} {info['seconds']:7.1f} s   peak RSS {info['peak_mib']:7.0f} MiB   {extra}", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
