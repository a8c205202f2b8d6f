"""Amortized posterior encoders: the energy score, the operator description, the family sampler, smoke training
with resume and export, the one_step solver through an encoder (NFE, per-image seeding, consistency, spread), the
fallback without one, and the refusals (another model's encoder, an unknown family)."""

import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch
from cli_helpers import one_line_error, run_cli
from conftest import FMNIST_TINY
from resume_helpers import check_crash_and_resume

from pagoda_inverse.core.checkpoint import load_checkpoint
from pagoda_inverse.core.model import MODELS_DIR, load_model
from pagoda_inverse.core.posterior import describe_operator
from pagoda_inverse.datasets import load_fmnist, to_model_range
from pagoda_inverse.ops import make_operator
from pagoda_inverse.ops.consistency import data_consistency
from pagoda_inverse.ops.families import FAMILIES, MAX_SIGMA_Y, operator_family, sample_family_operator
from pagoda_inverse.solvers import solve
from pagoda_inverse.solvers.image import solve_image
from pagoda_inverse.train.config import resolve
from pagoda_inverse.train.export import export_model
from pagoda_inverse.train.posterior import energy_score, train_posterior
from pagoda_inverse.utils.errors import CheckpointError, NotApplicableError, UserError

SHAPE = (1, 32, 32)


def test_energy_score_is_lowest_for_the_true_spread():
    # Truth ~ N(0, I) per pixel: samples with the right spread score better than a collapsed or an inflated sampler.
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(512, 64, generator=g)
    scores = {s: energy_score(s * torch.randn(4, 512, 64, generator=g), truth).mean().item() for s in (0.1, 1, 3)}
    assert scores[1] < scores[0.1] and scores[1] < scores[3], scores


def test_describe_operator_shows_mask_noise_and_footprint():
    op = make_operator("inpaint_random", shape=SHAPE, batch=2, seeds=[0, 1], sigma_y=torch.tensor([0.0, 0.1]))
    y = op(torch.rand(2, *SHAPE) * 2 - 1, generator=torch.Generator().manual_seed(0))
    maps, vector = describe_operator(op, y, SHAPE)
    assert maps.shape == (2, 3, 32, 32) and vector.shape == (2, 82)
    torch.testing.assert_close(maps[:, 1:2], op.mask.float())  # the observation weight is the mask
    assert maps[0, 2].eq(0).all() and maps[1, 2].eq(0.5).all()  # sigma_y / 0.2 per image
    probes = [describe_operator(o, o.A(torch.zeros(1, *SHAPE)), SHAPE)[1] for o in
              (make_operator("downsample_area", shape=SHAPE, factor=f) for f in (2, 4))]  # fmt: skip
    assert not torch.allclose(probes[0], probes[1])  # the impulse response tells the factors apart


def test_fills_reach_into_the_holes():
    # A constant image seen through 30% of its pixels: the normalised-convolution fills are that constant wherever
    # an observed pixel is near, hidden pixels included; the regularised inverse is 0 there.
    op = make_operator("inpaint_random", shape=SHAPE, batch=1, seeds=[0], drop=0.7)
    y = op(torch.full((1, *SHAPE), 0.6))
    maps, _ = describe_operator(op, y, SHAPE, fill_scales=(1.0, 3.0))
    assert maps.shape == (1, 5, 32, 32)
    hidden = op.mask[0, 0] == 0
    assert maps[0, 0][hidden].abs().max() < 1e-6
    # (x_reg is y / (1 + gamma) on observed pixels, gamma = (0.01 / 0.3)^2 at sigma_y = 0)
    torch.testing.assert_close(maps[0, 3], torch.full((32, 32), 0.6 / (1 + (0.01 / 0.3) ** 2)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "colorize"])
def test_family_sampler_draws_members_with_per_image_noise(family):
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        op = sample_family_operator(family, SHAPE, 3, g)
        assert operator_family(op) == family
        assert op.sigma_y.shape == (3,) and 0 <= op.sigma_y.min() and op.sigma_y.max() <= MAX_SIGMA_Y
        assert op(torch.zeros(3, *SHAPE), generator=g).shape[0] == 3
    with pytest.raises(UserError, match="unknown operator family"):
        sample_family_operator("inpainting", SHAPE, 1, g)


def test_data_consistency_with_per_image_noise_equals_each_image_alone():
    x = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(2)) * 2 - 1
    sigmas = [0.0, 0.05, 0.2]
    op = make_operator("downsample_area", shape=SHAPE, factor=4, sigma_y=torch.tensor(sigmas))
    y = op(x, generator=torch.Generator().manual_seed(3))
    x0 = torch.zeros_like(x)
    batch = data_consistency(op, x0, y)
    for i, s in enumerate(sigmas):
        alone = data_consistency(make_operator("downsample_area", shape=SHAPE, factor=4, sigma_y=s), x0[i:i + 1],
                                 y[i:i + 1])  # fmt: skip
        torch.testing.assert_close(batch[i : i + 1], alone, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke-trained inpainting encoder (killed mid-way and resumed) exported into a copy of the ``fmnist`` model."""
    tmp = tmp_path_factory.mktemp("posterior")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PAGODA_FMNIST_DIR", str(FMNIST_TINY))
        config = check_crash_and_resume(train_posterior, resolve("posterior", "smoke", family="inpaint"), tmp)
    model_dir = tmp / "fmnist-copy"
    shutil.copytree(MODELS_DIR / "fmnist", model_dir, ignore=shutil.ignore_patterns("posterior"))  # ours only
    export_model(model_dir, posteriors=[tmp / "full" / "posterior-inpaint"], overwrite=True)
    return config, model_dir


def test_smoke_training_records_held_out_scores(trained):
    config, model_dir = trained
    assert config["kind"] == "posterior" and config["posterior"]["family"] == "inpaint"
    scores = config["metrics"]["heldout"]
    assert set(scores) == {"inpaint_mask", "inpaint_random drop=0.7", "inpaint_freeform"}
    assert all(10 < s["psnr_mean"] < 40 and 0 <= s["coverage90"] <= 1 for s in scores.values())
    assert (model_dir / "posterior" / "inpaint" / "model.safetensors").is_file()


def _box(batch=3):
    """The centred box task on the first test images of the Fashion-MNIST slice."""
    op = make_operator("inpaint_mask", shape=SHAPE, sigma_y=0.05)
    x = to_model_range(load_fmnist("test", root=FMNIST_TINY, limit=batch)[0])
    return op, x, op(x, generator=torch.Generator().manual_seed(5))


def test_one_step_samples_through_the_encoder(trained):
    model = load_model(trained[1])
    assert set(model.posteriors) == {"inpaint"}
    op, _, y = _box()
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    res = solve("one_step", model, op, y, samples=8, generator=gens)
    assert res.info["posterior"] == "inpaint" and res.info["nfe"] == 9  # q once, G per sample
    assert res.samples.shape == (8, 3, *SHAPE) and res.latents.shape == (8, 3, 1, 8, 8)
    # Sample k of image i depends only on image i's generator.
    alone = solve("one_step", model, op, y[2:], samples=8, generator=[torch.Generator().manual_seed(2)])
    torch.testing.assert_close(alone.samples[:, 0], res.samples[:, 2], rtol=1e-4, atol=1e-4)
    # Consistent with the measurements to within sigma_y, and the spread is in the hole, not on the observed pixels.
    residual = (op.A(res.estimate) - y).pow(2).sum((1, 2, 3)) / op.mask.sum()
    assert residual.sqrt().max() <= 0.05
    # The smoke encoder learned its consistency: on observed pixels a sample is as uncertain as the noise (it does not
    # copy y's noise), in the hole far more.
    hole = op.mask[0, 0] == 0
    std = res.std[:, 0]
    assert std[:, ~hole].mean() < 1.5 * 0.05 and std[:, hole].mean() > 4 * std[:, ~hole].mean()


def test_one_step_in_bf16(trained):
    model = load_model(trained[1])
    op, _, y = _box()
    res = solve("one_step", model, op, y, samples=4, precision="bf16")
    assert res.samples.dtype == torch.float32 and res.samples.isfinite().all()
    with pytest.raises(UserError, match="precision 'fp16': use fp32, bf16, auto"):
        solve("one_step", model, op, y, precision="fp16")


def test_one_step_shrinks_its_estimate_toward_the_initial_estimate():
    # shrink s moves the estimate (the samples' mean) the share s of the way to A^+ y (the gray copy for colorize):
    # s = 1 gives A^+ y itself, s = 0.25 the blend; the samples stay as drawn and a noiseless fit to y is kept.
    model = load_model("photo")
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    op = make_operator("colorize", shape=(3, 64, 64))
    y = op(x)
    gen = lambda: [torch.Generator().manual_seed(0)]  # noqa: E731
    drawn = solve("one_step", model, op, y, samples=2, shrink=0.0, generator=gen())  # the model ships 0.5
    quarter = solve("one_step", model, op, y, samples=2, shrink=0.25, generator=gen())
    gray = solve("one_step", model, op, y, samples=2, shrink=1.0, generator=gen())
    torch.testing.assert_close(quarter.samples, drawn.samples, rtol=0, atol=0)
    torch.testing.assert_close(quarter.estimate, drawn.estimate + 0.25 * (op.initial_estimate(y) - drawn.estimate))
    torch.testing.assert_close(gray.estimate, op.initial_estimate(y))
    assert (op.A(quarter.estimate) - y).abs().max() < 1e-5
    for bad in (-0.1, 1.5):
        with pytest.raises(UserError, match=f"shrink must be in \\[0, 1\\], got {bad}"):
            solve("one_step", model, op, y, shrink=bad)


@pytest.mark.parametrize("samples", [4, 3])
def test_one_step_draws_antithetic_pairs(monkeypatch, samples):
    # By default the K noises come in pairs (eps, -eps) (the odd one out unpaired); antithetic=False draws K fresh.
    import pagoda_inverse.solvers.one_step as one_step_module

    seen = []
    real = one_step_module.posterior_samples
    monkeypatch.setattr(one_step_module, "posterior_samples", lambda *a, **k: seen.append(a[5]) or real(*a, **k))
    model = load_model("fmnist")
    op, _, y = _box(1)
    solve("one_step", model, op, y, samples=samples, generator=[torch.Generator().manual_seed(0)])
    solve("one_step", model, op, y, samples=samples, antithetic=False, generator=[torch.Generator().manual_seed(0)])
    paired, fresh = seen
    half = (samples + 1) // 2
    torch.testing.assert_close(paired[half:], -paired[: samples - half], rtol=0, atol=0)
    torch.testing.assert_close(fresh[:half], paired[:half], rtol=0, atol=0)  # the same generator, the same first draws
    assert not torch.allclose(fresh[half:], -fresh[: samples - half])


def test_bf16_decodes_stay_near_fp32():
    # G on prior latents (z ~ N(0, sigma_max^2), what a trained encoder feeds it): measured 0.08 max, 0.005 RMS.
    from pagoda_inverse.core.generator import one_step
    from pagoda_inverse.utils.device import autocast

    model = load_model("fmnist")
    z = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * model.decoder.sigma_max
    c = model.null_condition(16)
    with torch.no_grad():
        full = one_step(model, z, c)
        with autocast("bf16", "cpu"):
            half = one_step(model, z, c).float()
    diff = (half - full).abs()
    assert 0 < diff.max() < 0.25 and diff.pow(2).mean().sqrt() < 0.01


def test_encode_perturb_runs_its_networks_in_bf16():
    # encode_perturb's precision="bf16" covers the PF-ODE's denoiser and G: near the fp32 result, not it.
    model = load_model("fmnist")
    op, _, y = _box(2)

    def run(precision):
        gens = [torch.Generator().manual_seed(i) for i in range(2)]
        return solve("encode_perturb", model, op, y, samples=2, num_steps=6, precision=precision,
                     generator=gens).estimate  # fmt: skip

    diff = run("bf16") - run("fp32")
    assert 0 < diff.abs().max() and diff.pow(2).mean().sqrt() < 0.02  # measured: 0.004 RMS, 0.02 max


def test_latent_ilo_starts_from_the_encoder(trained):
    model = load_model(trained[1])
    op, x, y = _box(2)
    res = solve("latent_ilo", model, op, y, init="posterior", steps=2, refine_steps=2)
    assert res.info["nfe"] == 1 + 2 * 4 + 1 and res.estimate.shape == x.shape
    blur = make_operator("gaussian_blur", shape=SHAPE, sigma=1.0, size=5)
    with pytest.raises(UserError, match="has no posterior encoder"):
        solve("latent_ilo", model, blur, blur.A(x), init="posterior", steps=1, refine_steps=0)


def test_one_step_is_refused_without_an_encoder_and_encode_perturb_serves(trained):
    # one_step needs the model's encoder for the operator's family: refused before any work with the way out, in one
    # line; encode_perturb samples around the encoding of A^+ y instead, and solve_image picks it and says why.
    model = load_model(trained[1])
    blur = make_operator("gaussian_blur", shape=SHAPE, sigma=1.0, size=5, sigma_y=0.05)
    y = blur.A(torch.zeros(1, *SHAPE))
    with pytest.raises(NotApplicableError) as err:
        solve("one_step", model, blur, y, samples=2)
    assert str(err.value) == (
        "model 'fmnist-copy' has no posterior encoder for deblur operators: use the encode_perturb solver, or train one "
        "with: pagoda-inv train posterior --family deblur"
    )
    res = solve("encode_perturb", model, blur, y, samples=2, encoder="learned")
    assert "posterior" not in res.info and res.info["encoder"] == "learned"
    said = []
    out = solve_image(y[0], "gaussian_blur", {"sigma": 1.0, "size": 5}, model=model, sigma_y=0.05, log=said.append)
    assert out.solver == "encode_perturb" and said[0].startswith("solver encode_perturb: model 'fmnist-copy' has no")
    _, _, y_box = _box(1)
    out = solve_image(y_box[0], "inpaint_mask", model=model, sigma_y=0.05, log=said.append)
    assert out.solver == "one_step" and "solver one_step: the model's posterior encoder for inpaint operators" in said


def test_another_models_encoder_is_refused(trained, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(trained[1], folder)
    config_path = folder / "posterior" / "inpaint" / "config.json"
    config = json.loads(config_path.read_text())
    config["generator"].update(model="other", decoder_sha256="0" * 64, resolution=64)
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"trained for the decoder of model 'other' \(1-channel 64px.*'model'"):
        load_model(folder)
    with pytest.raises(CheckpointError, match="trained for the decoder of model 'other'"):
        export_model(folder, posteriors=[folder / "posterior" / "inpaint"], overwrite=True)


def test_torchrun_two_ranks_train_and_stay_in_sync(tmp_path, fmnist_tiny):
    # Each rank draws its own operator for its half of the batch; gradients are averaged and the weights are
    # checked to be equal on both ranks at every checkpoint (a divergence would fail the job).
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
           "pagoda_inverse.cli", "train", "posterior", "--family", "deblur", "--preset", "smoke", "--runs",
           str(tmp_path), "-q"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = tmp_path.glob("*-posterior-smoke")
    assert "2 rank(s)" in (run / "log.txt").read_text()
    assert load_checkpoint(run / "posterior-deblur")[1]["posterior"]["family"] == "deblur"


def test_train_posterior_refuses_an_unknown_family():
    one_line_error(run_cli("train", "posterior", "--family", "inpainting", "--preset", "smoke"),
                   "unknown operator family 'inpainting'", "superres, inpaint, deblur, denoise, colorize")  # fmt: skip


def test_learned_consistency_starts_at_the_fixed_width_and_is_differentiable():
    from pagoda_inverse.core.posterior import PosteriorConfig, PosteriorEncoder

    shapes = ((8, 4, 4), (8, 8, 8))
    kw = dict(resolution=16, latent_resolution=4, grow_in_shapes=shapes, cond_dim=4, channels=(8, 8, 8), emb_dim=16)
    assert PosteriorEncoder(PosteriorConfig("inpaint", **kw)).consistency_std(torch.zeros(2, 82), None) is None
    q = PosteriorEncoder(PosteriorConfig("inpaint", consistency="learned", **kw))
    tau = q.consistency_std(torch.randn(2, 82), torch.randn(2, 4))
    torch.testing.assert_close(tau, torch.full((2,), 0.2))
    # A per-image width gives each image its own step, and the energy score's gradient reaches the read-out.
    op = make_operator("inpaint_random", shape=(1, 16, 16), batch=2, seeds=[0, 1], sigma_y=0.1, drop=0.5)
    x0, y = torch.zeros(2, 1, 16, 16), torch.ones(2, 1, 16, 16)
    out = data_consistency(op, x0, y, tau)
    alone = data_consistency(make_operator("inpaint_random", shape=(1, 16, 16), seeds=[1], sigma_y=0.1, drop=0.5),
                             x0[1:], y[1:], 0.2)  # fmt: skip
    torch.testing.assert_close(out[1:], alone)
    out.sum().backward()
    assert q.consistency_head.bias.grad.abs() > 0
    with pytest.raises(ValueError, match="consistency must be one of"):
        PosteriorConfig("inpaint", consistency="sometimes", **kw)


def test_learned_consistency_samples_fit_y_as_loosely_as_the_truth(trained):
    """With the learned step, one sample's residual is the noise's size (about the truth's), not a copy of y."""
    model = load_model(trained[1])
    op, x, y = _box(8)
    res = solve("one_step", model, op, y, samples=2, generator=[torch.Generator().manual_seed(i) for i in range(8)])
    ratio = (op.A(res.samples[0]) - y).norm() / (op.A(x) - y).norm()
    assert 0.7 < ratio < 1.6


def test_training_only_the_consistency_readout_leaves_q_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("PAGODA_FMNIST_DIR", str(FMNIST_TINY))
    first = train_posterior(
        resolve("posterior", "smoke", family="denoise", consistency="fixed"), _mkdir(tmp_path / "a")
    )
    cfg = resolve("posterior", "smoke", family="denoise", init=str(first), trainable="consistency", ema_decay=0.0)
    second = train_posterior(cfg, _mkdir(tmp_path / "b"))
    before, after = load_checkpoint(first)[0], load_checkpoint(second)[0]
    assert set(after) - set(before) == {"net.consistency_head.weight", "net.consistency_head.bias"}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(after["net.consistency_head.bias"], torch.tensor([math.log(0.2)]))
    # Fine-tuning needs the same network.
    wider = resolve("posterior", "smoke", family="denoise", init=str(first), channels=(8, 8, 16))
    with pytest.raises(UserError, match="architecture differs"):
        train_posterior(wider, _mkdir(tmp_path / "c"))


def test_realism_term_trains_the_heads_against_a_discriminator(tmp_path, monkeypatch):
    from dataclasses import replace

    from safetensors import safe_open

    from pagoda_inverse.train.posterior import TRUNK_PREFIXES

    monkeypatch.setenv("PAGODA_FMNIST_DIR", str(FMNIST_TINY))
    first = train_posterior(resolve("posterior", "smoke", family="inpaint"), _mkdir(tmp_path / "a"))
    cfg = resolve("posterior", "smoke", family="inpaint", init=str(first), trainable="heads", adv_weight=0.5,
                  adv_start=1, ema_decay=0.0)  # fmt: skip
    run = _mkdir(tmp_path / "b")
    before, after = load_checkpoint(first)[0], load_checkpoint(train_posterior(cfg, run))[0]
    trunk = [k for k in before if k.removeprefix("net.").startswith(TRUNK_PREFIXES)]
    assert trunk and all(torch.equal(before[k], after[k]) for k in trunk)  # the trunk stays as it was
    assert any(not torch.equal(before[k], after[k]) for k in before if k not in trunk)
    with safe_open(run / "train_state.safetensors", "pt") as f:  # the discriminator resumes with the run
        assert any(k.startswith("D.") for k in f.keys())
    with pytest.raises(UserError, match="adv_weight needs trainable 'all' or 'heads'"):
        train_posterior(replace(cfg, trainable="consistency"), _mkdir(tmp_path / "c"))


def _mkdir(path):
    path.mkdir()
    return path


def test_auto_precision_is_bf16_only_where_it_is_native(monkeypatch):
    from pagoda_inverse.utils import device

    monkeypatch.setattr(device, "native_bf16", lambda d: False)
    assert device.resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(device, "native_bf16", lambda d: True)
    assert device.resolve_precision("auto", "cpu") == "bf16" and device.resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(UserError, match="precision 'fp8'"):
        device.resolve_precision("fp8", "cpu")
