"""Fixtures for the operator tests: the registry cases, devices, and one thread per test (2 shared CPU cores).

Every registry entry becomes a ``case`` automatically (``pytest_generate_tests``), so a new operator gets all the
property tests for free; ``VARIANTS`` adds parameter sets that reach other code paths.
"""

from __future__ import annotations

import pytest
import torch

from pagoda_inverse.ops import registry

#: deepinv's odd test size: catches H/W transposition and padding bugs.
SHAPE = (3, 37, 31)

#: The CUDA case carries the ``gpu`` marker from collection on, so ``pytest -m gpu`` selects it (a marker applied
#: inside a fixture comes too late for ``-m``).
DEVICES = ["cpu"] + ([pytest.param("cuda", marks=pytest.mark.gpu)] if torch.cuda.is_available() else [])

VARIANTS = [
    ("gaussian_blur", {"padding": "valid", "size": 9, "sigma": 1.5}),
    ("gaussian_blur", {"padding": "replicate", "size": 7, "sigma": [0.8, 2.0]}),
    ("gaussian_blur", {"padding": "constant", "size": 4, "sigma": (1.0, 2.0)}),
    ("gaussian_blur_circular", {"size": 5, "sigma": 1.0}),
    ("motion_blur", {"padding": "circular", "size": 15}),
    ("downsample_area", {"factor": 2}),
    ("downsample_bicubic", {"factor": 8}),
    ("blur_downsample", {"filter": "bicubic", "factor": 2}),
    ("colorize", {"weights": "mean"}),
    ("colour_mix", {"matrix": [[0.2, 0.3, 0.5], [0.5, 0.3, 0.2], [0.2, 0.6, 0.2], [1.0, 0.0, 0.0]]}),
    ("inpaint_box", {"position": "center"}),
]


def _case_id(case) -> str:
    name, params = case
    return name + ("[" + ",".join(f"{k}={v}" for k, v in params.items()) + "]" if params else "")


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        cases = [(name, {}) for name in registry.list_operators()] + VARIANTS
        metafunc.parametrize("case", cases, ids=[_case_id(c) for c in cases])


@pytest.fixture(autouse=True)
def _one_thread():
    # Small tensors on a shared 2-core CPU run ~100x slower with 2 OpenMP threads than with 1.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Every available device (CUDA cases also carry the ``gpu`` marker)."""
    return request.param


@pytest.fixture
def shape() -> tuple[int, int, int]:
    """The odd test size (C, H, W)."""
    return SHAPE


@pytest.fixture
def build():
    """``build(name, params, batch=2, **kw) -> (op, shape)``: a registry operator at the odd size rounded up to what
    its downsampling factor accepts, with parameters drawn from a generator seeded with 0."""

    def make(name: str, params: dict, batch: int = 2, shape=SHAPE, **kw):
        shape = registry.fit_shape(name, shape, **params)
        op = registry.make_operator(
            name, shape=shape, batch=batch, generator=torch.Generator().manual_seed(0), **params, **kw
        )
        return op, shape

    return make
