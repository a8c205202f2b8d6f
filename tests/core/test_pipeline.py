"""The smoke pipeline end to end on the 256-image fixture: teacher -> encode -> decoder -> load -> generate."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pagoda_inverse.control.generate import generate
from pagoda_inverse.core.encode import load_latent_cache
from pagoda_inverse.core.model import load_model
from pagoda_inverse.train.config import resolve, to_dict
from pagoda_inverse.train.decoder import train_decoder
from pagoda_inverse.train.encode import encode_dataset
from pagoda_inverse.train.state import load_train_state, new_run_dir, write_config
from pagoda_inverse.train.teacher import train_teacher
from pagoda_inverse.utils.errors import UserError


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, caption_bank):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PAGODA_FMNIST_DIR", str(Path(__file__).parents[1] / "fixtures" / "fmnist-tiny"))
        yield _run_smoke(tmp_path_factory.mktemp("runs"), caption_bank)


def _run_smoke(root, caption_bank):
    cfg = resolve("teacher", "smoke")
    run = new_run_dir(root, "teacher-smoke")
    write_config(run, "teacher", to_dict(cfg))
    teacher = train_teacher(cfg, run, bank=caption_bank)
    latents = encode_dataset(teacher, root / "latents", resolve("encode", "smoke"))
    dec_run = new_run_dir(root, "decoder-smoke")
    decoder = train_decoder(resolve("decoder", "smoke"), dec_run, teacher, latents)
    return {"root": root, "teacher": teacher, "latents": latents, "decoder": decoder, "bank": caption_bank}


def test_artifacts(smoke):
    run = smoke["teacher"].parent
    for name in ("config.json", "log.txt", "samples.png", "train_state.safetensors"):
        assert (run / name).is_file(), name
    cache, manifest = load_latent_cache(smoke["latents"])
    # One latent per image in a seeded orientation, plus 10% under the null caption.
    assert manifest["num_latents"] == 256 + round(0.1 * 256) == len(cache["latents"])
    assert cache["latents"].dtype == torch.float32 and cache["latents"].shape[1:] == (1, 8, 8)
    assert 0 < int(cache["flip"].sum()) < 256 and int(cache["null"].sum()) == 26


def test_encode_resumes_after_a_lost_shard(smoke, tmp_path):
    cache, _ = load_latent_cache(smoke["latents"])
    (smoke["latents"] / "shard-00001.safetensors").rename(tmp_path / "lost")
    with pytest.raises(UserError, match="incomplete"):
        load_latent_cache(smoke["latents"])
    encode_dataset(smoke["teacher"], smoke["latents"], resolve("encode", "smoke"))
    again, _ = load_latent_cache(smoke["latents"])
    torch.testing.assert_close(again["latents"], cache["latents"], rtol=0, atol=1e-4)
    with pytest.raises(UserError, match="another teacher or config"):
        encode_dataset(smoke["teacher"], smoke["latents"], replace(resolve("encode", "smoke"), num_steps=5))


def test_generate_from_decoder_and_teacher(smoke):
    model = load_model(smoke["decoder"])
    assert model.decoder is not None and model.resolution == 8
    cond = model.class_condition(torch.tensor([9, 9, 9]))
    x = generate(model, cond, [0, 1, 2])
    assert x.shape == (3, 1, 8, 8) and x.abs().max() <= 1
    # Sample i depends only on seed i, not on the batch it is in.
    torch.testing.assert_close(generate(model, cond[:1], [1]), x[1:2], rtol=0, atol=1e-5)
    guided = generate(model, cond, [0, 1, 2], cfg_scale=3.0)
    assert not torch.allclose(guided, x)
    teacher = load_model(smoke["teacher"])
    assert generate(teacher, cond, [0, 1, 2], sampler="heun", num_steps=4).shape == (3, 1, 8, 8)
    with pytest.raises(UserError, match="no decoder"):
        generate(teacher, cond, [0, 1, 2])


def test_resume_gives_the_same_weights(smoke, tmp_path):
    cfg = resolve("teacher", "smoke")
    half = new_run_dir(tmp_path, "a")
    train_teacher(resolve("teacher", "smoke", steps=10), half, bank=smoke["bank"])
    # Continue the 10-step run to 20 steps: identical to the uninterrupted 20-step run (same data order, state).
    train_teacher(cfg, half, bank=smoke["bank"])
    full = smoke["teacher"].parent
    from pagoda_inverse.core.checkpoint import load_tensors

    a, b = load_tensors(half / "teacher" / "model.safetensors"), load_tensors(full / "teacher" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert load_train_state(half, {}, {}) == 20


def test_decoder_refuses_latents_of_another_teacher(smoke, tmp_path):
    import shutil

    other = tmp_path / "teacher"
    shutil.copytree(smoke["teacher"], other)
    from pagoda_inverse.core.checkpoint import load_tensors, save_tensors

    t = load_tensors(other / "model.safetensors")
    t["net.conv_in.bias"] = t["net.conv_in.bias"] + 1
    save_tensors(other / "model.safetensors", t)
    with pytest.raises(UserError, match="another teacher"):
        train_decoder(resolve("decoder", "smoke"), new_run_dir(tmp_path, "d"), other, smoke["latents"])


def test_grown_generator_starts_as_the_upsampled_generator_and_freezes_the_trunk(smoke):
    from pagoda_inverse.train.grow import freeze_trunk, grow_generator

    model = load_model(smoke["decoder"])
    G = model.decoder
    grown = grow_generator(G)
    z, c = torch.randn(2, 1, 8, 8) * 80, model.class_condition(torch.tensor([1, 2]))
    # The new stage and its zero-initialised head leave the nearest-up-sampled previous output unchanged.
    torch.testing.assert_close(grown(z, c), torch.nn.functional.interpolate(G(z, c), scale_factor=2, mode="nearest"))
    trainable = freeze_trunk(grown)
    assert trainable and all(n.startswith(("dec.", "grow.", "grow_out.", "out.")) for n in trainable)
    assert not any(n.startswith(("enc.", "mid.", "cond_embed", "noise_mlp", "conv_in")) for n in trainable)
    assert grown.net.last_layer_weight() is grown.net.grow_out[-1][-1].weight


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_grown_generator_sits_on_the_chosen_upsampling_and_round_trips_it(smoke, mode):
    from pagoda_inverse.core.unet import UNetConfig
    from pagoda_inverse.train.grow import grow_generator

    model = load_model(smoke["decoder"])
    grown = grow_generator(model.decoder, upsample=mode)
    z, c = torch.randn(2, 1, 8, 8) * 80, model.class_condition(torch.tensor([3, 4]))
    expected = torch.nn.functional.interpolate(model.decoder(z, c), scale_factor=2, mode=mode, align_corners=False)
    torch.testing.assert_close(grown(z, c), expected)
    cfg = grown.net.config
    assert cfg.grow_upsample == (mode,) and UNetConfig.from_dict(cfg.to_dict()) == cfg
    # A checkpoint written before the option existed (no key) reads as nearest, one mode per stage.
    legacy = {k: v for k, v in cfg.to_dict().items() if k != "grow_upsample"}
    assert UNetConfig.from_dict(legacy).grow_upsample == ("nearest",)
    with pytest.raises(ValueError, match="unknown grow_upsample"):
        cfg.grown(upsample="lanczos")


def test_grow_stage_trains_at_the_new_resolution(smoke, tmp_path):
    from pagoda_inverse.train.grow import grow_decoder

    before = load_model(smoke["decoder"]).decoder.net.state_dict()
    out = grow_decoder(
        resolve("grow", "smoke"), new_run_dir(tmp_path, "grow"), smoke["decoder"], smoke["teacher"], smoke["latents"]
    )
    grown = load_model(out).decoder
    assert grown.net.config.out_resolution == 16
    after = grown.net.state_dict()
    for key in ("conv_in.weight", "enc.0.0.conv0.weight", "mid.0.conv0.weight", "cond_embed.weight"):
        torch.testing.assert_close(after[key], before[key])  # frozen trunk (EMA of an unchanged tensor)
    assert not torch.equal(after["out.2.weight"], before["out.2.weight"])
    # The new stage's random initial weights come from the config's seed: a second run gives the same weights.
    torch.manual_seed(12345)  # whatever the global generator held before
    again = grow_decoder(
        resolve("grow", "smoke"), new_run_dir(tmp_path, "grow"), smoke["decoder"], smoke["teacher"], smoke["latents"]
    )
    for key, value in load_model(again).decoder.net.state_dict().items():
        torch.testing.assert_close(value, after[key], rtol=0, atol=0, msg=key)
    with pytest.raises(UserError, match="not a decoder"):
        grow_decoder(
            resolve("grow", "smoke"),
            new_run_dir(tmp_path, "bad"),
            smoke["teacher"],
            smoke["teacher"],
            smoke["latents"],
        )


def test_grow_stage_in_bf16_trains_the_same_weights_in_fp32(smoke, tmp_path):
    # bf16 autocast runs G and D in bfloat16 and the losses and weights stay float32: a trained stage in float32
    # files, whose weights moved away from the start and stay near the fp32 run's (6 steps, same batches).
    from pagoda_inverse.train.grow import grow_decoder, grow_generator

    runs = {}
    for precision in ("fp32", "bf16"):
        cfg = resolve("grow", "smoke", precision=precision)
        runs[precision] = load_model(
            grow_decoder(cfg, new_run_dir(tmp_path, precision), smoke["decoder"], smoke["teacher"], smoke["latents"])
        ).decoder.net.state_dict()
    torch.manual_seed(0)
    start = grow_generator(load_model(smoke["decoder"]).decoder).net.state_dict()
    moved = runs["bf16"]["out.2.weight"] - start["out.2.weight"]
    assert runs["bf16"]["out.2.weight"].dtype == torch.float32 and moved.abs().max() > 0
    gap = (runs["bf16"]["out.2.weight"] - runs["fp32"]["out.2.weight"]).norm()
    assert gap < 0.5 * (runs["fp32"]["out.2.weight"] - start["out.2.weight"]).norm()


def test_learned_encoder_and_codec(smoke, tmp_path):
    from pagoda_inverse.control.codec import decode, encode
    from pagoda_inverse.train.export import export_model
    from pagoda_inverse.train.learned_encoder import train_encoder

    enc = train_encoder(resolve("encoder", "smoke"), new_run_dir(tmp_path, "enc"), smoke["teacher"], smoke["latents"])
    bundle = export_model(
        tmp_path / "bundle", teacher=smoke["teacher"], decoder=smoke["decoder"], encoder=enc, card="# smoke\n"
    )
    model = load_model(bundle)
    assert model.teacher is not None and model.decoder is not None and model.encoder is not None
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    c = model.class_condition(torch.tensor([3, 4]))
    z_ode, z_learned = encode(model, x, c), encode(model, x, c, method="learned")
    assert z_ode.shape == z_learned.shape == (2, 1, 8, 8)
    assert decode(model, z_ode, c).shape == (2, 1, 8, 8)
    with pytest.raises(UserError, match=r"\[B, 1, 8, 8\]"):
        encode(model, torch.zeros(2, 1, 16, 16), c)
    # fp16 storage: the exported teacher matches the fp32 one to half precision.
    ref = load_model(smoke["teacher"])
    sigma = torch.tensor(1.0)
    torch.testing.assert_close(model.teacher(x, sigma, c), ref.teacher(x, sigma, c), rtol=0, atol=2e-2)
    # An existing model folder is only replaced with overwrite; a wrong part is refused before anything is written.
    card = (bundle / "card.md").read_text()
    with pytest.raises(UserError, match="exists and is not empty; pass --overwrite"):
        export_model(bundle, encoder=enc, card="# other\n")
    with pytest.raises(UserError, match="is a 'teacher' checkpoint, expected a decoder"):
        export_model(bundle, encoder=enc, decoder=smoke["teacher"], card="# other\n", overwrite=True)
    assert (bundle / "card.md").read_text() == card
    export_model(bundle, card="# other\n", overwrite=True)
    assert (bundle / "card.md").read_text() == "# other\n"


def test_guidance_map_pairs_training_and_generation(smoke, tmp_path):
    from pagoda_inverse.control.codec import decode
    from pagoda_inverse.core.generator import generate_guided
    from pagoda_inverse.core.guidance import GuidanceMap
    from pagoda_inverse.core.ode import encode_heun, sample_heun
    from pagoda_inverse.core.precond import guided_denoiser
    from pagoda_inverse.train.export import export_model
    from pagoda_inverse.train.guidance import (
        condition_table,
        guidance_jobs,
        load_pairs,
        make_pairs,
        train_guidance,
    )
    from pagoda_inverse.utils.seeding import randn_for_seeds

    cfg = resolve("guidance", "smoke")
    run = new_run_dir(tmp_path, "guidance")
    write_config(run, "guidance", to_dict(cfg))
    out = train_guidance(cfg, run, smoke["teacher"])
    model = load_model(smoke["teacher"])
    pairs = load_pairs(run / "pairs", cfg, 1, 8)
    idx, w = guidance_jobs(cfg, model.bank)
    assert torch.equal(pairs["w"], w) and 1 <= w.min() and w.max() <= cfg.w_max and w.std() > 0.5
    # Pair 37 (a later shard, batched with others at other scales) is its own seed's CFG-w sample, encoded back.
    j = 37
    cond = condition_table(model.bank)[idx[j]][None]
    den = guided_denoiser(model.teacher, cond, model.bank.null_embedding, float(w[j]))
    with torch.no_grad():
        x = sample_heun(den, randn_for_seeds([j], (1, 8, 8)), cfg.num_steps).clamp(-1, 1)
        z = encode_heun(guided_denoiser(model.teacher, cond, clamp=True), x, cfg.num_steps)
    torch.testing.assert_close(pairs["target"][j], z[0], rtol=0, atol=1e-3)
    torch.testing.assert_close(pairs["z"][j], 80 * randn_for_seeds([j], (1, 8, 8))[0])
    # Two torchrun ranks split the shards between them and together write the same pairs.
    split = tmp_path / "split"
    make_pairs(model.teacher, model.bank, cfg, split, rank=1, world_size=2)
    assert [p.name for p in split.iterdir()] == ["shard-00001.safetensors"]
    make_pairs(model.teacher, model.bank, cfg, split, rank=0, world_size=2)
    again = load_pairs(split, cfg, 1, 8)
    torch.testing.assert_close(again["target"], pairs["target"], rtol=0, atol=1e-4)

    # Exported beside G, the map turns cfg_scale into guided latents; out of its trained range it refuses.
    bundle = export_model(tmp_path / "bundle", teacher=smoke["teacher"], decoder=smoke["decoder"], guidance=out)
    guided = load_model(bundle)
    assert isinstance(guided.guidance, GuidanceMap) and guided.guidance.w_max == cfg.w_max
    c = guided.class_condition(torch.tensor([1, 2]))
    zs = 80 * randn_for_seeds([0, 1], (1, 8, 8))
    zw = guided.guidance(zs, c, 3.0)
    assert not torch.equal(zw, zs)
    # Generation and decoding guide alike: G_w(M(z, c, w), c), the guided G of the mapped latent.
    expected = generate_guided(guided.decoder, zw, c, guided.bank.null_embedding, 3.0).clamp(-1, 1)
    torch.testing.assert_close(generate(guided, c, [0, 1], cfg_scale=3.0), expected)
    torch.testing.assert_close(decode(guided, zs, c, cfg_scale=3.0), expected)
    with pytest.raises(UserError, match=r"guidance scale .* \[1, 4.5\]"):
        generate(guided, c, [0, 1], cfg_scale=cfg.w_max + 1)


def test_guidance_refuses_an_unconditional_teacher(tmp_path):
    from pagoda_inverse.core.model import MODELS_DIR
    from pagoda_inverse.train.guidance import train_guidance

    with pytest.raises(UserError, match="unconditional teacher has no classifier-free guidance"):
        train_guidance(resolve("guidance", "smoke"), tmp_path, MODELS_DIR / "photo" / "teacher")
    assert not any(tmp_path.iterdir())
