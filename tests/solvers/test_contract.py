"""The contract every registered solver meets, on a random-weight model (shapes, seeding, consistency)."""

import pytest
import torch
import torch.nn.functional as F

from pagoda_inverse.core.checkpoint import save_checkpoint
from pagoda_inverse.core.generator import Generator
from pagoda_inverse.core.learned_encoder import LearnedEncoder
from pagoda_inverse.core.model import PagodaModel
from pagoda_inverse.core.precond import EDMPrecond
from pagoda_inverse.core.text import CaptionBank
from pagoda_inverse.core.unet import UNet, UNetConfig
from pagoda_inverse.ops import make_operator
from pagoda_inverse.solvers import SOLVERS, not_applicable, solve
from pagoda_inverse.utils.errors import NotApplicableError, UserError

FAST = {
    "encode_decode": {"num_steps": 4},
    "one_step": {"samples": 3},
    "encode_perturb": {"num_steps": 4, "samples": 3},
    "latent_map": {"num_steps": 4, "steps": 5},
    "latent_ilo": {"num_steps": 4, "steps": 3, "refine_steps": 3},
    "latent_langevin": {"num_steps": 4, "steps": 5, "samples": 3},
}
PEER_STEPS = {"dps": 5, "ddrm": 4, "diffpir": 4, "pigdm": 4}
# Solvers whose output is pulled onto the measurements (bicubic is not).
CONSISTENT = {"pinv", "encode_decode", "one_step", "encode_perturb", "latent_map", "latent_ilo", "latent_langevin"}
# deepinv draws the noise of a whole batch from one seed, so these are deterministic per batch, not per image.
BATCH_SEEDED = {"dps", "diffpir", "pigdm"}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = UNetConfig(channels=8, channel_mult=(1, 2), attn_resolutions=(), cond_dim=6)
    g = torch.Generator().manual_seed(0)
    e = torch.randn(10, 6, generator=g)
    bank = CaptionBank(e, torch.arange(10), e, torch.arange(10), e, torch.zeros(6))
    teacher = EDMPrecond(UNet(cfg)).eval()
    G = Generator(UNet(cfg.grown())).eval().requires_grad_(False)
    for p in G.parameters():  # zero-initialised output convs would make G constant
        torch.nn.init.normal_(p, std=0.05)
    E = LearnedEncoder(UNet(cfg)).eval()
    return PagodaModel("random", teacher, G, bank, {"unet": cfg.to_dict()}, E)


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory):
    """A random 16x16 EDM teacher with the same caption bank layout: the peers' prior at the test resolution."""
    torch.manual_seed(1)
    cfg = UNetConfig(resolution=16, channels=8, channel_mult=(1, 2), attn_resolutions=(), cond_dim=6)
    e = torch.randn(10, 6, generator=torch.Generator().manual_seed(0))
    bank = CaptionBank(e, torch.arange(10), e, torch.arange(10), e, torch.zeros(6))
    net = UNet(cfg)
    for p in net.parameters():  # zero-initialised output convs would make the denoiser trivial
        torch.nn.init.normal_(p, std=0.05)
    folder = tmp_path_factory.mktemp("prior") / "teacher"
    save_checkpoint(folder, {f"net.{k}": v for k, v in net.state_dict().items()} | bank.to_tensors(),
                    {"kind": "teacher", "unet": cfg.to_dict()})  # fmt: skip
    return folder


def _hparams(solver, prior_dir):
    if solver in PEER_STEPS:
        return {"prior": str(prior_dir), "num_steps": PEER_STEPS[solver]}
    return FAST.get(solver, {})


def _problem(name, sigma_y=0.0):
    op = make_operator(
        name, shape=(1, 16, 16), batch=2, seeds=[0, 1], sigma_y=sigma_y, **({"factor": 2} if "down" in name else {})
    )
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(3)) * 1.6 - 0.8
    y = op(x, generator=[torch.Generator().manual_seed(10), torch.Generator().manual_seed(11)])
    return op, x, y


def _gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("operator", ["downsample_area", "inpaint_box"])
def test_contract(model, prior_dir, solver, operator):
    op, x, y = _problem(operator)
    hparams = _hparams(solver, prior_dir)
    reason = not_applicable(solver, op, model)  # the registry's entry: refused before any work, with that one line
    if reason is not None:
        with pytest.raises(NotApplicableError) as err:
            solve(solver, model, op, y, **hparams)
        assert str(err.value) == reason and "\n" not in reason
        return
    res = solve(solver, model, op, y, generator=_gens(0, 1), **hparams)
    assert res.estimate.shape == x.shape and res.samples.shape[1:] == x.shape
    assert torch.isfinite(res.samples).all() and res.info["solver"] == solver and res.info["nfe"] >= 0
    # Same seeds, same result; image i depends only on generator i (per batch for deepinv's batch samplers).
    again = solve(solver, model, op, y, generator=_gens(0, 1), **hparams)
    torch.testing.assert_close(again.samples, res.samples)
    if solver not in BATCH_SEEDED:
        op1 = make_operator(
            operator, shape=(1, 16, 16), batch=1, seeds=[1], **({"factor": 2} if "down" in operator else {})
        )
        alone = solve(solver, model, op1, y[1:], generator=_gens(1), **hparams)
        torch.testing.assert_close(alone.samples[:, 0], res.samples[:, 1], rtol=1e-4, atol=1e-4)
    # Noiseless measurements are matched exactly.
    if solver in CONSISTENT:
        torch.testing.assert_close(op.A(res.estimate), y, rtol=0, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("operator", ["downsample_area", "inpaint_box"])
def test_cuda_gives_the_cpu_result(model, prior_dir, solver, operator):
    # The model, operator and measurement on the GPU, the generators on the CPU (noise is drawn there and moved):
    # the result equals the CPU run up to float32 summation order. deepinv's samplers draw their own noise on the
    # device, so for the peers only the device, shape and finiteness are checked.
    import copy

    if not_applicable(solver, _problem(operator)[0], model) is not None:
        pytest.skip("not applicable")
    op, x, y = _problem(operator, sigma_y=0.05)
    hparams = _hparams(solver, prior_dir)
    cpu = solve(solver, model, op, y, generator=_gens(0, 1), **hparams)
    gpu = solve(solver, copy.deepcopy(model).to("cuda"), op.to("cuda"), y.cuda(), generator=_gens(0, 1), **hparams)
    assert gpu.estimate.device.type == "cuda" and torch.isfinite(gpu.samples).all()
    assert gpu.samples.shape == cpu.samples.shape
    if solver not in PEER_STEPS:
        torch.testing.assert_close(gpu.samples.cpu(), cpu.samples, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("solver", ["richardson_lucy", "wiener", "diffpir"])
def test_deconvolution_baselines_undo_a_blur(model, prior_dir, solver):
    op = make_operator("gaussian_blur", shape=(1, 16, 16), batch=2, seeds=[0, 1], sigma=1.0, size=7)
    x = torch.zeros(2, 1, 16, 16) - 0.8
    x[:, :, 4:12, 6:10] = 0.8  # a sharp bar
    y = op(x)
    res = solve(solver, model, op, y, generator=_gens(0, 1), **_hparams(solver, prior_dir))
    assert res.estimate.shape == x.shape and torch.isfinite(res.estimate).all()
    if (
        solver != "diffpir"
    ):  # classical deconvolution explains y better than y itself does (the peer's prior is random)
        assert (op.A(res.estimate) - y).norm() < 0.7 * (op.A(y) - y).norm()


@pytest.mark.parametrize("solver", ["encode_decode", "encode_perturb", "latent_map", "latent_ilo"])
def test_noisy_consistency_within_the_noise_level(model, solver):
    op, x, y = _problem("inpaint_random", sigma_y=0.05)
    # A random G is far from the data, so weigh the measurements as a trained model's error (0.1) would not.
    res = solve(solver, model, op, y, generator=_gens(0, 1), prior_std=0.5, **FAST[solver])
    residual = (op.A(res.estimate) - y).flatten(1).norm(dim=1)
    observed = op.A(torch.ones_like(x)).flatten(1).count_nonzero(dim=1)
    assert bool((residual <= 0.05 * observed.sqrt() * 1.5).all()), residual


def test_samples_spread_where_the_mask_hides(model):
    op, x, y = _problem("inpaint_box")
    res = solve("encode_perturb", model, op, y, generator=_gens(0, 1), num_steps=4, samples=6, eta=0.8)
    kept = op.A(torch.ones_like(x)) > 0
    assert float(res.std[kept].max()) < 1e-4  # observed pixels are fixed by the projection
    assert float(res.std[~kept].mean()) > 1e-3


@pytest.mark.parametrize("solver", ["encode_perturb", "latent_map", "latent_ilo"])
def test_guided_solvers_follow_the_guided_generator(model, solver):
    op, _, y = _problem("downsample_area", sigma_y=0.05)
    cond = model.class_condition(torch.tensor([3, 5]))
    kwargs = {"cond": cond, "encoder": "learned", **FAST[solver]}
    plain = solve(solver, model, op, y, generator=_gens(0, 1), **kwargs)
    guided = solve(solver, model, op, y, generator=_gens(0, 1), cfg_scale=3.0, **kwargs)
    # Guidance doubles G's evaluations (conditional and null in one batch; the one-pass encoder is not guided)
    # and changes the estimate.
    assert guided.info["nfe"] - 1 == 2 * (plain.info["nfe"] - 1)
    assert not torch.allclose(guided.estimate, plain.estimate)


@pytest.mark.parametrize("solver", ["latent_map", "latent_ilo"])
def test_latent_solvers_guide_through_the_guidance_map(model, solver):
    # With a guidance map, a guided latent solver decodes G_w(M(z, c, w), c): one more pass per decode, another
    # estimate, and the map's trained range is enforced.
    from dataclasses import replace

    from pagoda_inverse.core.guidance import GuidanceMap

    M = GuidanceMap(UNet(UNetConfig(**model.config["unet"])), w_max=4.0).eval().requires_grad_(False)
    torch.nn.init.normal_(M.net.out[-1].weight, std=0.05)
    mapped = replace(model, guidance=M)
    op, _, y = _problem("downsample_area", sigma_y=0.05)
    kwargs = {"cond": model.class_condition(torch.tensor([3, 5])), "encoder": "learned", **FAST[solver]}
    plain = solve(solver, model, op, y, cfg_scale=3.0, **kwargs)
    guided = solve(solver, mapped, op, y, cfg_scale=3.0, **kwargs)
    assert guided.info["nfe"] - 1 == 3 * (plain.info["nfe"] - 1) // 2
    assert not torch.allclose(guided.estimate, plain.estimate)
    with pytest.raises(UserError, match=r"trained for \[1, 4\]; pass a --cfg in that range"):
        solve(solver, mapped, op, y, cfg_scale=5.0, **kwargs)


def test_latent_ilo_widens_the_range_of_g(model):
    # Fitting y = G(z, offset) itself (A = I): freeing the growth features must explain y better than the latent
    # alone at the same number of steps; with no refinement it is latent_map.
    G, g = model.decoder, torch.Generator().manual_seed(5)
    z = torch.randn(2, 1, 8, 8, generator=g) * G.sigma_max
    y = G(z, model.null_condition(2), [torch.randn(2, *G.net.grow_in_shapes[0], generator=g)])
    op = make_operator("denoise", shape=(1, 16, 16), batch=2, seeds=[0, 1], sigma_y=0.05)
    fit = {"consistency": False, "encoder": "learned", "lr": 0.1}
    plain = solve("latent_map", model, op, y, steps=30, **fit)
    ilo = solve("latent_ilo", model, op, y, steps=10, refine_steps=20, refine_weight=1e-3, **fit)
    misfit = [float((r.estimate - y).norm()) for r in (plain, ilo)]
    assert misfit[1] < 0.6 * misfit[0], misfit
    same = solve("latent_ilo", model, op, y, steps=30, refine_steps=0, **fit)
    torch.testing.assert_close(same.estimate, plain.estimate)
    assert (plain.info["solver"], ilo.info["nfe"]) == ("latent_map", 1 + 2 * 30 + 1)


def test_latent_ilo_optimised_condition_widens_the_range_of_g(model):
    # Fitting y = G(z, c) for a condition c other than the null one the solver starts from (A = I): optimising the
    # condition vector too must explain y better than the latent alone, at the same steps and network evaluations.
    G, g = model.decoder, torch.Generator().manual_seed(0)
    z = torch.randn(2, 1, 8, 8, generator=g) * G.sigma_max
    y = G(z, 10 * torch.randn(2, model.null_condition(1).shape[-1], generator=g))  # far from the null condition
    op = make_operator("denoise", shape=(1, 16, 16), batch=2, seeds=[0, 1], sigma_y=0.05)
    fit = {"consistency": False, "encoder": "learned", "lr": 0.1, "steps": 60, "refine_steps": 0}
    fixed, free = (solve("latent_ilo", model, op, y, cond_lr=lr, **fit) for lr in (0.0, 0.3))
    misfit = [float((r.estimate - y).norm()) for r in (fixed, free)]
    assert misfit[1] < 0.8 * misfit[0], misfit
    assert fixed.info["nfe"] == free.info["nfe"]


def test_latent_ilo_average_last_is_the_mean_of_the_last_iterates(model):
    # The image decoded at step t of a run is the estimate of the same run stopped after t steps (same Adam path),
    # so averaging the last 2 iterates and the final image is the mean of the runs stopped at steps 3, 4 and 5.
    op, _, y = _problem("inpaint_random", sigma_y=0.05)
    fit = {"consistency": False, "encoder": "learned", "refine_steps": 0}
    stopped = [solve("latent_ilo", model, op, y, steps=t, **fit).estimate for t in (3, 4, 5)]
    averaged = solve("latent_ilo", model, op, y, steps=5, average_last=2, **fit).estimate
    torch.testing.assert_close(averaged, torch.stack(stopped).mean(0))
    assert not torch.allclose(averaged, stopped[-1])


def test_latent_solvers_start_from_a_latent_free_solver(model):
    op, _, y = _problem("inpaint_box", sigma_y=0.05)
    fit = {"encoder": "ode", "num_steps": 4, "steps": 2}
    start = solve("latent_map", model, op, y, init="biharmonic", **fit)
    assert not torch.allclose(start.latents, solve("latent_map", model, op, y, **fit).latents)
    with pytest.raises(UserError, match="'one_step' is neither 'posterior' nor a latent-free solver"):
        solve("latent_map", model, op, y, init="one_step", **fit)
    with pytest.raises(UserError, match="only applies to blur"):
        solve("latent_ilo", model, op, y, init="wiener", **fit)


def test_likelihood_std_weighs_the_latent_prior(model):
    # A tempered likelihood (s far above sigma_y) lets the N(0, I) prior pull the latent in, at the cost of the fit;
    # s = sigma_y is the default potential itself.
    op, _, y = _problem("inpaint_box", sigma_y=0.05)
    fit = {"encoder": "ode", "num_steps": 4, "consistency": False, "lr": 0.1}
    start, plain, tempered = (
        solve("latent_map", model, op, y, steps=steps, likelihood_std=s, **fit)
        for steps, s in ((0, None), (20, None), (20, 10.0))
    )
    norm = lambda r: float(r.latents.norm())  # noqa: E731
    misfit = lambda r: float((op.A(r.estimate) - y).norm())  # noqa: E731
    assert norm(tempered) < 0.5 * norm(start) and norm(tempered) < norm(plain)
    assert misfit(plain) < misfit(tempered)
    same = solve("latent_map", model, op, y, steps=20, likelihood_std=0.05, **fit)
    torch.testing.assert_close(same.estimate, plain.estimate)
    with pytest.raises(UserError, match="likelihood_std must be > 0"):
        solve("latent_ilo", model, op, y, likelihood_std=0.0, **fit)


def test_latent_ilo_needs_growth_stages(model):
    flat = PagodaModel("flat", model.teacher, Generator(UNet(UNetConfig(**model.config["unet"]))), model.bank,
                       model.config, model.encoder)  # fmt: skip
    op = make_operator("denoise", shape=(1, 8, 8), batch=1, seeds=[0])
    with pytest.raises(UserError, match="latent_ilo refines the features entering G's growth stages"):
        solve("latent_ilo", flat, op, torch.zeros(1, 1, 8, 8), encoder="learned")
    op, _, y = _problem("inpaint_box")
    levels = len(model.decoder.net.grow)
    with pytest.raises(UserError, match=rf"refine_levels={levels + 1}\); this G has {levels}"):
        solve("latent_ilo", model, op, y, refine_levels=levels + 1, encoder="learned")
    for bad, match in [({"average_last": -1}, "average_last must be between"), ({"cond_lr": -1.0}, "cond_lr must")]:
        with pytest.raises(UserError, match=match):
            solve("latent_ilo", model, op, y, encoder="learned", **bad)


def test_unknown_solver_and_bad_measurement(model):
    op, _, y = _problem("inpaint_box")
    with pytest.raises(UserError, match="unknown solver 'dps2'"):
        solve("dps2", model, op, y)
    with pytest.raises(UserError, match="NaN"):
        solve("encode_perturb", model, op, y * float("nan"))


def test_noiseless_data_consistency_corrects_smooth_errors_smoothly():
    from pagoda_inverse.ops.consistency import data_consistency
    from pagoda_inverse.ops.downsample import AreaDownsample

    g = torch.Generator().manual_seed(0)
    smooth = lambda *s: F.interpolate(torch.randn(*s, generator=g), size=(32, 32), mode="bilinear")  # noqa: E731
    op = AreaDownsample(4)
    truth = smooth(3, 1, 8, 8)
    x0 = truth + 0.3 * smooth(3, 1, 3, 3)  # a decoded image off by a smooth field, as G's low-frequency error
    y = op.A(truth)
    projected, back_projected = op.project(x0, y), data_consistency(op, x0, y)
    # Both meet the measurements exactly; the bilinear back-projection removes the smooth error, the block-wise
    # projection alone leaves its in-block variation.
    for x in (projected, back_projected):
        assert (op.A(x) - y).abs().max() < 1e-5
    assert (back_projected - truth).norm() < 0.5 * (projected - truth).norm()
    # The bilinear steps alone already nearly meet the measurements: the projection only finishes the job.
    x = x0
    for _ in range(op.back_project_steps):
        x = x + op.back_project(y - op.A(x))
    assert (op.A(x) - y).abs().max() < 1e-2 * (op.A(x0) - y).abs().max()


@pytest.mark.parametrize("solver", ["encode_perturb", "latent_map", "latent_ilo", "wiener"])
def test_per_image_noise_levels_give_each_image_its_own_result(model, solver):
    # A batch whose images carry different sigma_y equals each image solved alone with its own sigma_y.
    name = "gaussian_blur" if solver == "wiener" else "inpaint_random"
    params = {"sigma": 1.0, "size": 5} if solver == "wiener" else {}
    sigmas = [0.0, 0.05, 0.2]
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(3)) * 1.6 - 0.8
    op = make_operator(name, shape=(1, 16, 16), batch=3, seeds=[0, 1, 2], sigma_y=torch.tensor(sigmas), **params)
    y = op(x, generator=_gens(10, 11, 12))
    batch = solve(solver, model, op, y, generator=_gens(0, 1, 2), **FAST.get(solver, {})).estimate
    for i, s in enumerate(sigmas):
        alone_op = make_operator(name, shape=(1, 16, 16), batch=1, seeds=[i], sigma_y=s, **params)
        alone = solve(solver, model, alone_op, y[i : i + 1], generator=_gens(i), **FAST.get(solver, {})).estimate
        torch.testing.assert_close(batch[i : i + 1], alone, rtol=1e-4, atol=1e-4)
