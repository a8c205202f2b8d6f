r"""Convolution blur :math:`y = k * x` with a choice of boundary handling.

Padding modes (the image is extended, then convolved with no further padding):

- ``"circular"``: periodic; the operator is diagonalised by the FFT, so ``A_dagger`` and ``tikhonov`` are exact
  closed forms (singular values below ``rcond * max`` are treated as zero);
- ``"reflect"`` (the DPS suite's ``ReflectionPad2d``), ``"replicate"``, ``"constant"``/``"zeros"``: same-size output,
  ``A_dagger``/``tikhonov`` by conjugate gradients;
- ``"valid"``: no padding, output ``(H - kh + 1) x (W - kw + 1)``; conjugate gradients.

Large kernels are applied by FFT on the padded grid and small ones by ``torch.nn.functional.conv2d``; both give
the same operator. Kernels may differ per image (``(B, 1|C, kh, kw)``) and per channel.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ._checks import as_batch_scalar, check_batch, check_choice, check_image, check_positive, fail
from .base import LinearOperator
from .kernels import as_kernel, gaussian_kernel, motion_kernels
from .rng import GeneratorLike

PADDINGS = ("circular", "reflect", "replicate", "constant", "zeros", "valid")


def _fast_len(n: int) -> int:
    """Smallest 5-smooth integer >= n (FFT-friendly)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _pad_index(n: int, before: int, after: int, mode: str, device) -> torch.Tensor:
    """Source index of each padded position along one axis (-1 for zeros)."""
    i = torch.arange(-before, n + after, device=device)
    if mode == "circular":
        return i % n
    if mode == "replicate":
        return i.clamp(0, n - 1)
    if mode == "reflect":
        if n == 1:
            return torch.zeros_like(i)
        j = i % (2 * (n - 1))
        return torch.where(j >= n, 2 * (n - 1) - j, j)
    return torch.where((i >= 0) & (i < n), i, torch.full_like(i, -1))


def _fits(mode: str, before: int, after: int, n: int) -> bool:
    """Whether torch's own padding handles ``before``/``after`` pixels on an axis of ``n`` (reflect: fewer than
    ``n``; circular: at most ``n``; constant and replicate: any)."""
    limit = {"constant": math.inf, "replicate": math.inf, "reflect": n - 1, "circular": n}.get(mode, -1)
    return max(before, after) <= limit


def pad2d(x: torch.Tensor, pads: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    """Pad the last two axes by ``(top, bottom, left, right)`` (any size; ``reflect`` excludes the edge pixel)."""
    top, bottom, left, right = pads
    h, w = x.shape[-2:]
    if _fits(mode, top, bottom, h) and _fits(mode, left, right, w):
        return F.pad(x, (left, right, top, bottom), mode=mode)
    x = x.index_select(-2, _pad_index(h, top, bottom, mode, x.device))
    return x.index_select(-1, _pad_index(w, left, right, mode, x.device))


def _fold(g: torch.Tensor, dim: int, before: int, after: int, mode: str) -> torch.Tensor:
    """Adjoint of padding one axis by ``before``/``after``: add each padded copy back onto its source pixel."""
    n = g.shape[dim] - before - after
    if mode == "constant":
        return g.narrow(dim, before, n)
    if not _fits(mode, before, after, n):  # pads larger than the image: generic scatter
        out = g.new_zeros(*g.shape[:dim], n, *g.shape[dim + 1 :])
        return out.index_add_(dim, _pad_index(n, before, after, mode, g.device), g)
    out = g.narrow(dim, before, n).clone()
    head, tail = g.narrow(dim, 0, before), g.narrow(dim, before + n, after)
    if mode == "reflect":
        out.narrow(dim, 1, before).add_(head.flip(dim))
        out.narrow(dim, n - 1 - after, after).add_(tail.flip(dim))
    elif mode == "replicate":
        out.narrow(dim, 0, 1).add_(head.sum(dim, keepdim=True))
        out.narrow(dim, n - 1, 1).add_(tail.sum(dim, keepdim=True))
    else:  # circular
        out.narrow(dim, n - before, before).add_(head)
        out.narrow(dim, 0, after).add_(tail)
    return out


def pad2d_adjoint(g: torch.Tensor, pads: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    """Adjoint of :func:`pad2d`: fold the padded border back onto the pixels it was copied from."""
    top, bottom, left, right = pads
    return _fold(_fold(g, g.ndim - 2, top, bottom, mode), g.ndim - 1, left, right, mode)


def _grouped(x: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    # Fold batch and channels so that one depthwise conv call applies per-image / per-channel kernels (also for a
    # shared kernel: on CPU a depthwise conv is about 10x faster than a one-channel conv over a batch).
    b, c, h, w = x.shape
    kk = k.expand(b, c, *k.shape[-2:]).reshape(b * c, 1, *k.shape[-2:])
    return x.reshape(1, b * c, h, w), kk, b * c


class Blur(LinearOperator):
    r"""Blur :math:`y = k * x` (true convolution, kernel centre at ``(kh // 2, kw // 2)``).

    :param kernel: a (kh, kw), (C, kh, kw) or (B, C, kh, kw) tensor/array (B per-image kernels, C per-channel, either
        may be 1 to broadcast), or a path to a ``.npy``/grayscale PNG kernel file.
    :param padding: one of ``"circular"``, ``"reflect"``, ``"replicate"``, ``"constant"``/``"zeros"``, ``"valid"``.
    :param normalise: divide each kernel by its sum (default True).
    :param rcond: circular mode: relative threshold below which Fourier singular values count as zero.
    :param method: ``"auto"`` (FFT for kernels larger than 11x11), ``"fft"`` or ``"direct"``.
    :param kwargs: ``in_shape``, ``noise``, ``sigma_y``, ``rate``, ``cg_max_iter``, ``cg_tol`` of
        :class:`~pagoda_inverse.ops.base.LinearOperator`.

    >>> op = Blur.gaussian(sigma=1.0, size=5, padding="circular")
    >>> x = torch.rand(2, 3, 9, 7) * 2 - 1
    >>> op.A(x).shape, bool(torch.allclose(op.A(op.A_dagger(op.A(x))), op.A(x), atol=1e-5))
    (torch.Size([2, 3, 9, 7]), True)
    """

    tileable = True

    def __init__(
        self,
        kernel,
        padding: str = "reflect",
        *,
        normalise: bool = True,
        rcond: float = 1e-5,
        method: str = "auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.padding = "constant" if check_choice(padding, "padding", PADDINGS) == "zeros" else padding
        check_choice(method, "method", ("auto", "fft", "direct"))
        check_positive(rcond, "rcond")
        k = as_kernel(kernel, "kernel", normalise=normalise)
        if self.in_shape is not None and k.shape[1] not in (1, self.in_shape[0]):
            raise fail(
                f"kernel has {k.shape[1]} channels but the image has {self.in_shape[0]}; use 1 or {self.in_shape[0]}"
            )
        self.register_buffer("kernel", k)
        self.rcond = float(rcond)
        self.use_fft = method == "fft" or (method == "auto" and k.shape[-2] * k.shape[-1] > 121)
        self.exact_dagger = self.padding == "circular"
        self._cache: dict = {}

    # ---- constructors ----------------------------------------------------------------------------------------------

    @classmethod
    def gaussian(
        cls, sigma: float | Sequence[float] = 3.0, size: int | None = 61, padding: str = "reflect", **kwargs
    ) -> Blur:
        """Gaussian blur (DPS suite: ``sigma=3.0, size=61, padding="reflect"``).

        :param sigma: standard deviation in pixels, > 0; a float, ``(sigma_y, sigma_x)``, or a list of B floats
            (one isotropic kernel per image).
        :param size: kernel size (default ``2 ceil(3 sigma) + 1`` when None).
        :param padding: boundary mode, see the module docstring.
        """
        if isinstance(sigma, (list, tuple, torch.Tensor)) and not (isinstance(sigma, tuple) and len(sigma) == 2):
            sig = [float(s) for s in torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)]
            check_positive(sig, "sigma")
            size = size or 2 * math.ceil(3 * max(sig)) + 1
            kernel = torch.stack([gaussian_kernel(s, size) for s in sig])[:, None]
        else:
            kernel = gaussian_kernel(sigma, size)
        return cls(kernel, padding, **kwargs)

    @classmethod
    def motion(
        cls,
        size: int = 61,
        intensity: float = 0.5,
        padding: str = "reflect",
        batch: int = 1,
        generator: GeneratorLike = None,
        seeds: Sequence[int] | None = None,
        **kwargs,
    ) -> Blur:
        """Random motion blur, one kernel per image (DPS suite: ``size=61, intensity=0.5, padding="reflect"``).

        :param size: kernel size.
        :param intensity: trajectory intensity in [0, 1], see :func:`~pagoda_inverse.ops.kernels.motion_kernel`.
        :param padding: boundary mode.
        :param batch: number of kernels B (one per image; 1 shares the kernel).
        :param generator: CPU generator(s); ``seeds``: B seeds, kernel i depends only on ``seeds[i]``.
        """
        return cls(motion_kernels(batch, size, intensity, generator, seeds), padding, **kwargs)

    @classmethod
    def from_file(cls, path: str | os.PathLike, padding: str = "reflect", **kwargs) -> Blur:
        """Blur with a kernel read from ``.npy`` (no pickle) or a grayscale image, normalised to sum 1."""
        return cls(path, padding, **kwargs)

    # ---- shapes ----------------------------------------------------------------------------------------------------

    def out_shape(self, in_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
        shape = tuple(self.in_shape if in_shape is None else in_shape)
        if self.padding != "valid":
            return shape
        kh, kw = self.kernel.shape[-2:]
        return (*shape[:-2], shape[-2] - kh + 1, shape[-1] - kw + 1)

    def _pads(self) -> tuple[int, int, int, int]:
        kh, kw = self.kernel.shape[-2:]
        return (kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2

    def _kernel_for(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x)
        check_batch(self.kernel.shape[0], x.shape[0], "kernel")
        if self.kernel.shape[1] not in (1, x.shape[1]):
            raise fail(f"kernel has {self.kernel.shape[1]} channels but the image has {x.shape[1]}")
        return self.kernel.to(device=x.device, dtype=x.dtype)

    def _spectrum(self, k: torch.Tensor, hf: int, wf: int, circular: bool) -> torch.Tensor:
        key = (hf, wf, circular, k.device, k.dtype)
        if key not in self._cache:
            if circular:
                # Wrap the kernel onto the H x W torus with its centre at the origin.
                kh, kw = k.shape[-2:]
                ri = (torch.arange(kh, device=k.device) - kh // 2) % hf
                ci = (torch.arange(kw, device=k.device) - kw // 2) % wf
                kc = k.new_zeros(*k.shape[:2], hf, kw).index_add_(2, ri, k)
                kc = k.new_zeros(*k.shape[:2], hf, wf).index_add_(3, ci, kc)
                self._cache[key] = torch.fft.rfft2(kc)
            else:
                self._cache[key] = torch.fft.rfft2(k, s=(hf, wf))
        return self._cache[key]

    # ---- the operator ----------------------------------------------------------------------------------------------

    def A(self, x: torch.Tensor) -> torch.Tensor:
        k = self._kernel_for(x)
        h, w = x.shape[-2:]
        kh, kw = k.shape[-2:]
        if self.padding == "circular" and (self.use_fft or kh > h or kw > w):
            return torch.fft.irfft2(torch.fft.rfft2(x) * self._spectrum(k, h, w, True), s=(h, w))
        xp = x if self.padding == "valid" else pad2d(x, self._pads(), self.padding)
        hp, wp = xp.shape[-2:]
        if hp < kh or wp < kw:
            raise fail(f"kernel of size {kh}x{kw} is larger than the {h}x{w} image with padding='valid'")
        if self.use_fft:
            hf, wf = _fast_len(hp), _fast_len(wp)
            full = torch.fft.irfft2(torch.fft.rfft2(xp, s=(hf, wf)) * self._spectrum(k, hf, wf, False), s=(hf, wf))
            return full[..., kh - 1 : hp, kw - 1 : wp]
        xg, kg, groups = _grouped(xp, k)
        out = F.conv2d(xg, kg.flip(-2, -1), groups=groups)
        return out.reshape(x.shape[0], x.shape[1], *out.shape[-2:])

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        k = self._kernel_for(y)
        h, w = y.shape[-2:]
        kh, kw = k.shape[-2:]
        if self.padding == "circular" and (self.use_fft or kh > h or kw > w):
            return torch.fft.irfft2(torch.fft.rfft2(y) * self._spectrum(k, h, w, True).conj(), s=(h, w))
        hp, wp = h + kh - 1, w + kw - 1
        if self.use_fft:
            hf, wf = _fast_len(hp), _fast_len(wp)
            yp = F.pad(y, (kw - 1, wf - wp, kh - 1, hf - hp))
            xp = torch.fft.irfft2(torch.fft.rfft2(yp) * self._spectrum(k, hf, wf, False).conj(), s=(hf, wf))
            xp = xp[..., :hp, :wp]
        else:
            # The adjoint of A's valid correlation with the flipped kernel is a full correlation with the kernel
            # itself (zero-padded conv2d: the same numbers as conv_transpose2d, which is ~300x slower on CPU for
            # one-channel images).
            yg, kg, groups = _grouped(F.pad(y, (kw - 1, kw - 1, kh - 1, kh - 1)), k)
            xp = F.conv2d(yg, kg, groups=groups)
            xp = xp.reshape(y.shape[0], y.shape[1], hp, wp)
        return xp if self.padding == "valid" else pad2d_adjoint(xp, self._pads(), self.padding)

    # ---- closed forms (circular only) ------------------------------------------------------------------------------

    def _inverse_spectrum(self, r: torch.Tensor, gamma) -> torch.Tensor:
        k = self._kernel_for(r)
        h, w = r.shape[-2:]
        spec = self._spectrum(k, h, w, True)
        power = spec.real**2 + spec.imag**2
        g = as_batch_scalar(gamma, r, "gamma")
        if isinstance(g, float) and g == 0.0:
            keep = power > (self.rcond**2) * power.amax(dim=(-2, -1), keepdim=True)
            return spec, torch.where(keep, 1.0 / power.clamp_min(torch.finfo(power.dtype).tiny), 0.0)
        return spec, 1.0 / (power + g)

    def gram_solve(self, r: torch.Tensor, gamma: float | torch.Tensor = 0.0) -> torch.Tensor:
        if self.padding != "circular":
            return super().gram_solve(r, gamma)
        _, inv = self._inverse_spectrum(r, gamma)
        return torch.fft.irfft2(torch.fft.rfft2(r) * inv, s=r.shape[-2:])

    def A_dagger(self, y: torch.Tensor, max_iter: int | None = None, tol: float | None = None) -> torch.Tensor:
        if self.padding != "circular":
            return super().A_dagger(y, max_iter, tol)
        self._kernel_for(y)  # validates the batch and channels
        key = ("dagger", *y.shape[-2:], y.device, y.dtype)
        if key not in self._cache:  # conj(K) / |K|^2 on the kept modes, 0 elsewhere
            spec, inv = self._inverse_spectrum(y, 0.0)
            self._cache[key] = spec.conj() * inv
        return torch.fft.irfft2(torch.fft.rfft2(y) * self._cache[key], s=y.shape[-2:])

    def extra_repr(self) -> str:
        return f"kernel={tuple(self.kernel.shape)}, padding={self.padding!r}, fft={self.use_fft}"
