"""LPIPS and FID, computed only from backbone weight files the user passes; never downloaded, never stood in for.

``pagoda-inv bench --lpips-weights FILE`` adds LPIPS to inverse-problem tasks and ``--inception-weights FILE``
adds FID to generation tasks. The files are torchvision state dicts (``alexnet`` for LPIPS: only its
``features.*`` tensors are used; ``inception_v3`` for FID), as ``.safetensors`` or as ``.pth`` read with
``torch.load(weights_only=True)`` (tensors only, no pickled objects). LPIPS's own linear layers (v0.1) ship with
the ``lpips`` package. Which file was used is recorded in the results, since FID depends on the Inception weights
(torchvision's and the TF-ported ones of the FID papers give different numbers).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from pagoda_inverse.utils.errors import UserError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file: ``.safetensors``, or a ``.pth``/``.pt`` state dict read with ``weights_only=True``
    (a ``{"state_dict": ...}`` wrapper is unwrapped). Every problem is a one-line :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such weights file; pass a torchvision state dict (.pth or .safetensors)")
    if path.suffix == ".safetensors":
        from pagoda_inverse.core.checkpoint import load_tensors

        return load_tensors(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch.load raises many types on a bad file
        raise UserError(f"{path}: not a readable weights file ({type(err).__name__}); pass a state dict") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: holds no state dict of tensors; pass a torchvision state dict")
    return state


def _load_exact(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """Load every tensor of ``module`` from ``state`` (extra keys ignored); a missing or wrong-shaped one is an error."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        first = (missing or wrong)[0]
        raise UserError(
            f"{path}: not {what} weights ({len(missing)} of {len(own)} tensors missing, {len(wrong)} wrong-shaped, "
            f"first {first!r}); pass torchvision's {what} state dict"
        )
    module.load_state_dict({k: state[k] for k in own})


def _rgb01(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` in ``[-1, 1]`` -> ``[B, 3, H, W]`` in ``[0, 1]`` (grayscale replicated)."""
    x = ((x.float().clamp(-1, 1) + 1) / 2).clamp(0, 1)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class LPIPSMetric:
    """LPIPS (Zhang et al. 2018, AlexNet variant, linear layers v0.1) with the AlexNet ``features.*`` weights read
    from ``weights``. ``metric(x, ref)``: images ``[B, C, H, W]`` in ``[-1, 1]`` (grayscale replicated to RGB) ->
    ``[B]`` distances (lower is closer). Images under 32 px are up-sampled (bilinear) to 32 px, the smallest size
    AlexNet's pooling stages accept."""

    def __init__(self, weights: str | Path):
        try:
            import lpips
        except ImportError:
            raise UserError("LPIPS needs the lpips package: pip install 'pagoda-inv[metrics]'") from None
        state = read_state_dict(weights)
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=`; nothing is fetched
            warnings.simplefilter("ignore")
            self.net = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
        features = torch.nn.Module()  # the AlexNet feature layers under torchvision's names (features.0 ...)
        features.features = torch.nn.ModuleDict(
            {name: layer for part in self.net.net.children() for name, layer in part.named_children()}
        )
        _load_exact(features, state, Path(weights), "alexnet")
        self.net.requires_grad_(False)
        self.source = str(weights)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        x, ref = _rgb01(x), _rgb01(ref)
        if min(x.shape[-2:]) < 32:
            size = (max(32, x.shape[-2]), max(32, x.shape[-1]))
            x, ref = (F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in (x, ref))
        return self.net(x, ref, normalize=True).flatten()


class InceptionFeatures:
    """Inception-v3 pool features (2048-d) for FID, with torchvision's ``inception_v3`` weights read from ``weights``.

    ``features(x)``: images ``[B, C, H, W]`` in ``[-1, 1]`` (grayscale replicated) are resized to 299x299 (bilinear)
    and normalised with the ImageNet mean and std, as torchvision's weights expect -> ``[B, 2048]`` float64.
    """

    def __init__(self, weights: str | Path, batch_size: int = 64):
        from torchvision.models import inception_v3

        state = read_state_dict(weights)
        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        _load_exact(net, state, Path(weights), "inception_v3")
        net.fc = torch.nn.Identity()
        self.net = net.eval().requires_grad_(False)
        self.batch_size = batch_size
        self.source = str(weights)
        self.mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for chunk in x.split(self.batch_size):
            rgb = F.interpolate(_rgb01(chunk), size=(299, 299), mode="bilinear", align_corners=False)
            out.append(self.net((rgb - self.mean) / self.std).double())
        return torch.cat(out)
