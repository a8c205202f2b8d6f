"""Seeding helpers: one ``torch.Generator`` per image so that image i depends only on seed i."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._checks import fail

GeneratorLike = torch.Generator | Sequence[torch.Generator] | None


def per_image_generators(
    batch: int, generator: GeneratorLike = None, seeds: Sequence[int] | None = None
) -> list[torch.Generator | None]:
    """Return ``batch`` generators for drawing per-image parameters (kernels, masks) on the CPU.

    :param batch: number of images B >= 1.
    :param generator: a ``torch.Generator`` (shared, drawn from in image order), a list of B generators, or ``None``
        (torch's global RNG).
    :param seeds: B integer seeds; image i gets ``torch.Generator().manual_seed(seeds[i])``. Takes precedence.
    :return: a list of B generators (entries are ``None`` when the global RNG is used).
    """
    if seeds is not None:
        seeds = [int(s) for s in seeds]
        if len(seeds) != batch:
            raise fail(f"seeds has {len(seeds)} entries but batch is {batch}; give one seed per image")
        return [torch.Generator().manual_seed(s) for s in seeds]
    if isinstance(generator, torch.Generator) or generator is None:
        return [generator] * batch
    gens = list(generator)
    if len(gens) != batch:
        raise fail(f"generator list has {len(gens)} entries but batch is {batch}; give one generator per image")
    return gens


def _draw(fn, shape, gen: torch.Generator | None, like: torch.Tensor, **kw) -> torch.Tensor:
    # Draw on the generator's own device, then move: the noise does not depend on where y lives.
    device = gen.device if gen is not None else like.device
    return fn(shape, generator=gen, device=device, dtype=like.dtype, **kw).to(like.device)


def randn_like(y: torch.Tensor, generator: GeneratorLike = None) -> torch.Tensor:
    """Standard normal noise shaped like ``y`` (B, ...); with a list of B generators, row i uses generator i."""
    if isinstance(generator, torch.Generator) or generator is None:
        return _draw(torch.randn, y.shape, generator, y)
    gens = per_image_generators(y.shape[0], generator)
    return torch.cat([_draw(torch.randn, (1, *y.shape[1:]), g, y) for g in gens])


def poisson(rate: torch.Tensor, generator: GeneratorLike = None) -> torch.Tensor:
    """Poisson draws with mean ``rate`` (B, ...); with a list of B generators, row i uses generator i."""

    def one(r, g):
        if g is None:
            return torch.poisson(r)
        return torch.poisson(r.to(g.device), generator=g).to(r.device)

    if isinstance(generator, torch.Generator) or generator is None:
        return one(rate, generator)
    gens = per_image_generators(rate.shape[0], generator)
    return torch.cat([one(rate[i : i + 1], g) for i, g in enumerate(gens)])


def uniform(gen: torch.Generator | None, n: int = 1, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """``n`` float64 uniforms on [low, high) drawn on the CPU from ``gen``."""
    return low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)


def uniform_float(gen: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> float:
    """One float64 uniform on [low, high) as a Python float: the same draw and value as ``uniform(gen, 1, low, high)``
    without the tensor arithmetic (cheaper in per-segment loops)."""
    return low + (high - low) * float(torch.rand(1, generator=gen, dtype=torch.float64))
