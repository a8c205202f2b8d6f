"""A shared check for single-network training stages: a run killed mid-way resumes to the weights of an
uninterrupted one."""

from pathlib import Path

import pytest
import torch

from pagoda_inverse.core.checkpoint import load_checkpoint


def check_crash_and_resume(train, cfg, tmp_path: Path, crash_step: int = 5) -> dict:
    """Train ``cfg`` once through, and once killed during ``crash_step`` then resumed (the smoke presets checkpoint
    every 3 steps); both must give the same weights. Returns the full run's checkpoint ``config.json``."""
    (tmp_path / "full").mkdir()
    full = train(cfg, tmp_path / "full")
    part = tmp_path / "part"
    part.mkdir()

    def crash(info):
        if info["step"] == crash_step:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, part, callback=crash)
    assert not (part / full.name).exists()  # no checkpoint folder from the killed run
    resumed = train(cfg, part)
    assert "start step 3" in (part / "log.txt").read_text()  # continued from the checkpoint, not from scratch
    a, config = load_checkpoint(full)
    b, _ = load_checkpoint(resumed)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    return config
