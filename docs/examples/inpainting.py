"""Box inpainting with posterior samples: K one-step samples per image, their mean and per-pixel std."""

import sys
from pathlib import Path

import torch

import pagoda_inverse as pi
from pagoda_inverse.datasets import load_fmnist, to_model_range
from pagoda_inverse.ops import make_operator
from pagoda_inverse.utils.images import save_panels

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/examples")
model = pi.load_model("fmnist")
x = to_model_range(load_fmnist("test", limit=4)[0])  # [4, 1, 32, 32]
op = make_operator("inpaint_mask", shape=(1, 32, 32), sigma_y=0.05)  # a centred 16x16 hole
y = op(x, generator=torch.Generator().manual_seed(0))  # masked pixels are 0 (mid-gray)

result = pi.solve("one_step", model, op, y, samples=16, generator=torch.Generator().manual_seed(0))
std = result.std  # [4, 1, 32, 32]: high inside the hole, about 0 where pixels are observed
columns = {"observation": y}
columns |= {f"sample {k + 1}": result.samples[k] for k in range(4)}
columns |= {"mean of 16": result.estimate, "std (white = high)": std / std.amax() * 2 - 1, "truth": x}
save_panels(columns, out / "inpainting.png")
mask = op.mask.expand_as(std).bool()
print(f"mean std in the hole {std[~mask].mean():.3f}, on observed pixels {std[mask].mean():.3f}")
