"""LPIPS and FID from user weight files: safe loading, refusal of wrong files, and the plumbing into the bench.

Real AlexNet / Inception weights cannot be obtained offline, so these tests use random-weight state dicts of the
right architecture: they check loading, shapes and the metric's basic properties, never a reported number.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
import torchvision
from cli_helpers import cli_in_process, one_line_error
from safetensors.torch import save_file

from pagoda_inverse.bench.backbones import InceptionFeatures, LPIPSMetric, read_state_dict
from pagoda_inverse.utils.errors import UserError

pytest.importorskip("lpips")
FMNIST_TINY = Path(__file__).parents[1] / "fixtures" / "fmnist-tiny"


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory) -> Path:
    """torchvision AlexNet's ``features.*`` tensors (random weights), as LPIPS uses them."""
    torch.manual_seed(0)
    features = torchvision.models.alexnet(weights=None).features
    path = tmp_path_factory.mktemp("weights") / "alexnet.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in features.state_dict().items()}, path)
    return path


def test_read_state_dict_accepts_tensors_only(tmp_path, alexnet_file):
    torch.save({"state_dict": {"w": torch.ones(2)}}, tmp_path / "wrapped.pth")
    assert read_state_dict(tmp_path / "wrapped.pth")["w"].tolist() == [1.0, 1.0]
    assert "features.0.weight" in read_state_dict(alexnet_file)
    # weights_only refuses arbitrary objects
    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"w": object()}, protocol=2))
    for name, match in (("evil.pth", "not a readable weights file"), ("missing.pth", "no such weights file")):
        with pytest.raises(UserError, match=match):
            read_state_dict(tmp_path / name)
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(UserError, match="no state dict of tensors"):
        read_state_dict(tmp_path / "list.pth")


def test_lpips_from_a_weights_file(tmp_path, alexnet_file):
    metric = LPIPSMetric(alexnet_file)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 32, 32, generator=g) * 2 - 1
    y = (x + 0.5 * torch.randn(3, 1, 32, 32, generator=g)).clamp(-1, 1)
    same, diff = metric(x, x), metric(x, y)
    assert same.shape == diff.shape == (3,)
    assert torch.all(same.abs() < 1e-6) and torch.all(diff > 0)
    save_file({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.safetensors")
    with pytest.raises(UserError, match="not alexnet weights"):
        LPIPSMetric(tmp_path / "other.safetensors")


def test_bench_adds_lpips_only_with_weights(tmp_path, tiny_model_dir, capsys, alexnet_file):
    args = ["bench", "--task", "denoise", "--solvers", "pinv", "--limit", "3", "--model", str(tiny_model_dir), "-q"]
    with_lpips = cli_in_process(capsys, *args, "--out", str(tmp_path / "a"), "--lpips-weights", str(alexnet_file))
    assert with_lpips.returncode == 0, with_lpips.stderr
    assert "LPIPS" in (tmp_path / "a" / "results.md").read_text()
    scores = json.loads((tmp_path / "a" / "results.json").read_text())["results"][0]["scores"]["pinv"]
    assert scores["lpips"] > 0
    without = cli_in_process(capsys, *args, "--out", str(tmp_path / "b"))
    assert without.returncode == 0 and "LPIPS" not in (tmp_path / "b" / "results.md").read_text()
    missing = cli_in_process(capsys, *args, "--out", str(tmp_path / "c"), "--lpips-weights", str(tmp_path / "no.pth"))
    one_line_error(missing, "no.pth", "no such weights file")
    assert not (tmp_path / "c").exists()


def test_inception_features_from_a_weights_file(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp_path / "inception.safetensors")
    features = InceptionFeatures(tmp_path / "inception.safetensors")
    out = features(torch.rand(2, 1, 32, 32) * 2 - 1)
    assert out.shape == (2, 2048) and out.dtype == torch.float64 and bool(out.isfinite().all())
    # FID for a generation task: the samples' features against the reference split's (tiny fixture: 64 images).
    from pagoda_inverse.bench.generation import run_generation
    from pagoda_inverse.bench.tasks import load_task

    monkeypatch.setenv("PAGODA_FMNIST_DIR", str(FMNIST_TINY))
    (tmp_path / "g.toml").write_text(
        '[task]\nfamily = "generate"\nmodel = "fmnist"\ndataset = "fmnist"\nsplit = "test"\nimages = 4\n'
        '[generation]\ncondition = "class"\ncfg_scale = 2.0\n[samplers.one]\nsampler = "onestep"\n'
    )
    result = run_generation(load_task(tmp_path / "g.toml"), samplers=["one"], inception=features)
    assert result["scores"]["one"]["fid"] > 0
