"""Metrics that are truthful offline (no pretrained backbone): PSNR and SSIM (piq), measurement consistency,
sample diversity. Images are ``[B, C, H, W]`` in ``[-1, 1]``; every metric returns one value per image ``[B]``.

LPIPS and FID need pretrained backbone weights that cannot be downloaded here; they are never stood in for.
"""

from __future__ import annotations

import torch


def _unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float().clamp(-1, 1) + 1) / 2).clamp(0, 1)


def psnr(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """PSNR in dB on ``[0, 1]``-mapped images (estimates clamped to the valid range): ``10 log10(1 / (MSE + 1e-8))``,
    piq's formula (``tests/bench`` checks the two agree) without importing piq, whose import alone takes seconds.

    >>> round(float(psnr(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.2))), 3)  # MSE 0.01 in [0, 1] units
    20.0
    """
    mse = (_unit(x) - _unit(ref)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / (mse + 1e-8))


def ssim(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """SSIM (piq, 11x11 Gaussian window; images must be at least 11 px) on ``[0, 1]``-mapped images."""
    import piq

    return piq.ssim(_unit(x), _unit(ref), data_range=1.0, reduction="none")


def consistency(op, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Measurement consistency ``||A x - y|| / sqrt(m)``: the RMS residual in ``[-1, 1]`` units (compare with
    ``sigma_y``; 0 means the estimate explains the measurement exactly)."""
    r = (op.A(x) - y).flatten(1)
    return r.norm(dim=1) / r.shape[1] ** 0.5


def residual_ratio(op, sample: torch.Tensor, truth: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``||A x_s - y|| / ||A x - y||`` per image: one sample's residual over the truth's (about 1 for a sample of the
    posterior, which explains ``y`` exactly as well as the truth does; below 1 when the sample copies the noise).
    Images whose truth fits ``y`` exactly (``sigma_y = 0``) give ``nan``.

    >>> from pagoda_inverse.ops import make_operator
    >>> op = make_operator("denoise", shape=(1, 8, 8), sigma_y=0.1)
    >>> x = torch.zeros(1, 1, 8, 8); y = op(x, generator=torch.Generator().manual_seed(0))
    >>> float(residual_ratio(op, y, x, y)), float(residual_ratio(op, x, x, y))  # copying y: 0; the truth: 1
    (0.0, 1.0)
    """
    truth_residual = consistency(op, truth, y)
    ratio = consistency(op, sample, y) / truth_residual
    return torch.where(truth_residual > 0, ratio, torch.nan)


def diversity(samples: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel standard deviation over the ``K`` samples ``[K, B, ...]`` (0 when ``K = 1``)."""
    if len(samples) < 2:
        return torch.zeros(samples.shape[1])
    return samples.std(0).flatten(1).mean(1)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[N, D]`` and ``[M, D]``:
    ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)`` (float64, symmetric square roots).

    With ``fmnist-clf`` features this is reported as FD-FMNIST (never FID: no Inception network here).

    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(4000, 3, generator=g, dtype=torch.float64)
    >>> round(frechet_distance(x, x), 6), round(frechet_distance(x, x + 2.0), 2)  # a shift by 2 in 3 dims: 12
    (0.0, 12.0)
    """
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    cross = _trace_sqrt_product(cov_a, cov_b)
    return float((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


def _trace_sqrt_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``tr((A^1/2 B A^1/2)^1/2)`` for symmetric positive semi-definite ``A``, ``B`` (float64): the symmetric square
    root of ``A`` by eigen-decomposition, then the eigenvalues of ``A^1/2 B A^1/2``."""
    vals, vecs = torch.linalg.eigh(a)
    root = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T
    return torch.linalg.eigvalsh(root @ b @ root).clamp(min=0).sqrt().sum()


def conditional_frechet_distance(samples: torch.Tensor, truths: torch.Tensor, observations: torch.Tensor) -> float:
    """Conditional Fréchet distance (cFID, Soloveitchik et al. 2021, as rcGAN and pcaGAN report it) between the
    joint Gaussians of (observation, sample) and (observation, truth) features, each ``[N, D]`` with row ``i`` of
    image ``i``: with ``C`` the covariances and ``C_{s|o} = C_ss - C_so C_oo^+ C_os`` the conditional ones,

    ``||mu_s - mu_x||^2 + tr((C_so - C_xo) C_oo^+ (C_os - C_ox)) + tr(C_{s|o} + C_{x|o} - 2 (C_{x|o}^1/2 C_{s|o}
    C_{x|o}^1/2)^1/2)``

    (``C_oo^+`` a pseudo-inverse). It is 0 when the samples follow the truths' joint law with their observations, and
    it grows when samples ignore *their* observation even if their marginal matches (what FD alone cannot see).

    >>> g = torch.Generator().manual_seed(0)
    >>> o = torch.randn(4000, 2, generator=g, dtype=torch.float64)
    >>> x = o + 0.5 * torch.randn(4000, 2, generator=g, dtype=torch.float64)
    >>> s = o + 0.5 * torch.randn(4000, 2, generator=g, dtype=torch.float64)  # same conditional law
    >>> s_blind = o[torch.randperm(4000, generator=g)] + 0.5 * torch.randn(4000, 2, generator=g, dtype=torch.float64)
    >>> conditional_frechet_distance(s, x, o) < 0.02, round(conditional_frechet_distance(s_blind, x, o), 1)  # 2 + 0.76
    (True, 2.8)
    """
    s, x, o = samples.double(), truths.double(), observations.double()
    joint = torch.cov(torch.cat([s, x, o], 1).T)
    d = s.shape[1]
    c_ss, c_xx, c_oo = joint[:d, :d], joint[d : 2 * d, d : 2 * d], joint[2 * d :, 2 * d :]
    c_so, c_xo = joint[:d, 2 * d :], joint[d : 2 * d, 2 * d :]
    c_oo_inv = torch.linalg.pinv(c_oo, hermitian=True)
    # Conditional covariances given the observation, and the distance between the two regressions on it.
    cond_s = c_ss - c_so @ c_oo_inv @ c_so.T
    cond_x = c_xx - c_xo @ c_oo_inv @ c_xo.T
    diff = c_so - c_xo
    mean_term = (s.mean(0) - x.mean(0)).square().sum()
    regression_term = torch.trace(diff @ c_oo_inv @ diff.T)
    cov_term = torch.trace(cond_s + cond_x) - 2 * _trace_sqrt_product(cond_x, cond_s)
    return float(mean_term + regression_term + cov_term)


def kernel_distance(
    a: torch.Tensor, b: torch.Tensor, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Kernel (MMD^2) distance with the cubic polynomial kernel ``k(x, y) = (x.y / D + 1)^3``, unbiased, averaged
    over ``subsets`` random subsets of ``subset_size`` from each set (Bińkowski et al. 2018): ``(mean, std)``.

    With ``fmnist-clf`` features this is reported as KID-FMNIST. The subsets are drawn from ``seed``.

    >>> g = torch.Generator().manual_seed(0)
    >>> x, y = torch.randn(500, 4, generator=g), torch.randn(500, 4, generator=g)
    >>> abs(kernel_distance(x, y, subsets=10, subset_size=200)[0]) < 0.05, kernel_distance(x, y + 3, subsets=10)[0] > 1
    (True, True)
    """
    a, b = a.double(), b.double()
    g = torch.Generator().manual_seed(seed)
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=g)[:m]]
        y = b[torch.randperm(len(b), generator=g)[:m]]
        k_xx, k_yy, k_xy = ((p @ q.T / d + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        # Unbiased MMD^2: leave the diagonals out of the within-set terms.
        within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
        values.append(float(within - 2 * k_xy.mean()))
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(values) > 1 else 0.0


def interval_ranks(k: int, level: float) -> tuple[int, int, float]:
    """The central ``level`` interval of ``k`` samples as order statistics: ``(j, k + 1 - j, expected)``, 1-based
    ranks, with ``j = max(1, round((k + 1)(1 - level) / 2))``. For a calibrated sampler a true value falls between
    the ``j``-th smallest and ``j``-th largest of ``k`` samples with probability ``expected = (k + 1 - 2j) / (k + 1)``
    exactly (the truth and the samples are ``k + 1`` exchangeable draws).

    >>> interval_ranks(16, 0.9), interval_ranks(16, 0.5)[2]
    ((1, 16, 0.8823529411764706), 0.5294117647058824)
    """
    j = max(1, round((k + 1) * (1 - level) / 2))
    if 2 * j > k:
        j = k // 2
    return j, k + 1 - j, (k + 1 - 2 * j) / (k + 1)


def interval_coverage(
    samples: torch.Tensor, truth: torch.Tensor, level: float = 0.9, where: torch.Tensor | None = None
) -> float:
    """Share of true pixels inside each pixel's central ``level`` interval of the samples, between the order
    statistics of :func:`interval_ranks` (a calibrated sampler scores its ``expected``: 0.882 at ``K = 16``, 90%).

    :param samples: ``[K, B, C, H, W]`` posterior samples (``K >= 2``); ``truth``: ``[B, C, H, W]``.
    :param where: optional boolean ``[B, C, H, W]`` selection (e.g. the unobserved pixels); all pixels when ``None``.

    >>> s = torch.randn(2000, 1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> round(interval_coverage(s, torch.zeros(1, 1, 8, 8)), 2), interval_coverage(s, torch.full((1, 1, 8, 8), 5.0))
    (1.0, 0.0)
    """
    lo, hi, _ = interval_ranks(len(samples), level)
    ordered = samples.float().sort(0).values
    inside = (truth >= ordered[lo - 1]) & (truth <= ordered[hi - 1])
    if where is not None:
        inside = inside[where.expand_as(inside)]
    return inside.float().mean().item() if inside.numel() else float("nan")
