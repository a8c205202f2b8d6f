"""Task loading/validation, the bench engine and its report, on the tiny random model and the 64-image fixture."""

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import one_line_error, run_cli

from pagoda_inverse.bench.engine import run_task
from pagoda_inverse.bench.tasks import GenerationSpec, list_tasks, load_task, select_tasks
from pagoda_inverse.utils.errors import UserError

FMNIST_TINY = Path(__file__).parents[1] / "fixtures" / "fmnist-tiny"

TASK = """
[task]
family = "superres"
model = "fmnist"
dataset = "fmnist"
split = "test"
images = 6
seeds = "0-5"

[operator]
name = "downsample_area"
factor = 2
sigma_y = 0.05

[solvers.bicubic]
[solvers.pinv]
[solvers.encode_perturb]
samples = 2
num_steps = 4
"""


def test_every_shipped_task_loads():
    names = list_tasks()
    assert {"superres_x4", "inpaint_box", "inpaint_random", "deblur_gaussian", "deblur_motion", "denoise"} <= set(
        names
    )
    assert {"generate_class", "generate_prompt", "colorize"} <= set(names)
    for name in names:
        spec = load_task(name)
        assert len(spec.seeds) == spec.images and (spec.samplers if isinstance(spec, GenerationSpec) else spec.solvers)
    assert {t.name for t in select_tasks("inpaint")} == {"inpaint_box", "inpaint_random"}
    assert [t.name for t in select_tasks("all")] == names
    picked = [t.name for t in select_tasks("superres_x4,inpaint,superres")]
    assert picked == ["superres_x4", "inpaint_box", "inpaint_random"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[task\nfamily=", "malformed TOML"),
        (TASK.replace("images = 6", 'images = "six"'), r":7: field 'task.images' must be a int"),
        (TASK.replace('name = "downsample_area"', 'name = "warp"'), "field 'operator.name' 'warp' is not an operator"),
        (TASK.replace("[solvers.pinv]", "[solvers.dps2]"), "field 'solvers.dps2' is not a solver"),
        (TASK.replace("sigma_y = 0.05", "sigma_y = -1"), "field 'operator.sigma_y' must be a number >= 0"),
        (TASK.replace('seeds = "0-5"', 'seeds = "0-2"'), "gives 3 seeds for 6 images"),
    ],
)
def test_malformed_tasks_name_the_field_and_line(tmp_path, text, match):
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=match):
        load_task(path)


def test_sigma_units_convert_the_deepinv_convention(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(TASK)
    assert load_task(path).sigma_y == 0.05  # DPS convention: [-1, 1] units
    path.write_text(TASK.replace("sigma_y = 0.05", 'sigma_y = 0.025\nunits = "01"'))
    spec = load_task(path)
    assert spec.sigma_y == 0.05 and "units" not in spec.operator_params
    path.write_text(TASK.replace("sigma_y = 0.05", 'sigma_y = 0.05\nunits = "255"'))
    with pytest.raises(UserError, match="field 'operator.units' must be one of pm1, 01"):
        load_task(path)


def test_run_seeds_never_shrink_a_run_silently():
    spec = load_task("denoise")  # 256 images, seeds 0-255
    assert spec.run_seeds() == tuple(range(256)) and spec.run_seeds(limit=4) == (0, 1, 2, 3)
    assert spec.run_seeds(seeds=(7, 8, 9)) == (7, 8, 9)
    with pytest.raises(UserError, match="1000 images asked for but only 256 seeds given; pass --seeds 0-999"):
        spec.run_seeds(limit=1000)
    assert len(spec.run_seeds(limit=1000, seeds=tuple(range(1000)))) == 1000


def test_optional_solvers_run_only_when_named(tmp_path):
    spec = load_task("denoise")  # the peers are listed with ``optional = true``
    assert "dps" in spec.solvers and "dps" not in spec.default_solvers and "pinv" in spec.default_solvers
    assert "optional" not in spec.solvers["dps"] and spec.solvers["dps"]["num_steps"] == 1000
    text = Path(spec.path).read_text()
    (tmp_path / "bad.toml").write_text(
        text.replace("[solvers.dps]\noptional = true", '[solvers.dps]\noptional = "yes"')
    )
    with pytest.raises(UserError, match="solvers.dps.optional' must be true or false"):
        load_task(tmp_path / "bad.toml")


def test_psnr_matches_piq():
    import piq

    from pagoda_inverse.utils.metrics import psnr

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(5, 3, 16, 16, generator=g) * 2 - 1, torch.rand(5, 3, 16, 16, generator=g) * 2 - 1
    expected = piq.psnr((x + 1) / 2, (y + 1) / 2, data_range=1.0, reduction="none")
    torch.testing.assert_close(psnr(x, y), expected, rtol=1e-5, atol=1e-4)


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(UserError, match="superres_x4"):
        select_tasks("nope")


def test_engine_is_deterministic_and_batch_independent(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("PAGODA_FMNIST_DIR", str(FMNIST_TINY))
    path = tmp_path / "t.toml"
    path.write_text(TASK)
    spec = load_task(path)
    a = run_task(spec, model=str(tiny_model_dir), batch_size=6)
    b = run_task(spec, model=str(tiny_model_dir), batch_size=4)
    for solver in ("bicubic", "pinv", "encode_perturb"):
        for key in ("psnr", "ssim", "consistency"):
            assert a["scores"][solver][key] == pytest.approx(b["scores"][solver][key], rel=1e-4)
    assert a["scores"]["encode_perturb"]["diversity"] > 0 and a["scores"]["pinv"]["diversity"] == 0
    assert a["examples"]["observation"].shape == a["examples"]["truth"].shape == (6, 1, 16, 16)


def test_realism_metrics_score_one_sample_beside_the_real_images(tmp_path, tiny_model_dir, monkeypatch):
    from pagoda_inverse.bench.engine import REAL_ROW

    monkeypatch.setenv("PAGODA_FMNIST_DIR", str(FMNIST_TINY))
    path = tmp_path / "t.toml"
    metrics = 'metrics = ["psnr", "residual_ratio", "fd_sample", "cfid"]'
    # 12 images: the set metrics need MIN_SET_IMAGES (8) at least.
    path.write_text(TASK.replace('images = 6\nseeds = "0-5"', f'images = 12\nseeds = "0-11"\n{metrics}'))
    scores = run_task(load_task(path), model=str(tiny_model_dir))["scores"]
    # The truths explain y exactly as well as themselves; the exact pseudo-inverse copies the noise (ratio 0).
    assert scores[REAL_ROW]["residual_ratio"] == pytest.approx(1.0) and "cfid" not in scores[REAL_ROW]
    assert scores["pinv"]["residual_ratio"] < 1e-3 < scores["encode_perturb"]["residual_ratio"]
    for solver in ("bicubic", "pinv", "encode_perturb", REAL_ROW):
        assert 0 < scores[solver]["fd_sample"] < float("inf")
    # Different solvers' samples, different conditional distances (the observation features are shared).
    assert len({scores[solver]["cfid"] for solver in ("bicubic", "pinv", "encode_perturb")}) == 3
    # Runs of fewer images omit the set metrics rather than report noise.
    path.write_text(TASK.replace('seeds = "0-5"', f'seeds = "0-5"\n{metrics}'))
    few = run_task(load_task(path), model=str(tiny_model_dir))["scores"]
    assert "fd_sample" not in few["encode_perturb"] and "residual_ratio" in few["encode_perturb"]


def test_cli_writes_every_output_and_skips_unsupported_solvers(tmp_path, tiny_model_dir):
    path = tmp_path / "t.toml"
    path.write_text(TASK.replace('name = "downsample_area"\nfactor = 2', 'name = "inpaint_mask"'))
    out = tmp_path / "out"
    env = {"PAGODA_FMNIST_DIR": str(FMNIST_TINY)}
    result = run_cli(
        "bench", "--task", str(path), "--model", str(tiny_model_dir), "--out", str(out), "--json", "-q", env=env
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {r["solver"] for r in rows} == {"bicubic", "pinv", "encode_perturb", "real images"}
    assert "down-sampling" in next(r for r in rows if r["solver"] == "bicubic")["skipped"]
    for name in ("results.json", "results.csv", "results.md", "config.json", "grid-t.png", "quality_vs_time.png"):
        assert (out / name).is_file(), name
    table = (out / "results.md").read_text()
    assert "| t | bicubic |" not in table and "- t / bicubic: the bicubic solver only applies" in table
    again = run_cli("bench", "--task", str(path), "--model", str(tiny_model_dir), "--out", str(out), env=env)
    one_line_error(again, "exists; pass --overwrite")
    one_line_error(run_cli("bench", "--task", "nope"), "unknown task 'nope'")
    bad = run_cli(
        "bench",
        "--task",
        str(path),
        "--solvers",
        "zzz",
        "--model",
        str(tiny_model_dir),
        "--out",
        str(tmp_path / "o2"),
        env=env,
    )
    one_line_error(bad, "unknown solver(s) ['zzz']")


def test_only_not_applicable_solvers_are_skipped(tmp_path, tiny_model_dir, monkeypatch):
    import dataclasses

    from pagoda_inverse import solvers

    monkeypatch.setenv("PAGODA_FMNIST_DIR", str(FMNIST_TINY))
    path = tmp_path / "t.toml"
    # A hyper-parameter the solver refuses is the task file's mistake: the run stops with the solver's line.
    path.write_text(TASK + '[solvers.latent_map]\ninit = "one_step"\n')
    with pytest.raises(UserError, match="'one_step' is neither 'posterior' nor a latent-free solver"):
        run_task(load_task(path), model=str(tiny_model_dir))
    path.write_text(TASK.replace("samples = 2", "samples = 2\neta = 2.0"))
    with pytest.raises(UserError, match="eta must be in"):
        run_task(load_task(path), model=str(tiny_model_dir))
    # one_step on a model without a posterior encoder for the family does not apply: a skipped row saying why.
    path.write_text(TASK + "[solvers.one_step]\n")
    skipped = run_task(load_task(path), model=str(tiny_model_dir))["scores"]["one_step"]
    assert "has no posterior encoder for superres operators: use the encode_perturb solver" in skipped["skipped"]
    # A solver whose package is missing fails the run before any work (here: a registry entry needing a package
    # that does not exist), instead of turning into a skipped row.
    missing = dataclasses.replace(solvers.SOLVERS["bicubic"], needs="no_such_package_xyz")
    monkeypatch.setitem(solvers.SOLVERS, "bicubic", missing)
    path.write_text(TASK)
    with pytest.raises(UserError, match="the bicubic solver needs no_such_package_xyz: pip install"):
        run_task(load_task(path), model=str(tiny_model_dir))


def test_shards_merge_into_the_single_process_result(tmp_path, tiny_model_dir, monkeypatch):
    from pagoda_inverse.bench.engine import merge_shards, shard_bounds

    assert [shard_bounds(7, r, 3) for r in range(3)] == [(0, 2), (2, 4), (4, 7)]
    monkeypatch.setenv("PAGODA_FMNIST_DIR", str(FMNIST_TINY))
    path = tmp_path / "t.toml"
    path.write_text(TASK)
    spec = load_task(path)
    whole = run_task(spec, model=str(tiny_model_dir))
    merged = merge_shards([run_task(spec, model=str(tiny_model_dir), shard=(r, 3)) for r in range(3)])
    assert merged["images"] == whole["images"] == 6
    for solver, scores in whole["scores"].items():
        for key in ("psnr", "ssim", "consistency", "diversity", "residual_ratio", "fd_sample", "cfid"):
            if key in scores:  # (the real-images row has no cfid and no per-solver metrics)
                assert merged["scores"][solver][key] == pytest.approx(scores[key], rel=1e-4), (solver, key)
        for key, values in whole["per_image"][solver]["values"].items():
            assert merged["per_image"][solver]["values"][key] == pytest.approx(values, rel=1e-4, nan_ok=True)


def test_torchrun_bench_matches_the_single_process_run(tmp_path, tiny_model_dir):
    import os
    import subprocess
    import sys

    path = tmp_path / "t.toml"
    path.write_text(TASK.replace("[solvers.encode_perturb]\nsamples = 2\nnum_steps = 4\n", ""))
    env = {**os.environ, "PAGODA_FMNIST_DIR": str(FMNIST_TINY), "OMP_NUM_THREADS": "1"}
    args = ["bench", "--task", str(path), "--model", str(tiny_model_dir), "-q"]
    single = run_cli(*args, "--out", str(tmp_path / "one"), env=env)
    assert single.returncode == 0, single.stderr
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    ranks = subprocess.run([*launcher, "-m", "pagoda_inverse.cli", *args, "--out", str(tmp_path / "two")],
                           capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert ranks.returncode == 0, ranks.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "results.json").read_text())["results"][0]
    two = json.loads((tmp_path / "two" / "results.json").read_text())["results"][0]
    assert two["timing"]["ranks"] == 2 and two["images"] == one["images"] == 6
    for solver, scores in one["scores"].items():
        assert two["scores"][solver].get("psnr") == pytest.approx(scores.get("psnr"), rel=1e-6)
        assert two["scores"][solver].get("residual_ratio") == pytest.approx(scores.get("residual_ratio"), rel=1e-6)
        assert two["per_image"][solver]["values"] == one["per_image"][solver]["values"]


def test_colorize_task_on_held_out_photo_crops(tiny_photo_model_dir, monkeypatch):
    """The shipped colorize task runs on the photo test split (synthetic photos here) with the gray baseline."""
    from pagoda_inverse.datasets import photos

    monkeypatch.setattr(photos, "load_photo", lambda s: torch.full((3, 40, 50), 80, dtype=torch.uint8))
    out = run_task(
        load_task("colorize"), model=str(tiny_photo_model_dir), limit=3, solvers=["gray", "pinv", "encode_perturb"]
    )
    assert out["examples"]["truth"].shape == (3, 3, 16, 16)
    # A gray photo is its own grayscale copy; every solver is measurement-consistent.
    assert out["scores"]["gray"]["psnr"] > 40
    assert all(out["scores"][s]["consistency"] < 1e-4 for s in ("gray", "pinv", "encode_perturb"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_engine_on_cuda_scores_as_on_the_cpu(tmp_path, tiny_model_dir, monkeypatch):
    # The measurements come from the images' CPU generators, and the solvers' noise too: only float32 summation order
    # may differ between the devices.
    monkeypatch.setenv("PAGODA_FMNIST_DIR", str(FMNIST_TINY))
    path = tmp_path / "t.toml"
    path.write_text(TASK)
    spec = load_task(path)
    cpu = run_task(spec, model=str(tiny_model_dir), device="cpu")
    gpu = run_task(spec, model=str(tiny_model_dir), device="cuda")
    for solver, scores in cpu["scores"].items():
        for key in ("psnr", "ssim", "consistency"):
            assert gpu["scores"][solver][key] == pytest.approx(scores[key], rel=1e-4, abs=1e-5), (solver, key)
    assert gpu["examples"]["truth"].device.type == "cpu" and gpu["timing"]["peak_memory_mb"] > 0
