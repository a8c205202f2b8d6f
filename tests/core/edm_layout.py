"""Write pickles in the layout of EDM's network snapshots, without EDM's code.

EDM (NVlabs/edm, ``torch_utils/persistence.py``) pickles each instance of a ``@persistent_class`` as the call
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with
``meta = dict(type='class', version=6, module_src=<source of the module>, class_name=..., state=<instance __dict__>)``,
the instance ``__dict__`` holding ``_init_args`` / ``_init_kwargs`` besides the usual ``nn.Module`` fields; everything
else (``torch.nn.ModuleDict``, tensors, ``dnnlib.util.EasyDict``) is pickled the ordinary way. :func:`edm_pickle_bytes`
reproduces that with stand-in modules registered under those names only while pickling. The network itself is
deepinv's ``ADMUNet``, a port of EDM's ``DhariwalUNet`` with its parameter names; it is recorded under EDM's class
names (``DhariwalUNet``, ``UNetBlock``, ``Conv2d``, ``Linear``, ``GroupNorm``, ``PositionalEmbedding``).
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import types

import numpy as np
import torch

#: Stand-in for the module source EDM embeds (executed by EDM on load; only hashed by ours).
MODULE_SOURCE = "import os\nos.system('touch should-never-run')  # executing this source would be a bug\n"


class EDMPrecondLike(torch.nn.Module):
    """EDM's ``EDMPrecond`` fields around a backbone ``model``."""

    def __init__(self, model, **kwargs):
        super().__init__()
        self.model = model
        for key, value in kwargs.items():
            setattr(self, key, value)


class EDMLossLike:
    """EDM's ``EDMLoss`` (a persistent plain object)."""

    def __init__(self, P_mean=-1.2, P_std=1.2, sigma_data=0.5):
        self.P_mean, self.P_std, self.sigma_data = P_mean, P_std, sigma_data


@contextlib.contextmanager
def _persistence_modules():
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # EDM's would exec meta['module_src']
        raise AssertionError("the test pickles are only written here")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util.EasyDict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    names = {"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
             "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util}  # fmt: skip
    saved = {k: sys.modules.get(k) for k in names}
    sys.modules.update(names)
    try:
        yield persistence, util
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value


def _class_name(obj) -> str | None:
    names = {"ADMUNet": "DhariwalUNet", "UNetBlock": "UNetBlock", "UpDownConv2d": "Conv2d", "Linear": "Linear",
             "GroupNorm": "GroupNorm", "PositionalEmbedding": "PositionalEmbedding", "EDMPrecondLike": "EDMPrecond",
             "EDMLossLike": "EDMLoss"}  # fmt: skip
    return names.get(type(obj).__name__)


def edm_pickle_bytes(
    precond: EDMPrecondLike,
    init_kwargs: dict,
    precond_kwargs: dict,
    class_name: str | None = None,
    unet_class: str = "DhariwalUNet",
) -> bytes:
    """``pickle.dumps`` of ``dict(ema=precond, loss_fn=..., augment_pipe=None, dataset_kwargs=EasyDict(...))`` in EDM's
    persistence layout. ``init_kwargs``: the ``DhariwalUNet``'s; ``precond_kwargs``: the ``EDMPrecond``'s;
    ``class_name`` renames the precond (e.g. ``iDDPMPrecond``), ``unet_class`` the backbone."""
    with _persistence_modules() as (persistence, util):

        class Pickler(pickle.Pickler):
            def reducer_override(self, obj):
                name = _class_name(obj)
                if name is None:
                    return NotImplemented
                state = dict(obj.__dict__)
                if isinstance(obj, torch.nn.Module):
                    kwargs = {"DhariwalUNet": init_kwargs, "EDMPrecond": precond_kwargs}.get(name, {})
                    # EDM records every persistent object's constructor arguments; numpy scalars among them.
                    state.update(_init_args=(), _init_kwargs={**kwargs, "init_weight": np.sqrt(1 / 3)})
                    name = class_name if name == "EDMPrecond" and class_name else name
                    name = unet_class if name == "DhariwalUNet" else name
                meta = dict(type="class", version=6, module_src=MODULE_SOURCE, class_name=name, state=state)
                return persistence._reconstruct_persistent_obj, (meta,), None

        data = dict(ema=precond, loss_fn=EDMLossLike(), augment_pipe=None,
                    dataset_kwargs=util.EasyDict(class_name="training.dataset.ImageFolderDataset", xflip=False))  # fmt: skip
        import io

        buffer = io.BytesIO()
        Pickler(buffer, protocol=4).dump(data)
        return buffer.getvalue()


class Malicious:
    """Pickles as ``os.system(command)``: what a crafted checkpoint would run on ``pickle.load``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)
