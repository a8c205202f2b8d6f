"""pagoda-inv solvers inside deepinv: ``deepinv.test(to_deepinv_model(model, "one_step"), loader, physics)`` on four
Fashion-MNIST test images of the fixture slice."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch
from conftest import FMNIST_TINY

from pagoda_inverse.core.model import embedded_models
from pagoda_inverse.interop import to_deepinv_model
from pagoda_inverse.utils.errors import NotApplicableError, UserError

needs_deepinv = pytest.mark.skipif(importlib.util.find_spec("deepinv") is None, reason="deepinv not installed")
needs_model = pytest.mark.skipif("fmnist" not in embedded_models(), reason="embedded model not installed")
#: Two samples in float32 keep the CPU test short (the model's own inpainting setting is 4 in bf16).
FAST = {"samples": 2, "precision": "fp32"}


@pytest.fixture(scope="module")
def task():
    """``(model, operator, its deepinv physics, x01 [4, 1, 32, 32], y01)``: box inpainting with noise 0.05."""
    from pagoda_inverse.core.model import load_model
    from pagoda_inverse.datasets import load_fmnist, to_model_range
    from pagoda_inverse.ops import make_operator
    from pagoda_inverse.ops.deepinv_adapter import to_deepinv

    op = make_operator("inpaint_mask", shape=(1, 32, 32), sigma_y=0.05)
    physics = to_deepinv(op)
    x01 = (to_model_range(load_fmnist("test", root=FMNIST_TINY, limit=4)[0]) + 1) / 2
    torch.manual_seed(0)  # deepinv draws the measurement noise from torch's global generator
    return load_model("fmnist"), op, physics, x01, physics(x01)


def _deepinv_test(rec, physics, x01, y01, batch_size):
    import deepinv as dinv
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(x01, y01), batch_size=batch_size)
    return dinv.test(rec, loader, physics, device="cpu", show_progress_bar=False, verbose=False)


def _psnr01(x, ref):
    return 10 * torch.log10(1 / ((x - ref) ** 2).flatten(1).mean(1))


@needs_deepinv
@needs_model
def test_deepinv_test_scores_exactly_what_the_solver_gives(task):
    from pagoda_inverse.ops.deepinv_adapter import measurement_from_01
    from pagoda_inverse.solvers import solve
    from pagoda_inverse.utils.metrics import psnr

    model, op, physics, x01, y01 = task
    rec = to_deepinv_model(model, "one_step", seed=7, **FAST)
    scores = _deepinv_test(rec, physics, x01, y01, batch_size=4)
    # The same solver on our side of the adapter: [-1, 1] units, image k seeded 7 + k.
    gens = [torch.Generator().manual_seed(7 + k) for k in range(4)]
    ours = solve("one_step", model, op, measurement_from_01(op, y01), generator=gens, **FAST).estimate
    assert scores["PSNR"] == pytest.approx(psnr(ours, 2 * x01 - 1).mean().item(), abs=1e-3)  # the bench's PSNR
    assert scores["PSNR"] > scores["PSNR no learning"] + 5  # the prior fills the box: units and signs are right


@needs_deepinv
@needs_model
def test_image_k_depends_only_on_its_seed(task):
    model, _, physics, x01, y01 = task
    rec = to_deepinv_model(model, "one_step", **FAST)
    whole = _deepinv_test(rec, physics, x01, y01, batch_size=4)
    rec.reset()
    one_by_one = _deepinv_test(rec, physics, x01, y01, batch_size=1)
    assert (one_by_one["PSNR"], one_by_one["PSNR_std"]) == pytest.approx((whole["PSNR"], whole["PSNR_std"]), abs=1e-4)
    assert rec.images_seen == 4
    batch = rec(y01, physics, seeds=[0, 1, 2, 3])
    torch.testing.assert_close(rec(y01[2:3], physics, seeds=[2]), batch[2:3], rtol=0, atol=1e-5)
    assert not torch.allclose(rec(y01[2:3], physics, seeds=[3]), batch[2:3], atol=1e-3)


@needs_deepinv
@needs_model
def test_a_native_deepinv_physics_is_wrapped(task):
    import deepinv as dinv

    model, op, _, x01, _ = task
    mask = op.mask.expand(1, 1, 32, 32).float()
    physics = dinv.physics.Inpainting(img_size=(1, 32, 32), mask=mask, noise_model=dinv.physics.GaussianNoise(0.025))
    torch.manual_seed(0)
    y01 = physics(x01)
    # deepinv's own physics belong to no operator family: no posterior encoder for one_step, encode_perturb serves.
    with pytest.raises(NotApplicableError, match="DeepinvOperator .outside every operator family. has none"):
        to_deepinv_model(model, "one_step", **FAST)(y01, physics)
    x_hat = to_deepinv_model(model, "encode_perturb", **FAST)(y01, physics)
    assert x_hat.shape == x01.shape and x_hat.min() >= 0 and x_hat.max() <= 1
    assert _psnr01(x_hat, x01).mean() > _psnr01(physics.A_adjoint(y01), x01).mean() + 2


def test_bad_solver_and_hyper_parameter_are_one_line_errors():
    with pytest.raises(UserError, match="unknown solver 'one_stpe'; choose one of: pinv"):
        to_deepinv_model(None, "one_stpe")
    with pytest.raises(UserError, match="solver 'one_step' has no hyper-parameter 'sample'"):
        to_deepinv_model(None, "one_step", sample=2)


def test_importing_the_package_imports_neither_deepinv_nor_torch():
    code = "import sys, pagoda_inverse, pagoda_inverse.interop; print(sorted({'torch', 'deepinv'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
