"""Checkpoints: safetensors + JSON round trip and clean errors for corrupt or mismatched files."""

import json

import pytest
import torch

from pagoda_inverse.core.checkpoint import load_checkpoint, load_module_state, save_checkpoint, split_prefix
from pagoda_inverse.core.model import load_model
from pagoda_inverse.core.unet import UNet, UNetConfig
from pagoda_inverse.utils.errors import CheckpointError, UserError

CFG = UNetConfig(channels=8, channel_mult=(1, 2), attn_resolutions=(4,), cond_dim=6)


def _bank_tensors():
    e = torch.randn(10, 6)
    return {
        "captions.train_embeddings": e,
        "captions.train_labels": torch.arange(10),
        "captions.heldout_embeddings": e,
        "captions.heldout_labels": torch.arange(10),
        "captions.class_embeddings": e,
        "captions.null_embedding": torch.zeros(6),
    }


def _save_teacher(folder, net, half=False):
    tensors = {f"net.{k}": v for k, v in net.state_dict().items()} | _bank_tensors()
    save_checkpoint(folder, tensors, {"kind": "teacher", "unet": CFG.to_dict()}, half=half)


def test_round_trip_exact(tmp_path):
    net = UNet(CFG)
    for p in net.parameters():
        torch.nn.init.normal_(p)
    _save_teacher(tmp_path / "t", net)
    tensors, config = load_checkpoint(tmp_path / "t")
    assert UNetConfig.from_dict(config["unet"]) == CFG
    assert (tmp_path / "t" / "config.json").read_text().endswith("}\n")  # a text file: it ends in a newline
    other = UNet(UNetConfig.from_dict(config["unet"]))
    load_module_state(other, split_prefix(tensors, "net"), tmp_path)
    for (k, a), (_, b) in zip(net.state_dict().items(), other.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    model = load_model(tmp_path / "t")
    assert model.teacher is not None and model.decoder is None and model.teacher_resolution == 8


def test_half_precision_storage(tmp_path):
    net = UNet(CFG)
    _save_teacher(tmp_path / "t", net, half=True)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "t" / "model.safetensors"), "pt") as f:
        assert f.get_tensor("net.conv_in.weight").dtype == torch.float16
    tensors, _ = load_checkpoint(tmp_path / "t")
    assert tensors["net.conv_in.weight"].dtype == torch.float32


def test_not_safetensors(tmp_path):
    _save_teacher(tmp_path / "t", UNet(CFG))
    (tmp_path / "t" / "model.safetensors").write_bytes(b"\x80\x04 not a safetensors file")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(tmp_path / "t")


def test_wrong_shape_and_missing_tensor(tmp_path):
    _save_teacher(tmp_path / "t", UNet(CFG))
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    config["unet"]["channels"] = 16  # the weights no longer match the config
    (tmp_path / "t" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="wrong-shaped|missing|unexpected"):
        load_model(tmp_path / "t")


def test_missing_config_and_foreign_config(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "empty")
    _save_teacher(tmp_path / "t", UNet(CFG))
    (tmp_path / "t" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="not a pagoda-inv config"):
        load_model(tmp_path / "t")
    _save_teacher(tmp_path / "c", UNet(CFG))
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    (tmp_path / "c" / "config.json").write_text(json.dumps({**config, "kind": "classifier"}))
    with pytest.raises(CheckpointError, match="kind 'classifier' is not a teacher/decoder/encoder/guidance/colour"):
        load_model(tmp_path / "c")


def test_unknown_model_name():
    with pytest.raises(UserError, match="neither an embedded model"):
        load_model("no-such-model")


def test_training_time_adds_up_over_resumed_sessions(tmp_path, monkeypatch):
    # Session 1 trains 10 s to its checkpoint (and 5 s more, lost to a kill); session 2 resumes and trains 7 s.
    import pagoda_inverse.train.state as state

    now = [100.0]
    monkeypatch.setattr(state.time, "perf_counter", lambda: now[0])
    net = torch.nn.Linear(2, 2)
    modules, optimizers = {"net": net}, {"net": torch.optim.Adam(net.parameters())}
    assert state.load_train_state(tmp_path, modules, optimizers) == 0
    now[0] += 10
    state.save_train_state(tmp_path, 3, modules, optimizers)
    now[0] += 5 + 3600  # the kill, then an hour before the resume
    assert state.load_train_state(tmp_path, modules, optimizers) == 3
    now[0] += 7
    assert state.training_seconds(tmp_path) == pytest.approx(17.0)


def test_export_records_the_geometry_and_loading_checks_it(tiny_model_dir, tiny_photo_model_dir, tmp_path):
    # export writes the typed geometry of what it assembled; a folder whose model.json disagrees with its parts, or
    # whose parts disagree with each other, is refused at load in one line naming the file.
    import shutil

    from pagoda_inverse.core.model import GEOMETRY_FILE
    from pagoda_inverse.train.export import export_model

    out = export_model(
        tmp_path / "m", teacher=tiny_photo_model_dir / "teacher", decoder=tiny_photo_model_dir / "decoder"
    )
    stored = json.loads((out / GEOMETRY_FILE).read_text())
    model = load_model(out)
    assert stored == {"channels": 3, "teacher_resolution": model.teacher_resolution, "resolution": model.resolution,
                      "sigma_max": 80.0, "patch_prior": True}  # fmt: skip
    (out / GEOMETRY_FILE).write_text(json.dumps({**stored, "resolution": 999}))
    with pytest.raises(CheckpointError, match=r"model.json: does not describe the parts beside it: resolution 999"):
        load_model(out)
    shutil.rmtree(out / "decoder")
    shutil.copytree(tiny_model_dir / "decoder", out / "decoder")  # a grayscale model's decoder beside an RGB teacher
    (out / GEOMETRY_FILE).unlink()
    with pytest.raises(CheckpointError, match=r"decoder: is for 1-channel .* for 3-channel .*export the parts of one"):
        load_model(out)
    # export refuses such a combination before it writes anything: the folder is left as it was.
    shutil.rmtree(out)
    export_model(out, teacher=tiny_photo_model_dir / "teacher")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(CheckpointError, match=r"is for 1-channel .* for 3-channel .*export the parts of one"):
        export_model(out, decoder=tiny_model_dir / "decoder", overwrite=True)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # a folder of the evaluation classifier alone has no geometry to record
    from pagoda_inverse.core.model import MODELS_DIR

    clf = export_model(tmp_path / "clf", classifier=MODELS_DIR / "fmnist-clf" / "classifier")
    assert (clf / "classifier" / "model.safetensors").is_file() and not (clf / GEOMETRY_FILE).exists()
