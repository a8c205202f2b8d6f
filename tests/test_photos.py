"""The photo data: sources and licences, a disjoint held-out split, seeded crops, and the unconditional bank."""

from pathlib import Path

import pytest
import torch

from pagoda_inverse.core.model import PagodaModel
from pagoda_inverse.core.text import CaptionBank
from pagoda_inverse.datasets import photos
from pagoda_inverse.train.config import DataConfig
from pagoda_inverse.train.data import load_images
from pagoda_inverse.utils.errors import UserError


@pytest.fixture
def fake_photos(monkeypatch):
    """Synthetic photos instead of the files: train photos are dark (value < 100), test photos bright (> 150)."""

    def fake(source):
        g = torch.Generator().manual_seed(photos.PHOTO_SOURCES.index(source))
        h, w = (300, 500) if source.split == "train" else (200, 260)
        base = 0 if source.split == "train" else 160
        return (base + torch.randint(0, 90, (3, h, w), generator=g)).to(torch.uint8)

    monkeypatch.setattr(photos, "load_photo", fake)


def test_sources_have_licences_and_a_disjoint_test_split():
    names = [s.name for s in photos.PHOTO_SOURCES]
    assert len(names) == len(set(names))
    assert all(s.licence and s.author and s.split in ("train", "test") for s in photos.PHOTO_SOURCES)
    train, test = photos.photo_sources("train"), photos.photo_sources("test")
    assert len(test) >= 3 and len(train) >= 10 and not {s.name for s in train} & {s.name for s in test}
    with pytest.raises(UserError, match="split"):
        photos.photo_sources("val")


def test_crops_are_seeded_per_index_and_come_from_their_split(fake_photos):
    a = photos.photo_crops("train", 6, size=16, seed=0)
    assert a.shape == (6, 3, 16, 16) and a.dtype == torch.uint8
    assert torch.equal(photos.photo_crops("train", 3, size=16, seed=0), a[:3])  # crop i depends only on (seed, i)
    assert not torch.equal(photos.photo_crops("train", 6, size=16, seed=1), a)
    assert int(a.max()) < 100 and int(photos.photo_crops("test", 6, size=16).min()) > 150


def test_large_photos_are_shrunk_by_block_averaging_before_cropping(fake_photos):
    photo = torch.arange(2 * 7 * 9, dtype=torch.uint8).reshape(2, 7, 9)
    assert photos.shrink_to(photo, 9) is photo  # small enough: untouched
    small = photos.shrink_to(photo, 4)  # 9 / 4 -> blocks of 3: [2, 2, 3]
    assert small.shape == (2, 2, 3) and float(small[1, 0, 0]) == float(photo[1, :3, :3].float().mean())
    # The fake train photos are 300 x 500 of i.i.d. noise: a scale-4 crop averages 4 x 4 pixels; shrunk to a longer
    # side of 64 (blocks of 8, then the scale drops to 2 on the 37 px side), it averages 16 x 16 original pixels.
    fine = photos.photo_crops("train", 8, size=16, scales=(4,), seed=3).float().std()
    coarse = photos.photo_crops("train", 8, size=16, scales=(4,), max_side=64, seed=3).float().std()
    assert float(fine) > 5 and float(coarse) < 2.5  # noise std 26: / 4 and / 16


def test_photo_dataset_loads_unlabelled_model_range_images(fake_photos):
    images, labels = load_images(DataConfig(dataset="photo", resolution=16, factor=4), "test", limit=5)
    assert images.shape == (5, 3, 16, 16) and torch.equal(labels, torch.full((5,), -1))
    assert float(images.min()) >= -1 and float(images.max()) <= 1


def test_missing_wallpaper_names_the_apt_package(tmp_path, monkeypatch):
    monkeypatch.setenv(photos.WALLPAPERS_ENV, str(tmp_path))
    photos._wallpapers_dir.cache_clear()
    try:
        wallpaper = next(s for s in photos.PHOTO_SOURCES if s.package == photos.WALLPAPER_PACKAGE)
        with pytest.raises(UserError, match="apt-get install -y plasma-workspace-wallpapers"):
            wallpaper.path()
        rows = photos.photo_manifest()
        assert any(r["file"] is None and r["size"] == "missing" for r in rows)
    finally:
        photos._wallpapers_dir.cache_clear()


def test_debian_photos_come_from_their_package_or_the_photos_folder(tmp_path, monkeypatch):
    lomiri = next(s for s in photos.PHOTO_SOURCES if s.package == "lomiri-wallpapers-16.04")
    opencv = next(s for s in photos.PHOTO_SOURCES if s.package == "opencv-doc")
    monkeypatch.setenv(photos.PHOTOS_ENV, str(tmp_path))
    with pytest.raises(
        UserError, match=f"{lomiri.name}.*apt-get install -y lomiri-wallpapers-16.04.*PAGODA_PHOTOS_DIR"
    ):
        lomiri.path()
    (tmp_path / opencv.name).write_bytes(b"")
    assert opencv.path() == tmp_path / opencv.name
    monkeypatch.delenv(photos.PHOTOS_ENV)
    monkeypatch.setattr(photos, "_dpkg_files", lambda package: (Path("/x") / package / lomiri.name,))
    assert photos._debian_file(lomiri.package, lomiri.name) == Path("/x/lomiri-wallpapers-16.04") / lomiri.name
    assert (
        photos._debian_file("opencv-doc", "nothing.png") == Path(photos.DEBIAN_FOLDERS["opencv-doc"]) / "nothing.png"
    )


def test_install_script_installs_every_photo_package():
    script = (Path(__file__).parents[1] / "install.sh").read_text()
    line = next(t for t in script.splitlines() if t.startswith("PHOTOS="))
    assert line.split("=", 1)[1].strip('"').split() == list(photos.PHOTO_PACKAGES)
    assert {s.package for s in photos.PHOTO_SOURCES} - {"scikit-image", "scikit-learn"} == set(photos.PHOTO_PACKAGES)


def test_unconditional_bank_round_trips_and_refuses_class_and_prompt():
    bank = CaptionBank.unconditional(6)
    again = CaptionBank.from_tensors(bank.to_tensors())
    assert again.num_classes == 0 and again.embed_dim == 6
    assert torch.equal(again.conditions(torch.tensor([-1, -1])), torch.zeros(2, 6))
    model = PagodaModel(Path("photo"), None, None, bank, {"unet": {"in_channels": 3, "resolution": 16}})
    with pytest.raises(UserError, match="unconditional; drop the class"):
        model.class_condition(torch.tensor([0]))
    with pytest.raises(UserError, match="unconditional; drop the prompt"):
        model.prompt_condition(["a cat"])
