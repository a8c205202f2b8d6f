"""guided-diffusion state dicts -> model folders: shape inference, presets, round trip, and every refusal."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from adm_helpers import TINY, TINY_FLAGS, tiny_adm

from pagoda_inverse.core.adm_teacher import VPEpsDenoiser, load_adm_teacher, vp_alphas_cumprod
from pagoda_inverse.core.checkpoint import load_config
from pagoda_inverse.core.encode import file_digest
from pagoda_inverse.interop.adm_presets import PRESETS, shape_signature
from pagoda_inverse.interop.guided_diffusion import (
    SCHEDULE_BUFFERS,
    check_schedule_buffers,
    convert_guided_diffusion,
    infer_adm_structure,
    read_state_dict,
)
from pagoda_inverse.nets.adm import ADM, ADMConfig
from pagoda_inverse.nets.adm import state_mismatch as mismatch
from pagoda_inverse.utils.errors import CheckpointError, UserError


@pytest.fixture
def tiny_pt(tmp_path):
    """A guided-diffusion-style ``.pt`` (a plain state dict from ``torch.save``) of a random :data:`TINY` network,
    and a JSON file of its flags."""
    net = tiny_adm()
    torch.save(net.state_dict(), tmp_path / "tiny.pt")
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_FLAGS))
    return net, tmp_path / "tiny.pt", tmp_path / "tiny.json"


def _nothing_written(folder):
    """No output folder and no temporary folder beside it."""
    return not folder.exists() and not [p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]


def test_tiny_flags_give_the_tiny_config():
    flags = {
        k: v
        for k, v in TINY_FLAGS.items()
        if k not in ("noise_schedule", "diffusion_steps", "timestep_respacing", "use_checkpoint")
    }
    assert ADMConfig.from_flags(**flags) == TINY


@pytest.mark.parametrize(
    "cfg",
    [
        TINY,
        replace(TINY, resblock_updown=False, attention_resolutions=(), num_classes=0, learn_sigma=False),
        replace(
            TINY, channel_mult=(1, 1, 2), num_res_blocks=2, attention_resolutions=(2, 4), use_scale_shift_norm=False
        ),
        *[p.config for p in PRESETS.values()],
    ],
)
def test_the_structure_is_read_back_from_the_shapes(cfg):
    with torch.device("meta"):  # full-size presets cost nothing on the meta device
        state = ADM(cfg).state_dict()
    assert shape_signature(infer_adm_structure(state)) == shape_signature(cfg)


def test_round_trip_through_torch_save_convert_and_load(tiny_pt, tmp_path):
    net, pt, flags = tiny_pt
    out = convert_guided_diffusion(pt, tmp_path / "model", config=flags)
    teacher = load_adm_teacher(out / "teacher")
    assert isinstance(teacher, VPEpsDenoiser) and teacher.schedule == "cosine"
    config = load_config(out / "teacher")
    assert config["kind"] == "teacher" and ADMConfig.from_dict(config["adm"]) == TINY
    assert config["source"]["files"] == [{"name": "tiny.pt", "sha256": file_digest(pt)}]
    card = (out / "card.md").read_text()
    assert file_digest(pt) in card and "tiny.pt" in card and "cosine" in card
    x, labels = torch.randn(2, 3, 8, 8), torch.tensor([0, 4])
    with torch.no_grad():
        torch.testing.assert_close(teacher(x, torch.tensor([0.3, 30.0]), labels),
                                   VPEpsDenoiser(net, "cosine")(x, torch.tensor([0.3, 30.0]), labels), rtol=0, atol=0)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "tiny.json", "tiny.pt"]


def test_a_preset_is_found_from_the_shapes_and_schedule_can_be_overridden(tmp_path):
    with torch.device("meta"):
        state = ADM(PRESETS["ffhq256"].config).state_dict()
    from pagoda_inverse.interop.guided_diffusion import resolve_config

    cfg, schedule, how = resolve_config(state, None, None, "ffhq_10m.pt")
    assert cfg == PRESETS["ffhq256"].config and schedule == "linear" and "ffhq256" in how
    assert resolve_config(state, "deepinv-small", "cosine", "x.pt")[1] == "cosine"


def test_nested_and_dataparallel_state_dicts_are_unwrapped(tiny_pt, tmp_path):
    net, _, _ = tiny_pt
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}, "step": 7}, tmp_path / "w.pt")
    assert read_state_dict(tmp_path / "w.pt").keys() == net.state_dict().keys()


def test_a_file_needing_other_objects_is_refused_without_running_it(tmp_path):
    torch.save({"input_blocks.0.0.weight": torch.zeros(1), "meta": _Custom()}, tmp_path / "obj.pt")
    with pytest.raises(CheckpointError, match=r"obj\.pt: needs arbitrary objects unpickled \(.*_Custom"):
        read_state_dict(tmp_path / "obj.pt")
    assert not _Custom.loaded


class _Custom:
    """A class ``torch.load(weights_only=False)`` would import and rebuild."""

    loaded = False

    def __setstate__(self, state):
        _Custom.loaded = True


def test_truncated_and_missing_files_are_one_line_errors(tiny_pt, tmp_path):
    _, pt, flags = tiny_pt
    cut = tmp_path / "cut.pt"
    cut.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt: not a readable PyTorch file, truncated or corrupt") as err:
        convert_guided_diffusion(cut, tmp_path / "out", config=flags)
    assert "\n" not in str(err.value) and _nothing_written(tmp_path / "out")
    with pytest.raises(UserError, match="no such file"):
        convert_guided_diffusion(tmp_path / "nope.pt", tmp_path / "out", config=flags)


def test_foreign_keys_are_listed(tiny_pt, tmp_path):
    net, _, flags = tiny_pt
    state = net.state_dict()
    state["extra.weight"] = torch.zeros(3)
    for key in [k for k in state if k.startswith("input_blocks.1.0.in_layers")]:
        state[key.replace("in_layers", "in_layers_v2")] = state.pop(key)
    torch.save(state, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError) as err:
        convert_guided_diffusion(tmp_path / "foreign.pt", tmp_path / "out", config=flags)
    message = str(err.value)
    assert "4 missing (input_blocks.1.0.in_layers.0.bias" in message and "5 unexpected (extra.weight, " in message
    assert "\n" not in message and _nothing_written(tmp_path / "out")
    torch.save({"conv_in.weight": torch.zeros(1), "conv_out.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a guided-diffusion UNet state dict: missing time_embed.0.weight, "):
        convert_guided_diffusion(tmp_path / "other.pt", tmp_path / "out")


def test_a_config_that_disagrees_with_the_shapes_is_refused(tiny_pt, tmp_path):
    _, pt, flags = tiny_pt
    with pytest.raises(CheckpointError, match=r"do not fit preset imagenet64-cond: .*wrong-shaped \(file vs config: "):
        convert_guided_diffusion(pt, tmp_path / "out", config="imagenet64-cond")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**TINY_FLAGS, "num_res_blocks": 2}))
    with pytest.raises(CheckpointError, match=r"do not fit flags of wrong.json: \d+ missing \(input_blocks"):
        convert_guided_diffusion(pt, tmp_path / "out", config=wrong)
    with pytest.raises(CheckpointError, match=r"its tensors match no preset \(in_channels=3, model_channels=32"):
        convert_guided_diffusion(pt, tmp_path / "out")
    assert _nothing_written(tmp_path / "out")


def test_bad_config_arguments(tiny_pt, tmp_path):
    _, pt, flags = tiny_pt
    with pytest.raises(UserError, match="neither a preset .* nor a JSON file"):
        convert_guided_diffusion(pt, tmp_path / "out", config="imagenet65")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**TINY_FLAGS, "num_channel": 32}))
    with pytest.raises(UserError, match="unknown guided-diffusion flag"):
        convert_guided_diffusion(pt, tmp_path / "out", config=bad)
    bad.write_text(json.dumps({**TINY_FLAGS, "noise_schedule": "sqrt"}))
    with pytest.raises(UserError, match="noise schedule 'sqrt' unknown; pass --schedule linear|cosine"):
        convert_guided_diffusion(pt, tmp_path / "out", config=bad)
    (tmp_path / "exists").mkdir()
    with pytest.raises(UserError, match="already exists"):
        convert_guided_diffusion(pt, tmp_path / "exists", config=flags)


def test_the_mismatch_line_counts_everything():
    with torch.device("meta"):
        state = ADM(TINY).state_dict()
    assert mismatch(TINY, state) is None
    state.pop("label_emb.weight")
    state["out.2.weight"] = torch.zeros(3, 32, 3, 3)
    assert mismatch(TINY, state) == (
        "1 missing (label_emb.weight); 1 wrong-shaped (file vs config: out.2.weight [3, 32, 3, 3] vs [6, 32, 3, 3])"
    )


def test_a_converted_adm_encodes_a_dataset_as_a_pagoda_teacher(tiny_pt, tmp_path):
    from pagoda_inverse.core.encode import encode_to_cache, load_latent_cache
    from pagoda_inverse.train.config import EncodeConfig

    _, pt, flags = tiny_pt
    teacher = load_adm_teacher(convert_guided_diffusion(pt, tmp_path / "model", config=flags) / "teacher")
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 8, 8, generator=g) * 2 - 1
    labels = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 4, 0]), 5).float()  # one-hot class conditions
    cfg = EncodeConfig(num_steps=3, batch_size=4, shard_size=4, null_fraction=0.5)
    encode_to_cache(teacher, images, labels, torch.zeros(5), tmp_path / "latents", cfg, identity={"teacher": "tiny"})
    cache, manifest = load_latent_cache(tmp_path / "latents")
    assert cache["latents"].shape == (manifest["num_latents"], 3, 8, 8) and torch.isfinite(cache["latents"]).all()
    assert cache["latents"].std() > 10  # at the sigma_max = 80 scale


def test_loading_a_folder_whose_config_disagrees_with_its_tensors_is_one_line(tiny_pt, tmp_path):
    _, pt, flags = tiny_pt
    out = convert_guided_diffusion(pt, tmp_path / "model", config=flags)
    config_path = out / "teacher" / "config.json"
    config = json.loads(config_path.read_text())
    config["adm"]["num_res_blocks"] = 2
    config_path.write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError, match=r"model.safetensors: \d+ missing .*; the weights do not match config.json"
    ):
        load_adm_teacher(out / "teacher")


def _schedule_buffers(schedule: str) -> dict[str, torch.Tensor]:
    """The two noise-schedule buffers deepinv's ``DiffUNet`` keeps (for the linear schedule), in float32."""
    abar = vp_alphas_cumprod(schedule)
    return {"sqrt_1m_alphas_cumprod": (1 - abar).sqrt().float(), "sqrt_alphas_cumprod": abar.sqrt().float()}


def test_a_diffunet_state_dict_converts_with_its_schedule_buffers_checked(tiny_pt, tmp_path):
    # deepinv's DiffUNet keeps the linear schedule as two buffers beside guided-diffusion's weights.
    net, _, flags = tiny_pt
    torch.save({**net.state_dict(), **_schedule_buffers("linear")}, tmp_path / "diffunet.pt")
    out = convert_guided_diffusion(tmp_path / "diffunet.pt", tmp_path / "m", config=flags, schedule="linear")
    assert load_adm_teacher(out / "teacher").schedule == "linear"
    kept = load_config(out / "teacher")
    assert "match the linear schedule" in kept["source"]["config"]
    assert "sqrt_1m_alphas_cumprod, sqrt_alphas_cumprod" in (out / "card.md").read_text()
    from safetensors import safe_open

    with safe_open(out / "teacher" / "model.safetensors", "pt") as f:
        assert not [k for k in f.keys() if "alphas_cumprod" in k]  # not weights: not kept
        assert len(list(f.keys())) == len(net.state_dict())


def test_schedule_buffers_that_disagree_are_one_line_errors(tiny_pt, tmp_path):
    net, _, flags = tiny_pt  # the flags say cosine
    torch.save({**net.state_dict(), **_schedule_buffers("linear")}, tmp_path / "linear.pt")
    with pytest.raises(CheckpointError) as err:
        convert_guided_diffusion(tmp_path / "linear.pt", tmp_path / "m", config=flags)
    assert "do not hold the cosine schedule" in str(err.value) and "pass --schedule linear" in str(err.value)
    assert "\n" not in str(err.value) and _nothing_written(tmp_path / "m")
    cosine = _schedule_buffers("cosine")
    torch.save({**net.state_dict(), **cosine}, tmp_path / "cosine.pt")
    assert convert_guided_diffusion(tmp_path / "cosine.pt", tmp_path / "m", config=flags).is_dir()
    noise = {k: v + 0.01 for k, v in cosine.items()}
    torch.save({**net.state_dict(), **noise}, tmp_path / "noise.pt")
    with pytest.raises(CheckpointError, match="nor any other known one"):
        convert_guided_diffusion(tmp_path / "noise.pt", tmp_path / "m2", config=flags)
    torch.save({**net.state_dict(), "sqrt_alphas_cumprod": torch.ones(10)}, tmp_path / "short.pt")
    with pytest.raises(CheckpointError, match=r"sqrt_alphas_cumprod has shape \[10\], not the \[1000\]"):
        convert_guided_diffusion(tmp_path / "short.pt", tmp_path / "m2", config=flags)


def test_deepinvs_diffunet_adds_exactly_the_schedule_buffers_to_our_keys():
    diffunet = pytest.importorskip("deepinv.models.diffunet")
    with torch.device("meta"):
        ref = diffunet.DiffUNet(pretrained=None, large_model=False).state_dict()
        ours = ADM(PRESETS["ffhq256"].config).state_dict()
    assert set(ref) - set(ours) == set(SCHEDULE_BUFFERS) and set(ours) <= set(ref)
    real = diffunet.DiffUNet.get_alpha_prod(None)[-2:]  # its buffers, computed as DiffUNet does (no network needed)
    buffers = dict(zip(("sqrt_1m_alphas_cumprod", "sqrt_alphas_cumprod"), real, strict=True))
    assert "match the linear schedule" in check_schedule_buffers(buffers, "linear", "f.pt", "preset ffhq256")
    with pytest.raises(CheckpointError, match="pass --schedule linear"):
        check_schedule_buffers(buffers, "cosine", "f.pt", "--schedule cosine")


@pytest.mark.slow
def test_a_full_diffunet_state_dict_converts(tmp_path):
    """The issue's file: deepinv's ``DiffUNet(large_model=False)`` state dict saved with ``torch.save`` (94M
    parameters, ~380 MB; slow), converted with no options (the ffhq256 preset is found from the shapes)."""
    diffunet = pytest.importorskip("deepinv.models.diffunet")
    torch.save(diffunet.DiffUNet(pretrained=None, large_model=False).state_dict(), tmp_path / "diffunet.pt")
    out = convert_guided_diffusion(tmp_path / "diffunet.pt", tmp_path / "m")
    assert "preset ffhq256" in load_config(out / "teacher")["source"]["config"]
    assert load_adm_teacher(out / "teacher").schedule == "linear"
