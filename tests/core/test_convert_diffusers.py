"""diffusers UNet2DModel folders -> ADM model folders: outputs agree, unexpressible configurations are refused."""

from __future__ import annotations

import json

import pytest
import torch
from adm_helpers import randomize

from pagoda_inverse.core.adm_teacher import load_adm_teacher
from pagoda_inverse.core.checkpoint import load_config
from pagoda_inverse.interop.adm_presets import get_preset, shape_signature
from pagoda_inverse.interop.diffusers_unet import adm_config_from_diffusers, convert_diffusers, diffusers_to_adm
from pagoda_inverse.nets.adm import ADM
from pagoda_inverse.nets.adm import state_mismatch as mismatch
from pagoda_inverse.utils.errors import CheckpointError, UserError

diffusers = pytest.importorskip("diffusers")

#: Class-conditional, learned variance, scale-shift, BigGAN resampling, attention at the inner level.
SCALE_SHIFT = dict(sample_size=8, in_channels=3, out_channels=6, block_out_channels=(32, 64), layers_per_block=1,
                   down_block_types=("ResnetDownsampleBlock2D", "AttnDownBlock2D"),
                   up_block_types=("AttnUpBlock2D", "ResnetUpsampleBlock2D"), attention_head_dim=16, norm_num_groups=8,
                   attn_norm_num_groups=8, num_class_embeds=5, resnet_time_scale_shift="scale_shift",
                   downsample_type="resnet", upsample_type="resnet")  # fmt: skip
#: Unconditional, additive embedding, conv resampling, one-head attention at two levels.
PLAIN = dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(32, 32, 64), layers_per_block=2,
             down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
             up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"), attention_head_dim=None,
             norm_num_groups=16, dropout=0.1)  # fmt: skip
#: diffusers' configuration of OpenAI's ImageNet-64 consistency models (cd_imagenet64_l2 and kin).
CM_IMAGENET64 = dict(sample_size=64, in_channels=3, out_channels=3, layers_per_block=3, num_class_embeds=1000,
                     block_out_channels=(192, 384, 576, 768), attention_head_dim=64,
                     down_block_types=("ResnetDownsampleBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
                     up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "ResnetUpsampleBlock2D"),
                     resnet_time_scale_shift="scale_shift", upsample_type="resnet", downsample_type="resnet",
                     attn_norm_num_groups=32)  # fmt: skip
#: google/ddpm-cifar10-32's U-Net: DDPM's embedding (sin first, shifted frequencies) and asymmetric down-sampling.
DDPM_CIFAR = dict(sample_size=32, block_out_channels=(32, 64, 64, 64), layers_per_block=2, flip_sin_to_cos=False,
                  freq_shift=1, downsample_padding=0, norm_eps=1e-6, attention_head_dim=None, norm_num_groups=32,
                  down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"))  # fmt: skip


def _save(config: dict, folder, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = randomize(diffusers.UNet2DModel(**config), seed).eval()
    model.save_pretrained(folder, **kwargs)
    return model


@pytest.mark.parametrize("config", [SCALE_SHIFT, PLAIN], ids=["scale-shift", "plain"])
def test_a_random_unet2dmodel_converts_and_agrees(config, tmp_path):
    model = _save(config, tmp_path / "unet").double()
    out = convert_diffusers(tmp_path / "unet", tmp_path / "model", schedule="linear")
    ours = load_adm_teacher(out / "teacher").net.double()
    size = config["sample_size"]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.tensor([4.0, 911.0])  # float32 steps: both embed them in float32, then cast to float64
    labels = torch.tensor([1, 4]) if config.get("num_class_embeds") else None
    with torch.no_grad():
        expected, got = model(x, t, class_labels=labels).sample, ours(x, t, labels)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert expected.abs().max() > 0.1
    assert load_config(out / "teacher")["source"]["format"] == "diffusers"


def test_the_imagenet64_consistency_model_config_is_our_imagenet64_network():
    with torch.device("meta"):  # 296M parameters, free on the meta device
        model = diffusers.UNet2DModel(**CM_IMAGENET64)
    cfg = adm_config_from_diffusers(dict(model.config))
    assert mismatch(cfg, diffusers_to_adm(model.state_dict(), cfg, "resnet")) is None
    gd = get_preset("imagenet64-cond").config
    assert shape_signature(cfg)[:6] == shape_signature(gd)[:6] and not cfg.learn_sigma  # all but learn_sigma


@pytest.mark.slow
def test_the_imagenet64_consistency_model_config_agrees_at_full_size():
    model = randomize(diffusers.UNet2DModel(**CM_IMAGENET64), constant_only=True).double().eval()
    cfg = adm_config_from_diffusers(dict(model.config))
    with torch.device("meta"):
        ours = ADM(cfg)
    ours.load_state_dict(diffusers_to_adm(model.state_dict(), cfg, "resnet"), assign=True)
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    t, labels = torch.tensor([500.0]), torch.tensor([207])
    with torch.no_grad():
        torch.testing.assert_close(
            ours.eval()(x, t, labels), model(x, t, class_labels=labels).sample, rtol=0, atol=1e-5
        )


def test_a_pipeline_folder_gives_unet_and_schedule(tmp_path):
    _save(SCALE_SHIFT, tmp_path / "pipe" / "unet", safe_serialization=False)  # the .bin weights, weights_only
    (tmp_path / "pipe" / "scheduler").mkdir()
    scheduler = {"_class_name": "DDPMScheduler", "beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 1000}
    (tmp_path / "pipe" / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    out = convert_diffusers(tmp_path / "pipe", tmp_path / "model")
    assert load_config(out / "teacher")["precond"] == {"type": "vp-eps", "schedule": "cosine", "steps": 1000}
    cm = {"_class_name": "CMStochasticIterativeScheduler", "sigma_min": 0.002, "sigma_max": 80.0}
    (tmp_path / "pipe" / "scheduler" / "scheduler_config.json").write_text(json.dumps(cm))
    with pytest.raises(CheckpointError, match="CMStochasticIterativeScheduler without beta_schedule"):
        convert_diffusers(tmp_path / "pipe", tmp_path / "model2")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (DDPM_CIFAR, "not expressible as an ADM: flip_sin_to_cos=False"),
        ({**SCALE_SHIFT, "attn_norm_num_groups": None}, "the mid-block attention has None norm groups, the rest 8"),
        ({**PLAIN, "up_block_types": ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D")}, "attention per level differs"),
        ({**SCALE_SHIFT, "upsample_type": "conv"}, "mixed or unknown resampling ['conv', 'resnet']"),
        ({**PLAIN, "out_channels": 4}, "out_channels=4 for in_channels=3"),
        ({**PLAIN, "attention_head_dim": 24}, "not divisible by num_head_channels 24"),
    ],
)
def test_unexpressible_configurations_are_refused_in_one_line(change, needle):
    with pytest.raises(CheckpointError) as err:
        adm_config_from_diffusers(change, "config.json")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_refusals_write_nothing(tmp_path):
    _save(PLAIN, tmp_path / "unet")
    with pytest.raises(UserError, match="noise schedule None unknown; pass --schedule linear|cosine"):
        convert_diffusers(tmp_path / "unet", tmp_path / "model")
    config = json.loads((tmp_path / "unet" / "config.json").read_text())
    (tmp_path / "unet" / "config.json").write_text(json.dumps({**config, "_class_name": "UNet2DConditionModel"}))
    with pytest.raises(CheckpointError, match="a UNet2DConditionModel; only UNet2DModel converts"):
        convert_diffusers(tmp_path / "unet", tmp_path / "model", schedule="linear")
    assert not (tmp_path / "model").exists()
