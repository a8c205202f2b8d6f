"""Generation tasks: FD/KID, task validation, the generation runner on tiny models, the CLI on the shipped ones."""

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli

from pagoda_inverse.bench.generation import run_generation, sample_conditions
from pagoda_inverse.bench.tasks import GenerationSpec, load_task, select_tasks
from pagoda_inverse.core.checkpoint import save_checkpoint
from pagoda_inverse.core.classifier import Classifier, ClassifierConfig
from pagoda_inverse.core.model import load_model
from pagoda_inverse.utils.errors import UserError
from pagoda_inverse.utils.metrics import frechet_distance, kernel_distance

FMNIST_TINY = Path(__file__).parents[1] / "fixtures" / "fmnist-tiny"

TASK = """
[task]
family = "generate"
model = "fmnist"
dataset = "fmnist"
split = "test"
images = 20
metrics = ["fd", "kid", "accuracy"]

[generation]
condition = "class"
cfg_scale = 2.0
classifier = "fmnist-clf"

[samplers.one]
sampler = "onestep"

[samplers.ode]
sampler = "heun"
num_steps = 3
"""


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 2, generator=g, dtype=torch.float64)
    b = torch.randn(20000, 2, generator=g, dtype=torch.float64) * 2 + torch.tensor([1.0, 0.0], dtype=torch.float64)
    # N(0, I) vs N((1, 0), 4 I): |dmu|^2 + tr(I + 4I - 2 * 2I) = 1 + 2 = 3.
    assert frechet_distance(a, b) == pytest.approx(3.0, abs=0.08)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)


def test_kernel_distance_is_unbiased_and_grows_with_the_gap():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2000, 8, generator=g), torch.randn(2000, 8, generator=g)
    same, std = kernel_distance(a, b, subsets=20, subset_size=500)
    assert abs(same) < 3 * std + 1e-3
    near, _ = kernel_distance(a, b + 0.3, subsets=20, subset_size=500)
    far, _ = kernel_distance(a, b + 1.0, subsets=20, subset_size=500)
    assert 0 < near < far


def test_shipped_generation_tasks_load_and_select_by_family():
    specs = select_tasks("generate")
    assert {s.name for s in specs} == {"generate_class", "generate_prompt"}
    spec = load_task("generate_class")
    assert isinstance(spec, GenerationSpec) and spec.images == 10000 and spec.condition == "class"
    assert spec.samplers["fullres_heun"]["model"] == "fmnist-fullres"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (TASK.replace('condition = "class"', 'condition = "mood"'), "field 'generation.condition' must be"),
        (TASK.replace('sampler = "onestep"', 'sampler = "dpm"'), "field 'samplers.one' needs sampler"),
        (TASK.replace("num_steps = 3", "num_steps = 1"), "num_steps' must be an integer between 2 and 10000"),
        (TASK.replace('metrics = ["fd", "kid", "accuracy"]', 'metrics = ["fid"]'), "unknown metric"),
        (TASK.replace("cfg_scale = 2.0", 'cfg_scale = "high"'), "field 'generation.cfg_scale'"),
    ],
)
def test_malformed_generation_tasks_name_the_field(tmp_path, text, match):
    path = tmp_path / "g.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=match):
        load_task(path)


def test_conditions_are_balanced_over_classes_and_heldout_prompts():
    model = load_model("fmnist")
    _, labels = sample_conditions(model, "class", 30)
    assert labels.tolist() == list(range(10)) * 3
    cond, labels = sample_conditions(model, "prompt", len(model.bank.heldout_labels))
    torch.testing.assert_close(cond, model.bank.heldout_embeddings)
    assert torch.bincount(labels, minlength=10).min() >= 1


def test_runner_on_tiny_models_is_deterministic(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("PAGODA_FMNIST_DIR", str(FMNIST_TINY))
    torch.manual_seed(0)
    clf = Classifier(ClassifierConfig(channels=8, feature_dim=16))
    save_checkpoint(tmp_path / "clf", {f"net.{k}": v for k, v in clf.state_dict().items()},
                    {"kind": "classifier", "classifier": clf.config.to_dict()})  # fmt: skip
    path = tmp_path / "g.toml"
    path.write_text(
        TASK.replace('"fmnist-clf"', f'"{tmp_path / "clf"}"').replace(
            'model = "fmnist"', f'model = "{tiny_model_dir}"'
        )
    )
    spec = load_task(path)
    a = run_generation(spec, keep=4)
    b = run_generation(spec, samplers=["one"], keep=4)
    assert set(a["scores"]) == {"one", "ode"} and set(b["scores"]) == {"one"}
    for key in ("fd", "kid", "accuracy"):
        assert a["scores"]["one"][key] == b["scores"]["one"][key]
    one, ode = a["scores"]["one"], a["scores"]["ode"]
    assert one["nfe"] == 2 and ode["nfe"] == 2 * (2 * 3 - 1)  # CFG doubles every evaluation
    assert one["images"] == 20 and 0 <= one["accuracy"] <= 1 and one["fd"] >= 0
    # Samples at the classifier's resolution: G's 16 px and the teacher's 8 px are up-sampled to 32 px.
    assert a["examples"]["one"].shape == a["examples"]["ode"].shape == (4, 1, 32, 32)
    with pytest.raises(UserError, match="unknown sampler"):
        run_generation(spec, samplers=["nope"])


def test_cli_generation_bench_with_the_shipped_models(tmp_path):
    out = tmp_path / "gen"
    result = run_cli("bench", "--task", "generate_class", "--solvers", "pagoda_onestep", "--limit", "40",
                     "--out", str(out), "--json", "-q", env={"PAGODA_FMNIST_DIR": str(FMNIST_TINY)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    # CFG 2 through the shipped guidance map: the map's pass, then G on the conditional and null batch.
    assert row["solver"] == "pagoda_onestep" and row["images"] == 40 and row["nfe"] == 3
    # The shipped G is class-controllable: well above chance (10%) even on 40 samples.
    assert row["accuracy"] >= 0.7 and row["fd"] > 0
    md = (out / "results.md").read_text()
    assert "FD-FMNIST" in md and "KID-FMNIST" in md and "FID" not in md.replace("FD-FMNIST", "")
    assert (out / "grid-generate_class.png").is_file()


def test_cli_cfg_scale_replaces_the_tasks_scale(tmp_path):
    out = tmp_path / "gen"
    result = run_cli("bench", "--task", "generate_class", "--solvers", "pagoda_onestep", "--limit", "20",
                     "--cfg-scale", "1", "--out", str(out), "--json", "-q",
                     env={"PAGODA_FMNIST_DIR": str(FMNIST_TINY)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["nfe"] == 1  # no guidance: one network evaluation per sample (the task's scale 2 gives 3)
    assert json.loads((out / "config.json").read_text())["cfg_scale"] == 1.0
    assert "CFG scale 1." in (out / "results.md").read_text()
    # An inverse-problem task has no CFG scale to replace.
    bad = run_cli("bench", "--task", "superres_x4", "--cfg-scale", "3", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "generation tasks only" in bad.stderr and not (tmp_path / "x").exists()
