"""``pagoda-inv solve`` end to end on a random-weight model: outputs, sizes, and one-line errors."""

import numpy as np
import pytest
from cli_helpers import one_line_error, run_cli
from PIL import Image

from pagoda_inverse.utils.errors import UserError


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(tmp_path / "clean.png")
    Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(tmp_path / "small.png")
    return tmp_path


def test_superres_simulated_with_samples(images, tiny_model_dir):
    out = images / "sr.png"
    result = run_cli(
        "solve",
        "superres",
        "--input",
        str(images / "clean.png"),
        "--scale",
        "2",
        "--simulate",
        "--samples",
        "3",
        "--model",
        str(tiny_model_dir),
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "PSNR vs the clean input" in result.stderr and "works on 1-channel 16x16" in result.stderr
    for name in ("sr.png", "sr-samples.png", "sr-std.png", "sr-observed.png"):
        assert (images / name).is_file(), name
    # An existing output is refused without --overwrite.
    again = run_cli(
        "solve",
        "superres",
        "--input",
        str(images / "clean.png"),
        "--scale",
        "2",
        "--simulate",
        "--model",
        str(tiny_model_dir),
        "--output",
        str(out),
    )
    one_line_error(again, "exists; pass --overwrite")


def test_superres_observation_and_wrong_size(images, tiny_model_dir):
    ok = run_cli(
        "solve",
        "superres",
        "--input",
        str(images / "small.png"),
        "--scale",
        "2",
        "--solver",
        "encode_decode",
        "--model",
        str(tiny_model_dir),
    )
    assert ok.returncode == 0, ok.stderr
    assert (images / "small-superres.png").is_file()
    bad = run_cli(
        "solve",
        "superres",
        "--input",
        str(images / "clean.png"),
        "--scale",
        "2",
        "--model",
        str(tiny_model_dir),
        "--output",
        str(images / "bad.png"),
    )
    one_line_error(bad, "is 16x16 but the observation must be 8x8")
    assert not (images / "bad.png").exists()


def test_inpaint_options_and_bad_mask(images, tiny_model_dir):
    one_line_error(
        run_cli("solve", "inpaint", "--input", str(images / "clean.png"), "--model", str(tiny_model_dir)),
        "exactly one of",
    )
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(images / "mask.png")
    result = run_cli(
        "solve",
        "inpaint",
        "--input",
        str(images / "clean.png"),
        "--mask",
        str(images / "mask.png"),
        "--model",
        str(tiny_model_dir),
    )
    one_line_error(result, "mask")
    assert not (images / "clean-inpaint.png").exists()
    ok = run_cli(
        "solve",
        "inpaint",
        "--input",
        str(images / "clean.png"),
        "--box",
        "--simulate",
        "--model",
        str(tiny_model_dir),
        "--solver",
        "latent_map",
    )
    assert ok.returncode == 0, ok.stderr


def test_bad_input_files(images, tiny_model_dir):
    (images / "text.png").write_text("not an image")
    one_line_error(
        run_cli("solve", "denoise", "--input", str(images / "text.png"), "--model", str(tiny_model_dir)),
        "not a readable image",
    )
    one_line_error(
        run_cli("solve", "denoise", "--input", str(images / "none.png"), "--model", str(tiny_model_dir)),
        "no such file",
    )
    one_line_error(
        run_cli("solve", "colorize", "--input", str(images / "clean.png"), "--model", str(tiny_model_dir)),
        "colorization needs an RGB model",
    )
    one_line_error(
        run_cli(
            "solve",
            "denoise",
            "--input",
            str(images / "clean.png"),
            "--output",
            str(images / "clean.png"),
            "--model",
            str(tiny_model_dir),
        ),
        "inputs are never overwritten",
    )
    one_line_error(
        run_cli(
            "solve",
            "denoise",
            "--input",
            str(images / "clean.png"),
            "--solver",
            "pinv",
            "--samples",
            "2",
            "--model",
            str(tiny_model_dir),
        ),
        "deterministic",
    )


def test_photo_of_any_size_is_solved_in_tiles(tmp_path, tiny_photo_model_dir):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    Image.fromarray(rng.integers(0, 255, (30, 44, 4), dtype=np.uint8), "RGBA").save(tmp_path / "rgba.png")
    model = str(tiny_photo_model_dir)
    result = run_cli("solve", "superres", "--input", str(tmp_path / "photo.png"), "--scale", "4", "--model", model)
    assert result.returncode == 0, result.stderr
    assert "solving a 160x96 image in tiles" in result.stderr
    with Image.open(tmp_path / "photo-superres.png") as out:
        assert out.size == (160, 96) and out.mode == "RGB"
    # Colorization of a grayscale input; an RGBA input says what happens to alpha.
    Image.fromarray(rng.integers(0, 255, (20, 36), dtype=np.uint8)).save(tmp_path / "gray.png")
    result = run_cli("solve", "colorize", "--input", str(tmp_path / "gray.png"), "--model", model)
    assert result.returncode == 0 and "encode_perturb:" in result.stderr, result.stderr  # no colour net, no encoder
    with Image.open(tmp_path / "gray-colorize.png") as out:
        assert out.size == (36, 20) and out.mode == "RGB"
    result = run_cli("solve", "denoise", "--input", str(tmp_path / "rgba.png"), "--model", model)
    assert result.returncode == 0 and "alpha channel; it is dropped" in result.stderr, result.stderr


def test_colorize_defaults_to_the_photo_posterior_encoder(tmp_path):
    rows, cols = np.mgrid[0:64, 0:96]
    gray = (125 + 50 * np.sin(cols / 9) * np.cos(rows / 13)).round().astype(np.uint8)  # mid-range: no clipping
    Image.fromarray(gray).save(tmp_path / "gray.png")
    result = run_cli("solve", "colorize", "--input", str(tmp_path / "gray.png"))
    said = "solver one_step: the model's posterior encoder for colorize operators"
    assert result.returncode == 0 and "model photo" in result.stderr and said in result.stderr, result.stderr
    with Image.open(tmp_path / "gray-colorize.png") as out:
        rgb = np.asarray(out.convert("RGB"), dtype=np.float64)
    assert rgb.shape == (64, 96, 3) and np.abs(rgb - rgb.mean(2, keepdims=True)).mean() > 0.5  # coloured
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    assert np.abs(luma - gray).max() <= 1.5  # the measured luma, up to 8-bit rounding
    # --samples K asks for K colourings: one_step, their mean as the output, a grid and a std map beside it.
    result = run_cli("solve", "colorize", "--input", str(tmp_path / "gray.png"), "--samples", "2", "--overwrite")
    assert result.returncode == 0 and "one_step:" in result.stderr, result.stderr
    with Image.open(tmp_path / "gray-colorize-samples.png") as grid, Image.open(tmp_path / "gray-colorize-std.png"):
        assert grid.mode == "RGB"


def test_wrong_size_for_a_whole_image_model_points_to_photo(images, tiny_model_dir):
    one_line_error(
        run_cli("solve", "denoise", "--input", str(images / "small.png"), "--model", str(tiny_model_dir)),
        "use --model photo",
    )


def test_the_python_api_gives_the_cli_result(images, tiny_model_dir, tiny_photo_model_dir):
    # solve_image() is what the CLI runs: the same file, settings and seed give the file the CLI wrote.
    import torch

    from pagoda_inverse.solvers.image import default_model, solve_image
    from pagoda_inverse.utils.images import to_uint8
    from pagoda_inverse.utils.io import load_image

    cli = run_cli("solve", "superres", "--input", str(images / "small.png"), "--scale", "2", "--samples", "2",
                  "--seed", "5", "--model", str(tiny_model_dir), "--output", str(images / "cli.png"))  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    lines = []
    out = solve_image(load_image(images / "small.png", 1), "downsample_area", {"factor": 2}, model=tiny_model_dir,
                      samples=2, seed=5, log=lines.append)  # fmt: skip
    written = torch.from_numpy(np.asarray(Image.open(images / "cli.png")))
    assert torch.equal(to_uint8(out.result.estimate[0])[0], written)
    assert out.solver == "encode_perturb" and not out.tiled and out.result.samples.shape == (2, 1, 1, 16, 16)
    assert lines[1] == "model tiny-model0: works on 1-channel 16x16 images"
    # The model choice: colour photos go to the photo model, gray images to the default one.
    rgb = torch.rand(3, 8, 8) * 2 - 1
    assert default_model(rgb, "downsample_area") == "photo" and default_model(rgb[:1], "downsample_area") == "fmnist"
    assert default_model(rgb[:1], "colorize") == "photo"
    with pytest.raises(UserError, match=r"the image must be \[1, H, W\]"):
        solve_image(rgb, "downsample_area", {"factor": 2}, model=tiny_model_dir)
    with pytest.raises(UserError, match="the image is 6x6 but the observation must be 8x8"):
        solve_image(rgb[:1, :6, :6], "downsample_area", {"factor": 2}, model=tiny_model_dir)
