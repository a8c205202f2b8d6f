"""The bad-input matrix: every kind of bad file or name, through the CLI and through the API.

Each CLI case must end with exit code 2, exactly one ``error:`` line that names the offending file (or value) and
says what to do, no traceback, and no output file. The CLI runs in-process here (:func:`cli_helpers.cli_in_process`,
the same ``main`` the console script calls) so the ~60 cases take seconds; ``test_cli.py`` covers real processes.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli_in_process, one_line_error
from PIL import Image

from pagoda_inverse.utils.errors import UserError

RES = 16  # the tiny model's resolution (conftest.tiny_model_dir)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels and that holds no pixel data (a decompression bomb's
    signature: decoding it would need width * height bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """One folder with every good and bad input file of the matrix."""
    d = tmp_path_factory.mktemp("bad-inputs")
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 255, (RES, RES), dtype=np.uint8)
    colour = rng.integers(0, 255, (RES, RES, 3), dtype=np.uint8)
    Image.fromarray(gray).save(d / "clean.png")
    (d / "empty.png").write_bytes(b"")
    (d / "text.png").write_text("hello, I am not an image\n")
    big = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    Image.fromarray(big).save(d / "full.png")
    (d / "truncated.png").write_bytes((d / "full.png").read_bytes()[:300])
    Image.fromarray(gray).save(d / "jpeg-named.png", format="JPEG", quality=95)
    Image.fromarray(gray[:1, :1]).save(d / "one-pixel.png")
    (d / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))
    Image.fromarray(gray.astype(np.uint16) * 257).save(d / "gray16.png")
    Image.fromarray(gray).convert("P").save(d / "palette.png")
    Image.fromarray(np.repeat(gray[..., None], 3, axis=2)).convert("RGBA").save(d / "gray-rgba.png")
    Image.fromarray(colour).convert("RGBA").save(d / "colour-rgba.png")
    Image.fromarray(colour).convert("CMYK").save(d / "colour-cmyk.jpg")
    # Masks (white = observed) and kernels.
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(d / "mask-8x8.png")
    Image.fromarray(colour).save(d / "mask-rgb.png")
    np.save(d / "mask-range.npy", np.full((RES, RES), 255.0))
    np.save(d / "mask-nan.npy", np.where(np.eye(RES) > 0, np.nan, 1.0))
    np.save(d / "mask-complex.npy", np.ones((RES, RES), np.complex64))
    np.save(d / "mask-pickle.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    np.save(d / "kernel-3d.npy", np.ones((2, 3, 3)))
    np.save(d / "kernel-nan.npy", np.array([[1.0, np.nan], [1.0, 1.0]]))
    np.save(d / "kernel-zero.npy", np.zeros((3, 3)))
    np.save(d / "kernel-negative.npy", np.array([[1.0, -2.0], [1.0, 1.0]]))
    (d / "kernel.txt").write_text("1 2 1\n")
    # Task files: a TOML syntax error and a wrong field type.
    (d / "syntax.toml").write_text('[task]\nfamily = "superres"\nimages = \n')
    (d / "field.toml").write_text(
        '[task]\nfamily = "superres"\nmodel = "fmnist"\ndataset = "fmnist"\nsplit = "test"\nimages = "many"\n'
        'seeds = "0-3"\nmetrics = ["psnr"]\n\n[operator]\nname = "downsample"\nsigma_y = 0.05\n\n[solvers.pinv]\n'
    )
    return d


@pytest.fixture(scope="module")
def broken_models(files, tiny_model_dir) -> Path:
    """Copies of the tiny model, each broken one way."""
    from safetensors.torch import load_file, save_file

    root = files / "models"
    root.mkdir()

    def copy(name: str) -> Path:
        return Path(shutil.copytree(tiny_model_dir, root / name))

    (copy("not-safetensors") / "decoder" / "model.safetensors").write_bytes(b"\x00not a safetensors file")
    for name in ("missing-tensor", "wrong-shape"):
        path = copy(name) / "decoder" / "model.safetensors"
        tensors = load_file(path)
        key = next(
            k for k in sorted(tensors) if k.startswith("net.") and tensors[k].ndim == 4 and tensors[k].shape[1] > 1
        )
        if name == "missing-tensor":
            del tensors[key]
        else:
            tensors[key] = tensors[key][:, :1].contiguous()
        save_file(tensors, path)
    other = copy("foreign-config") / "decoder" / "config.json"
    cfg = json.loads(other.read_text())
    cfg["unet"]["channels"] = 2 * cfg["unet"]["channels"]  # the config of a wider model
    other.write_text(json.dumps(cfg))
    (copy("no-config") / "teacher" / "config.json").unlink()
    shutil.rmtree(copy("empty-folder"))
    (root / "empty-folder").mkdir()
    return root


def _solve(task: str, files: Path, model: Path, *extra: str, input: str = "clean.png") -> list[str]:
    """``solve TASK`` on ``files/input`` writing ``files/out.png`` (which every failing case must leave absent)."""
    return ["solve", task, "--input", str(files / input), "--output", str(files / "out.png"), "--model", str(model),
            *extra]  # fmt: skip


@pytest.fixture(autouse=True)
def _no_stale_output(files):
    """A case that wrongly writes ``out.png`` fails alone instead of making the next case see an existing file."""
    yield
    (files / "out.png").unlink(missing_ok=True)


# (id, input file, needles of the error line): image files fed to `solve denoise` and to the API's `load_image`.
BAD_IMAGES = [
    ("missing", "missing.png", ["missing.png", "no such file"]),
    ("empty", "empty.png", ["empty.png", "empty"]),
    ("text-as-png", "text.png", ["text.png", "not a readable image"]),
    ("truncated", "truncated.png", ["truncated.png", "pass a valid PNG"]),
    ("one-pixel", "one-pixel.png", ["one-pixel.png", "is 1x1", "must be 16x16"]),
    ("bomb", "bomb.png", ["bomb.png", "100000x100000 exceeds", "PAGODA_MAX_PIXELS"]),
    ("colour-rgba", "colour-rgba.png", ["colour-rgba.png", "convert it to grayscale"]),
    ("colour-cmyk", "colour-cmyk.jpg", ["colour-cmyk.jpg", "convert it to grayscale"]),
]


@pytest.mark.parametrize(("name", "needles"), [(f, n) for _, f, n in BAD_IMAGES], ids=[i for i, _, _ in BAD_IMAGES])
def test_bad_image_cli(files, tiny_model_dir, capsys, name, needles):
    result = cli_in_process(capsys, *_solve("denoise", files, tiny_model_dir, "--solver", "pinv", input=name))
    one_line_error(result, *needles)
    assert not (files / "out.png").exists()


@pytest.mark.parametrize(
    ("name", "needle"), [(f, n[1]) for _, f, n in BAD_IMAGES if _ != "one-pixel"], ids=lambda v: str(v)
)
def test_bad_image_api(files, name, needle):
    from pagoda_inverse.utils.io import load_image

    with pytest.raises(UserError, match=needle) as err:
        load_image(files / name, 1)
    assert name in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["jpeg-named.png", "gray16.png", "palette.png", "gray-rgba.png"])
def test_odd_but_valid_images_are_handled(files, tiny_model_dir, capsys, name):
    """A JPEG named .png (the content decides), 16-bit, palette and gray RGBA (alpha dropped) all load."""
    out = files / f"ok-{name}.png"
    args = ["solve", "denoise", "--input", str(files / name), "--output", str(out), "--model", str(tiny_model_dir)]
    result = cli_in_process(capsys, *args, "--solver", "pinv")
    assert result.returncode == 0, result.stderr
    assert out.is_file()
    from pagoda_inverse.utils.io import load_image

    x = load_image(files / name, 1)
    assert x.shape == (1, RES, RES) and x.min() >= -1 and x.max() <= 1


def test_pixel_cap_is_configurable(files, monkeypatch):
    from pagoda_inverse.utils.io import load_image

    monkeypatch.setenv("PAGODA_MAX_PIXELS", "100")
    with pytest.raises(UserError, match="clean.png: 16x16 exceeds the 100-pixel cap"):
        load_image(files / "clean.png", 1)
    with pytest.raises(UserError, match="mask-8x8.png: 8x8 exceeds the 10-pixel cap"):
        monkeypatch.setenv("PAGODA_MAX_PIXELS", "10")
        from pagoda_inverse.ops.masks import load_mask

        load_mask(files / "mask-8x8.png")
    monkeypatch.setenv("PAGODA_MAX_PIXELS", "lots")
    with pytest.raises(UserError, match="PAGODA_MAX_PIXELS='lots' is not a positive integer"):
        load_image(files / "clean.png", 1)


BAD_MASKS = [
    ("mask-8x8.png", ["mask", "8"]),
    ("mask-rgb.png", ["mask-rgb.png", "save it as a grayscale image"]),
    ("mask-range.npy", ["mask-range.npy", "values in [255, 255]", "[0, 1]"]),
    ("mask-nan.npy", ["mask-nan.npy", "NaN"]),
    ("mask-complex.npy", ["mask-complex.npy", "complex64", "expected numbers"]),
    ("mask-pickle.npy", ["mask-pickle.npy", "not a readable .npy"]),
    ("missing.png", ["missing.png", "does not exist"]),
]


@pytest.mark.parametrize(("name", "needles"), BAD_MASKS, ids=[m for m, _ in BAD_MASKS])
def test_bad_mask(files, tiny_model_dir, capsys, name, needles):
    result = cli_in_process(capsys, *_solve("inpaint", files, tiny_model_dir, "--mask", str(files / name)))
    one_line_error(result, *needles)
    assert not (files / "out.png").exists()


BAD_KERNELS = [
    ("kernel-3d.npy", ["kernel-3d.npy", "expected 2-D"]),
    ("kernel-nan.npy", ["kernel-nan.npy", "NaN"]),
    ("kernel-zero.npy", ["kernel-zero.npy", "sums to zero"]),
    ("kernel-negative.npy", ["kernel-negative.npy", "negative entries"]),
    ("kernel.txt", ["kernel.txt", "must be .npy or a grayscale image"]),
    ("text.png", ["text.png", "not a readable image"]),
]


@pytest.mark.parametrize(("name", "needles"), BAD_KERNELS, ids=[k for k, _ in BAD_KERNELS])
def test_bad_kernel(files, tiny_model_dir, capsys, name, needles):
    result = cli_in_process(capsys, *_solve("deblur", files, tiny_model_dir, "--kernel", str(files / name)))
    one_line_error(result, *needles)
    assert not (files / "out.png").exists()


UNKNOWN_NAMES = [
    ("solver", ["solve", "denoise", "--solver", "nope"], ["nope"]),
    ("model-name", ["generate", "--model", "nope"], ["nope"]),
    ("preset", ["train", "teacher", "--preset", "nope"], ["unknown teacher preset 'nope'", "smoke"]),
    ("posterior-init", ["train", "posterior", "--family", "inpaint", "--init", "nope"], ["--init nope", "posterior"]),
    ("consistency", ["train", "posterior", "--family", "inpaint", "--consistency", "maybe"], ["'maybe'", "learned"]),
    ("task", ["bench", "--task", "nope"], ["unknown task 'nope'", "superres_x4"]),
    ("bench-solver", ["bench", "--task", "superres_x4", "--solvers", "nope"], ["nope", "pinv"]),
    ("class", ["generate", "--class", "boot"], ["unknown class 'boot'"]),
]


@pytest.mark.parametrize(
    ("args", "needles"), [(a, n) for _, a, n in UNKNOWN_NAMES], ids=[i for i, _, _ in UNKNOWN_NAMES]
)
def test_unknown_names(files, tiny_model_dir, capsys, tmp_path, args, needles):
    out = tmp_path / "out"
    if args[0] == "solve":
        args = [*args, "--input", str(files / "clean.png"), "--output", f"{out}.png", "--model", str(tiny_model_dir)]
    elif args[0] == "generate":
        args = [*args, "--out", f"{out}.png"]
    elif args[0] == "bench":
        args = [*args, "--out", str(out), "--limit", "2"]
    else:
        args = [*args, "--runs", str(out)]
    one_line_error(cli_in_process(capsys, *args), *needles)
    assert not list(tmp_path.iterdir())


def test_solver_that_does_not_fit_the_operator(files, capsys, tmp_path):
    """DDRM needs an SVD: on a blur it refuses with the alternatives (the embedded model and its 32 px prior)."""
    from pagoda_inverse.core.model import embedded_models

    pytest.importorskip("deepinv")
    if "fmnist-fullres" not in embedded_models():
        pytest.skip("embedded models not installed")
    clean = tmp_path / "clean32.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(clean)
    args = ["solve", "deblur", "--input", clean, "--simulate", "--blur-sigma", "1.5", "--solver", "ddrm"]
    args += ["--output", tmp_path / "o.png"]
    one_line_error(cli_in_process(capsys, *args), "ddrm solver only applies to operators with a pixel-basis SVD", "dps",
                   "not the deblur operator")  # fmt: skip
    assert not (tmp_path / "o.png").exists()


def test_unknown_solve_task(capsys):
    result = cli_in_process(capsys, "solve", "nope")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "nope" in result.stderr


@pytest.mark.parametrize(
    ("name", "needles"),
    [("syntax.toml", ["syntax.toml", "malformed TOML", "line 3"]), ("field.toml", ["field.toml:6", "images"])],
)
def test_malformed_task_file(files, capsys, tmp_path, name, needles):
    from pagoda_inverse.bench.tasks import load_task

    result = cli_in_process(capsys, "bench", "--task", str(files / name), "--out", str(tmp_path / "out"))
    one_line_error(result, *needles)
    assert not (tmp_path / "out").exists()
    with pytest.raises(UserError, match=needles[0]):
        load_task(files / name)


BROKEN_MODELS = [
    ("not-safetensors", ["decoder/model.safetensors", "not a valid safetensors file"]),
    ("missing-tensor", ["decoder/model.safetensors", "1 missing", "do not match config.json"]),
    ("wrong-shape", ["decoder/model.safetensors", "1 wrong-shaped"]),
    ("foreign-config", ["decoder/model.safetensors", "do not match config.json"]),
    ("no-config", ["teacher/config.json", "missing"]),
    ("empty-folder", ["empty-folder", "holds no teacher/ or decoder/ checkpoint"]),
]


@pytest.mark.parametrize(("name", "needles"), BROKEN_MODELS, ids=[m for m, _ in BROKEN_MODELS])
def test_broken_model_folder(files, broken_models, capsys, name, needles):
    from pagoda_inverse.core.model import load_model

    result = cli_in_process(capsys, *_solve("denoise", files, broken_models / name, "--solver", "pinv"))
    one_line_error(result, *needles)
    assert not (files / "out.png").exists()
    with pytest.raises(UserError, match=needles[1]):
        load_model(broken_models / name)


def test_debug_flag_shows_the_traceback(files, tiny_model_dir, capsys):
    with pytest.raises(UserError, match="no such file"):
        cli_in_process(capsys, "--debug", *_solve("denoise", files, tiny_model_dir, input="missing.png"))


def test_inputs_are_never_modified(files, tiny_model_dir, capsys):
    """Every input of the matrix is byte-identical after all the cases above and below ran."""
    before = {p.name: p.read_bytes() for p in files.iterdir() if p.is_file()}
    one_line_error(
        cli_in_process(capsys, *_solve("inpaint", files, tiny_model_dir, "--mask", str(files / "mask-8x8.png")))
    )
    one_line_error(cli_in_process(capsys, "solve", "denoise", "--input", str(files / "clean.png"), "--output",
                                  str(files / "clean.png"), "--overwrite", "--model", str(tiny_model_dir)),
                   "inputs are never overwritten")  # fmt: skip
    after = {p.name: p.read_bytes() for p in files.iterdir() if p.is_file()}
    assert after == before


# Outputs (issue 38): an unsupported --scale, an image suffix Pillow is not asked to write, an output folder that
# cannot be created, an output over the pixel cap, a colour image to colorize. Each is refused before any work.
BAD_OUTPUTS = [
    ("scale-3", ["solve", "superres", "--scale", "3", "--output", "{tmp}/out.png"], ["--scale", "use 2, 4 or 8"]),
    ("scale-5", ["solve", "superres", "--scale", "5", "--output", "{tmp}/out.png"], ["--scale", "use 2, 4 or 8"]),
    ("scale-16", ["solve", "superres", "--scale", "16", "--output", "{tmp}/out.png"], ["--scale", "use 2, 4 or 8"]),
    ("gif", ["solve", "denoise", "--output", "{tmp}/out.gif"], ["out.gif", "name it .png, .jpg, .jpeg or .webp"]),
    ("no-suffix", ["solve", "denoise", "--output", "{tmp}/out"], ["out: cannot write an image without a suffix"]),
    ("generate-tiff", ["generate", "--out", "{tmp}/g.tiff"], ["g.tiff", "cannot write a .tiff image"]),
    ("output-under-a-file", ["solve", "denoise", "--output", "{tmp}/file/out.png"],
     ["file/out.png", "is a file, not a folder", "--output"]),
    ("output-is-a-folder", ["solve", "denoise", "--output", "{tmp}/folder.png"], ["folder.png: is a folder"]),
    ("generate-out-under-a-file", ["generate", "--out", "{tmp}/file/sub/g.png"], ["is a file, not a folder", "--out"]),
    ("generate-out-dir-is-a-file", ["generate", "--out-dir", "{tmp}/file"], ["file: is a file", "--out-dir"]),
    ("generate-tensor-under-a-file", ["generate", "--tensor", "{tmp}/file/t.npy"], ["t.npy", "--tensor"]),
    ("bench-out-under-a-file", ["bench", "--task", "superres_x4", "--limit", "2", "--out", "{tmp}/file/b"],
     ["file/b", "is a file, not a folder", "--out"]),
]  # fmt: skip


@pytest.mark.parametrize(("args", "needles"), [(a, n) for _, a, n in BAD_OUTPUTS], ids=[i for i, _, _ in BAD_OUTPUTS])
def test_bad_output(files, tiny_model_dir, capsys, tmp_path, args, needles):
    (tmp_path / "file").write_text("in the way\n")
    (tmp_path / "folder.png").mkdir()
    args = [a.format(tmp=tmp_path) for a in args]
    if args[0] == "solve":
        args += ["--input", str(files / "clean.png"), "--model", str(tiny_model_dir)]
    elif args[0] == "generate":
        args += ["--model", str(tiny_model_dir), "--seeds", "0"]
    one_line_error(cli_in_process(capsys, *args), *needles)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["file", "folder.png"]


def test_output_over_the_pixel_cap(files, tiny_model_dir, capsys, monkeypatch, tmp_path):
    """x2 of an 8x8 input is 256 pixels: over a cap of 100 that the 64-pixel input is under (today's case: 3000x3000
    x8 would start a 24000x24000 solve)."""
    monkeypatch.setenv("PAGODA_MAX_PIXELS", "100")
    args = ["solve", "superres", "--scale", "2", "--input", files / "mask-8x8.png", "--output", tmp_path / "o.png"]
    result = cli_in_process(capsys, *args, "--model", tiny_model_dir)
    one_line_error(result, "mask-8x8.png", "the 16x16 result (x2) exceeds the 100-pixel cap", "smaller --scale")
    assert not list(tmp_path.iterdir())


def test_colorize_of_a_colour_image(files, tiny_photo_model_dir, capsys, tmp_path):
    args = ["solve", "colorize", "--input", files / "colour-rgba.png", "--output", tmp_path / "o.png"]
    result = cli_in_process(capsys, *args, "--model", tiny_photo_model_dir)
    one_line_error(result, "colour-rgba.png", "colorize wants a gray image", "--simulate")
    assert "the model is grayscale" not in result.stderr
    assert not list(tmp_path.iterdir())


# (id, args, needles): Typer's own usage errors (an option out of its min=/max= range, not a number, unknown or
# missing) end like the project's own: one ``error:`` line with the command's help to read, exit code 2.
USAGE_ERRORS = [
    ("samples-below-min", ["solve", "inpaint", "--box", "--samples", "0"], ["'--samples'", "or equal to 1"]),
    ("sigma-y-negative", ["solve", "deblur", "--motion", "--sigma-y", "-0.1"], ["'--sigma-y'", "greater than"]),
    ("drop-frac-above-max", ["solve", "inpaint", "--drop-frac", "1.5"], ["'--drop-frac'", "less than or equal to 1"]),
    ("samples-not-a-number", ["solve", "denoise", "--samples", "many"], ["'--samples'", "valid integer"]),
    ("unknown-option", ["solve", "denoise", "--sigma", "0.1"], ["No such option: --sigma"]),
    ("missing-input", ["solve", "superres"], ["Missing option '--input'"]),
    ("steps-below-min", ["generate", "--steps", "1"], ["'--steps'", "greater than or equal to 2"]),
    ("limit-below-min", ["bench", "--task", "superres_x4", "--limit", "0"], ["'--limit'", "or equal to 1"]),
]


@pytest.mark.parametrize(("args", "needles"), [(a, n) for _, a, n in USAGE_ERRORS], ids=[u[0] for u in USAGE_ERRORS])
def test_usage_errors_are_one_line(files, tiny_model_dir, capsys, tmp_path, args, needles):
    out = tmp_path / "out.png"
    if args[0] == "solve":
        args = [*args, "--output", str(out), "--model", str(tiny_model_dir)]
        args += ["--input", str(files / "clean.png")] if "superres" not in args else []
    else:
        args = [*args, "--out", str(out)]
    result = cli_in_process(capsys, *args)
    command = " ".join(a for a in args[:2] if not a.startswith("-"))
    one_line_error(result, *needles, f"(see 'pagoda-inv {command} -h')")
    assert "Usage:" not in result.stderr and "Try '" not in result.stderr
    assert not list(tmp_path.iterdir())
