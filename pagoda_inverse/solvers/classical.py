"""Classical baselines from scikit-image: biharmonic inpainting, Richardson-Lucy and Wiener deconvolution.

They run image by image on ``[0, 1]`` pixels (scikit-image's convention) and use no learned prior (0 network
evaluations). scikit-image comes with ``pip install 'pagoda-inv[peers]'``.
"""

from __future__ import annotations

import numpy as np
import torch

from pagoda_inverse.ops.blur import Blur
from pagoda_inverse.solvers.base import SolverResult, Timer, result


def _per_image(y: torch.Tensor, fn) -> torch.Tensor:
    """Apply ``fn(i, image [H, W, C] float64 in [0, 1]) -> same`` to each image of ``[B, C, H, W]`` in ``[-1, 1]``
    (scikit-image runs on the CPU; the result goes back to ``y``'s device)."""
    images = ((y.detach().cpu().double() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    out = [torch.from_numpy(np.ascontiguousarray(fn(i, img))).permute(2, 0, 1) for i, img in enumerate(images)]
    return (torch.stack(out).float() * 2 - 1)[None].to(y.device)


def solve_biharmonic(model, op, y, *, cond=None, generator=None, callback=None) -> SolverResult:
    """``skimage.restoration.inpaint_biharmonic``: fill the missing pixels with the smooth biharmonic interpolant."""
    from skimage import restoration

    timer = Timer()
    holes = ((op.mask == 0).expand(len(y), -1, -1, -1) if len(op.mask) == 1 else op.mask == 0).cpu()

    def fill(i, img):
        return restoration.inpaint_biharmonic(img, holes[i, 0].numpy(), channel_axis=-1)

    return result(_per_image(y, fill), None, timer, "biharmonic", 0)


def _kernel(op: Blur, i: int) -> np.ndarray:
    k = op.kernel[i if len(op.kernel) > 1 else 0, 0]
    return k.detach().cpu().double().numpy()


def solve_richardson_lucy(
    model, op, y, *, cond=None, generator=None, callback=None, num_iter: int = 30
) -> SolverResult:
    """``skimage.restoration.richardson_lucy`` with the operator's kernel (``num_iter`` multiplicative updates)."""
    from skimage import restoration

    timer = Timer()

    def deconvolve(i, img):
        k = _kernel(op, i)
        return np.stack([restoration.richardson_lucy(img[..., c], k, num_iter=num_iter) for c in range(img.shape[-1])],
                        axis=-1)  # fmt: skip

    return result(_per_image(y, deconvolve), None, timer, "richardson_lucy", 0, num_iter=num_iter)


def solve_wiener(
    model, op, y, *, cond=None, generator=None, callback=None, balance: float | None = None
) -> SolverResult:
    """``skimage.restoration.wiener`` with the operator's kernel; ``balance`` (the regularisation weight) defaults
    to ``(sigma_y / 2)^2 / 0.05`` from each image's noise level in ``[0, 1]`` units, at least 1e-3."""
    from skimage import restoration

    timer = Timer()
    sigma = torch.as_tensor(op.sigma_y, dtype=torch.float64).reshape(-1).expand(len(y))

    def deconvolve(i, img):
        k = _kernel(op, i)
        weight = max((float(sigma[i]) / 2) ** 2 / 0.05, 1e-3) if balance is None else balance  # image i's own noise
        return np.stack([restoration.wiener(img[..., c], k, weight) for c in range(img.shape[-1])], axis=-1)

    return result(_per_image(y, deconvolve), None, timer, "wiener", 0, balance=balance)
