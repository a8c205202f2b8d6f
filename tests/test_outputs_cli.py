"""What the CLI writes holds the data at its true size: solve's estimate, samples grid and std map, generate's grid,
one PNG per seed and the tensor file; enlargements for viewing are separate ``-xN`` files."""

import json

import numpy as np
import torch
from cli_helpers import cli_in_process
from PIL import Image
from safetensors import safe_open


def test_solve_writes_true_size_outputs_and_separate_previews(tmp_path, capsys):
    Image.fromarray((np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8)).save(tmp_path / "x.png")
    result = cli_in_process(capsys, "solve", "inpaint", "--input", tmp_path / "x.png", "--simulate", "--box",
                            "--samples", "3", "--output", tmp_path / "out.png", "--preview-scale", "4")  # fmt: skip
    assert result.returncode == 0, result.stderr
    sizes = {p.name: Image.open(p).size for p in tmp_path.glob("out*.png")}
    assert sizes["out.png"] == sizes["out-std.png"] == sizes["out-observed.png"] == (32, 32)
    assert sizes["out-x4.png"] == (128, 128) and sizes["out-samples-x4.png"][0] == 4 * sizes["out-samples.png"][0]


def test_generate_writes_a_grid_one_png_per_seed_and_a_tensor(tmp_path, capsys):
    args = ["generate", "--class", "9", "--seeds", "3-5", "--out", tmp_path / "grid.png", "--out-dir",
            tmp_path / "each", "--tensor", tmp_path / "x.safetensors", "--preview-scale", "2"]  # fmt: skip
    assert cli_in_process(capsys, *args).returncode == 0
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == ["000003.png", "000004.png", "000005.png"]
    with safe_open(str(tmp_path / "x.safetensors"), "pt") as f:
        x, meta = f.get_tensor("samples"), f.metadata()
    assert x.shape == (3, 1, 32, 32) and float(x.abs().max()) <= 1
    assert json.loads(meta["seeds"]) == [3, 4, 5] and json.loads(meta["class"]) == 9
    # The per-seed PNG is the tensor's sample, quantised to 8 bits; seed 4 alone gives the same image.
    png = np.asarray(Image.open(tmp_path / "each" / "000004.png"), dtype=np.float64) / 255 * 2 - 1
    assert np.abs(png - x[1, 0].numpy()).max() <= 1 / 255 + 1e-6
    assert (
        cli_in_process(capsys, "generate", "--class", "9", "--seeds", "4", "--tensor", tmp_path / "a.npy").returncode
        == 0
    )
    torch.testing.assert_close(torch.from_numpy(np.load(tmp_path / "a.npy"))[0], x[1], rtol=0, atol=1e-5)
    assert json.loads((tmp_path / "a.npy.json").read_text())["seeds"] == [4]
    assert Image.open(tmp_path / "grid-x2.png").size[0] == 2 * Image.open(tmp_path / "grid.png").size[0]


def test_generate_prompt_says_which_class_it_read(tmp_path, capsys, text_encoder):
    # "jeans" names class 1 in the training captions; the phrase bank votes too. --raw-prompt matches nothing.
    # A recognised prompt conditions exactly as --class does; the raw embedding does not.
    run = cli_in_process(capsys, "generate", "--prompt", "my old jeans", "--seeds", "0", "--out", tmp_path / "a.png")
    assert run.returncode == 0 and "prompt read as 'Trouser'" in " ".join(run.stderr.split())
    assert (
        cli_in_process(capsys, "generate", "--class", "1", "--seeds", "0", "--out", tmp_path / "c.png").returncode == 0
    )
    args = ["generate", "--prompt", "my old jeans", "--raw-prompt", "--seeds", "0", "--out", tmp_path / "b.png"]
    run = cli_in_process(capsys, *args)
    assert run.returncode == 0 and "prompt read as" not in " ".join(run.stderr.split())
    a, b, c = (np.asarray(Image.open(tmp_path / f"{n}.png")) for n in "abc")
    assert np.array_equal(a, c) and not np.array_equal(a, b)
