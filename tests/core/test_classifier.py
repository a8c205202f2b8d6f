"""The evaluation classifier: architecture, smoke training and resume, loading, the shipped fmnist-clf."""

import pytest
import torch
from resume_helpers import check_crash_and_resume

from pagoda_inverse.core.checkpoint import save_checkpoint
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
    config = check_crash_and_resume(train_classifier, cfg, tmp_path)
    assert config["kind"] == "classifier" and 0 <= config["metrics"]["test_accuracy"] <= 1
    assert load_classifier(str(tmp_path / "full" / "classifier")).config == cfg.net


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
