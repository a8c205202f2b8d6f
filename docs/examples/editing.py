"""Editing by condition swap: encode a real image with its own class, decode the latent with another class."""

import sys
from pathlib import Path

import torch

import pagoda_inverse as pi
from pagoda_inverse.datasets import FMNIST_CLASSES, area_pool, load_fmnist, to_model_range
from pagoda_inverse.utils.images import save_panels

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/examples")
model = pi.load_model("fmnist")
images, labels = load_fmnist("test", limit=64)
keep = (labels == 0).nonzero()[:5, 0]  # five T-shirts
x = to_model_range(images[keep])  # [5, 1, 32, 32]
low = area_pool(x, 4)  # the teacher's 8x8 input
z = pi.encode(model, low, model.class_condition(labels[keep]))  # PF-ODE latents [5, 1, 8, 8]

columns = {"input": x, "decoded as T-shirt": pi.decode(model, z, model.class_condition(labels[keep]))}
for target in (2, 3, 4, 6):  # pullover, dress, coat, shirt
    cond = model.class_condition(torch.full((len(z),), target))
    columns[f"as {FMNIST_CLASSES[target]}"] = pi.decode(model, z, cond, cfg_scale=2.0)
save_panels(columns, out / "editing.png")
