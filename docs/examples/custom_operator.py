"""A custom degradation plugged into the solvers: keep every other column (a 2x horizontal subsampling).

An operator needs only ``A`` (image -> measurement), ``A_adjoint`` and, when the shape changes, ``out_shape``.
The solvers then get the pseudo-inverse, Tikhonov solves and null-space projections from the base class (here by
conjugate gradients; implement ``gram_solve`` and set ``exact_dagger = True`` for a closed form).
"""

import sys
from pathlib import Path

import torch

import pagoda_inverse as pi
from pagoda_inverse.datasets import load_fmnist, to_model_range
from pagoda_inverse.ops.base import LinearOperator
from pagoda_inverse.utils.images import save_panels


class EveryOtherColumn(LinearOperator):
    """``[B, C, H, W] -> [B, C, H, W // 2]``: the even columns."""

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., ::2]

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        x = y.new_zeros(*y.shape[:-1], 2 * y.shape[-1])
        x[..., ::2] = y  # zero-filling is the adjoint of taking a subset
        return x

    def out_shape(self, in_shape=None):
        c, h, w = in_shape or self.in_shape
        return (c, h, w // 2)


out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/examples")
model = pi.load_model("fmnist")
x = to_model_range(load_fmnist("test", limit=5)[0])
op = EveryOtherColumn(in_shape=(1, 32, 32), sigma_y=0.02)
# The contract the solvers rely on: <A x, y> = <x, A^T y>.
u, v = torch.randn(2, 1, 32, 32, dtype=torch.float64), torch.randn(2, 1, 32, 16, dtype=torch.float64)
assert torch.allclose((op.A(u) * v).sum(), (u * op.A_adjoint(v)).sum())
y = op(x, generator=torch.Generator().manual_seed(0))  # [5, 1, 32, 16]

columns = {"observation": torch.nn.functional.interpolate(y, size=(32, 32), mode="nearest"), "pinv": op.A_dagger(y)}
for solver in ("encode_perturb", "latent_map"):  # one_step needs a posterior encoder for a family
    columns[solver] = pi.solve(solver, model, op, y, generator=torch.Generator().manual_seed(0)).estimate
columns["truth"] = x
save_panels(columns, out / "custom_operator.png")
