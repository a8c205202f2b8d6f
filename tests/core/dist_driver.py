"""Run by ``torchrun`` in test_distributed.py: train the smoke teacher data-parallel, then probe the helpers.

Usage: torchrun --nproc-per-node 2 dist_driver.py RUN_DIR BANK_FILE OUT_DIR
Each rank writes ``OUT_DIR/rank{r}.json``: its slice of a global batch of 32 and whether the divergence check
catches a weight that differs on one rank.
"""

import json
import sys
from pathlib import Path

import torch


def main(run_dir: Path, bank_file: Path, out_dir: Path) -> None:
    from pagoda_inverse.core.checkpoint import load_tensors
    from pagoda_inverse.core.text import CaptionBank
    from pagoda_inverse.train.config import resolve
    from pagoda_inverse.train.distributed import exit_distributed, init_distributed
    from pagoda_inverse.train.teacher import train_teacher

    bank = CaptionBank.from_tensors(load_tensors(bank_file))
    train_teacher(resolve("teacher", "smoke"), run_dir, bank=bank)
    dist = init_distributed()
    probe = torch.nn.Linear(2, 2)
    dist.broadcast_(probe)
    dist.check_in_sync_(probe)  # identical after the broadcast: must pass
    if dist.rank == 1:
        probe.weight.data[0, 0] += 1e-3
    try:
        dist.check_in_sync_(probe)
        caught = False
    except RuntimeError:
        caught = True
    report = {"rank": dist.rank, "world": dist.world_size, "slice": dist.local(torch.arange(32)).tolist()}
    (out_dir / f"rank{dist.rank}.json").write_text(json.dumps(report | {"divergence_caught": caught}))
    exit_distributed(0)


if __name__ == "__main__":
    main(*map(Path, sys.argv[1:4]))
