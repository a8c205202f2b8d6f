r"""Any pagoda-inv solver as a deepinv ``Reconstructor``, for ``deepinv.test(model, loader, physics)``.

deepinv's reconstructors are called as ``x_hat = model(y, physics)`` on [0, 1] images. :func:`to_deepinv_model`
returns one that runs a solver of :data:`~pagoda_inverse.solvers.SOLVERS` through the unit conversion of
:mod:`pagoda_inverse.ops.deepinv_adapter`:

1. ``physics`` becomes our operator: an adapter from :func:`~pagoda_inverse.ops.deepinv_adapter.to_deepinv` is
   unwrapped to the operator it wraps (so ``one_step`` finds its posterior encoder), any other ``LinearPhysics`` is
   wrapped (:func:`~pagoda_inverse.ops.deepinv_adapter.from_deepinv`);
2. :math:`y = 2 y_{01} - A\mathbf{1}` (``measurement_from_01``), the solver runs in [-1, 1];
3. the estimate comes back as :math:`(\hat x + 1) / 2` clamped to [0, 1], the images' range, as ``pagoda-inv bench``
   scores it: ``deepinv.test``, which scores the output as it is, then gives the bench's PSNR.

Seeds. deepinv passes batches without image indices, so the reconstructor counts the images it has seen: the
``k``-th image (from 0, in call order) gets its own generator seeded ``seed + k``, and its result depends only on that
seed, not on the batch it came in. :meth:`reset` restarts the count (call it before each ``deepinv.test`` run that
must repeat another), or pass ``seeds=[...]`` (one per image) to a call.

deepinv is imported on first use only (``pip install 'pagoda-inv[interop]'``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import torch

from pagoda_inverse.ops.deepinv_adapter import from_deepinv, image_to_01, measurement_from_01
from pagoda_inverse.utils.errors import UserError


def to_deepinv_model(model, method: str, *, seed: int = 0, cond: torch.Tensor | None = None, **hparams):
    """Wrap solver ``method`` with ``model`` as a ``deepinv.models.Reconstructor`` on [0, 1] images.

    :param model: a :class:`~pagoda_inverse.core.model.PagodaModel`, or an embedded model name / model folder.
    :param method: a key of :data:`~pagoda_inverse.solvers.SOLVERS` (``"one_step"``, ``"latent_ilo"``, ...).
    :param seed: image ``k`` seen by the reconstructor draws its noise from
        ``torch.Generator().manual_seed(seed + k)``.
    :param cond: a ``[1, D]`` condition for every image (``model.class_condition(...)``); default: unconditional.
    :param hparams: the solver's hyper-parameters, over the model's recommended ones (as
        :func:`~pagoda_inverse.solvers.solve`).
    :return: a ``Reconstructor``: ``x01_hat = reconstructor(y01, physics)`` in [0, 1]; ``.model``, ``.method``,
        ``.hparams``; ``.reset()`` restarts the image count.
    :raises UserError: an unknown solver or hyper-parameter; deepinv not installed.

    Example (needs deepinv; ``docs/interop.md`` has it with a data loader)::

        rec = to_deepinv_model(load_model("fmnist"), "one_step", samples=4)
        deepinv.test(rec, loader, to_deepinv(make_operator("inpaint_mask", shape=(1, 32, 32), sigma_y=0.05)))
    """
    from pagoda_inverse.solvers import SOLVERS, check_hparams

    if method not in SOLVERS:
        raise UserError(f"unknown solver {method!r}; choose one of: {', '.join(SOLVERS)}")
    check_hparams(method, hparams)
    if isinstance(model, str | Path):
        from pagoda_inverse.core.model import load_model

        model = load_model(model)
    return _reconstructor_class()(model, method, int(seed), cond, dict(hparams))


@functools.lru_cache(maxsize=1)
def _reconstructor_class():
    try:
        import deepinv as dinv
    except ImportError:
        raise UserError("to_deepinv_model needs deepinv: pip install 'pagoda-inv[interop]'") from None

    class PagodaReconstructor(dinv.models.Reconstructor):
        """A pagoda-inv solver as a deepinv reconstructor (built by :func:`to_deepinv_model`)."""

        def __init__(self, model, method: str, seed: int, cond, hparams: dict):
            super().__init__()
            self.model, self.method, self.hparams = model, method, hparams
            self.cond = cond
            self.seed = seed
            self.images_seen = 0

        def reset(self, seed: int | None = None) -> None:
            """Count images from 0 again (from ``seed`` when given): the next run draws the same noise."""
            self.images_seen = 0
            if seed is not None:
                self.seed = int(seed)

        def forward(self, y: torch.Tensor, physics, seeds: Sequence[int] | None = None, **kwargs) -> torch.Tensor:
            """``x01_hat`` for the [0, 1]-unit measurements ``y`` of ``physics``; ``kwargs`` (deepinv's
            bookkeeping, e.g. ``update_parameters``) are ignored."""
            from pagoda_inverse.solvers import solve

            batch = y.shape[0]
            if seeds is None:
                seeds = range(self.seed + self.images_seen, self.seed + self.images_seen + batch)
                self.images_seen += batch
            elif len(seeds) != batch:
                raise UserError(f"seeds has {len(seeds)} entries for {batch} measurements; give one per image")
            if self.model.device != y.device:
                self.model.to(y.device)
            op = from_deepinv(physics, in_shape=self.model.image_shape)
            generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
            cond = None if self.cond is None else self.cond.to(y.device).expand(batch, -1)
            with torch.enable_grad():  # deepinv.test runs under no_grad; the latent solvers need gradients
                out = solve(self.method, self.model, op, measurement_from_01(op, y), cond=cond, generator=generators,
                            **self.hparams)  # fmt: skip
            return image_to_01(out.estimate.detach()).clamp(0, 1)

    return PagodaReconstructor
