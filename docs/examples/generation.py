"""Class- and prompt-conditioned generation in one network evaluation per image, with classifier-free guidance."""

import sys
from pathlib import Path

import torch

import pagoda_inverse as pi
from pagoda_inverse.datasets import FMNIST_CLASSES
from pagoda_inverse.utils.images import save_panels

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/examples")
model = pi.load_model("fmnist")
seeds = range(6)  # sample i depends only on seed i
w = model.generation_defaults.get("cfg_scale", 1.0)  # the model's recommended guidance scale (fmnist: 3)

classes = {}
for label, name in enumerate(FMNIST_CLASSES):
    cond = model.class_condition(torch.tensor([label] * len(seeds)))
    classes[name] = pi.generate(model, cond, seeds, cfg_scale=w)  # [6, 1, 32, 32]
save_panels(classes, out / "generation_class.png", cell=0.9)

prompts = ["a pair of sneakers", "a long evening dress", "a handbag with a strap", "some trousers"]
columns = {p: pi.generate(model, model.prompt_condition([p] * len(seeds)), seeds, cfg_scale=w) for p in prompts}
save_panels(columns, out / "generation_prompt.png", cell=1.2)
