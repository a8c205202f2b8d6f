"""A random-weight model folder: loads and solves like a trained one, without training (tests, load benchmarks)."""

from __future__ import annotations

from pathlib import Path

import torch


def write_random_model(
    root: str | Path, channels: int = 8, init_std: float | None = 0.05, seed: int = 0, photo: bool = False
) -> Path:
    """Write ``root/{teacher,decoder,encoder}`` (teacher 8x8, G grown to 16x16, learned encoder; U-Net width
    ``channels``) with a random 6-d caption bank; weights drawn from ``N(0, init_std)`` (``None``: PyTorch's default
    initialisation), all from ``seed``. ``photo=True`` writes an unconditional RGB patch model like ``photo`` instead
    (any image size is solved in tiles). Returns ``root``.

    >>> import tempfile
    >>> from pagoda_inverse.core.model import load_model
    >>> load_model(write_random_model(Path(tempfile.mkdtemp()) / "m")).resolution
    16
    >>> m = load_model(write_random_model(Path(tempfile.mkdtemp()) / "p", photo=True))
    >>> m.channels, m.conditional, m.patch_prior
    (3, False, True)
    """
    from pagoda_inverse.core.checkpoint import save_checkpoint
    from pagoda_inverse.core.text import CaptionBank
    from pagoda_inverse.core.unet import UNet, UNetConfig

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    cfg = UNetConfig(in_channels=3 if photo else 1, channels=channels, channel_mult=(1, 2), attn_resolutions=(), cond_dim=6)  # fmt: skip
    e = torch.nn.functional.normalize(torch.randn(10, 6), dim=1)
    bank = CaptionBank.unconditional(6) if photo else CaptionBank(e, torch.arange(10), e, torch.arange(10), e, torch.zeros(6))  # fmt: skip
    bank = bank.to_tensors()
    data = {"data": {"dataset": "photo", "resolution": 16, "factor": 2}} if photo else {}
    for part, net_cfg in (("teacher", cfg), ("decoder", cfg.grown()), ("encoder", cfg)):
        net = UNet(net_cfg)
        if init_std is not None:
            for p in net.parameters():
                torch.nn.init.normal_(p, std=init_std)
        tensors = {f"net.{k}": v for k, v in net.state_dict().items()} | bank
        save_checkpoint(root / part, tensors, {"kind": part, "unet": net_cfg.to_dict(), "sigma_max": 80.0, **data})
    return root
