"""A converted (imported) ADM in use: ``load_model``, PaGoDA teacher (encode -> decoder -> grow -> encoder),
``generate --sampler heun`` and the peers' prior (``bench --prior``), on tiny random networks on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from adm_helpers import TINY_FLAGS, randomize, tiny_adm
from cli_helpers import cli_in_process, one_line_error

from pagoda_inverse.core.adm_decoder import ADMGenerator
from pagoda_inverse.core.adm_teacher import VPEpsDenoiser, load_adm_teacher
from pagoda_inverse.core.checkpoint import load_tensors
from pagoda_inverse.core.model import load_model
from pagoda_inverse.core.parts import decoder_from_teacher
from pagoda_inverse.interop.guided_diffusion import convert_guided_diffusion
from pagoda_inverse.nets.adm import ADM, ADMConfig
from pagoda_inverse.train.grow import freeze_trunk, grow_generator
from pagoda_inverse.utils.errors import UserError

FMNIST_TINY = Path(__file__).resolve().parent / "fixtures" / "fmnist-tiny"

#: A 1-channel class-conditional ADM for the Fashion-MNIST fixture's 10 classes: teacher at 8x8 (fmnist / 4).
GRAY = ADMConfig(image_size=8, in_channels=1, model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                 attention_resolutions=(2,), num_classes=10, learn_sigma=True, num_heads=2, use_scale_shift_norm=True)  # fmt: skip
GRAY_FLAGS = {"image_size": 8, "num_channels": 32, "channel_mult": "1,2", "num_res_blocks": 1,
              "attention_resolutions": "4", "class_cond": True, "num_classes": 10, "learn_sigma": True,
              "num_heads": 2, "use_scale_shift_norm": True, "in_channels": 1, "noise_schedule": "linear"}  # fmt: skip


def _convert(tmp_path: Path, net: ADM, flags: dict, name: str) -> Path:
    """``pagoda-inv convert``'s library call on a ``.pt`` of ``net`` and a JSON of ``flags``: the model folder."""
    torch.save(net.state_dict(), tmp_path / f"{name}.pt")
    (tmp_path / f"{name}.json").write_text(json.dumps(flags))
    return convert_guided_diffusion(tmp_path / f"{name}.pt", tmp_path / name, config=tmp_path / f"{name}.json")


def test_load_model_reads_a_converted_folder_as_a_teacher_only_model(tmp_path):
    folder = _convert(tmp_path, tiny_adm(), TINY_FLAGS, "tiny")
    model = load_model(folder)
    assert model.decoder is None and isinstance(model.teacher, VPEpsDenoiser)
    assert (model.channels, model.teacher_resolution, model.resolution, model.image_shape) == (3, 8, 8, (3, 8, 8))
    # Class k is the one-hot vector e_k; the null condition is the zero vector.
    assert model.conditional and model.bank.num_classes == 5
    cond = model.class_condition(torch.tensor([4, 0]))
    assert cond.tolist() == torch.eye(5)[[4, 0]].tolist() and not model.null_condition(2).any()
    with pytest.raises(UserError, match="class must be in 0..4"):
        model.class_condition(torch.tensor([5]))
    # The same denoiser as the converter's own loader, through the one-hot conditions and the null one.
    reference = load_adm_teacher(folder / "teacher")
    x, sigma = torch.randn(2, 3, 8, 8), torch.tensor([0.5, 20.0])
    torch.testing.assert_close(model.teacher(x, sigma, cond), reference(x, sigma, torch.tensor([4, 0])))
    assert not torch.allclose(model.teacher(x, sigma, model.null_condition(2)), model.teacher(x, sigma, cond))
    # The toolkit's own models load as before.
    fmnist = load_model("fmnist")
    assert (fmnist.teacher_resolution, fmnist.resolution, fmnist.channels, fmnist.bank.embed_dim) == (8, 32, 1, 384)


def test_an_unconditional_converted_model_ignores_its_condition(tmp_path):
    cfg = ADMConfig(image_size=8, in_channels=1, model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                    attention_resolutions=())  # fmt: skip
    flags = {"image_size": 8, "num_channels": 32, "channel_mult": "1,2", "num_res_blocks": 1,
             "attention_resolutions": "", "in_channels": 1, "use_scale_shift_norm": False, "noise_schedule": "linear"}  # fmt: skip
    model = load_model(_convert(tmp_path, randomize(ADM(cfg)).eval(), flags, "uncond"))
    assert not model.conditional and model.null_condition(3).shape == (3, 1)
    with pytest.raises(UserError, match="unconditional"):
        model.class_condition(torch.tensor([0]))


def test_the_adm_decoder_starts_as_the_teacher_and_grows_as_its_upsampled_self(tmp_path):
    model = load_model(_convert(tmp_path, tiny_adm(), TINY_FLAGS, "tiny"))
    G = decoder_from_teacher(model.teacher)
    assert isinstance(G, ADMGenerator) and G.training and all(p.requires_grad for p in G.parameters())
    z, cond = torch.randn(3, 3, 8, 8) * G.sigma_max, model.class_condition(torch.tensor([0, 2, 4]))
    with torch.no_grad():
        # PaGoDA's initialisation: G is the teacher's one-step denoiser at sigma_max (skip term kept).
        torch.testing.assert_close(G(z, cond), model.teacher(z, torch.tensor(G.sigma_max), cond))
        grown = grow_generator(G, upsample="nearest")
        assert grown.net.config.out_resolution == 16 and grown.net.grow_in_shapes == [(32, 8, 8)]
        # A freshly grown G is the previous G up-sampled (zero-initialised head on the new stage).
        torch.testing.assert_close(grown(z, cond), G(z, cond).repeat_interleave(2, -1).repeat_interleave(2, -2))
        offset = [torch.randn(3, 32, 8, 8)]
        assert grown(z, cond, offset).shape == (3, 3, 16, 16)
    trainable = freeze_trunk(grown)
    # The top decoder level (last num_res_blocks + 1 = 2 output blocks), the head and the new stage train.
    assert {n.split(".")[2] if n.startswith("denoiser") else n.split(".")[0] for n in trainable} == {
        "output_blocks", "out", "grow", "grow_out"}  # fmt: skip
    top = {int(n.split(".")[3]) for n in trainable if ".output_blocks." in n}
    assert top == {len(grown.net.adm.output_blocks) - 2, len(grown.net.adm.output_blocks) - 1}
    assert not any(n.startswith(("denoiser.net.input_blocks", "denoiser.net.time_embed")) for n in trainable)


def _stdout_path(done) -> Path:
    assert done.returncode == 0, done.stderr + done.stdout
    return Path(done.stdout.strip().splitlines()[-1])


def test_a_converted_adm_is_a_pagoda_teacher_encode_decoder_grow_encoder(capsys, tmp_path, monkeypatch):
    """convert -> encode -> train decoder (2 steps) -> train grow (2 steps) -> train encoder -> generate, via the CLI."""
    monkeypatch.setenv("PAGODA_FMNIST_DIR", str(FMNIST_TINY))
    torch.save(randomize(ADM(GRAY)).state_dict(), tmp_path / "gray.pt")
    (tmp_path / "gray.json").write_text(json.dumps(GRAY_FLAGS))
    cli = lambda *args: cli_in_process(capsys, *args)  # noqa: E731
    model = _stdout_path(cli("convert", "--from", "guided-diffusion", tmp_path / "gray.pt", "--config",
                             tmp_path / "gray.json", "--out", tmp_path / "gray"))  # fmt: skip
    teacher, runs = model / "teacher", tmp_path / "runs"
    latents = _stdout_path(cli("encode", "--teacher", teacher, "--preset", "smoke", "--dataset", "fmnist",
                               "--resolution", "32", "--limit", "24", "--out", tmp_path / "latents", "-q"))  # fmt: skip
    manifest = json.loads((latents / "manifest.json").read_text())
    assert manifest["data"]["factor"] == 4 and manifest["channels"] == 1 and manifest["num_latents"] == 24 + 2
    common = ("--teacher", teacher, "--latents", latents, "--preset", "smoke", "--steps", "2", "--runs", runs, "-q")
    decoder = _stdout_path(cli("train", "decoder", *common))
    config = json.loads((decoder / "config.json").read_text())
    assert (
        config["adm_decoder"]["adm"]["num_classes"] == 10 and config["teacher_config"]["precond"]["type"] == "vp-eps"
    )
    # --dry-run: the stage built from the real inputs, 2 steps at batch 2 on the CPU, nothing kept.
    before = sorted(runs.iterdir())
    done = cli(
        "train", "grow", "--decoder", decoder, *common[:4], "--runs", runs, "--preset", "imagenet64-128", "--dry-run"
    )
    assert done.returncode == 0 and "dry run grow (imagenet64-128): decoder of" in done.stderr, done.stderr
    assert (
        "at 16px, 2 steps at batch 2 on the CPU" in " ".join(done.stderr.split()) and sorted(runs.iterdir()) == before
    )
    grown = _stdout_path(cli("train", "grow", "--decoder", decoder, *common))
    # A posterior encoder for the grown ADM decoder (its growth offsets, its one-hot condition), then one_step with it.
    posterior = _stdout_path(cli("train", "posterior", "--family", "inpaint", "--preset", "smoke", "--model", grown,
                                 "--runs", runs, "-q"))  # fmt: skip
    assert json.loads((posterior / "config.json").read_text())["generator"]["cond_dim"] == 10
    encoder = _stdout_path(cli("train", "encoder", *common))
    assert json.loads((encoder / "config.json").read_text())["adm"]["in_channels"] == 1
    G = load_model(grown)
    assert isinstance(G.decoder, ADMGenerator) and G.resolution == 16 and G.teacher_resolution == 8
    E = load_model(encoder).encoder
    z = E(torch.zeros(2, 1, 8, 8), G.class_condition(torch.tensor([1, 2])))
    x = G.decoder(z, G.class_condition(torch.tensor([1, 2])))
    assert z.shape == (2, 1, 8, 8) and x.shape == (2, 1, 16, 16) and torch.isfinite(x).all()
    # One-step samples from the grown G; Heun PF-ODE samples from the converted teacher.
    done = cli("generate", "--model", grown, "--class", "3", "--seeds", "0-3", "--tensor", tmp_path / "g.safetensors")
    assert done.returncode == 0 and "4 samples at 16x16 (onestep" in done.stderr, done.stderr
    assert load_tensors(tmp_path / "g.safetensors")["samples"].shape == (4, 1, 16, 16)
    done = cli("generate", "--model", model, "--class", "9", "--seeds", "0-1", "--sampler", "heun", "--steps", "3",
               "--tensor", tmp_path / "h.safetensors")  # fmt: skip
    assert done.returncode == 0 and "2 samples at 8x8 (heun" in done.stderr, done.stderr
    heun = load_tensors(tmp_path / "h.safetensors")["samples"]
    assert heun.shape == (2, 1, 8, 8) and heun.abs().max() <= 1 and heun.std() > 0
    one_line_error(cli("generate", "--model", model, "--class", "10", "--out", tmp_path / "x.png"), "index 0-9")
    # Bad input: the data an imported teacher encodes must be named; an own teacher's may not be.
    one_line_error(cli("encode", "--teacher", teacher, "--out", tmp_path / "l2"), "records no dataset")
    one_line_error(cli("encode", "--teacher", teacher, "--dataset", "fmnist", "--resolution", "12", "--out",
                       tmp_path / "l3"), "not a multiple of the teacher's resolution 8")  # fmt: skip
    assert not (tmp_path / "l2").exists() and not (tmp_path / "l3").exists()


@pytest.fixture
def prior32(tmp_path):
    """An unconditional 1-channel ADM at the fmnist tasks' 32x32, converted."""
    cfg = ADMConfig(image_size=32, in_channels=1, model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                    attention_resolutions=())  # fmt: skip
    flags = {"image_size": 32, "num_channels": 32, "channel_mult": "1,2", "num_res_blocks": 1,
             "attention_resolutions": "", "in_channels": 1, "use_scale_shift_norm": False, "noise_schedule": "linear"}  # fmt: skip
    return _convert(tmp_path, randomize(ADM(cfg), std=0.02).eval(), flags, "prior32")


def test_bench_runs_the_peers_on_a_converted_prior(capsys, tmp_path, monkeypatch, prior32):
    pytest.importorskip("deepinv")
    monkeypatch.setenv("PAGODA_FMNIST_DIR", str(FMNIST_TINY))
    out = tmp_path / "bench"
    done = cli_in_process(capsys, "bench", "--task", "inpaint_box", "--solvers", "ddrm,diffpir", "--prior", prior32,
                          "--limit", "2", "--out", out, "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["prior"] == str(prior32)
    scores = results["results"][0]["scores"]
    assert set(scores) == {"ddrm", "diffpir", "real images"}  # the real row: the realism metrics' floor
    assert all(scores[n]["images"] == 2 and scores[n]["psnr"] > 0 for n in ("ddrm", "diffpir"))
    # A prior at another resolution than the task's stops the run with one line naming the mismatch (not a skipped
    # row: only what the registry declares not applicable is skipped); the solvers do run on the --prior model.
    small = _convert(tmp_path, tiny_adm(), TINY_FLAGS, "small")
    one_line_error(cli_in_process(capsys, "bench", "--task", "inpaint_box", "--solvers", "ddrm", "--prior", small,
                                  "--limit", "1", "--out", tmp_path / "b2", "--quiet"),
                   "acts on (1, 32, 32) images but the model works at 8x8")  # fmt: skip
    one_line_error(cli_in_process(capsys, "bench", "--task", "inpaint_box", "--solvers", "ddrm", "--prior",
                                  tmp_path / "nowhere", "--out", tmp_path / "b3"), "nowhere")  # fmt: skip


def test_dps_with_a_converted_prior_and_its_condition_width(prior32):
    pytest.importorskip("deepinv")
    from pagoda_inverse.ops import make_operator
    from pagoda_inverse.solvers import solve

    model = load_model("fmnist")
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    op = make_operator("inpaint_box", shape=(1, 32, 32), batch=1, seeds=[0])
    y = op(x, generator=torch.Generator().manual_seed(0))
    out = solve("dps", model, op, y, prior=str(prior32), num_steps=4, generator=torch.Generator().manual_seed(1))
    assert out.estimate.shape == (1, 1, 32, 32) and torch.isfinite(out.estimate).all()
    assert out.info["prior"] == str(prior32) and out.info["nfe"] == 3  # deepinv's DPS: num_steps - 1 calls
    with pytest.raises(UserError, match="takes 1"):  # fmnist's 384-d caption does not fit the prior
        solve("dps", model, op, y, prior=str(prior32), num_steps=4, cond=model.class_condition(torch.tensor([0])))
