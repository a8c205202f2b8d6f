"""A model's recommended solver settings (``solver_defaults.json``): written by export, applied by solve()."""

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from PIL import Image

from pagoda_inverse.core.model import load_model
from pagoda_inverse.ops import make_operator
from pagoda_inverse.solvers import solve
from pagoda_inverse.train.export import export_model
from pagoda_inverse.utils.errors import CheckpointError, UserError


@pytest.fixture
def model_dir(tiny_photo_model_dir, tmp_path):
    parts = {p: tiny_photo_model_dir / p for p in ("teacher", "decoder", "encoder")}
    return export_model(tmp_path / "model", **parts, solver_defaults={"encode_perturb": {"samples": 3, "eta": 0.5}})


def test_defaults_apply_beneath_the_callers_settings(model_dir):
    model = load_model(model_dir)
    assert model.solver_defaults == {"encode_perturb": {"samples": 3, "eta": 0.5}}
    op = make_operator("downsample_area", shape=(3, 16, 16), factor=2)
    y = torch.rand(1, 3, 8, 8) * 2 - 1
    assert solve("encode_perturb", model, op, y).samples.shape[0] == 3  # the model's setting
    assert solve("encode_perturb", model, op, y, samples=2).samples.shape[0] == 2  # the caller's wins
    assert solve("encode_decode", model, op, y).samples.shape[0] == 1  # other solvers are untouched
    # A default the solver does not take is refused when the model is used (by any solver), naming the file; the
    # file's shape is checked when the model loads (the model layer does not know the solvers).
    (model_dir / "solver_defaults.json").write_text('{"encode_perturb": {"samplez": 3}}')
    for solver in ("encode_perturb", "encode_decode"):
        with pytest.raises(
            CheckpointError, match=r"solver_defaults.json: solver 'encode_perturb' has no hyper-parameter"
        ):
            solve(solver, load_model(model_dir), op, y)
    (model_dir / "solver_defaults.json").write_text('{"encode_perturb": 3}')
    with pytest.raises(CheckpointError, match="solver_defaults.json: must map solver names to objects"):
        load_model(model_dir)
    (model_dir / "solver_defaults.json").write_text('{"encode_perturb": [1')
    with pytest.raises(CheckpointError, match="solver_defaults.json: not valid JSON"):
        load_model(model_dir)


def test_export_checks_the_defaults_before_writing(tiny_photo_model_dir, tmp_path):
    teacher = tiny_photo_model_dir / "teacher"
    for bad, message in [
        ({"nope": {}}, "unknown solver 'nope'"),
        ({"encode_perturb": {"samplez": 3}}, "no hyper-parameter 'samplez'"),
        ({"encode_perturb": 3}, "must map solver names to objects"),
    ]:
        with pytest.raises(UserError, match=message):
            export_model(tmp_path / "bad", teacher=teacher, solver_defaults=bad)
        assert not (tmp_path / "bad").exists()
    result = run_cli("export", "--out", str(tmp_path / "bad"), "--teacher", str(teacher), "--solver-defaults", "{x")
    assert result.returncode == 2 and "--solver-defaults: not valid JSON" in result.stderr


def test_cli_says_which_model_settings_it_uses(model_dir, tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    result = run_cli(
        "solve", "superres", "--input", str(tmp_path / "small.png"), "--scale", "2", "--model", str(model_dir)
    )
    assert result.returncode == 0, result.stderr
    # Without a posterior encoder for superres the sampler is encode_perturb, and the CLI says why.
    said = " ".join(result.stderr.split())  # rich wraps long lines
    assert "solver encode_perturb: model 'model' has no posterior encoder for superres operators" in said
    assert "encode_perturb with the model's settings: samples=3, eta=0.5" in result.stderr
    # K = 3 from the model gives the mean; the grid and std map are written only when --samples asks for them.
    assert (tmp_path / "small-superres.png").is_file() and not (tmp_path / "small-superres-samples.png").exists()
    result = run_cli("solve", "superres", "--input", str(tmp_path / "small.png"), "--scale", "2", "--model",
                     str(model_dir), "--samples", "2", "--overwrite")  # fmt: skip
    assert result.returncode == 0 and "encode_perturb with the model's settings: eta=0.5\n" in result.stderr
    assert (tmp_path / "small-superres-samples.png").is_file()
