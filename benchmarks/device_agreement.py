"""Compare two training folders made by the same commands on two devices (e.g. CPU/gloo and CUDA/nccl).

Every ``model.safetensors`` of a run (teacher, decoder, grown decoder) and every latent-cache shard that exists
under both roots at the same relative path is compared tensor by tensor. Printed per file: the number of tensors,
the largest absolute difference, and the relative difference ``||a - b|| / ||a||`` over all its float tensors
together. Usage (``scripts/gpu_check.sh`` runs it)::

    python benchmarks/device_agreement.py runs-cpu runs-cuda --json agreement.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file


def compare_files(a: Path, b: Path) -> dict:
    """``{"tensors", "max_abs", "relative", "missing"}`` of two safetensors files (floats as float64)."""
    ta, tb = load_file(a), load_file(b)
    shared = sorted(set(ta) & set(tb))
    missing = sorted(set(ta) ^ set(tb))
    diff2 = norm2 = 0.0
    max_abs = 0.0
    for key in shared:
        x, y = ta[key], tb[key]
        if x.shape != y.shape:
            missing.append(f"{key} (shape {tuple(x.shape)} vs {tuple(y.shape)})")
            continue
        if not x.is_floating_point():
            max_abs = max(max_abs, float((x != y).any()))  # integer tensors (labels, indices) must be equal
            continue
        x, y = x.double(), y.double()
        max_abs = max(max_abs, float((x - y).abs().max()) if x.numel() else 0.0)
        diff2 += float((x - y).pow(2).sum())
        norm2 += float(x.pow(2).sum())
    return {"tensors": len(shared), "max_abs": max_abs, "relative": (diff2 / max(norm2, 1e-30)) ** 0.5,
            "missing": missing}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    files = sorted(
        p.relative_to(args.reference)
        for pattern in ("*/*/model.safetensors", "latents/*.safetensors")
        for p in args.reference.glob(pattern)
    )
    rows = {}
    print(f"| file ({args.reference} vs {args.other}) | tensors | max abs difference | relative difference |")
    print("| --- | ---: | ---: | ---: |")
    for rel in files:
        if not (args.other / rel).is_file():
            rows[str(rel)] = {"missing_in_other": True}
            print(f"| {rel} | missing in {args.other} | | |")
            continue
        r = rows[str(rel)] = compare_files(args.reference / rel, args.other / rel)
        note = f" (unmatched: {', '.join(r['missing'][:3])})" if r["missing"] else ""
        print(f"| {rel}{note} | {r['tensors']} | {r['max_abs']:.3g} | {r['relative']:.3g} |")
    if not files:
        print(f"no model.safetensors or latent shards under {args.reference}")
    if args.json:
        Path(args.json).write_text(json.dumps({"torch": torch.__version__, "files": rows}, indent=2))


if __name__ == "__main__":
    main()
