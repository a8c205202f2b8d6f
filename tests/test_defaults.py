"""One source of truth for the defaults: the model's own settings, the task suites' noise levels, and the CLI and
the API giving the same pixels with no options (issue 38, items 1-4)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import cli_in_process
from PIL import Image

from pagoda_inverse.core.model import embedded_models, load_model

ROOT = Path(__file__).resolve().parents[1]
needs_model = pytest.mark.skipif("fmnist" not in embedded_models(), reason="embedded model not installed")


def _said(result) -> str:
    return " ".join((result.stdout + result.stderr).split())  # rich wraps long lines


def _one_step_suites(model: str = "fmnist"):
    """The shipped task suites of ``model`` that run one_step."""
    from pagoda_inverse.bench.tasks import TaskSpec, list_tasks, load_task

    specs = [load_task(name) for name in list_tasks()]
    return [s for s in specs if isinstance(s, TaskSpec) and s.model == model and "one_step" in s.solvers]


def _task_operator(spec, seed: int):
    from pagoda_inverse.ops import make_operator

    return make_operator(spec.operator, shape=(1, 32, 32), seeds=[seed], sigma_y=spec.sigma_y, **spec.operator_params)


@needs_model
def test_fmnist_ships_the_task_suites_one_step_settings(monkeypatch):
    from pagoda_inverse.solvers import model_settings

    model = load_model("fmnist")
    suites = _one_step_suites()
    assert {s.family for s in suites} == {"superres", "inpaint", "deblur", "denoise"}
    for spec in suites:
        task = {k: spec.solvers["one_step"][k] for k in ("samples", "precision")}
        assert model_settings(model, "one_step", _task_operator(spec, 0)) == task, spec.name
    # The shipped file is what scripts/train_fmnist.sh exports: derived from the same task files.
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import solver_defaults

    try:
        assert solver_defaults.derive("fmnist") == model.solver_defaults
        assert solver_defaults.card_line(model.solver_defaults) in (model.path / "card.md").read_text()
    finally:
        sys.modules.pop("solver_defaults", None)


@needs_model
@pytest.mark.parametrize("task", ["inpaint_random", "superres_x4"])  # superres: a per-family setting
def test_solve_image_with_no_options_gives_the_bench_estimate(task):
    """The floor: with no solver or noise options, solve_image (what `pagoda-inv solve --simulate` runs) degrades and
    solves as the bench does, so its estimate is the bench's one_step estimate for the same noise. (The bench draws
    its solver noise from the image seed + SOLVER_SEED_OFFSET; here both get the same generator.)"""
    from pagoda_inverse.bench.tasks import load_task
    from pagoda_inverse.solvers import solve
    from pagoda_inverse.solvers.image import solve_image

    spec, seed = load_task(task), 3
    x = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    lines = []
    out = solve_image(x, spec.operator, spec.operator_params, model="fmnist", seed=seed, simulate=True,
                      log=lines.append)  # fmt: skip
    model = load_model("fmnist")
    op = _task_operator(spec, seed)
    y = op(x[None], generator=[torch.Generator().manual_seed(seed)])  # as the bench degrades image `seed`
    torch.testing.assert_close(out.observation, y, rtol=0, atol=0)
    bench = solve(
        "one_step", model, op, y, generator=[torch.Generator().manual_seed(seed)], **spec.solvers["one_step"]
    )
    torch.testing.assert_close(out.result.estimate, bench.estimate, rtol=0, atol=0)
    assert out.result.samples.shape[0] == spec.solvers["one_step"]["samples"]
    assert any(f"sigma_y {spec.sigma_y:g} assumed" in line for line in lines)


def test_default_noise_levels_are_the_task_suites():
    from pagoda_inverse.bench.tasks import TaskSpec, list_tasks, load_task
    from pagoda_inverse.cli.solve import SigmaOpt
    from pagoda_inverse.solvers.image import DEFAULT_SIGMA_Y

    for spec in map(load_task, list_tasks()):
        if isinstance(spec, TaskSpec):
            assert DEFAULT_SIGMA_Y[spec.family] == spec.sigma_y, spec.name
    # The CLI's help states the same numbers (it does not import torch to read them).
    said = SigmaOpt.__metadata__[0].help
    assert f"{DEFAULT_SIGMA_Y['superres']:g}; denoise {DEFAULT_SIGMA_Y['denoise']:g}; colorize 0" in said
    assert len({DEFAULT_SIGMA_Y[f] for f in ("superres", "inpaint", "deblur")}) == 1


def test_solve_says_what_it_assumed_and_ran(capsys, tmp_path, tiny_model_dir):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16), dtype=np.uint8)).save(tmp_path / "c.png")
    args = ["solve", "deblur", "--input", tmp_path / "c.png", "--blur-sigma", "1", "--model", tiny_model_dir]
    done = cli_in_process(capsys, *args, "--output", tmp_path / "a.png", "--samples", "3")
    assert done.returncode == 0, done.stderr
    said = _said(done)
    assert "measurement noise: sigma_y 0.05 assumed (the level of the deblur task suites)" in said
    assert "encode_perturb: the mean of 3 samples" in said  # the tiny model has no posterior encoder
    done = cli_in_process(capsys, *args, "--output", tmp_path / "b.png", "--sigma-y", "0", "--samples", "1")
    said = _said(done)
    assert "assumed" not in said and "encode_perturb: a single sample" in said
    # An exact deconvolution differs from the regularised one.
    a, b = (np.asarray(Image.open(tmp_path / f"{n}.png")) for n in "ab")
    assert not np.array_equal(a, b)


@needs_model
def test_solve_uses_the_models_samples_and_says_so(capsys, tmp_path):
    """Item 1: fmnist's one_step is the mean of 4 samples without --samples, one with --samples 1."""
    x = (torch.rand(32, 32, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8).numpy()
    Image.fromarray(x).save(tmp_path / "c.png")
    args = ["solve", "inpaint", "--input", tmp_path / "c.png", "--drop-frac", "0.7", "--simulate"]
    said = _said(cli_in_process(capsys, *args, "--output", tmp_path / "a.png"))
    precision = load_model("fmnist").solver_defaults["one_step"]["precision"]
    assert f"one_step with the model's settings: samples=4, precision={precision}" in said
    assert "one_step: the mean of 4 samples, 5 network evaluations" in said
    said = _said(cli_in_process(capsys, *args, "--output", tmp_path / "b.png", "--samples", "1"))
    assert "one_step: a single sample, 2 network evaluations" in said


@needs_model
def test_cli_and_api_give_the_same_pixels_with_no_options(capsys, tmp_path):
    """Item 3: `generate` and `solve` with no options are pi.generate and pi.solve_image with none."""
    import pagoda_inverse as pi
    from pagoda_inverse.core.checkpoint import load_tensors
    from pagoda_inverse.utils.images import to_uint8

    done = cli_in_process(capsys, "generate", "--class", "9", "--seeds", "0-3", "--tensor", tmp_path / "g.safetensors")
    assert done.returncode == 0, done.stderr
    model = pi.load_model("fmnist")
    api = pi.generate(model, model.class_condition(torch.tensor([9] * 4)), [0, 1, 2, 3])
    torch.testing.assert_close(load_tensors(tmp_path / "g.safetensors")["samples"], api, rtol=0, atol=0)
    unguided = pi.generate(model, model.class_condition(torch.tensor([9] * 4)), [0, 1, 2, 3], cfg_scale=1.0)
    assert not torch.equal(api, unguided)  # the default is the model's recommended scale, not 1
    # Unconditional samples: no guidance in either.
    done = cli_in_process(capsys, "generate", "--seeds", "0-1", "--tensor", tmp_path / "u.safetensors")
    api = pi.generate(model, model.null_condition(2), [0, 1])
    torch.testing.assert_close(load_tensors(tmp_path / "u.safetensors")["samples"], api, rtol=0, atol=0)
    # solve: an observation file in, the estimate's PNG out.
    Image.fromarray(np.asarray(to_uint8(api[0]))[0]).save(tmp_path / "y.png")
    done = cli_in_process(capsys, "solve", "inpaint", "--input", tmp_path / "y.png", "--box", "-o", tmp_path / "e.png")
    assert done.returncode == 0, done.stderr
    out = pi.solve_image(tmp_path / "y.png", "inpaint_mask", {})
    assert np.array_equal(np.asarray(Image.open(tmp_path / "e.png")), to_uint8(out.result.estimate[0])[0].numpy())


@needs_model
def test_generate_help_and_reference_state_no_hard_coded_scale():
    from pagoda_inverse.control.generate import recommended_cfg_scale

    help_text = (ROOT / "docs" / "reference" / "cli.md").read_text().split("## `pagoda-inv generate`")[1]
    help_text = " ".join(help_text.split("## ")[0].split())
    assert "recommended scale (its generation.json" in help_text
    assert not re.search(r"fmnist: \d", help_text)
    assert recommended_cfg_scale(load_model("fmnist")) == load_model("fmnist").generation_defaults["cfg_scale"]


@needs_model
def test_solve_prompt_says_which_class_it_read(capsys, tmp_path, text_encoder):
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "c.png")
    args = ["solve", "inpaint", "--input", tmp_path / "c.png", "--box", "--solver", "encode_decode"]
    done = cli_in_process(capsys, *args, "--prompt", "my old jeans", "-o", tmp_path / "a.png")
    assert done.returncode == 0, done.stderr
    assert "prompt read as 'Trouser' (the condition of --class 1)" in _said(done)
    cli_in_process(capsys, *args, "--class", "1", "-o", tmp_path / "b.png")
    a, b = (np.asarray(Image.open(tmp_path / f"{n}.png")) for n in "ab")
    assert np.array_equal(a, b)  # the prompt conditions as --class 1 does


def test_docs_state_what_the_code_does():
    """Item 10: the numbers the docs and the help give are the code's (tiles per call, the photo model's samples,
    the noise --simulate adds), and the README's observation is the area down-sampling it is solved as."""
    from pagoda_inverse.cli.solve import SimulateOpt, TileBatchOpt
    from pagoda_inverse.core.model import read_solver_defaults
    from pagoda_inverse.solvers.image import TILE_BATCH

    tiles = " ".join(TileBatchOpt.__metadata__[0].help.split())
    assert f"{TILE_BATCH['cpu']} on the CPU, {TILE_BATCH['cuda']} on a GPU" in tiles
    guide = " ".join((ROOT / "docs" / "examples" / "custom-dataset.md").read_text().split())
    assert f"takes {TILE_BATCH['cuda']} tiles per call of a large photo ({TILE_BATCH['cpu']} on the CPU;" in guide
    assert f"with {TILE_BATCH['cpu']} tiles per call, its default" in guide
    photo = read_solver_defaults(ROOT / "pagoda_inverse" / "models" / "photo")["encode_perturb"]
    solvers = " ".join((ROOT / "docs" / "concepts" / "solvers.md").read_text().split())
    steps, eta, samples = photo["num_steps"], photo["eta"], photo["samples"]
    assert f"for `encode_perturb` the PF-ODE encoder in {steps} steps, eta {eta}, {samples} samples" in solvers
    defaults = read_solver_defaults(ROOT / "pagoda_inverse" / "models" / "photo")
    shrink, saturation = defaults["families"]["colorize"]["one_step"]["shrink"], defaults["colour_net"]["saturation"]
    assert f"`one_step` for colorize with shrink {shrink} and `colour_net` at saturation {saturation} (its" in solvers
    assert f"(`photo`: {shrink} for colorize, chosen on training photos" in solvers
    assert "plus noise of std --sigma-y" in " ".join(SimulateOpt.__metadata__[0].help.split())
    readme = (ROOT / "README.md").read_text()
    api = readme[readme.index("## Python API") :].split("```python\n", 1)[1].split("```", 1)[0]
    assert "::4" not in api and "avg_pool2d(x[:1], 4)" in api


def test_per_family_settings_update_the_solvers_own(tiny_photo_model_dir, tmp_path):
    from pagoda_inverse.ops import make_operator
    from pagoda_inverse.solvers import solve
    from pagoda_inverse.train.export import export_model
    from pagoda_inverse.utils.errors import UserError

    parts = {p: tiny_photo_model_dir / p for p in ("teacher", "decoder", "encoder")}
    defaults = {
        "encode_perturb": {"samples": 3, "eta": 0.5},
        "families": {"denoise": {"encode_perturb": {"samples": 2}}},
    }
    model = load_model(export_model(tmp_path / "m", **parts, solver_defaults=defaults))
    y = torch.rand(1, 3, 16, 16) * 2 - 1
    denoise = make_operator("denoise", shape=(3, 16, 16), sigma_y=0.1)
    blur = make_operator("gaussian_blur", shape=(3, 16, 16), sigma=1.0, size=5)
    assert solve("encode_perturb", model, denoise, y).samples.shape[0] == 2  # the family's
    assert solve("encode_perturb", model, blur, y).samples.shape[0] == 3  # the solver's own
    assert solve("encode_perturb", model, denoise, y, samples=1).samples.shape[0] == 1  # the caller's over both
    for bad, message in [
        ({"families": {"superress": {}}}, "unknown operator family 'superress'"),
        ({"families": {"denoise": {"encode_perturb": {"samplez": 2}}}}, "no hyper-parameter 'samplez'"),
        ({"families": {"denoise": {"families": {}}}}, "must map solver names to objects"),
    ]:
        with pytest.raises(UserError, match=message):
            export_model(tmp_path / "bad", **parts, solver_defaults=bad)
        assert not (tmp_path / "bad").exists()


@needs_model
def test_bench_table_in_a_pipe_is_plain_and_whole(capsys, tmp_path, fmnist_tiny, monkeypatch):
    """Item 9: piped or redirected (no terminal, 80 columns assumed), the summary is a plain table: every name and
    number whole, one row per line."""
    monkeypatch.setenv("COLUMNS", "80")
    done = cli_in_process(capsys, "bench", "--task", "inpaint_box", "--solvers", "bicubic,pinv", "--limit", "2",
                          "--out", tmp_path / "b")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stderr and "│" not in done.stderr
    lines = done.stderr.splitlines()
    header = next(line for line in lines if line.startswith("task "))
    assert header.split()[:2] == ["task", "solver"] and header.endswith("NFE") and len(header) > 80
    assert any(re.match(r"inpaint_box +bicubic +skipped: ", line) for line in lines)
    row = next(line for line in lines if re.match(r"inpaint_box +pinv +\d+\.\d+ ", line))
    assert len(row) == len(header)  # numbers right-aligned under their headings, none cut
