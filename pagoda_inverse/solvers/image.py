"""Solve one inverse problem on one image, with the choices ``pagoda-inv solve`` makes: the model (``photo`` for
colour images and colorization, else ``fmnist``), the solver (the model's colour network for colorization, else
``one_step`` where the model has a posterior encoder for the operator's family, else ``encode_perturb``), whole-image
or tiled solving, the model's recommended settings, and an optional simulated observation.

>>> import torch
>>> from pagoda_inverse.solvers.image import solve_image
>>> out = solve_image(torch.zeros(1, 8, 8), "downsample_area", {"factor": 4}, model="fmnist", samples=2)
>>> out.result.estimate.shape, out.model.path.name, out.solver, out.tiled
(torch.Size([1, 1, 32, 32]), 'fmnist', 'one_step', False)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from pagoda_inverse.core.model import DEFAULT_MODEL, PHOTO_MODEL, PagodaModel, embedded_models, load_model
from pagoda_inverse.solvers.base import SolverResult
from pagoda_inverse.utils.errors import UserError
from pagoda_inverse.utils.io import MAX_PIXELS_ENV, ColourImageError, load_image, pixel_cap

#: Solvers that draw several samples (``samples > 1`` is refused for the others).
SAMPLING_SOLVERS = ("one_step", "encode_perturb", "latent_langevin")

#: The measurement noise std (``[-1, 1]`` units) assumed per operator family when the caller gives none: the levels
#: of the task suites (``tasks/*.toml``) whose results the docs report. A real image is never exact (an exact,
#: ``sigma_y = 0`` deconvolution of a real photo rings), and ``simulate`` then adds noise as the suites do.
DEFAULT_SIGMA_Y = {"superres": 0.05, "inpaint": 0.05, "deblur": 0.05, "denoise": 0.2, "colorize": 0.0}

#: Tiles per solver call of a tiled solve when the caller gives none, by device type (CPU: fuller teacher batches).
TILE_BATCH = {"cpu": 64, "cuda": 256}


@dataclass
class ImageSolution:
    """What :func:`solve_image` returns, on the CPU.

    :param result: the solver's result for the image: ``estimate [1, C, H, W]``, ``samples [K, 1, C, H, W]``, ``info``.
    :param observation: ``[1, C_y, h, w]`` the measurement that was solved (simulated when ``simulate``).
    :param clean: ``[1, C, H, W]`` the clean image when ``simulate`` (``None`` otherwise).
    :param model: the model used (on the device it ran on).
    :param solver: the solver's name.
    :param tiled: whether the image was solved in tiles.
    :param settings: the model's recommended hyper-parameters that applied (``{}`` when none).
    :param notes: the solvers' warnings, once each (e.g. no posterior encoder for the family).
    """

    result: SolverResult
    observation: torch.Tensor
    clean: torch.Tensor | None
    model: PagodaModel
    solver: str
    tiled: bool
    settings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def default_model(image: torch.Tensor | str | Path, operator: str) -> str:
    """``photo`` for colorization and colour images (when it is installed), else the default model.

    :param image: ``[C, H, W]`` in ``[-1, 1]``, or an image file (an unreadable one gives the default model; the
        caller's own load reports it).
    """
    if PHOTO_MODEL not in embedded_models():
        return DEFAULT_MODEL
    if operator == "colorize":
        return PHOTO_MODEL
    if not torch.is_tensor(image):
        try:
            image = load_image(image, 3)  # the loader's own conversions (16-bit, palette, CMYK, alpha)
        except UserError:
            return DEFAULT_MODEL
    colour = len(image) == 3 and not (torch.equal(image[0], image[1]) and torch.equal(image[1], image[2]))
    return PHOTO_MODEL if colour else DEFAULT_MODEL


def _load(image: torch.Tensor | str | Path, channels: int) -> torch.Tensor:
    """``[1, channels, H, W]`` from a file (read at ``channels``) or a ``[channels, H, W]`` tensor."""
    if not torch.is_tensor(image):
        return load_image(image, channels)[None]
    if image.dim() != 3 or len(image) != channels:
        raise UserError(f"the image must be [{channels}, H, W] for this model and task, got {tuple(image.shape)}")
    return image[None].float()


def solve_image(
    image: torch.Tensor | str | Path,
    operator: str,
    params: dict | None = None,
    *,
    model: str | Path | PagodaModel | None = None,
    solver: str | None = None,
    samples: int | None = None,
    seed: int = 0,
    sigma_y: float | None = None,
    class_: int | None = None,
    prompt: str | None = None,
    simulate: bool = False,
    tile_batch: int | None = None,
    device: str | torch.device | None = None,
    log: Callable[[str], None] | None = None,
    callback: Callable[[dict], None] | None = None,
) -> ImageSolution:
    """Solve ``y = A x + n`` for one image ``x`` with a PaGoDA model.

    :param image: the observation ``y`` (``[C_y, h, w]`` in ``[-1, 1]`` or an image file); with ``simulate``, the
        clean image ``x``, which is degraded first.
    :param operator: a registry name (e.g. ``downsample_area``, ``inpaint_mask``, ``gaussian_blur``, ``colorize``);
        ``params`` its parameters (``factor`` for super-resolution).
    :param model: a model, an embedded name or a folder (default: :func:`default_model`).
    :param solver: default: :func:`~pagoda_inverse.solvers.default_solver` (``one_step`` through the model's posterior
        encoder for the operator's family, else ``encode_perturb``), except ``colour_net`` for a colorization with a
        model that has a colour network but no colorize encoder (unless ``samples > 1`` asks for K colourings).
    :param samples: posterior samples (``one_step``, ``encode_perturb``, ``latent_langevin``); default the model's
        setting, else 1.
    :param seed: seed of the operator's random parameters, the simulated noise and the solver's noise.
    :param class_: condition on a class index; ``prompt``: on a text prompt (runs the text encoder), through the class
        it is read as (:meth:`~pagoda_inverse.core.model.PagodaModel.prompt_labels`, said through ``log``).
    :param sigma_y: the measurement noise std in ``[-1, 1]`` units (default: the operator family's
        :data:`DEFAULT_SIGMA_Y`, said through ``log``).
    :param simulate: treat ``image`` as the clean image: degrade it with the operator (and noise of std ``sigma_y``)
        first.
    :param tile_batch: tiles per solver call for an image larger than the model (default :data:`TILE_BATCH`: 64 on
        the CPU, 256 on a GPU).
    :param device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (default: a given model's own device; a loaded one goes to
        ``$PAGODA_DEVICE``, else auto).
    :param log: called with one-line messages as the work goes (the model, tiling, the model's settings).
    :param callback: tile progress ``{"step", "total"}`` (tiled solving only).
    """
    from pagoda_inverse.ops import make_operator
    from pagoda_inverse.ops.families import operator_family
    from pagoda_inverse.solvers import default_solver, model_settings, not_applicable, solve
    from pagoda_inverse.solvers.tiled import WHOLE_IMAGE_SIDE, solve_tiled
    from pagoda_inverse.utils.device import resolve_device

    say = log or (lambda _: None)
    params = dict(params or {})
    if isinstance(model, PagodaModel):  # a caller's model stays where it is unless a device is asked for
        m = model if device is None else model.to(resolve_device(device))
    else:
        m = load_model(model or default_model(image, operator)).to(resolve_device(device))
    where = m.device
    if operator == "colorize" and m.channels != 3:
        raise UserError(f"model {m.path.name!r} is grayscale; colorization needs an RGB model (--model photo)")
    factor = int(params.get("factor", 1))  # only super-resolution changes the size
    try:
        x = _load(image, m.channels if simulate or operator != "colorize" else 1).to(where)
    except ColourImageError:
        if operator != "colorize" or simulate:
            raise
        raise UserError(
            f"{image}: is a colour image; colorize wants a gray image (convert it to grayscale first), or pass "
            "--simulate to gray this one and colour it back"
        ) from None
    c, res = m.channels, m.resolution
    h, w = x.shape[-2] * (1 if simulate else factor), x.shape[-1] * (1 if simulate else factor)
    if h * w > (cap := pixel_cap()):  # the input passed the cap; x4 or x8 super-resolution may not
        name = image if not torch.is_tensor(image) else "the image"
        raise UserError(
            f"{name}: the {w}x{h} result (x{factor}) exceeds the {cap}-pixel cap; crop or downscale the input or use "
            f"a smaller --scale (or raise the cap with {MAX_PIXELS_ENV})"
        )
    tiled = (h, w) != (res, res)
    if tiled and not m.patch_prior:
        expected = res if simulate else res // factor
        what = "the clean image" if simulate else "the observation"
        name = f"{image}: is" if not torch.is_tensor(image) else "the image is"
        raise UserError(
            f"{name} {x.shape[-1]}x{x.shape[-2]} but {what} must be {expected}x{expected} for model "
            f"{m.path.name!r} (use --model photo for photos of any size)"
        )
    op = make_operator(operator, shape=(c, h, w), seeds=[seed], sigma_y=sigma_y or 0.0, device=where, **params)
    if solver is None:  # the model's default for the operator, and say why
        solver = default_solver(m, op, samples)
        why = {"one_step": f"the model's posterior encoder for {operator_family(op)} operators",
               "colour_net": "the model's colour network (it has no posterior encoder for colorization)"}  # fmt: skip
        say(f"solver {solver}: {why.get(solver) or not_applicable('one_step', op, m)}")
    if tiled:
        side = WHOLE_IMAGE_SIDE.get(solver, res)  # a fully convolutional solver takes larger tiles
        say(f"model {m.path.name}: {c}-channel {side}x{side} tiles; solving a {w}x{h} image in tiles")
    else:
        say(f"model {m.path.name}: works on {c}-channel {res}x{res} images")
    if sigma_y is None:  # the family's level, said on the terminal
        family = operator_family(op)
        sigma_y = DEFAULT_SIGMA_Y.get(family, 0.0)
        if sigma_y:
            op = make_operator(operator, shape=(c, h, w), seeds=[seed], sigma_y=sigma_y, device=where, **params)
        level = f"the level of the {family} task suites" if family else "an operator outside the task families"
        say(
            f"measurement noise: sigma_y {sigma_y:g} assumed ({level}); --sigma-y S for your image's own"
            + (" (the noise --simulate adds)" if simulate else ", 0 for exact pixels")
        )
    y = op(x, generator=torch.Generator().manual_seed(seed)) if simulate else x
    cond = None
    if class_ is not None:
        cond = m.class_condition(torch.tensor([class_]))
    elif prompt is not None and len(m.bank.train_embeddings):  # the class the prompt is read as, as generate does
        from pagoda_inverse.datasets import FMNIST_CLASSES

        label = int(m.prompt_labels([prompt])[0])
        name = FMNIST_CLASSES[label] if label < len(FMNIST_CLASSES) else f"class {label}"
        say(f"prompt read as {name!r} (the condition of --class {label})")
        cond = m.class_condition(torch.tensor([label]))
    elif prompt is not None:
        cond = m.prompt_condition([prompt])
    kwargs = {"samples": samples} if samples is not None and solver in SAMPLING_SOLVERS else {}
    if samples is not None and samples > 1 and not kwargs:
        raise UserError(
            f"--samples {samples}: solver {solver!r} is deterministic; use one of {', '.join(SAMPLING_SOLVERS)}"
        )
    settings = {k: v for k, v in model_settings(m, solver, op).items() if k not in kwargs}
    if settings:
        say(f"{solver} with the model's settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    with warnings.catch_warnings(record=True) as caught:  # the solvers' notes, returned as lines
        warnings.simplefilter("always")
        if tiled:
            tile_batch = tile_batch or TILE_BATCH["cuda" if where.type == "cuda" else "cpu"]
            result = solve_tiled(solver, m, op, y, seed=seed, cond=cond, tile_batch=tile_batch, callback=callback,
                                 **kwargs)  # fmt: skip
        else:
            result = solve(solver, m, op, y, cond=cond, generator=[torch.Generator().manual_seed(seed)], **kwargs)
    result = replace(result, estimate=result.estimate.cpu(), samples=result.samples.cpu())
    notes = list(dict.fromkeys(str(n.message) for n in caught))
    clean = x.cpu() if simulate else None
    return ImageSolution(result, y.cpu(), clean, m, solver, tiled, settings, notes)
