"""Check ``pagoda-inv convert --from edm`` against NVlabs/edm's own networks (not part of the test suite).

EDM's licence keeps its code out of this project, so this script takes a checkout of https://github.com/NVlabs/edm
given by the user: it builds small random ``EDMPrecond`` and ``iDDPMPrecond`` networks around EDM's ``DhariwalUNet``
with EDM's own classes, pickles them as EDM's training loop does (the EMA network with its loss, augmentation pipe
and dataset kwargs, every class through ``torch_utils.persistence``), converts the pickle with the restricted
unpickler (:mod:`pagoda_inverse.interop.edm_pickle`) and prints, per noise level, the largest difference between EDM's
denoiser and the converted one relative to EDM's largest output::

    git clone https://github.com/NVlabs/edm /tmp/edm
    python benchmarks/edm_reference.py --edm-repo /tmp/edm
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from pathlib import Path

import torch

from pagoda_inverse.core.adm_teacher import load_adm_teacher
from pagoda_inverse.interop.edm_pickle import convert_edm

NETWORK = dict(img_resolution=16, img_channels=3, label_dim=10, model_type="DhariwalUNet", model_channels=32,
               channel_mult=[1, 2, 2], num_blocks=2, attn_resolutions=[8, 4], dropout=0.0)  # fmt: skip
SIGMAS = (0.002, 0.1, 1.0, 10.0, 80.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edm-repo", type=Path, required=True, help="a checkout of NVlabs/edm")
    args = parser.parse_args()
    sys.path.insert(0, str(args.edm_repo))
    import dnnlib  # noqa: PLC0415 - EDM's own modules, from the user's checkout
    from training.augment import AugmentPipe  # noqa: PLC0415
    from training.loss import EDMLoss  # noqa: PLC0415
    from training.networks import EDMPrecond, iDDPMPrecond  # noqa: PLC0415

    torch.manual_seed(0)
    x = torch.randn(4, 3, 16, 16)
    labels = torch.nn.functional.one_hot(torch.tensor([0, 3, 7, 9]), 10).float()
    with tempfile.TemporaryDirectory() as tmp:
        for cls in (EDMPrecond, iDDPMPrecond):
            name = cls.__name__
            net = cls(**NETWORK).eval().requires_grad_(False)
            for p in net.parameters():  # random everywhere: EDM zero-initialises output layers
                p.copy_(torch.randn_like(p) * 0.05)
            data = dict(ema=net, loss_fn=EDMLoss(), augment_pipe=AugmentPipe(p=0.12, xflip=1e8, yflip=1, scale=1),
                        dataset_kwargs=dnnlib.EasyDict(class_name="training.dataset.ImageFolderDataset", path="x.zip",
                                                       use_labels=True, resolution=16))  # fmt: skip
            path = Path(tmp) / f"{name}.pkl"
            path.write_bytes(pickle.dumps(data))
            ours = load_adm_teacher(convert_edm(path, Path(tmp) / name) / "teacher").eval()
            worst = 0.0
            for sigma in SIGMAS:
                s = torch.full((4,), sigma)
                if cls is iDDPMPrecond:
                    s = net.round_sigma(s)  # on the discrete grid both index the same step
                ref, got = net(x, s, labels).double(), ours(x, s, labels).double()
                err = ((got - ref).abs().max() / ref.abs().max()).item()
                worst = max(worst, err)
                print(f"{name} sigma {float(s[0]):.4g}: max |D_ours - D_edm| / max |D_edm| = {err:.2e}")
            print(f"{name}: worst {worst:.2e}")


if __name__ == "__main__":
    main()
