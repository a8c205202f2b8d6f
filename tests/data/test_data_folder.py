"""ImageFolderDataset on a temporary folder of PNGs with labels.csv."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from pagoda_inverse.datasets import ImageFolderDataset
from pagoda_inverse.utils.errors import UserError


@pytest.fixture
def folder(tmp_path):
    Image.new("L", (28, 28), 0).save(tmp_path / "b.png")
    Image.new("RGB", (40, 20), (255, 0, 0)).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    Image.new("L", (64, 64), 255).save(tmp_path / "sub" / "c.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "labels.csv").write_text("filename,label,caption\na.png,3,a red dress\nsub/c.png,9,\n")
    return tmp_path


def test_items(folder):
    ds = ImageFolderDataset(folder, size=32)
    assert len(ds) == 3
    assert [p.relative_to(folder).as_posix() for p in ds.files] == ["a.png", "b.png", "sub/c.png"]
    items = [ds[i] for i in range(3)]
    for item in items:
        assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
        assert -1 <= item["image"].min() and item["image"].max() <= 1
    assert [(i["label"], i["caption"]) for i in items] == [(3, "a red dress"), (-1, ""), (9, "")]
    assert items[1]["image"].eq(-1).all() and items[2]["image"].eq(1).all()
    batch = torch.utils.data.default_collate(items)
    assert batch["image"].shape == (3, 1, 32, 32) and batch["label"].tolist() == [3, -1, 9]


def test_rgb_and_native_size(folder):
    ds = ImageFolderDataset(folder, size=16, channels=3)
    red = ds[0]["image"]
    assert red.shape == (3, 16, 16)
    assert red[0].eq(1).all() and red[1:].eq(-1).all()
    assert ImageFolderDataset(folder, size=None)[0]["image"].shape == (1, 20, 40)


def test_errors(folder, tmp_path_factory):
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(UserError, match="no images"):
        ImageFolderDataset(empty)
    with pytest.raises(UserError, match="channels"):
        ImageFolderDataset(folder, channels=2)
    with pytest.raises(UserError, match=r"a\.png.*cap"):
        ImageFolderDataset(folder, max_pixels=500)[0]
    (folder / "z.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(UserError, match=r"z\.png"):
        ImageFolderDataset(folder)[3]
    (folder / "labels.csv").write_text("missing.png,1\n")
    with pytest.raises(UserError, match=r"labels\.csv:1.*missing\.png"):
        ImageFolderDataset(folder)
