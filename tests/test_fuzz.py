"""Fuzzing the three parsers of user files: images, masks/kernels, and task TOML.

Random bytes, mutated valid files and random task tables must either load correctly or raise the clean
:class:`UserError`; any other exception (or a hang on a huge declared size) is a failure. Examples per test:
``PAGODA_FUZZ_EXAMPLES`` (default 200; the runs are derandomized so CI is reproducible; raise it and unset
``derandomize`` via ``PAGODA_FUZZ_RANDOM=1`` for a deeper search).
"""

from __future__ import annotations

import io
import json
import os
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pagoda_inverse.utils.errors import UserError

EXAMPLES = int(os.environ.get("PAGODA_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("PAGODA_FUZZ_RANDOM") != "1",
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _encoded(fmt: str, mode: str) -> bytes:
    arr = np.random.default_rng(0).integers(0, 255, (12, 10, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, format=fmt)
    return buf.getvalue()


VALID_FILES = [_encoded("PNG", "L"), _encoded("PNG", "RGB"), _encoded("PNG", "P"), _encoded("JPEG", "L")]


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A valid file with a few bytes overwritten, a slice cut out or the tail truncated."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        lo = draw(st.integers(0, len(data) - 1))
        del data[lo : lo + draw(st.integers(1, 64))]
    return bytes(data[: draw(st.integers(1, len(data)))] if draw(st.booleans()) else data)


FILE_BYTES = st.one_of(st.binary(max_size=600), mutated(VALID_FILES))


@FUZZ
@given(data=FILE_BYTES, channels=st.sampled_from([1, 3]), suffix=st.sampled_from([".png", ".jpg", ""]))
def test_load_image_never_crashes(tmp_path, data, channels, suffix):
    from pagoda_inverse.utils.io import load_image

    path = tmp_path / f"input{suffix}"
    path.write_bytes(data)
    try:
        x = load_image(path, channels)
    except UserError as err:
        assert str(path) in str(err) and "\n" not in str(err)
        return
    assert x.ndim == 3 and x.shape[0] == channels and x.min() >= -1 and x.max() <= 1


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


VALID_ARRAYS = [_npy(np.ones((5, 5))), _npy(np.eye(4, dtype=np.float32)), _npy(np.arange(9, dtype=np.uint8))]


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=400), mutated(VALID_ARRAYS), mutated(VALID_FILES)),
    suffix=st.sampled_from([".npy", ".png"]),
    kind=st.sampled_from(["mask", "kernel"]),
)
def test_mask_and_kernel_files_never_crash(tmp_path, data, suffix, kind):
    from pagoda_inverse.ops.kernels import load_kernel
    from pagoda_inverse.ops.masks import load_mask

    path = tmp_path / f"{kind}{suffix}"
    path.write_bytes(data)
    try:
        t = (load_mask if kind == "mask" else load_kernel)(path)
    except UserError as err:
        assert isinstance(err, ValueError) and "\n" not in str(err)
        return
    assert t.ndim == 2 and bool(t.isfinite().all())
    if kind == "mask":
        assert set(t.unique().tolist()) <= {0.0, 1.0}
    else:
        assert abs(float(t.sum()) - 1) < 1e-6


#: Valid task tables to start from: every field is then kept, dropped or replaced by a random value.
BASE_TASK = {"family": "superres", "model": "fmnist", "dataset": "fmnist", "split": "test", "images": 4,
             "seeds": "0-3", "metrics": ["psnr", "ssim"]}  # fmt: skip
BASES = {
    "solvers": {
        "task": BASE_TASK,
        "operator": {"name": "downsample_area", "factor": 4, "sigma_y": 0.05, "units": "pm1"},
        "solvers.pinv": {},
        "solvers.one_step": {"samples": 2, "eta": 0.3},
        "solvers.latent_map": {"steps": 10, "encoder": "learned"},
    },
    "samplers": {
        "task": BASE_TASK | {"family": "generate", "metrics": ["fd", "accuracy"]},
        "generation": {"condition": "class", "cfg_scale": 2.0, "classifier": "fmnist-clf"},
        "samplers.g": {"sampler": "onestep"},
        "samplers.h": {"sampler": "heun", "num_steps": 18, "model": "fmnist-fullres"},
    },
}
SCALARS = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(string.printable, max_size=12),
    st.sampled_from(["superres", "fmnist", "test", "0-3", "0-99999999999", "downsample_area", "pm1", "01", "psnr"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4))


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(v, "nan" if v != v else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    return "[" + ", ".join(map(_toml_value, v)) + "]"


@st.composite
def task_toml(draw) -> str:
    """A valid task file (solver or generation kind) with tables dropped, fields dropped or replaced by random
    values, and random extra fields: most examples are one or two mistakes away from a valid file."""
    lines: list[str] = []
    for table, fields in BASES[draw(st.sampled_from(sorted(BASES)))].items():
        if draw(st.integers(0, 9)) == 0:
            continue
        lines.append(f"[{table}]")
        extra = draw(st.lists(st.sampled_from(["x", "samples", "steps", "num_steps", "sampler", "name"]), max_size=2))
        for key in dict.fromkeys([*fields, *extra]):
            action = draw(st.sampled_from(["keep"] * 6 + ["drop", "random"]))
            if action == "drop" or (action == "keep" and key not in fields):
                continue
            value = fields[key] if action == "keep" else draw(VALUES)
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


@FUZZ
@given(text=task_toml())
def test_task_loader_never_crashes(tmp_path, text):
    from pagoda_inverse.bench.tasks import load_task

    path = tmp_path / "task.toml"
    path.write_text(text)
    try:
        spec = load_task(path)
    except UserError as err:
        assert str(path) in str(err) and "\n" not in str(err)
        return
    assert 1 <= spec.images <= len(spec.seeds)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode)))
def test_task_loader_on_random_bytes(tmp_path, data):
    from pagoda_inverse.bench.tasks import load_task

    path = tmp_path / "task.toml"
    path.write_bytes(data)
    with pytest.raises(UserError, match="task.toml"):
        load_task(path)
