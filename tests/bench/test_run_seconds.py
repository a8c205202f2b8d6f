"""The training time the benchmark pages report is summed over every session of a resumed run."""

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _run_seconds():
    spec = importlib.util.spec_from_file_location("benchmark_core", BENCHMARKS / "core.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run_seconds


def test_a_resumed_run_counts_every_session(tmp_path):
    # RunLog stamps lines from each process's start: one session to 600 s, then a resume that ran 250 s more.
    (tmp_path / "log.txt").write_text(
        "[     5.0s] teacher: start step 0\n[   600.0s] step 2000/5000 loss 0.2\n"
        "[     4.0s] teacher: start step 2000\n[   250.5s] step 2500/5000 loss 0.19\n"
    )
    assert _run_seconds()(tmp_path) == 850.5
    (tmp_path / "log.txt").write_text("[     5.0s] start step 0\n[   600.0s] step 2000/5000\n")
    assert _run_seconds()(tmp_path) == 600.0
