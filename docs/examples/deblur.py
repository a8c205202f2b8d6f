"""Gaussian deblurring (sigma 1.5 px, sigma_y = 0.05): classical deconvolution against the PaGoDA solvers."""

import sys
from pathlib import Path

import torch

import pagoda_inverse as pi
from pagoda_inverse.datasets import load_fmnist, to_model_range
from pagoda_inverse.ops import make_operator
from pagoda_inverse.utils.images import save_panels

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/examples")
model = pi.load_model("fmnist")
x = to_model_range(load_fmnist("test", limit=5)[0])
op = make_operator("gaussian_blur", shape=(1, 32, 32), sigma=1.5, size=9, sigma_y=0.05)
y = op(x, generator=torch.Generator().manual_seed(0))

columns = {"observation": y}
for solver in ("wiener", "richardson_lucy", "one_step", "latent_map"):
    columns[solver] = pi.solve(solver, model, op, y, generator=torch.Generator().manual_seed(0)).estimate
columns["truth"] = x
save_panels(columns, out / "deblur.png")
