"""Data-parallel training: rank slices, a real 2-rank torchrun job (gloo on CPU) vs a single process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_helpers import one_line_error, run_cli

from pagoda_inverse.core.checkpoint import load_checkpoint, save_tensors
from pagoda_inverse.train.config import resolve, to_dict
from pagoda_inverse.train.distributed import Distributed
from pagoda_inverse.train.state import write_config
from pagoda_inverse.train.teacher import train_teacher
from pagoda_inverse.utils.errors import UserError

DRIVER = Path(__file__).with_name("dist_driver.py")


def test_rank_slices_partition_the_global_batch():
    batch = torch.arange(12)
    slices = [Distributed(rank=r, world_size=3).local(batch) for r in range(3)]
    assert [len(s) for s in slices] == [4, 4, 4]
    assert torch.equal(torch.cat(slices), batch)
    assert Distributed(rank=2, world_size=3).check_batch(12) == 4
    with pytest.raises(UserError, match="world size 5 does not divide the batch size 12"):
        Distributed(rank=0, world_size=5).check_batch(12)


def test_device_and_backend_follow_pagoda_device(monkeypatch):
    from pagoda_inverse.train.distributed import training_device

    monkeypatch.setenv("PAGODA_DEVICE", "cpu")
    assert training_device(1) == torch.device("cpu") and Distributed.from_env().backend == "gloo"
    monkeypatch.setenv("PAGODA_DEVICE", "tpu")
    with pytest.raises(UserError, match="use auto, cpu, cuda or cuda:N"):
        training_device()
    # A GPU rank uses its local GPU and nccl (the selection only: this machine has no GPU to train on).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("PAGODA_DEVICE", "auto")
    monkeypatch.setenv("LOCAL_RANK", "1")
    dist = Distributed.from_env()
    assert dist.device == torch.device("cuda", 1) and dist.backend == "nccl"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training_device(1) == torch.device("cpu")
    monkeypatch.setenv("PAGODA_DEVICE", "cuda")
    with pytest.raises(UserError, match="no CUDA device"):
        training_device()
    # A training function's device= (train --device) wins over the environment when joining the job too.
    from pagoda_inverse.train.distributed import init_distributed

    assert init_distributed("cpu").device == torch.device("cpu")


def test_world_size_that_does_not_divide_the_batch_is_refused_before_any_output(tmp_path, fmnist_tiny):
    result = run_cli("train", "teacher", "--preset", "smoke", "--runs", str(tmp_path / "runs"), "-q",
                     env={"WORLD_SIZE": "3", "RANK": "0"})  # fmt: skip
    one_line_error(result, "world size 3 does not divide the batch size 32")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_torchrun_two_ranks_follow_the_single_process_run(tmp_path, fmnist_tiny, caption_bank):
    cfg = resolve("teacher", "smoke")
    save_tensors(tmp_path / "bank.safetensors", caption_bank.to_tensors())
    runs = {}
    for name in ("single", "ranks2"):
        runs[name] = tmp_path / name
        runs[name].mkdir()
        write_config(runs[name], "teacher", to_dict(cfg))
    train_teacher(cfg, runs["single"], bank=caption_bank)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(DRIVER)]
    result = subprocess.run(
        [*cmd, str(runs["ranks2"]), str(tmp_path / "bank.safetensors"), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    # Each rank took its own half of the global batch; a weight differing on one rank is caught.
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in reports] == [2, 2]
    assert reports[0]["slice"] == list(range(16)) and reports[1]["slice"] == list(range(16, 32))
    assert all(r["divergence_caught"] for r in reports)
    # Rank 0 alone logged and wrote the checkpoint; the weights stayed in sync at every checkpoint (checked in
    # the loop) and match the single-process run up to summation order.
    assert "2 rank(s)" in (runs["ranks2"] / "log.txt").read_text()
    single, _ = load_checkpoint(runs["single"] / "teacher")
    multi, _ = load_checkpoint(runs["ranks2"] / "teacher")
    assert single.keys() == multi.keys()
    worst = max((single[k] - multi[k]).abs().max().item() for k in single)
    print("max |single - 2 ranks| weight difference", worst)
    assert worst < 1e-3, worst


def test_explicit_device_names_and_their_errors(monkeypatch):
    from pagoda_inverse.utils.device import resolve_device

    monkeypatch.setenv("PAGODA_DEVICE", "cuda")  # an explicit name wins over the environment
    assert resolve_device("cpu") == torch.device("cpu")
    for bad in ("gpu", "cpu:0", "cuda:x"):
        with pytest.raises(UserError, match=r"--device=.*use auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1) and resolve_device("auto", 3) == torch.device("cuda", 1)
    with pytest.raises(UserError, match=r"sees 2 CUDA device\(s\), cuda:0 .. cuda:1"):
        resolve_device("cuda:2")


def test_device_option_without_a_gpu_is_a_one_line_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_cli(
        "generate", "--class", "9", "--seeds", "0-1", "--out", str(tmp_path / "g.png"), "--device", "cuda"
    )
    one_line_error(result, "--device='cuda' but torch sees no CUDA device")
    assert not (tmp_path / "g.png").exists()
