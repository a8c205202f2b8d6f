"""Throughput of the operators' A, A_adjoint and A_dagger beside deepinv's equivalent, in the same run.

Writes the table (with the machine and the command) into docs/ops.md between the BENCHMARK markers, and prints it.

    python benchmarks/ops.py                      # 64 images of 3x256x256, as in the issue
    python benchmarks/ops.py --batch 8 --only gaussian_blur,downsample_area --out /tmp/ops.md

Both sides get the same inputs, the same parameters (kernels, masks) and, where neither has a closed form
``A_dagger``, the same number of conjugate-gradient iterations (``--cg-iters``, tolerance 0 so both run them all).
Speed-up = deepinv time / our time (> 1: we are faster). Each time is the best of ``--repeat`` runs after a warm-up;
ours and deepinv's runs are interleaved so that load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

import torch

from pagoda_inverse.ops import make_operator

START, END = "<!-- BENCHMARK:START -->", "<!-- BENCHMARK:END -->"


def deepinv_cases(batch: int, size: int, cg_iters: int) -> list[tuple[str, object, object, str]]:
    """(name, ours, deepinv physics, note) for every operator with a deepinv equivalent."""
    import deepinv as dinv

    shape = (3, size, size)
    seeds = list(range(batch))
    out = []

    op = make_operator("gaussian_blur", shape, sigma=3.0, size=61, padding="reflect")
    out.append(
        (
            "gaussian_blur (61, sigma 3, reflect)",
            op,
            dinv.physics.Blur(filter=op.kernel.float(), padding="reflect"),
            f"A_dagger: CG {cg_iters} it.",
        )
    )
    op = make_operator("gaussian_blur_circular", shape, sigma=3.0, size=61)
    out.append(
        (
            "gaussian_blur_circular (61, sigma 3)",
            op,
            dinv.physics.BlurFFT(img_size=shape, filter=op.kernel.float()),
            "both closed-form FFT",
        )
    )
    op = make_operator("motion_blur", shape, batch=batch, seeds=seeds)
    out.append(
        (
            "motion_blur (61, intensity 0.5, reflect, per image)",
            op,
            dinv.physics.Blur(filter=op.kernel.float(), padding="reflect"),
            f"A_dagger: CG {cg_iters} it.",
        )
    )
    op = make_operator("downsample_area", shape, factor=4)
    out.append(
        (
            "downsample_area x4",
            op,
            dinv.physics.Downsampling(filter=torch.ones(1, 1, 4, 4) / 16, factor=4, padding="valid"),
            f"ours closed form, deepinv CG {cg_iters} it.",
        )
    )
    op = make_operator("downsample_bicubic", shape, factor=4)
    out.append(
        (
            "downsample_bicubic x4 (MATLAB)",
            op,
            dinv.physics.DownsamplingMatlab(factor=4),
            f"ours closed form; deepinv adjoint by autograd, CG {cg_iters} it.",
        )
    )
    op = make_operator("inpaint_box", shape, batch=batch, seeds=seeds)
    out.append(
        (
            "inpaint_box (per image)",
            op,
            dinv.physics.Inpainting(img_size=shape, mask=op.mask.float()),
            "both closed form",
        )
    )
    op = make_operator("inpaint_random", shape, batch=batch, seeds=seeds, drop=0.7)
    out.append(
        (
            "inpaint_random drop 0.7 (per image)",
            op,
            dinv.physics.Inpainting(img_size=shape, mask=op.mask.float()),
            "both closed form",
        )
    )
    op = make_operator("colorize", shape)
    theirs = dinv.physics.Decolorize()
    out.append(("colorize (BT.601)", op, theirs, "both closed form"))
    return out


def timed(fn, sync) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def measure(f_ours, f_theirs, repeat: int, sync, slow: float = 2.0) -> tuple[float, float, int]:
    """Best times of ours and deepinv's, interleaved. The first run of each is a warm-up; when either takes more
    than ``slow`` seconds it is kept as the only measurement (warm-up effects are negligible at that scale)."""
    first_ours, first_theirs = timed(f_ours, sync), timed(f_theirs, sync)
    if max(first_ours, first_theirs) > slow:
        return first_ours, first_theirs, 1
    t_ours, t_theirs = [], []
    for _ in range(repeat):
        t_ours.append(timed(f_ours, sync))
        t_theirs.append(timed(f_theirs, sync))
    return min(t_ours), min(t_theirs), repeat


def _calls(ours, theirs, x: torch.Tensor, cg_iters: int) -> dict:
    """method -> (our call, deepinv's call) on the same inputs."""
    y = ours.A(x)

    def their_dagger():
        if _decomposable(theirs):
            return theirs.A_dagger(y)
        return theirs.A_dagger(y, max_iter=cg_iters, tol=0.0)

    return {
        "A": (lambda: ours.A(x), lambda: theirs.A(x)),
        "A_adjoint": (lambda: ours.A_adjoint(y), lambda: theirs.A_adjoint(y)),
        "A_dagger": (lambda: ours.A_dagger(y, max_iter=cg_iters, tol=0.0), their_dagger),
    }


def bench(batch: int, size: int, repeat: int, cg_iters: int, device: str, only: set[str] | None) -> list[dict]:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, 3, size, size, generator=g) * 2 - 1).to(device)
    rows = []
    for name, ours, theirs, note in deepinv_cases(batch, size, cg_iters):
        if only and not any(name.startswith(o) for o in only):
            continue
        ours, theirs = ours.to(device), theirs.to(device)
        calls = _calls(ours, theirs, x, cg_iters)
        for method, (f_ours, f_theirs) in calls.items():
            with torch.no_grad():
                t_ours, t_theirs, runs = measure(f_ours, f_theirs, repeat, sync)
            rows.append(
                {
                    "operator": name,
                    "method": method,
                    "ours_s": t_ours,
                    "deepinv_s": t_theirs,
                    "runs": runs,
                    "note": note if method == "A_dagger" else "",
                }
            )
            print(
                f"{name:52s} {method:9s} ours {t_ours * 1e3:9.1f} ms  deepinv {t_theirs * 1e3:9.1f} ms  "
                f"x{t_theirs / t_ours:.2f}  ({runs} run(s))",
                flush=True,
            )
    return rows


def _decomposable(physics) -> bool:
    import deepinv as dinv

    return isinstance(physics, dinv.physics.DecomposablePhysics)


def machine() -> str:
    import deepinv
    import kornia

    from pagoda_inverse.bench.report import cpu_model

    cpu = cpu_model()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}; GPU: {gpu}; "
        f"Python {platform.python_version()}, torch {torch.__version__}, deepinv {deepinv.__version__}, "
        f"kornia {kornia.__version__}; {platform.system()} {platform.release()}"
    )


def markdown(rows: list[dict], args, command: str) -> str:
    lines = [
        START,
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} with `{command}`",
        "",
        f"Machine: {machine()}.",
        f"Input: {args.batch} images of 3x{args.size}x{args.size}, float32, device {args.device}; "
        f"best of {args.repeat} runs after a warm-up, ours and deepinv interleaved (calls over 2 s: one run, "
        f"no warm-up). Where neither side has a closed-form `A_dagger`, both run {args.cg_iters} CG iterations.",
        "",
        "| operator | method | ours (img/s) | deepinv (img/s) | speed-up | runs | note |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['operator']} | `{r['method']}` | {args.batch / r['ours_s']:,.1f} | "
            f"{args.batch / r['deepinv_s']:,.1f} | {r['deepinv_s'] / r['ours_s']:.2f}x | {r['runs']} | {r['note']} |"
        )
    lines += ["", "Speed-up = deepinv time / our time on the same batch (> 1: ours is faster).", END]
    return "\n".join(lines)


def write(path: Path, block: str) -> None:
    """Replace the BENCHMARK block of ``path`` (or append one); written atomically."""
    text = path.read_text() if path.exists() else "# Operators\n\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Benchmark\n\n" + block + "\n"
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64, help="images per batch (default 64)")
    p.add_argument("--size", type=int, default=256, help="image height = width (default 256)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per call; the best is kept (default 3)")
    p.add_argument("--cg-iters", type=int, default=5, help="CG iterations where A_dagger is iterative (default 5)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--only", default=None, help="comma-separated operator name prefixes")
    p.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "docs" / "ops.md",
        help="markdown file to update (default docs/ops.md); '-' to only print",
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    command = "python benchmarks/ops.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    rows = bench(
        args.batch,
        args.size,
        args.repeat,
        args.cg_iters,
        args.device,
        set(args.only.split(",")) if args.only else None,
    )
    block = markdown(rows, args, command.strip())
    print(block)
    if str(args.out) != "-":
        write(args.out, block)


if __name__ == "__main__":
    main()
