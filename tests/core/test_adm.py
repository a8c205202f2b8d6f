"""The ADM U-Net: guided-diffusion's parameter names and outputs (checked against deepinv's DiffUNet), its options."""

from __future__ import annotations

import pytest
import torch
from adm_helpers import TINY, randomize, tiny_adm

from pagoda_inverse.interop.adm_presets import ALIASES, PRESETS, get_preset, matching_presets
from pagoda_inverse.nets.adm import ADM, ADMConfig, timestep_embedding

diffunet = pytest.importorskip("deepinv.models.diffunet")


def _shapes(module: torch.nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items() if "alphas_cumprod" not in k}


def _float64_diffunet(monkeypatch, large: bool):
    """deepinv's DiffUNet (guided-diffusion's UNetModel with its names) in float64 throughout: its time embedding and
    GroupNorm32 compute in float32 by design, which would cap the agreement at float32 precision."""
    embed = diffunet.timestep_embedding
    monkeypatch.setattr(diffunet, "timestep_embedding", lambda t, dim: embed(t, dim).double())
    monkeypatch.setattr(diffunet.GroupNorm32, "forward", torch.nn.GroupNorm.forward)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ref = diffunet.DiffUNet(pretrained=None, large_model=large)
    finally:
        torch.set_default_dtype(default)
    ref.dtype = torch.float64  # DiffUNet casts its input to this
    return randomize(ref, seed=1, constant_only=True).eval()  # the rest has PyTorch's random init


@pytest.mark.parametrize("large", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_deepinv_diffunet_weights_load_strictly_and_outputs_agree(monkeypatch, large):
    ref = _float64_diffunet(monkeypatch, large)
    with torch.device("meta"):
        ours = ADM(get_preset("deepinv-large" if large else "deepinv-small").config)
    state = {k: v for k, v in ref.state_dict().items() if "alphas_cumprod" not in k}
    ours.load_state_dict(state, strict=True, assign=True)  # shares ref's tensors: no copy of the 94M parameters
    ours.eval()
    # One 32x32 image (the smallest size of 5 down-samplings) at a late step, float32 as both embed it then cast.
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.tensor([871.0])
    with torch.no_grad():
        expected, got = ref.forward_diffusion(x, t), ours(x, t)
    assert got.shape == (1, 6, 32, 32)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert expected.abs().max() > 0.05  # random weights everywhere: the comparison is not between zeros


def test_the_large_diffunet_has_our_keys_and_shapes():
    # The 553M-parameter network, built without memory: every key and shape of deepinv's equals ours.
    with torch.device("meta"):
        ref = diffunet.DiffUNet(pretrained=None, large_model=True)
        ours = ADM(get_preset("openai256-uncond").config)
    assert _shapes(ours) == _shapes(ref)


def test_imagenet64_preset_has_the_published_size():
    with torch.device("meta"):
        net = ADM(get_preset("imagenet64-cond").config)
    assert round(sum(p.numel() for p in net.parameters()) / 1e6) == 296
    assert net.label_emb.weight.shape == (1000, 768) and net.out[-1].weight.shape[0] == 6


def test_every_preset_matches_only_itself():
    for name, preset in PRESETS.items():
        assert matching_presets(preset.config) == [name]
    assert set(ALIASES.values()) <= set(PRESETS)
    with pytest.raises(ValueError, match="unknown ADM preset 'nope'; choose from imagenet64-cond"):
        get_preset("nope")


def test_attention_orders_are_row_permutations_of_each_other():
    new = tiny_adm(TINY).double()
    legacy = ADM(ADMConfig(**{**TINY.to_dict(), "use_new_attention_order": False})).double().eval()
    state = new.state_dict()
    d = TINY.num_head_channels
    for key in [k for k in state if k.endswith(("qkv.weight", "qkv.bias"))]:
        c = state[key].shape[0] // 3
        rows = state[key].reshape(3, c // d, d, *state[key].shape[1:])  # [q|k|v][head][d] -> [head][q|k|v][d]
        state[key] = rows.transpose(0, 1).reshape(3 * c, *state[key].shape[1:])
    legacy.load_state_dict(state)
    x, t, y = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.tensor([1.0, 500.0]), torch.tensor([0, 4])
    with torch.no_grad():
        torch.testing.assert_close(legacy(x, t, y), new(x, t, y), rtol=0, atol=1e-12)
        wrong = ADM(TINY).double().eval()  # the permuted rows read in the new order: the layouts really differ
        wrong.load_state_dict(state)
        assert (wrong(x, t, y) - new(x, t, y)).abs().max() > 1e-4


def test_one_hot_labels_equal_integer_labels_and_zeros_drop_the_class():
    net = tiny_adm()
    x, t = torch.randn(3, 3, 8, 8), torch.tensor([10.0, 20.0, 30.0])
    labels = torch.tensor([0, 3, 4])
    with torch.no_grad():
        by_index = net(x, t, labels)
        torch.testing.assert_close(net(x, t, torch.nn.functional.one_hot(labels, 5).float()), by_index)
        emb = net.embed(t, torch.zeros(3, 5))
    torch.testing.assert_close(emb, net.time_embed(timestep_embedding(t, 32)))


def test_fp16_torso_runs_and_stays_close():
    net = tiny_adm()
    x, t, y = torch.randn(1, 3, 8, 8), torch.tensor([250.0]), torch.tensor([2])
    with torch.no_grad():
        full = net(x, t, y)
        half = tiny_adm().convert_to_fp16()(x, t, y)
    assert half.dtype == torch.float32 and net.torso_dtype == torch.float32
    assert (half - full).abs().max() < 1e-2


def test_bad_inputs_are_named():
    net = tiny_adm()
    with pytest.raises(ValueError, match=r"input size \(6, 7\) is not a multiple of 2"):
        net(torch.zeros(1, 3, 6, 7), torch.zeros(1), torch.tensor([0]))
    with pytest.raises(ValueError, match="needs cond"):
        net(torch.zeros(1, 3, 8, 8), torch.zeros(1))
    with pytest.raises(ValueError, match=r"cond must be \[B\] labels or \[B, 5\]"):
        net(torch.zeros(1, 3, 8, 8), torch.zeros(1), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="unknown field"):
        ADMConfig.from_dict({**TINY.to_dict(), "attention_type": "flash"})
    with pytest.raises(ValueError, match="not divisible by num_head_channels 48"):
        ADM(ADMConfig(**{**TINY.to_dict(), "num_head_channels": 48}))


def test_config_round_trips_through_json():
    import json

    cfg = get_preset("imagenet512-cond").config
    assert cfg.channel_mult[0] == 0.5 and cfg.width(0) == 128
    assert ADMConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
