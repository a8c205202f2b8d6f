"""Reading user images: every odd input either loads correctly or fails with a one-line UserError."""

import numpy as np
import pytest
import torch
from PIL import Image

from pagoda_inverse.utils.errors import UserError
from pagoda_inverse.utils.io import load_image


def test_grayscale_8_and_16_bit(tmp_path):
    a = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(a).save(tmp_path / "g8.png")
    Image.fromarray(a.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    x8, x16 = load_image(tmp_path / "g8.png", 1), load_image(tmp_path / "g16.png", 1)
    assert x8.shape == (1, 8, 8) and x8.min() >= -1 and x8.max() <= 1
    torch.testing.assert_close(x8, x16)


def test_palette_rgba_cmyk_and_colour_rules(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (6, 5, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "a.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg")
    for name in ("p.png", "a.png", "c.jpg"):
        assert load_image(tmp_path / name, 3).shape == (3, 6, 5)
    with pytest.raises(UserError, match="colour image but the model is grayscale"):
        load_image(tmp_path / "a.png", 1)
    gray_rgb = np.repeat(rgb[..., :1], 3, axis=2)
    Image.fromarray(gray_rgb).save(tmp_path / "grgb.png")
    assert load_image(tmp_path / "grgb.png", 1).shape == (1, 6, 5)


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "no such file"), (b"", "empty"), (b"hello, not an image", "not a readable image")],
)
def test_bad_files(tmp_path, content, match):
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=match):
        load_image(path, 1)


def test_truncated_png_and_pixel_cap(tmp_path):
    Image.fromarray(np.zeros((64, 64), np.uint8) + 7).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cut.png"):
        load_image(tmp_path / "cut.png", 1)
    with pytest.raises(UserError, match="pixel cap"):
        load_image(tmp_path / "ok.png", 1, max_pixels=1000)
