"""Load test of the bench engine: peak memory against the number of images (it must stay flat).

Runs ``pagoda-inv bench --task denoise`` on a smoke-sized random-weight model (teacher 8x8, G and encoder at
16x16, as in the tests) for 1,000 ... 10,000 Fashion-MNIST test images, each size in a fresh process, and reads
the process's peak resident memory (``ru_maxrss``) and the engine overhead from ``results.json``. Writes
``docs/load.md``. Usage::

    python benchmarks/bench_load.py --sizes 1000 2500 5000 10000 --solvers pinv,one_step
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pagoda_inverse.core.random_model import write_random_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2500, 5000, 10000])
    parser.add_argument("--solvers", default="pinv,one_step")
    parser.add_argument("--out", type=Path, default=Path("docs/load.md"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = write_random_model(Path(tmp) / "smoke", channels=16, init_std=None)  # the smoke size
        for n in args.sizes:
            out = Path(tmp) / f"bench-{n}"
            cmd = ["pagoda-inv", "bench", "--task", "denoise", "--model", str(model), "--seeds", f"0-{n - 1}",
                   "--solvers", args.solvers, "--out", str(out), "-q"]  # fmt: skip
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pagoda_inverse.cli", *cmd[1:]], check=True)
            wall = time.perf_counter() - t0
            timing = json.loads((out / "results.json").read_text())["results"][0]["timing"]
            rows.append((n, timing["peak_memory_mb"], timing["total_seconds"], wall))
            print(
                f"{n} images: peak {timing['peak_memory_mb']:.0f} MB, run {timing['total_seconds']:.1f} s", flush=True
            )
    base = rows[0][1]
    lines = [
        "# Load: bench peak memory against image count",
        "",
        f"`python benchmarks/bench_load.py --sizes {' '.join(map(str, args.sizes))} --solvers {args.solvers}` on "
        f"{platform.machine()} with {torch.get_num_threads()} threads ({platform.node() and 'this machine'}); "
        "`pagoda-inv bench --task denoise` on a smoke-sized random-weight model (16x16), one fresh process per size. "
        "Peak memory is the process's peak resident set (`ru_maxrss`), which includes the Python interpreter, torch "
        "and the model.",
        "",
        "| images | peak memory (MB) | vs first row | bench run (s) | process wall (s) |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *[f"| {n} | {m:.0f} | {m - base:+.0f} MB | {t:.1f} | {w:.1f} |" for n, m, t, w in rows],
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
