"""Inverse-problem solvers, one signature for all (see :mod:`pagoda_inverse.solvers.base`), and their registry.

Baselines without a learned prior (``pinv``, ``bicubic``, ``gray`` for colorization, scikit-image's ``biharmonic``,
``richardson_lucy``, ``wiener``), the PaGoDA solvers (``encode_decode``, ``one_step`` through the model's posterior
encoder for the operator's family, ``encode_perturb`` for a model without one, ``latent_map``, ``latent_ilo``,
``latent_langevin``), the photo model's colorization network (``colour_net``) and the peers through deepinv with
the ``fmnist-fullres`` prior (``dps``, ``ddrm``, ``diffpir``, ``pigdm``).

>>> sorted(SOLVERS)  # doctest: +NORMALIZE_WHITESPACE
['bicubic', 'biharmonic', 'colour_net', 'ddrm', 'diffpir', 'dps', 'encode_decode', 'encode_perturb', 'gray',
 'latent_ilo', 'latent_langevin', 'latent_map', 'one_step', 'pigdm', 'pinv', 'richardson_lucy', 'wiener']
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pagoda_inverse.utils.errors import CheckpointError, NotApplicableError, UserError

if TYPE_CHECKING:
    from pagoda_inverse.solvers.base import SolverResult


@dataclass(frozen=True)
class Solver:
    """A registry entry: where the solver function lives and where it applies.

    :param target: ``"module:function"`` in this package, imported on first use (so the registry, and the CLI's help
        that lists it, load without torch); :attr:`fn` is the function,
        ``fn(model, op, y, *, cond, generator, callback, **hparams) -> SolverResult``.
    :param families: the operator families it applies to (:data:`~pagoda_inverse.ops.families.FAMILIES`; ``None``:
        every linear operator).
    :param binary_mask: masks must be binary (inpainting and DDRM's pixel-basis SVD).
    :param needs: the optional package it imports (its ``pip`` extra is ``peers``).
    :param applies_to: the refusal's wording: "the NAME solver only applies to ``applies_to``".
    :param posterior: it needs the model's posterior encoder for the operator's family (``model.posteriors``).
    """

    target: str
    families: tuple[str, ...] | None = None
    binary_mask: bool = False
    needs: str | None = None
    applies_to: str = ""
    posterior: bool = False

    @property
    def fn(self) -> Callable[..., SolverResult]:
        module, name = self.target.split(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)

    def applies(self, family: str | None) -> bool:
        """Whether operators of ``family`` (``None``: outside every family) are in this solver's reach."""
        return self.families is None or family in self.families


_COLOUR = "colorization (the Grayscale operator: one-channel measurements of colour images)"
_BLUR = "blur (deblur tasks)"
_SVD = "operators with a pixel-basis SVD (inpainting with a binary mask, denoising; dps, diffpir and pigdm take any)"
SOLVERS = {
    "pinv": Solver("baselines:solve_pinv"),
    "bicubic": Solver("baselines:solve_bicubic", ("superres",), applies_to="down-sampling operators (superres)"),
    "gray": Solver("baselines:solve_gray", ("colorize",), applies_to=_COLOUR),
    "biharmonic": Solver("classical:solve_biharmonic", ("inpaint",), True, "skimage", "inpainting with a binary mask"),
    "richardson_lucy": Solver("classical:solve_richardson_lucy", ("deblur",), needs="skimage", applies_to=_BLUR),
    "wiener": Solver("classical:solve_wiener", ("deblur",), needs="skimage", applies_to=_BLUR),
    "encode_decode": Solver("one_step:solve_encode_decode"),
    "one_step": Solver("one_step:solve_one_step", posterior=True),
    "encode_perturb": Solver("one_step:solve_encode_perturb"),
    "latent_map": Solver("latent:solve_latent_map"),
    "latent_ilo": Solver("latent:solve_latent_ilo"),
    "latent_langevin": Solver("latent:solve_latent_langevin"),
    "colour_net": Solver("colour:solve_colour_net", ("colorize",), applies_to=_COLOUR),
    "dps": Solver("peers:solve_dps", needs="deepinv"),
    "ddrm": Solver("peers:solve_ddrm", ("inpaint", "denoise"), True, "deepinv", _SVD),
    "diffpir": Solver("peers:solve_diffpir", needs="deepinv"),
    "pigdm": Solver("peers:solve_pigdm", needs="deepinv"),
}


#: Solvers without a learned prior (no model network): the starting points the latent solvers' ``init`` accepts.
LATENT_FREE = ("pinv", "bicubic", "gray", "biharmonic", "richardson_lucy", "wiener")


def not_applicable(method: str, op, model=None) -> str | None:
    """Why solver ``method`` does not apply to ``op`` (one line), or ``None`` where it does (its registry entry; with
    ``model``, also whether the model has the posterior encoder a :attr:`Solver.posterior` solver needs).

    >>> from pagoda_inverse import load_model
    >>> from pagoda_inverse.ops import make_operator
    >>> not_applicable("wiener", make_operator("inpaint_mask", shape=(1, 8, 8)))
    'the wiener solver only applies to blur (deblur tasks), not the inpaint operator'
    >>> not_applicable("one_step", make_operator("inpaint_mask", shape=(1, 8, 8)), load_model("fmnist")) is None
    True
    >>> not_applicable("one_step", make_operator("inpaint_mask", shape=(3, 64, 64)), load_model("photo"))
    "model 'photo' has no posterior encoder for inpaint operators: use the encode_perturb solver, or train one with: pagoda-inv train posterior --family inpaint"
    """
    from pagoda_inverse.ops.families import operator_family

    entry = SOLVERS[method]
    family = operator_family(op)
    what = f"the {family} operator" if family else f"{type(op).__name__} (outside every operator family)"
    if not entry.applies(family) or (entry.binary_mask and not getattr(op, "binary", True)):  # only masks are soft
        return f"the {method} solver only applies to {entry.applies_to}, not {what}"
    if entry.posterior and model is not None and family not in model.posteriors:
        name = Path(model.path).name
        if family is None:
            return f"the {method} solver needs a posterior encoder, and {what} has none: use the encode_perturb solver"
        return (
            f"model {name!r} has no posterior encoder for {family} operators: use the encode_perturb solver, "
            f"or train one with: pagoda-inv train posterior --family {family}"
        )
    return None


def default_solver(model, op, samples: int | None = None) -> str:
    """The PaGoDA solver for ``op`` with ``model``: ``one_step`` through the model's posterior encoder for ``op``'s
    family where it has one; for a colorization without that encoder, the model's colour network (``colour_net``)
    where it has one and at most one sample is asked for (it is deterministic); else ``encode_perturb`` (samples
    around the encoding of ``A^+ y``).

    >>> from pagoda_inverse import load_model
    >>> from pagoda_inverse.ops import make_operator
    >>> default_solver(load_model("fmnist"), make_operator("inpaint_mask", shape=(1, 32, 32)))
    'one_step'
    >>> default_solver(load_model("photo"), make_operator("inpaint_mask", shape=(3, 64, 64)))
    'encode_perturb'
    """
    from pagoda_inverse.ops.families import operator_family

    if not_applicable("one_step", op, model) is None:
        return "one_step"
    one_colouring = operator_family(op) == "colorize" and model.colour is not None and (samples or 1) <= 1
    return "colour_net" if one_colouring else "encode_perturb"


def check_needs(method: str) -> None:
    """Raise :class:`UserError` (with the ``pip`` command) when the package solver ``method`` imports is missing."""
    need = SOLVERS[method].needs
    if need is not None and importlib.util.find_spec(need) is None:
        raise UserError(f"the {method} solver needs {need}: pip install 'pagoda-inv[peers]'")


#: Keyword arguments every solver takes from the caller, not from a task file.
CALL_ARGUMENTS = ("cond", "generator", "callback")

#: The key of ``solver_defaults.json`` that holds per-family settings, ``{family: {solver: {name: value}}}``.
FAMILY_KEY = "families"


def check_hparams(method: str, hparams: dict) -> None:
    """Raise :class:`UserError` unless ``hparams`` are keyword parameters of solver ``method`` with the types of
    their defaults (int, float, bool, str; a ``None`` default takes any scalar). Names the bad key and the valid ones.

    >>> check_hparams("latent_map", {"steps": 50, "lr": 0.1})
    >>> check_hparams("latent_map", {"stepz": 50})
    Traceback (most recent call last):
    ...
    pagoda_inverse.utils.errors.UserError: solver 'latent_map' has no hyper-parameter 'stepz'; valid: steps, lr, sigma_floor, likelihood_std, init, encoder, num_steps, consistency, prior_std, cfg_scale
    """
    import inspect
    import math

    params = {
        p.name: p.default
        for p in inspect.signature(SOLVERS[method].fn).parameters.values()
        if p.kind == p.KEYWORD_ONLY and p.name not in CALL_ARGUMENTS
    }
    for key, value in hparams.items():
        if key not in params:
            raise UserError(f"solver {method!r} has no hyper-parameter {key!r}; valid: {', '.join(params) or 'none'}")
        default = params[key]
        if isinstance(default, bool) or isinstance(value, bool):
            ok = isinstance(value, bool) and (default is None or isinstance(default, bool))
        elif isinstance(default, int):
            ok = isinstance(value, int)
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and math.isfinite(value)
        elif isinstance(default, str):
            ok = isinstance(value, str)
        else:
            ok = isinstance(value, str) or (isinstance(value, int | float) and math.isfinite(value))
        if not ok:
            kind = type(default).__name__ if default is not None else "a number or string"
            raise UserError(f"solver {method!r}: hyper-parameter {key!r} must be {kind}, got {value!r}")


def solve(method: str, model, op, y, **kwargs) -> SolverResult:
    """Run the solver ``method`` (a key of :data:`SOLVERS`) with the shared signature, the model's recommended
    settings for ``op`` (:func:`model_settings`) beneath the caller's ``kwargs``. A solver whose registry entry does
    not cover ``op`` (or that needs a posterior encoder the model lacks) raises :class:`~pagoda_inverse.utils.errors.NotApplicableError` (:func:`not_applicable`), one
    whose optional package is missing a :class:`UserError`, both before any work.

    >>> import torch
    >>> from pagoda_inverse import load_model
    >>> from pagoda_inverse.ops import make_operator
    >>> model = load_model("fmnist")
    >>> op = make_operator("downsample_area", shape=(1, 32, 32), factor=4)
    >>> res = solve("one_step", model, op, torch.zeros(1, 1, 8, 8), samples=2)  # through the superres encoder
    >>> res.estimate.shape, res.samples.shape, res.info["nfe"]
    (torch.Size([1, 1, 32, 32]), torch.Size([2, 1, 1, 32, 32]), 3)
    """
    if method not in SOLVERS:
        raise UserError(f"unknown solver {method!r}; choose one of: {', '.join(SOLVERS)}")
    reason = not_applicable(method, op, model)
    if reason is not None:
        raise NotApplicableError(reason)
    check_needs(method)
    return SOLVERS[method].fn(model, op, y, **{**model_settings(model, method, op), **kwargs})  # beneath the caller's


def model_settings(model, method: str, op) -> dict:
    """The model's recommended hyper-parameters of solver ``method`` for operator ``op`` (from its
    ``solver_defaults.json``): the solver's entry, updated by the entry under ``"families"`` for ``op``'s operator
    family (:func:`~pagoda_inverse.ops.families.operator_family`); ``{}`` when the model has none. A file that names
    an unknown solver or hyper-parameter is a :class:`CheckpointError` naming it.

    >>> from pagoda_inverse import load_model
    >>> from pagoda_inverse.ops import make_operator
    >>> model = load_model("fmnist")
    >>> model_settings(model, "one_step", make_operator("inpaint_mask", shape=(1, 32, 32)))["samples"]
    4
    >>> model_settings(model, "one_step", make_operator("downsample_area", shape=(1, 32, 32), factor=4))["samples"]
    2
    """
    from pagoda_inverse.ops.families import operator_family

    defaults = getattr(model, "solver_defaults", {})
    if not defaults:
        return {}
    try:
        check_solver_defaults(defaults)
    except UserError as err:
        raise CheckpointError(f"{Path(model.path) / 'solver_defaults.json'}: {err}") from None
    family = defaults.get(FAMILY_KEY, {}).get(operator_family(op), {})
    return {**defaults.get(method, {}), **family.get(method, {})}


def check_solver_defaults(defaults) -> None:
    """Raise :class:`UserError` unless ``defaults`` maps solver names to valid hyper-parameters (a model's
    ``solver_defaults.json``), optionally with per-family settings under ``"families"``: ``{family: {solver:
    {hyper-parameter: value}}}``, which update the solver's own for operators of that family.

    >>> check_solver_defaults({"one_step": {"samples": 4}, "encode_perturb": {"samples": 4, "encoder": "ode"}})
    >>> check_solver_defaults({"one_step": {"samples": 4}, "families": {"superres": {"one_step": {"samples": 2}}}})
    >>> check_solver_defaults({"one_stpe": {}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pagoda_inverse.utils.errors.UserError: unknown solver 'one_stpe'; choose one of: pinv, bicubic, ...
    >>> check_solver_defaults({"families": {"superress": {}}})
    Traceback (most recent call last):
    ...
    pagoda_inverse.utils.errors.UserError: solver defaults: unknown operator family 'superress' under "families"; choose one of: superres, inpaint, deblur, denoise, colorize
    """
    from pagoda_inverse.ops.families import FAMILIES

    shape = 'solver defaults must map solver names to objects, e.g. {"one_step": {"samples": 4}}'
    if not isinstance(defaults, dict) or not all(isinstance(v, dict) for v in defaults.values()):
        raise UserError(shape)
    for method, hparams in defaults.items():
        if method == FAMILY_KEY:
            for family, per_family in hparams.items():
                if family not in FAMILIES:
                    raise UserError(
                        f'solver defaults: unknown operator family {family!r} under "families"; choose one of: '
                        f"{', '.join(FAMILIES)}"
                    )
                if not isinstance(per_family, dict) or FAMILY_KEY in per_family:
                    raise UserError(f'"families": {family!r} must map solver names to objects like the top level')
                check_solver_defaults(per_family)
            continue
        if method not in SOLVERS:
            raise UserError(f"unknown solver {method!r}; choose one of: {', '.join(SOLVERS)}")
        check_hparams(method, hparams)
