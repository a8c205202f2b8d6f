"""The evaluation classifier: architecture, smoke training and resume, loading, the shipped fmnist-clf."""

import pytest
import torch

from pagoda_inverse.core.checkpoint import load_checkpoint, save_checkpoint
from pagoda_inverse.core.classifier import Classifier, ClassifierConfig, classify, load_classifier
from pagoda_inverse.datasets import load_fmnist, to_model_range
from pagoda_inverse.train.classifier import train_classifier
from pagoda_inverse.train.config import resolve
from pagoda_inverse.utils.errors import CheckpointError


def test_features_and_logits_shapes_and_wrong_size():
    clf = Classifier(ClassifierConfig(channels=8, feature_dim=16)).eval()
    feats, pred = classify(clf, torch.rand(5, 1, 32, 32) * 2 - 1, batch_size=2)
    assert feats.shape == (5, 16) and feats.dtype == torch.float64 and pred.shape == (5,)
    with pytest.raises(ValueError, match="expects 32px images"):
        clf.features(torch.zeros(1, 1, 16, 16))


def test_smoke_training_resumes_to_the_same_weights(tmp_path, fmnist_tiny):
    cfg = resolve("classifier", "smoke")  # 6 steps, checkpoints every 3
    (tmp_path / "full").mkdir()
    full = train_classifier(cfg, tmp_path / "full")
    # Interrupted run: crash during step 5 (after the step-3 checkpoint), then resume to the end.
    part = tmp_path / "part"
    part.mkdir()

    def crash(info):
        if info["step"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_classifier(cfg, part, callback=crash)
    assert not (part / "classifier").exists()
    resumed = train_classifier(cfg, part)
    assert "start step 3" in (part / "log.txt").read_text()  # continued from the checkpoint, not from scratch
    a, config = load_checkpoint(full)
    b, _ = load_checkpoint(resumed)
    assert config["kind"] == "classifier" and 0 <= config["metrics"]["test_accuracy"] <= 1
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    assert load_classifier(str(full)).config == cfg.net


def test_loading_refuses_other_checkpoints(tmp_path, tiny_model_dir):
    with pytest.raises(CheckpointError, match="not a classifier checkpoint"):
        load_classifier(str(tiny_model_dir / "teacher"))
    save_checkpoint(tmp_path / "bad", {"net.x": torch.zeros(1)}, {"kind": "classifier", "classifier": {"depth": 3}})
    with pytest.raises(CheckpointError, match="invalid 'classifier' section"):
        load_classifier(str(tmp_path / "bad"))


def test_shipped_classifier_recognises_real_test_images(fmnist_tiny):
    images, labels = load_fmnist("test", root=str(fmnist_tiny))
    _, pred = classify(load_classifier("fmnist-clf"), to_model_range(images))
    assert (pred == labels).double().mean() >= 0.8  # 89.6% on the full test split (docs/models/fmnist-clf.md)
