"""Inverse-problem solvers, one signature for all (see :mod:`pagoda_inverse.solvers.base`), and their registry.

Baselines without a learned prior (``pinv``, ``bicubic``, scikit-image's ``biharmonic``, ``richardson_lucy``,
``wiener``), the PaGoDA solvers (``encode_decode``, ``one_step``, ``latent_map``, ``latent_langevin``) and the
peers through deepinv with the ``fmnist-fullres`` prior (``dps``, ``ddrm``, ``diffpir``, ``pigdm``).

>>> sorted(SOLVERS)  # doctest: +NORMALIZE_WHITESPACE
['bicubic', 'biharmonic', 'ddrm', 'diffpir', 'dps', 'encode_decode', 'latent_langevin', 'latent_map', 'one_step',
 'pigdm', 'pinv', 'richardson_lucy', 'wiener']
"""

from __future__ import annotations

from pagoda_inverse.solvers.base import SolverResult
from pagoda_inverse.solvers.baselines import solve_bicubic, solve_pinv
from pagoda_inverse.solvers.classical import CLASSICAL
from pagoda_inverse.solvers.latent import solve_latent_langevin, solve_latent_map
from pagoda_inverse.solvers.one_step import solve_encode_decode, solve_one_step
from pagoda_inverse.solvers.peers import PEERS
from pagoda_inverse.utils.errors import UserError

SOLVERS = {
    "pinv": solve_pinv,
    "bicubic": solve_bicubic,
    **CLASSICAL,
    "encode_decode": solve_encode_decode,
    "one_step": solve_one_step,
    "latent_map": solve_latent_map,
    "latent_langevin": solve_latent_langevin,
    **PEERS,
}


def solve(method: str, model, op, y, **kwargs) -> SolverResult:
    """Run the solver ``method`` (a key of :data:`SOLVERS`) with the shared signature.

    >>> import torch
    >>> from pagoda_inverse import load_model
    >>> from pagoda_inverse.ops import make_operator
    >>> model = load_model("fmnist")
    >>> op = make_operator("downsample_area", shape=(1, 32, 32), factor=4)
    >>> res = solve("one_step", model, op, torch.zeros(1, 1, 8, 8), samples=2, encoder="ode", num_steps=4)
    >>> res.estimate.shape, res.samples.shape, res.info["nfe"]
    (torch.Size([1, 1, 32, 32]), torch.Size([2, 1, 1, 32, 32]), 8)
    """
    if method not in SOLVERS:
        raise UserError(f"unknown solver {method!r}; choose one of: {', '.join(SOLVERS)}")
    return SOLVERS[method](model, op, y, **kwargs)
