"""The luma-to-colour network and its ``colour_net`` solver: luma kept, per-image results, any size, refusals,
smoke training with resume and export, and the shipped photo model's network against the gray copy."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli
from resume_helpers import check_crash_and_resume

from pagoda_inverse.core.colour_net import ColourNet, luma
from pagoda_inverse.core.model import PagodaModel, load_model
from pagoda_inverse.core.text import CaptionBank
from pagoda_inverse.core.unet import UNet, UNetConfig
from pagoda_inverse.ops import make_operator
from pagoda_inverse.solvers import solve
from pagoda_inverse.train.colour import gray_copy, train_colour
from pagoda_inverse.train.config import PHOTO_DATA, resolve
from pagoda_inverse.train.data import load_images
from pagoda_inverse.train.export import export_model
from pagoda_inverse.utils.errors import CheckpointError, UserError
from pagoda_inverse.utils.metrics import psnr


@pytest.fixture(scope="module")
def colour_model():
    """An RGB model holding only a random colour network (``colour_net`` needs no generator)."""
    torch.manual_seed(0)
    net = UNet(UNetConfig(in_channels=3, resolution=16, channels=8, channel_mult=(1, 2, 2), attn_resolutions=(),
                          cond_dim=1))  # fmt: skip
    for p in net.parameters():  # zero-initialised output convs would make C the gray copy
        torch.nn.init.normal_(p, std=0.05)
    config = {"unet": {"in_channels": 3, "resolution": 16}, "data": {"dataset": "photo"}}
    return PagodaModel("random-colour", None, None, CaptionBank.unconditional(4), config, colour=ColourNet(net).eval())


def _colorize(shape, batch=2):
    op = make_operator("colorize", shape=shape, batch=batch, seeds=list(range(batch)))
    x = torch.rand(batch, *shape, generator=torch.Generator().manual_seed(3)) * 1.6 - 0.8
    return op, x, op(x)


@pytest.mark.parametrize("shape", [(3, 16, 16), (3, 13, 22)])
def test_colour_net_keeps_the_luma_and_adds_colour(colour_model, shape):
    op, x, y = _colorize(shape)
    res = solve("colour_net", colour_model, op, y)
    assert res.estimate.shape == x.shape and res.info["nfe"] == 1
    torch.testing.assert_close(op.A(res.estimate), y, rtol=0, atol=1e-5)  # exact luma
    assert float((res.estimate - op.initial_estimate(y)).abs().mean()) > 1e-3  # not the gray copy
    alone = solve("colour_net", colour_model, make_operator("colorize", shape=shape), y[1:])
    torch.testing.assert_close(alone.estimate[0], res.estimate[1], rtol=1e-5, atol=1e-5)


def test_colour_net_is_the_default_colorization_without_a_colorize_encoder(colour_model):
    from pagoda_inverse.solvers import default_solver
    from pagoda_inverse.solvers.image import solve_image

    said = []
    model = replace(colour_model, path=Path("random-colour"))
    out = solve_image(torch.zeros(1, 16, 16), "colorize", model=model, log=said.append)
    assert out.solver == "colour_net" and any("solver colour_net: the model's colour network" in s for s in said)
    op = make_operator("colorize", shape=(3, 16, 16))  # the rule is default_solver's: one colouring, or samples
    assert [default_solver(model, op, k) for k in (None, 1, 4)] == ["colour_net", "colour_net", "encode_perturb"]


def test_colour_net_refusals(colour_model):
    op, _, y = _colorize((3, 16, 16))
    with pytest.raises(UserError, match="has no colour network.*pagoda-inv train colour"):
        solve("colour_net", replace(colour_model, colour=None), op, y)
    blur = make_operator("gaussian_blur", shape=(3, 16, 16), sigma=1.0, size=5)
    with pytest.raises(UserError, match="only applies to colorization"):
        solve("colour_net", colour_model, blur, torch.zeros(1, 3, 16, 16))


def test_network_output_has_the_input_luma():
    C = ColourNet(UNet(UNetConfig(in_channels=3, resolution=8, channels=8, attn_resolutions=(), cond_dim=1)))
    torch.nn.init.normal_(C.net.out[-1].weight, std=0.5)
    gray = gray_copy(torch.rand(3, 3, 8, 8) * 2 - 1)
    with torch.no_grad():
        out = C(gray)
    torch.testing.assert_close(luma(out), gray[:, :1], rtol=0, atol=1e-6)
    assert float((out - gray).abs().max()) > 1e-2


def test_smoke_training_resumes_exports_and_loads(tmp_path, tiny_model_dir, tiny_photo_model_dir):
    cfg = resolve("colour", "smoke")  # 6 steps on 16 px photo crops, checkpoints every 3
    config = check_crash_and_resume(train_colour, cfg, tmp_path)
    metrics = config["metrics"]
    assert config["kind"] == "colour" and metrics["test_images"] == 64 and metrics["test_psnr"] > 10
    # Exported beside an RGB model's parts, it loads as the model's colour network; beside a grayscale one it is
    # refused when the folder loads.
    rgb = tiny_photo_model_dir
    folder = export_model(tmp_path / "model", teacher=rgb / "teacher", decoder=rgb / "decoder",
                          colour=tmp_path / "full" / "colour")  # fmt: skip
    model = load_model(folder)
    assert model.colour is not None and load_model(rgb).colour is None
    with pytest.raises(CheckpointError, match="a colour network needs an RGB model"):
        export_model(tmp_path / "gray", teacher=tiny_model_dir / "teacher", colour=tmp_path / "full" / "colour")
    op, _, y = _colorize((3, 16, 16))
    torch.testing.assert_close(op.A(solve("colour_net", model, op, y).estimate), y, rtol=0, atol=1e-5)


def test_shipped_photo_colour_net_beats_the_gray_copy():
    x, _ = load_images(PHOTO_DATA, "test", limit=256)  # the colorize task's crops
    op = make_operator("colorize", shape=tuple(x.shape[1:]), batch=len(x))
    y = op.A(x)
    model, gray = load_model("photo"), psnr(op.initial_estimate(y), x).mean()
    full = psnr(solve("colour_net", model, op, y, saturation=1.0).estimate, x).mean()
    shipped = psnr(solve("colour_net", model, op, y).estimate, x).mean()  # at the model's saturation
    assert full > gray + 0.5, (float(full), float(gray))  # the network's own colour: 22.99 vs 22.20 dB
    assert shipped > gray + 0.2, (float(shipped), float(gray))  # 22.54 at 0.2 (docs/results-colorize)


def test_train_colour_command_prints_the_checkpoint(tmp_path):
    result = run_cli("train", "colour", "--preset", "smoke", "--runs", str(tmp_path), "-q")
    assert result.returncode == 0, result.stderr
    out = Path(result.stdout.strip().splitlines()[-1])
    assert out == tmp_path / "00000-colour-smoke" / "colour" and (out / "model.safetensors").is_file()


def test_tiled_colour_net_is_one_whole_image_pass_up_to_its_side(colour_model, monkeypatch):
    from pagoda_inverse.solvers import tiled

    op, _, y = _colorize((3, 40, 56), batch=1)
    whole = solve("colour_net", colour_model, op, y).estimate
    res = tiled.solve_tiled("colour_net", colour_model, op, y)
    assert (res.info["tiles"], res.info["tile"]) == (1, None)
    torch.testing.assert_close(res.estimate, whole)
    # Above the side: square tiles of that side, one at a time, blended and consistent.
    monkeypatch.setitem(tiled.WHOLE_IMAGE_SIDE, "colour_net", 16)
    res = tiled.solve_tiled("colour_net", colour_model, op, y)
    assert res.info["tiles"] > 1 and res.info["tile"] == 16 and res.estimate.shape == whole.shape
    torch.testing.assert_close(op.A(res.estimate), y, rtol=0, atol=1e-5)
