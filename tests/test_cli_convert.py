"""``pagoda-inv convert``: a model folder on success; one error line, exit code 2 and nothing written on bad input."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from adm_helpers import TINY_FLAGS, tiny_adm
from cli_helpers import cli_in_process, one_line_error, run_cli
from edm_layout import Malicious


@pytest.fixture
def tiny(tmp_path):
    torch.save(tiny_adm().state_dict(), tmp_path / "tiny.pt")
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_FLAGS))
    return tmp_path / "tiny.pt", tmp_path / "tiny.json"


def _left(folder: Path) -> list[str]:
    """What a failed conversion left beside ``folder``: it and its temporary folders (nothing, expectedly)."""
    return [p.name for p in folder.parent.iterdir() if p.name == folder.name or p.name.startswith(f".{folder.name}.")]


def test_convert_writes_a_model_folder(capsys, tiny, tmp_path):
    pt, flags = tiny
    done = cli_in_process(
        capsys, "convert", "--from", "guided-diffusion", pt, "--config", flags, "--out", tmp_path / "m"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["card.md", "teacher"]
    assert sorted(p.name for p in (tmp_path / "m" / "teacher").iterdir()) == ["config.json", "model.safetensors"]


def _bad_inputs(tmp_path: Path, pt: Path, flags: Path) -> dict[str, tuple[list, str]]:
    """name -> (arguments, a needle of the one error line)."""
    torch.save({"weight": torch.zeros(2), "step": _Step()}, tmp_path / "objects.pt")
    (tmp_path / "cut.pt").write_bytes(pt.read_bytes()[:4000])
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Malicious(f"touch {tmp_path / 'pwned'}")))
    state = torch.load(pt, weights_only=True)
    state["foo.weight"] = state.pop("out.2.weight")
    torch.save(state, tmp_path / "foreign.pt")
    linear = torch.linspace(1e-4, 0.02, 1000).neg().add(1).cumprod(0).sqrt()  # deepinv DiffUNet's schedule buffer
    torch.save({**torch.load(pt, weights_only=True), "sqrt_alphas_cumprod": linear}, tmp_path / "diffunet.pt")
    gd = ["--from", "guided-diffusion"]
    return {
        "objects": ([*gd, tmp_path / "objects.pt"], "needs arbitrary objects unpickled"),
        "truncated": ([*gd, tmp_path / "cut.pt", "--config", flags], "truncated or corrupt"),
        "foreign": (
            [*gd, tmp_path / "foreign.pt", "--config", flags],
            "1 missing (out.2.weight); 1 unexpected (foo.weight)",
        ),
        "schedule buffers": ([*gd, tmp_path / "diffunet.pt", "--config", flags], "pass --schedule linear"),
        "disagreeing": ([*gd, pt, "--config", "imagenet64-cond"], "do not fit preset imagenet64-cond"),
        "no preset": ([*gd, pt], "its tensors match no preset"),
        "unknown preset": ([*gd, pt, "--config", "imagenet65"], "neither a preset"),
        "missing": ([*gd, tmp_path / "nope.pt"], "no such file"),
        "diffusers file": (["--from", "diffusers", pt, "--schedule", "linear"], "no such folder"),
        "edm foreign": (["--from", "edm", tmp_path / "evil.pkl"], "refusing to load the global posix.system"),
        "edm from pt": (["--from", "edm", pt], "a torch.save zip file, not an EDM pickle"),
    }


class _Step:
    """An object torch.load(weights_only=True) refuses to rebuild."""


def test_every_bad_input_is_one_line_exit_2_and_writes_nothing(capsys, tiny, tmp_path):
    pt, flags = tiny
    for name, (args, needle) in _bad_inputs(tmp_path, pt, flags).items():
        out = tmp_path / f"out-{name.replace(' ', '-')}"
        result = cli_in_process(capsys, "convert", *args, "--out", out)
        one_line_error(result, needle)
        assert _left(out) == [], name
    assert not (tmp_path / "pwned").exists()


def test_a_real_process_exits_2(tiny, tmp_path):
    pt, _ = tiny
    result = run_cli(
        "convert", "--from", "guided-diffusion", str(pt), "--config", "ffhq256", "--out", str(tmp_path / "m")
    )
    one_line_error(result, "do not fit preset ffhq256")
    assert _left(tmp_path / "m") == []


def test_config_is_only_for_guided_diffusion(capsys, tmp_path):
    result = cli_in_process(
        capsys, "convert", "--from", "diffusers", tmp_path, "--config", "ffhq256", "--out", tmp_path / "m"
    )
    assert result.returncode == 2 and "only --from guided-diffusion takes a configuration" in result.stderr
