"""Fashion-MNIST IDX reader: shapes, padding, validation and the missing-dataset message."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pagoda_inverse.datasets import FMNIST_CLASSES, find_fmnist_dir, load_fmnist
from pagoda_inverse.utils.errors import DatasetNotFoundError, UserError

NAMES = [f"{p}-{k}-ubyte.gz" for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1")]


def _raw_images(path: Path) -> np.ndarray:
    """Independent reader (the 8-line recipe of docs/offline-data.md)."""
    return np.frombuffer(gzip.open(path).read(), np.uint8, offset=16).reshape(-1, 28, 28)


def _copy(src: Path, dst: Path) -> Path:
    for name in NAMES:
        shutil.copy(src / name, dst / name)
    return dst


def test_classes():
    assert len(FMNIST_CLASSES) == 10
    assert FMNIST_CLASSES[0] == "T-shirt/top" and FMNIST_CLASSES[9] == "Ankle boot"


@pytest.mark.parametrize(("split", "n"), [("train", 256), ("test", 64)])
def test_load_shapes_and_padding(fmnist_tiny, split, n):
    images, labels = load_fmnist(split)
    assert images.shape == (n, 1, 32, 32) and images.dtype == torch.uint8
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert 0 <= labels.min() and labels.max() <= 9
    # 2 px of zeros on each side, the original 28x28 in the middle
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert images[:, :, border].eq(0).all()
    raw = _raw_images(fmnist_tiny / f"{'train' if split == 'train' else 't10k'}-images-idx3-ubyte.gz")
    assert np.array_equal(images[:, 0, 2:30, 2:30].numpy(), raw)


def test_first_labels_and_limit(fmnist_tiny):
    _, labels = load_fmnist("train")
    assert labels[:5].tolist() == [9, 0, 0, 3, 0]  # the well-known start of Fashion-MNIST train
    images, lab = load_fmnist("train", root=fmnist_tiny, limit=10)
    assert images.shape == (10, 1, 32, 32) and lab.tolist() == labels[:10].tolist()
    assert load_fmnist("test", limit=1000)[0].shape[0] == 64  # limit above N gives all N
    assert load_fmnist("test", limit=0)[0].shape == (0, 1, 32, 32)


def test_bad_split_and_limit(fmnist_tiny):
    with pytest.raises(ValueError, match="'validation'"):
        load_fmnist("validation")
    with pytest.raises(ValueError, match="limit"):
        load_fmnist("train", limit=-1)


def test_uncompressed_files_accepted(tmp_path, fmnist_tiny):
    for name in NAMES:
        (tmp_path / name.removesuffix(".gz")).write_bytes(gzip.open(fmnist_tiny / name).read())
    a, la = load_fmnist("test", root=tmp_path)
    b, lb = load_fmnist("test", root=fmnist_tiny)
    assert a.equal(b) and la.equal(lb)


def test_truncated_file(tmp_path, fmnist_tiny):
    _copy(fmnist_tiny, tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetNotFoundError, match="reinstall") as err:
        load_fmnist("train", root=tmp_path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_short_payload_and_bad_magic(tmp_path, fmnist_tiny):
    _copy(fmnist_tiny, tmp_path)
    lbl = tmp_path / "t10k-labels-idx1-ubyte.gz"
    data = gzip.open(lbl).read()
    with gzip.open(lbl, "wb") as f:  # valid gzip, but fewer labels than the header says
        f.write(data[:-10])
    with pytest.raises(DatasetNotFoundError, match="54 of the 64"):
        load_fmnist("test", root=tmp_path)
    with gzip.open(lbl, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + data[4:])  # image magic in a label file
    with pytest.raises(UserError, match="magic"):
        load_fmnist("test", root=tmp_path)


def test_missing_dataset_message(tmp_path, monkeypatch):
    monkeypatch.setenv("PAGODA_FMNIST_DIR", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as err:
        load_fmnist("train")
    msg = str(err.value)
    assert isinstance(err.value, UserError) and "\n" not in msg
    assert str(tmp_path) in msg
    assert "sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist" in msg
    assert "PAGODA_FMNIST_DIR" in msg


def test_explicit_root_beats_env(tmp_path, fmnist_tiny, monkeypatch):
    monkeypatch.setenv("PAGODA_FMNIST_DIR", str(tmp_path))
    assert find_fmnist_dir(fmnist_tiny) == fmnist_tiny.resolve()
    raw = (tmp_path / "FashionMNIST" / "raw").resolve()
    raw.mkdir(parents=True)
    _copy(fmnist_tiny, raw)
    assert find_fmnist_dir() == raw  # torchvision layout under the env folder


@pytest.mark.slow
def test_full_dataset():
    try:
        find_fmnist_dir()
    except DatasetNotFoundError:
        pytest.skip("dataset-fashion-mnist not installed")
    images, labels = load_fmnist("train")
    assert images.shape == (60000, 1, 32, 32)
    assert labels.bincount().tolist() == [6000] * 10
    assert load_fmnist("test")[1].bincount().tolist() == [1000] * 10
