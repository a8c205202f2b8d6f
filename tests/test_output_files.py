"""The files the CLI writes (issue 38, items 5-7): the normal mode whatever the writer, missing output folders
created, the format the suffix names, and super-resolution's observation at its true size (solvable again)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import cli_in_process
from PIL import Image

RES = 16  # the tiny model's resolution (conftest.tiny_model_dir)


def _modes(root: Path) -> dict[str, int]:
    """``{relative path: permission bits}`` of ``root`` and everything under it."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for p in root.rglob("*"):
        found[str(p.relative_to(root))] = stat.S_IMODE(p.stat().st_mode)
    return found


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_output_gets_the_normal_mode_in_folders_created_for_it(
    tmp_path, capsys, tiny_model_dir, fmnist_tiny, umask
):
    """Under umask 022 every file the CLI writes is 0644 and every folder 0755 (027: 0640 / 0750), not mkstemp's
    0600 or mkdtemp's 0700; output folders that do not exist yet are created (solve, generate, bench, export)."""
    try:
        from pagoda_inverse.interop.model_folder import write_model_folder
    except ImportError:  # before the converters moved to pagoda_inverse.interop
        from pagoda_inverse.core.convert import write_model_folder

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (RES, RES), np.uint8)).save(tmp_path / "x.png")
    out = tmp_path / "out"
    old = os.umask(umask)
    try:
        runs = [
            ["solve", "superres", "--input", tmp_path / "x.png", "--simulate", "--scale", "2", "--samples", "2",
             "--model", tiny_model_dir, "--output", out / "solve" / "deep" / "x.png", "--preview-scale", "2"],
            ["generate", "--model", tiny_model_dir, "--seeds", "0-1", "--out", out / "gen" / "grid.png",
             "--out-dir", out / "gen" / "each", "--tensor", out / "npy" / "x.npy"],
            ["generate", "--model", tiny_model_dir, "--seeds", "0", "--tensor", out / "st" / "x.safetensors"],
            ["bench", "--task", "superres_x4", "--limit", "2", "--solvers", "pinv", "--out", out / "bench" / "b",
             "--quiet"],
            ["export", "--out", out / "export" / "m", "--teacher", tiny_model_dir / "teacher", "--decoder",
             tiny_model_dir / "decoder", "--solver-defaults", '{"one_step": {"samples": 2}}'],
        ]  # fmt: skip
        for args in runs:
            result = cli_in_process(capsys, *args)
            assert result.returncode == 0, (args, result.stderr)
        write_model_folder(out / "convert", {"w": torch.zeros(1)}, {"adm": {}}, "card\n")  # mkdtemp, then renamed
    finally:
        os.umask(old)
    modes = _modes(out)
    for name in ("solve/deep/x-observed.png", "solve/deep/x-std-x2.png", "gen/each/000001.png", "npy/x.npy.json",
                 "st/x.safetensors", "bench/b/results.json", "export/m/decoder/model.safetensors",
                 "export/m/solver_defaults.json", "convert/teacher/model.safetensors", "convert/card.md"):  # fmt: skip
        assert name in modes
    normal = {name: (0o777 if (out / name).is_dir() else 0o666) & ~umask for name in modes}
    wrong = {name: oct(mode) for name, mode in modes.items() if mode != normal[name]}
    assert not wrong, wrong


def test_the_suffix_names_the_format(tmp_path, capsys, tiny_model_dir):
    """--output x.jpg writes JPEG (its samples, std map, observation and previews too), --out g.webp lossless WebP."""
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (RES, RES), np.uint8)).save(tmp_path / "x.png")
    args = ["solve", "denoise", "--input", tmp_path / "x.png", "--simulate", "--samples", "2", "--model",
            tiny_model_dir, "--output", tmp_path / "o.jpg", "--preview-scale", "2"]  # fmt: skip
    assert cli_in_process(capsys, *args).returncode == 0
    written = sorted(p.name for p in tmp_path.glob("o*"))
    assert written == sorted(f"o{s}{x}.jpg" for s in ("", "-samples", "-std", "-observed") for x in ("", "-x2"))
    assert {Image.open(tmp_path / name).format for name in written} == {"JPEG"}
    common = ["generate", "--model", tiny_model_dir, "--seeds", "0-3"]
    assert cli_in_process(capsys, *common, "--out", tmp_path / "g.webp", "--preview-scale", "2").returncode == 0
    assert cli_in_process(capsys, *common, "--out", tmp_path / "g.png").returncode == 0
    webp, png = Image.open(tmp_path / "g.webp"), Image.open(tmp_path / "g.png")
    assert webp.format == "WEBP" and Image.open(tmp_path / "g-x2.webp").format == "WEBP"
    assert np.array_equal(np.asarray(webp.convert("L")), np.asarray(png))  # lossless: the same pixels as the PNG


def test_superres_observation_is_saved_at_its_true_size_and_solves_again(tmp_path, capsys, tiny_model_dir):
    clean = np.random.default_rng(0).integers(0, 255, (RES, RES), np.uint8)
    Image.fromarray(clean).save(tmp_path / "x.png")
    args = ["solve", "superres", "--input", tmp_path / "x.png", "--simulate", "--scale", "2", "--sigma-y", "0",
            "--model", tiny_model_dir, "--output", tmp_path / "o.png", "--preview-scale", "3"]  # fmt: skip
    assert cli_in_process(capsys, *args).returncode == 0
    observed = np.asarray(Image.open(tmp_path / "o-observed.png"), dtype=np.float64)
    assert observed.shape == (RES // 2, RES // 2) and Image.open(tmp_path / "o-observed-x3.png").size == (24, 24)
    area = clean.astype(np.float64).reshape(RES // 2, 2, RES // 2, 2).mean((1, 3))  # the area down-sampling
    assert np.abs(observed - area).max() <= 0.5 + 1e-6
    again = ["solve", "superres", "--input", tmp_path / "o-observed.png", "--scale", "2", "--model", tiny_model_dir,
             "--output", tmp_path / "again.png"]  # fmt: skip
    assert cli_in_process(capsys, *again).returncode == 0
    assert Image.open(tmp_path / "again.png").size == (RES, RES)
