"""The PaGoDA pipeline on real images: downsample, PF-ODE encode at the teacher resolution, decode with one-step G
at 4x the teacher's resolution (and, for comparison, with the teacher's own PF-ODE back at 8x8)."""

import sys
from pathlib import Path

import pagoda_inverse as pi
from pagoda_inverse.core.ode import decode_heun
from pagoda_inverse.core.precond import guided_denoiser
from pagoda_inverse.datasets import area_pool, load_fmnist, to_model_range
from pagoda_inverse.utils.images import save_panels

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/examples")
model = pi.load_model("fmnist")
images, labels = load_fmnist("test", limit=5)
x = to_model_range(images)  # [5, 1, 32, 32]
cond = model.class_condition(labels)
low = area_pool(x, 4)  # [5, 1, 8, 8]: area down-sampling to the teacher's resolution
z = pi.encode(model, low, cond)  # PF-ODE (Heun, 34 NFE): data -> noise, std about sigma_max = 80
teacher_back = decode_heun(guided_denoiser(model.teacher, cond, clamp=True), z, 18)  # noise -> 8x8 data

columns = {
    "image 32x32": x,
    "area-down 8x8": low,
    "latent z (PF-ODE)": (z / (2 * model.decoder.sigma_max)).clamp(-1, 1),
    "teacher ODE back 8x8": teacher_back,
    "G(z) 32x32, 1 NFE": pi.decode(model, z, cond),
}
save_panels(columns, out / "round_trip.png")
