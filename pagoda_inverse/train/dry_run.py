"""``--dry-run`` of a training stage: build it at full size, run two steps at a tiny batch on the CPU, keep nothing.

What a researcher runs before renting a GPU for a large preset (e.g. ``imagenet64``): every network of the stage is
built from the real inputs (the teacher, the latent cache, the decoder to grow) at the preset's architecture and
resolution, two optimisation steps and the final checkpoint write run, then the temporary run folder is deleted.
"""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pagoda_inverse.core.checkpoint import load_checkpoint
from pagoda_inverse.core.parts import output_resolution
from pagoda_inverse.train.config import configure


def dry_run(train: Callable, cfg, inputs=(), *, steps: int = 2, batch_size: int = 2, **kwargs) -> dict:
    """Run ``train(cfg', run_dir, *inputs, **kwargs)`` with ``cfg' = cfg`` at ``steps`` steps and ``batch_size`` on
    the CPU in a temporary run folder, and delete the folder.

    :return: ``{"seconds", "peak_rss_mib", "kind", "parameters", "resolution"}``: wall time, this process's peak
        resident memory so far, and the saved part's kind, parameter count and output resolution.
    """
    small = configure(cfg, steps=steps, batch_size=batch_size, checkpoint_every=steps, log_every=1)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pagoda-dry-run-") as tmp:
        out = Path(train(small, Path(tmp), *inputs, device="cpu", **kwargs))
        tensors, config = load_checkpoint(out)
    seconds = time.perf_counter() - start
    parameters = sum(t.numel() for k, t in tensors.items() if k.startswith("net."))
    resolution = output_resolution(config)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"seconds": seconds, "peak_rss_mib": peak, "kind": config.get("kind"), "parameters": parameters,
            "resolution": resolution}  # fmt: skip
