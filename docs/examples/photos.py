"""Photos of any size with the embedded `photo` model: x4 super-resolution and colorization, solved in tiles."""

import sys
from pathlib import Path

import torch

import pagoda_inverse as pi
from pagoda_inverse.datasets.photos import load_photo, photo_sources
from pagoda_inverse.ops import make_operator
from pagoda_inverse.utils.images import save_panels

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/examples")
model = pi.load_model("photo")  # unconditional RGB: teacher 16x16, one-step G at 64x64 (the tile), learned encoder
coffee = next(s for s in photo_sources("test") if s.name == "coffee.png")  # a held-out photo, 600x400
x = load_photo(coffee)[None, :, :192, 176:464].float() / 127.5 - 1  # [1, 3, 192, 288] in [-1, 1]

# Super-resolution x4: the observation is 72x48; 64x64 tiles with overlap 16, one whole-image consistency step. The
# sampler pagoda-inv solve picks: one_step where the model has a posterior encoder for the family, else encode_perturb.
sr = make_operator("downsample_area", shape=tuple(x.shape[1:]), factor=4)
y_sr = sr(x)
sampler = pi.default_solver(model, sr)
result_sr = pi.solve_tiled(sampler, model, sr, y_sr, seed=0)
bicubic = pi.solve("bicubic", model, sr, y_sr).estimate

# Colorization: the observation is the rec601 luma. colour_net: the model's luma-to-colour network (the
# posterior-mean colour, one pass per tile); one_step (what pagoda-inv solve colorize uses): the mean of colourings
# drawn through the model's posterior encoder for colorization (posterior/colorize/, one pass of G per sample and
# tile), pulled toward the gray copy by the model's shrink.
gray = make_operator("colorize", shape=tuple(x.shape[1:]))
y_gray = gray(x)
result_net = pi.solve_tiled("colour_net", model, gray, y_gray, seed=0)
result_color = pi.solve_tiled("one_step", model, gray, y_gray, seed=0)

psnr = lambda a: float(10 * torch.log10(4 / (a.clamp(-1, 1) - x).pow(2).mean()))  # noqa: E731
save_panels(
    {
        "observation 72x48": y_sr,
        f"bicubic {psnr(bicubic):.1f} dB": bicubic,
        f"{sampler}, {result_sr.info['tiles']} tiles {psnr(result_sr.estimate):.1f} dB": result_sr.estimate,
        "truth": x,
    },
    out / "photos_superres.png",
    cell=2.4,
)
save_panels(
    {
        f"grayscale {psnr(y_gray.expand_as(x)):.1f} dB": y_gray,
        f"colour_net {psnr(result_net.estimate):.1f} dB": result_net.estimate,
        f"one_step {psnr(result_color.estimate):.1f} dB": result_color.estimate,
        "truth": x,
    },
    out / "photos_colorize.png",
    cell=2.4,
)
