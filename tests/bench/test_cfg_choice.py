"""The rule that picks a model's recommended guidance scale (``benchmarks/cfg_choice.py``)."""

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def choose(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import their neighbours (core, prompts)
    import cfg_choice

    yield cfg_choice.choose
    for name in ("cfg_choice", "prompts", "core"):  # leave no top-level script modules behind
        sys.modules.pop(name, None)


def _row(scale, fd, on):
    return {"scale": scale, "fd": fd, "prompt_on_class": on}


def test_most_prompts_on_class_within_the_fd_slack(choose):
    rows = [_row(1.5, 4.4, 0.80), _row(2, 4.0, 0.86), _row(3, 4.3, 0.89), _row(4, 4.9, 0.91)]
    assert choose(rows, 0.10)["scale"] == 3  # 4 has more on-class but FD 4.9 > 1.1 * 4.0
    assert choose(rows, 0.25)["scale"] == 4
    assert choose(rows, 0.0)["scale"] == 2  # only the lowest FD is eligible


def test_ties_go_to_the_smaller_scale(choose):
    rows = [_row(2, 4.0, 0.9), _row(3, 4.1, 0.9)]
    assert choose(rows, 0.10)["scale"] == 2
