"""The guidance scale a model recommends: stored in its folder, used by ``generate`` without ``--cfg``, checked."""

import json
import shutil

import pytest
from cli_helpers import cli_in_process

from pagoda_inverse.core.model import MODELS_DIR, load_model
from pagoda_inverse.train.export import export_model
from pagoda_inverse.utils.errors import CheckpointError


def test_generate_uses_the_models_recommended_guidance(tmp_path, capsys):
    assert load_model("fmnist").generation_defaults["cfg_scale"] == 3.0
    result = cli_in_process(capsys, "generate", "--class", "9", "--seeds", "0", "--out", tmp_path / "a.png")
    said = " ".join((result.stdout + result.stderr).split())  # rich wraps long lines
    assert "cfg 3: the model's recommended guidance" in said and "(onestep, cfg 3.0)" in said
    result = cli_in_process(capsys, "generate", "--seeds", "0", "--out", tmp_path / "b.png")  # unconditioned: none
    said = " ".join((result.stdout + result.stderr).split())
    assert "(onestep, cfg 1.0)" in said and "recommended" not in said


def test_bad_generation_defaults_are_refused(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(MODELS_DIR / "fmnist", folder, ignore=shutil.ignore_patterns("posterior"))
    (folder / "generation.json").write_text(json.dumps({"cfg": 2}))
    with pytest.raises(CheckpointError, match="generation.json: expected"):
        load_model(folder)
    with pytest.raises(CheckpointError, match="expected"):
        export_model(folder, generation_defaults={"cfg_scale": -1}, overwrite=True)
    export_model(folder, generation_defaults={"cfg_scale": 3}, overwrite=True)
    assert load_model(folder).generation_defaults == {"cfg_scale": 3}
