"""``pagoda-inv train``: every stage passes its options (its own and the shared ones) to the training run."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from cli_helpers import cli_in_process

from pagoda_inverse.cli import train as train_cli

SHARED = ("--preset", "smoke", "--runs", "R", "--steps", "3", "--batch-size", "4", "-q", "--device", "cpu")


@pytest.fixture
def calls(monkeypatch):
    """What ``_run_stage`` was called with, instead of training."""
    seen = []
    monkeypatch.setattr(train_cli, "_run_stage", lambda *args, **kw: seen.append((args, kw)))
    return seen


@pytest.mark.parametrize(
    ("args", "inputs", "overrides"),
    [
        (["teacher", "--data-root", "D", "--dataset", "F"], (), {"root": "D", "dataset": "F", "crops": None}),
        (["teacher", "--dataset", "F", "--crops", "500"], (), {"root": None, "dataset": "F", "crops": 500}),
        (["decoder", "--teacher", "T", "--latents", "L"], (Path("T"), Path("L")), {}),
        (["encoder", "--teacher", "T", "--latents", "L"], (Path("T"), Path("L")), {}),
        (["guidance", "--teacher", "T"], (Path("T"),), {}),
        (["classifier", "--data-root", "D"], (), {"root": "D"}),
        (["colour"], (), {}),
        (
            ["posterior", "--family", "inpaint"],
            (),
            {"family": "inpaint", "model": None, "init": None, "consistency": None, "trainable": None},
        ),
        (
            ["posterior", "--family", "denoise", "--consistency", "fixed", "--trainable", "all"],
            (),
            {"family": "denoise", "model": None, "init": None, "consistency": "fixed", "trainable": "all"},
        ),
    ],
)
def test_each_stage_runs_with_its_options(capsys, calls, args, inputs, overrides):
    done = cli_in_process(capsys, "train", *args, *SHARED)
    assert done.returncode == 0, done.stderr
    [(positional, keywords)] = calls
    kind, preset, runs, resume, quiet, train, got_inputs, dry_run, device = positional
    assert (kind, preset, runs, resume, quiet, dry_run, device) == (args[0], "smoke", Path("R"), None, True, False,
                                                                    "cpu")  # fmt: skip
    assert train.__name__.startswith("train_") and got_inputs == inputs
    assert keywords == {**overrides, "steps": 3, "batch_size": 4}


def test_grow_passes_its_width_and_the_dry_run(capsys, calls):
    args = ["grow", "--decoder", "G", "--teacher", "T", "--latents", "L", "--width", "64", "--dry-run"]
    assert cli_in_process(capsys, "train", *args).returncode == 0
    [(positional, keywords)] = calls
    assert positional[:5] == ("grow", "fmnist", Path("runs"), None, False)
    train, inputs, dry_run, device = positional[5:]
    assert isinstance(train, partial) and train.keywords == {"width": 64} and train.func.__name__ == "grow_decoder"
    assert inputs == (Path("G"), Path("T"), Path("L")) and dry_run is True and device is None
    assert keywords == {"steps": None, "batch_size": None}


def test_the_colour_stage_defaults_to_the_photo_preset_and_the_teacher_has_no_dry_run(capsys, calls):
    assert cli_in_process(capsys, "train", "colour").returncode == 0
    assert calls[0][0][1] == "photo"
    assert cli_in_process(capsys, "train", "teacher", "--dry-run").returncode == 2
