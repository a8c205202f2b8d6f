"""Per-sample seeding: sample ``i`` depends only on seed ``i``, never on batch size or device."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def randn_for_seeds(seeds: Sequence[int], shape: Sequence[int], device: str | torch.device = "cpu") -> torch.Tensor:
    """Stack one standard-normal tensor of ``shape`` per seed (each drawn from its own CPU generator).

    >>> a = randn_for_seeds([3, 7], (1, 2, 2))
    >>> torch.equal(a[1], randn_for_seeds([7], (1, 2, 2))[0])
    True
    """
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    return torch.stack([torch.randn(*shape, generator=g) for g in generators]).to(device)
