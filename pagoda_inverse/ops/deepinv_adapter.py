r"""Adapters both ways between our operators ([-1, 1] pixels) and deepinv's ``LinearPhysics`` ([0, 1] pixels).

deepinv is imported inside the functions only (it is a test/interop dependency).

Units. With :math:`x_{01} = (x + 1) / 2` and a linear :math:`A`, the deepinv operator is the **same linear map**
:math:`A` applied to :math:`x_{01}`; measurements then differ by an affine offset, because
:math:`A x_{01} = (A x + A\mathbf{1}) / 2`:

.. math:: y_{01} = (y + A\mathbf{1}) / 2, \qquad y = 2 y_{01} - A\mathbf{1}, \qquad \sigma_{01} = \sigma_y / 2.

For blur, downsampling and luma (rows summing to 1) :math:`A\mathbf{1} = \mathbf{1}` and this is the usual
:math:`(y + 1) / 2`; for inpainting :math:`A\mathbf{1} = m`, so missing pixels are 0 on both sides.
:func:`measurement_to_01` / :func:`measurement_from_01` do the conversion. ``A``, ``A_adjoint``, ``A_dagger`` and
the proximal step are unit-free and shared as they are.

Noise: ``GaussianNoise(sigma_y)`` <-> deepinv ``GaussianNoise(sigma_y / 2)``; ``PoissonNoise(rate)`` <-> deepinv
``PoissonNoise(gain=1 / rate)``; no noise <-> ``ZeroNoise``. Other deepinv noise models are applied through the
unit conversion above. deepinv draws its noise from its own ``rng``; our ``generator`` is not forwarded.
"""

from __future__ import annotations

import functools

import torch

from ._checks import fail
from .base import LinearOperator
from .noise import GaussianNoise, NoiseModel, NoNoise, PoissonNoise
from .rng import GeneratorLike


def image_to_01(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] image -> [0, 1] image."""
    return (x + 1) / 2


def image_from_01(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] image -> [-1, 1] image."""
    return 2 * x01 - 1


def _a_ones(op, y: torch.Tensor) -> torch.Tensor:
    return op.A(torch.ones_like(op.A_adjoint(y)))


def measurement_to_01(op: LinearOperator, y: torch.Tensor) -> torch.Tensor:
    r"""Our measurement (of a [-1, 1] image) -> the deepinv measurement of the [0, 1] image: :math:`(y + A1)/2`."""
    return (y + _a_ones(op, y)) / 2


def measurement_from_01(op: LinearOperator, y01: torch.Tensor) -> torch.Tensor:
    r"""deepinv measurement of a [0, 1] image -> ours of the [-1, 1] image: :math:`2 y_{01} - A1`."""
    return 2 * y01 - _a_ones(op, y01)


def _noise_to_deepinv(noise: NoiseModel):
    import deepinv as dinv

    if isinstance(noise, NoNoise):
        return dinv.physics.ZeroNoise()
    if isinstance(noise, GaussianNoise):
        sigma = noise.sigma / 2 if isinstance(noise.sigma, float) else (noise.sigma / 2).to(torch.float32)
        return dinv.physics.GaussianNoise(sigma=sigma)
    if isinstance(noise, PoissonNoise):
        return dinv.physics.PoissonNoise(gain=1.0 / noise.rate, normalize=True, clip_positive=True)
    raise fail(f"noise model {type(noise).__name__} has no deepinv equivalent")


@functools.lru_cache(maxsize=1)
def _physics_class():
    import deepinv as dinv

    class PagodaPhysics(dinv.physics.LinearPhysics):
        """A pagoda_inverse operator seen as a deepinv ``LinearPhysics`` in [0, 1] units (see the module doc)."""

        def __init__(self, op: LinearOperator):
            super().__init__(
                noise_model=_noise_to_deepinv(op.noise_model),
                max_iter=op.cg_max_iter,
                tol=op.cg_tol,
                img_size=op.in_shape,
            )
            self.op = op

        def A(self, x, **kwargs):
            return self.op.A(x)

        def A_adjoint(self, y, **kwargs):
            return self.op.A_adjoint(y)

        def A_dagger(self, y, **kwargs):
            return self.op.A_dagger(y)

        def prox_l2(self, z, y, gamma, **kwargs):
            if z is None or isinstance(z, (int, float)):
                z = torch.full_like(self.op.A_adjoint(y), 0.0 if z is None else float(z))
            return self.op.prox_l2(z, y, gamma)

        def noise(self, x, **kwargs):
            return self.op._restrict(self.noise_model(x, **kwargs))

    return PagodaPhysics


def to_deepinv(op: LinearOperator):
    """Wrap ``op`` as a deepinv ``LinearPhysics`` acting on [0, 1] images (an adapter from :func:`from_deepinv` is
    unwrapped instead).

    :param op: our operator.
    :return: a ``deepinv.physics.LinearPhysics``; ``physics(x01)`` equals
        ``measurement_to_01(op, op(2 * x01 - 1))`` in distribution.
    """
    if isinstance(op, DeepinvOperator):
        return op.physics
    return _physics_class()(op)


class _DeepinvNoise(NoiseModel):
    """A deepinv noise model applied in [0, 1] units to our [-1, 1] measurements."""

    def __init__(self, physics, op: LinearOperator):
        super().__init__()
        self.physics = physics
        self.op = [op]  # a list, so the operator is not registered as a submodule (no cycle)
        self.sigma = 2 * float(getattr(physics.noise_model, "sigma", 0.0) or 0.0)

    def forward(self, y: torch.Tensor, generator: GeneratorLike = None) -> torch.Tensor:
        op = self.op[0]
        return measurement_from_01(op, self.physics.noise(measurement_to_01(op, y)))


class DeepinvOperator(LinearOperator):
    """A deepinv ``LinearPhysics`` used as our operator ([-1, 1] units); built by :func:`from_deepinv`.

    ``A``/``A_adjoint``/``A_dagger`` are deepinv's; ``tikhonov`` uses deepinv's ``prox_l2``.

    :param physics: a ``deepinv.physics.LinearPhysics``.
    :param in_shape: (C, H, W) input shape if known.
    """

    exact_dagger = False

    def __init__(self, physics, in_shape: tuple[int, int, int] | None = None):
        import deepinv as dinv

        noise = physics.noise_model
        if isinstance(noise, dinv.physics.ZeroNoise) or noise is None:
            ours: NoiseModel = NoNoise()
        elif type(noise) is dinv.physics.GaussianNoise:
            sigma = noise.sigma.detach().cpu().reshape(-1)
            ours = GaussianNoise(float(2 * sigma[0]) if sigma.numel() == 1 else 2 * sigma)
        elif type(noise) is dinv.physics.PoissonNoise and bool(noise.normalize) and noise.gain.numel() == 1:
            ours = PoissonNoise(rate=1.0 / float(noise.gain))
        else:
            ours = None
        img = getattr(physics, "img_size", None)
        super().__init__(
            in_shape=in_shape or (tuple(img) if img is not None and len(img) == 3 else None), noise=ours or NoNoise()
        )
        if ours is None:
            self.noise_model = _DeepinvNoise(physics, self)
        self.physics = physics

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.physics.A(x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.physics.A_adjoint(y)

    def A_dagger(self, y: torch.Tensor, max_iter: int | None = None, tol: float | None = None) -> torch.Tensor:
        return self.physics.A_dagger(y)

    def tikhonov(
        self,
        y: torch.Tensor,
        x0: torch.Tensor | None = None,
        gamma: float | torch.Tensor = 1.0,
        max_iter: int | None = None,
        tol: float | None = None,
    ) -> torch.Tensor:
        if isinstance(gamma, (int, float)) and gamma == 0:
            return self.A_dagger(y) if x0 is None else self.project(x0, y)
        z = torch.zeros_like(self.A_adjoint(y)) if x0 is None else x0
        inv = 1.0 / gamma if isinstance(gamma, (int, float)) else 1.0 / torch.as_tensor(gamma)
        return self.physics.prox_l2(z, y, inv)

    def _restrict(self, y: torch.Tensor) -> torch.Tensor:
        mask = getattr(self.physics, "mask", None)
        import deepinv as dinv

        if isinstance(self.physics, dinv.physics.Inpainting) and isinstance(mask, torch.Tensor):
            return y * mask.to(y)
        return y


def from_deepinv(physics, in_shape: tuple[int, int, int] | None = None) -> LinearOperator:
    """Wrap a deepinv ``LinearPhysics`` as our operator in [-1, 1] units (an adapter from :func:`to_deepinv` is
    unwrapped instead).

    :param physics: a ``deepinv.physics.LinearPhysics``.
    :param in_shape: (C, H, W) input shape if the physics does not record it.
    :return: a :class:`~pagoda_inverse.ops.base.LinearOperator`.
    """
    if isinstance(physics, _physics_class()):
        return physics.op
    import deepinv as dinv

    if not isinstance(physics, dinv.physics.LinearPhysics):
        raise fail(f"physics must be a deepinv LinearPhysics, got {type(physics).__name__}")
    return DeepinvOperator(physics, in_shape)
