"""Super-resolution x4 (8x8 -> 32x32, sigma_y = 0.05) of Fashion-MNIST test images with the embedded model."""

import sys
from pathlib import Path

import torch

import pagoda_inverse as pi
from pagoda_inverse.datasets import load_fmnist, to_model_range
from pagoda_inverse.ops import make_operator
from pagoda_inverse.utils.images import save_panels

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/examples")
model = pi.load_model("fmnist")  # teacher 8x8, one-step G at 32x32, learned encoder
x = to_model_range(load_fmnist("test", limit=5)[0])  # [5, 1, 32, 32] in [-1, 1]
op = make_operator("downsample_area", shape=(1, 32, 32), factor=4, sigma_y=0.05)
y = op(x, generator=torch.Generator().manual_seed(0))  # [5, 1, 8, 8]: area down-sampling plus noise

columns = {"observation 8x8": y, "bicubic": pi.solve("bicubic", model, op, y).estimate}
for solver in ("encode_decode", "one_step", "latent_map"):
    result = pi.solve(solver, model, op, y, generator=torch.Generator().manual_seed(0))
    columns[f"{solver} ({result.info['nfe']} NFE)"] = result.estimate
columns["truth"] = x
save_panels(columns, out / "superres.png")
