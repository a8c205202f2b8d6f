"""EDM network pickles read without running them, and EDM's ``DhariwalUNet`` rebuilt as an :class:`ADM`.

EDM's ``network-snapshot-*.pkl`` (and the released ``edm-imagenet-64x64-cond-adm.pkl``) are ``pickle.dump`` s of
``dict(ema=<network>, loss_fn=..., augment_pipe=..., dataset_kwargs=...)``. Each network class is wrapped by
``torch_utils.persistence``, which pickles an instance as a call ``_reconstruct_persistent_obj(meta)``: ``meta`` holds
the class name, the *source code of its module* (executed by EDM on load) and the instance state (``__dict__`` with
``_parameters``, ``_modules``, ``_init_kwargs``, ...). Tensors are pickled the plain way, their storages as bytes of
the legacy ``torch.save`` format (``torch.storage._load_from_bytes``).

:class:`RestrictedUnpickler` resolves only the globals this layout needs, each to an inert stand-in that records what
it is given (:data:`ALLOWED`): a persistent object becomes a :class:`PersistentRecord` (its module source is hashed,
never executed), a storage is read with ``torch.load(weights_only=True)``, numpy scalars are decoded from their bytes.
Any other global (``os.system``, ``builtins.eval``, a class of the pickle's own) is refused with one line naming it
before anything runs. :func:`convert_edm` then maps a ``DhariwalUNet`` under ``EDMPrecond`` (or ``iDDPMPrecond``) onto
the ADM's names; EDM's ``SongUNet`` (DDPM++ / NCSN++) and EDM2 networks are refused.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
from pathlib import Path
from typing import Any

import torch

from pagoda_inverse.interop.model_folder import check_state, vp_precond, write_converted
from pagoda_inverse.nets.adm import ADMConfig
from pagoda_inverse.utils.errors import CheckpointError, UserError

#: ``torch_utils.persistence._version`` of the EDM releases (and of StyleGAN2-ADA / StyleGAN3).
PERSISTENCE_VERSIONS = (6,)
#: numpy scalar types a pickle may decode (numeric only).
_NUMPY_TYPES = {"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"}


class RefusedError(pickle.UnpicklingError):
    """The pickle holds something :class:`RestrictedUnpickler` will not rebuild (the message says what)."""


class PersistentRecord:
    """What ``_reconstruct_persistent_obj(meta)`` was given: an EDM persistent object, not rebuilt.

    :param class_name: e.g. ``"DhariwalUNet"``.
    :param module_sha256: SHA-256 of the embedded module source (which is never executed).
    :param state: the instance ``__dict__`` (``_parameters``, ``_buffers``, ``_modules``, ``_init_kwargs``, ...).
    """

    def __init__(self, class_name: str, module_sha256: str, state: dict):
        self.class_name, self.module_sha256, self.state = class_name, module_sha256, state

    @property
    def init_kwargs(self) -> dict:
        """The keyword arguments the object was constructed with (``{}`` when not recorded)."""
        kwargs = self.state.get("_init_kwargs") or {}
        return dict(kwargs) if isinstance(kwargs, dict) else {}

    def __repr__(self) -> str:
        return f"PersistentRecord({self.class_name})"


class ObjectRecord:
    """An instance of an allowed plain class (``torch.nn.ModuleDict`` ...): its global name and pickled state."""

    global_name = "?"

    def __init__(self, *args):
        self.args, self.state = args, {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"state": state}

    def __repr__(self) -> str:
        return f"ObjectRecord({self.global_name})"


class EasyDictRecord(dict):
    """``dnnlib.util.EasyDict``: a plain dict here."""


def _record_class(global_name: str) -> type:
    return type(global_name.rpartition(".")[2] + "Record", (ObjectRecord,), {"global_name": global_name})


def _reconstruct_persistent_obj(meta) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class" or meta.get("version") not in PERSISTENCE_VERSIONS:
        got = (meta.get("type"), meta.get("version")) if isinstance(meta, dict) else type(meta).__name__
        raise RefusedError(f"unsupported torch_utils.persistence object {got}")
    source = meta.get("module_src") or ""
    state = meta.get("state") if isinstance(meta.get("state"), dict) else {}
    digest = hashlib.sha256(source.encode() if isinstance(source, str) else bytes(source)).hexdigest()
    return PersistentRecord(str(meta.get("class_name")), digest, state)


def _load_from_bytes(data) -> torch.storage.TypedStorage:
    if not isinstance(data, bytes | bytearray):
        raise RefusedError(f"storage bytes expected, got {type(data).__name__}")
    try:
        storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch reports refusals and corruption with several types
        raise RefusedError(f"a tensor storage is not plain data ({str(err).splitlines()[0][:120]})") from None
    if not isinstance(storage, torch.storage.TypedStorage | torch.UntypedStorage):
        raise RefusedError(f"a tensor storage holds a {type(storage).__name__}")
    return storage


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None) -> torch.Tensor:
    ok = isinstance(storage, torch.storage.TypedStorage) and isinstance(offset, int)
    if not ok or not all(isinstance(v, int) for v in (*size, *stride)):
        raise RefusedError("malformed tensor in the pickle")
    return torch._utils._rebuild_tensor_v2(
        storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict()
    )


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise RefusedError("malformed parameter in the pickle")
    return data


class DtypeRecord:
    """``numpy.dtype(name, align, copy)`` for the numeric names in :data:`_NUMPY_TYPES`, byte order from its state."""

    def __init__(self, name, align=False, copy=False):
        if name not in _NUMPY_TYPES:
            raise RefusedError(f"numpy dtype {name!r} is not a plain number type")
        self.name, self.order = name, "<"

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.order = state[1]


def _numpy_scalar(dtype, data=None):
    import numpy as np

    if not isinstance(dtype, DtypeRecord) or not isinstance(data, bytes):
        raise RefusedError("malformed numpy scalar in the pickle")
    return np.frombuffer(data, dtype=np.dtype(dtype.name).newbyteorder(dtype.order), count=1)[0].item()


def _reconstructor(cls, base, state=None):
    """``copyreg._reconstructor`` (protocol 0/1 objects), for the record classes only."""
    if not (isinstance(cls, type) and issubclass(cls, ObjectRecord)) or base is not object:
        raise RefusedError("copyreg._reconstructor of a class that is not allowed")
    return cls()


#: ``(module, name)`` -> the stand-in the unpickler returns for it; everything else is refused.
ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("dnnlib.util", "EasyDict"): EasyDictRecord,
    ("numpy", "dtype"): DtypeRecord,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    **{("torch.nn.modules.container", name): _record_class(f"torch.nn.modules.container.{name}")
       for name in ("ModuleDict", "ModuleList", "Sequential", "ParameterDict", "ParameterList")},
}  # fmt: skip


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED` globals (to inert stand-ins) and no persistent ids."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise RefusedError(f"refusing to load the global {module}.{name}") from None

    def persistent_load(self, pid):
        raise RefusedError("refusing a persistent id (not an EDM network pickle)")


def read_edm_pickle(path: str | Path):
    """The pickle's content, with every EDM persistent object as a :class:`PersistentRecord` (nothing executed).

    A global outside :data:`ALLOWED`, a truncated or corrupt file: one-line :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; pass an EDM network pickle (.pkl)")
    with open(path, "rb") as f:
        if f.read(4) == b"PK\x03\x04":
            raise CheckpointError(
                f"{path}: a torch.save zip file, not an EDM pickle (state dicts: --from guided-diffusion)"
            )
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    except RefusedError as err:
        raise CheckpointError(
            f"{path}: {str(err).splitlines()[0]}; not an EDM network pickle, or not only one"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError, MemoryError, OverflowError) as err:  # fmt: skip
        first = (str(err).splitlines() or [type(err).__name__])[0][:160]
        raise CheckpointError(
            f"{path}: not a readable pickle, truncated or corrupt ({type(err).__name__}: {first})"
        ) from None


def _children(record) -> dict:
    modules = record.state.get("_modules") if isinstance(record, PersistentRecord | ObjectRecord) else None
    return dict(modules) if isinstance(modules, dict) else {}


def flat_tensors(record, prefix: str = "") -> dict[str, torch.Tensor]:
    """``state_dict()``-style ``{name: tensor}`` of a recorded module tree (parameters and persistent buffers)."""
    out = {}
    transient = record.state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        skip = transient if group == "_buffers" else set()
        for name, value in (record.state.get(group) or {}).items():
            if isinstance(value, torch.Tensor) and name not in skip:
                out[prefix + name] = value
    for name, child in _children(record).items():
        if child is not None:
            out.update(flat_tensors(child, f"{prefix}{name}."))
    return out


def find_network(obj, source) -> tuple[PersistentRecord, PersistentRecord]:
    """``(precond, unet)`` records of an EDM pickle (its ``ema`` entry, or a bare network)."""
    net = obj.get("ema") if isinstance(obj, dict) else obj
    if not isinstance(net, PersistentRecord):
        raise CheckpointError(f"{source}: holds no EDM network (expected a dict with 'ema', got {type(obj).__name__})")
    unet = _children(net).get("model")
    if net.class_name not in ("EDMPrecond", "iDDPMPrecond") or not isinstance(unet, PersistentRecord):
        raise CheckpointError(
            f"{source}: the network is a {net.class_name}; only EDMPrecond and iDDPMPrecond around a DhariwalUNet convert"
        )
    if unet.class_name != "DhariwalUNet":
        raise CheckpointError(
            f"{source}: the backbone is a {unet.class_name}; only DhariwalUNet (ADM) converts to an ADM"
        )
    return net, unet


#: ``DhariwalUNet``'s defaults (EDM's ``training/networks.py`` signature, the values ``train.py --arch=adm`` uses).
DHARIWAL_DEFAULTS = dict(label_dim=0, augment_dim=0, model_channels=192, channel_mult=(1, 2, 3, 4), channel_mult_emb=4,
                         num_blocks=3, attn_resolutions=(32, 16, 8), dropout=0.10, label_dropout=0)  # fmt: skip


def _blocks(unet: PersistentRecord, group: str) -> list[tuple[str, PersistentRecord]]:
    return list(_children(_children(unet).get(group)).items())  # no such group: no blocks


def adm_config_from_edm(unet: PersistentRecord, source) -> ADMConfig:
    """The :class:`ADMConfig` of a recorded ``DhariwalUNet`` (its init kwargs over EDM's defaults), checked against
    what EDM can vary per block and ADM cannot: heads (64 channels each), GroupNorm groups, skip scaling, filters."""
    kw = {**DHARIWAL_DEFAULTS, **unet.init_kwargs}
    if missing := [k for k in ("img_resolution", "in_channels", "out_channels") if k not in kw]:
        raise CheckpointError(f"{source}: the DhariwalUNet's init arguments lack {', '.join(missing)}")
    res, cin, cout = int(kw["img_resolution"]), int(kw["in_channels"]), int(kw["out_channels"])
    if kw["channel_mult_emb"] != 4 or cout not in (cin, 2 * cin):
        raise CheckpointError(
            f"{source}: not expressible as an ADM: channel_mult_emb={kw['channel_mult_emb']}, out_channels={cout}"
        )
    if not (blocks := _named_blocks(unet)):
        raise CheckpointError(f"{source}: not expressible as an ADM: its DhariwalUNet records no UNetBlocks")
    if problem := next((f"block {name}: {p}" for name, rec in blocks if (p := _block_problem(rec))), None):
        raise CheckpointError(f"{source}: not expressible as an ADM: {problem}")
    norms = _group_norms(unet)  # EDM: min(32, channels // 4) groups; 32 throughout matches guided-diffusion
    if (mcpg := next((m for m in (4, 1) if all(g == min(32, c // m) for c, g in norms)), None)) is None:
        raise CheckpointError(f"{source}: not expressible as an ADM: GroupNorm groups {sorted(set(norms))[:3]}")
    levels = len(kw["channel_mult"])
    try:
        return ADMConfig(
            image_size=res, in_channels=cin, model_channels=int(kw["model_channels"]),
            channel_mult=tuple(kw["channel_mult"]), num_res_blocks=int(kw["num_blocks"]),
            attention_resolutions=tuple(2**i for i in range(levels) if res >> i in set(kw["attn_resolutions"])),
            dropout=float(kw["dropout"]), num_classes=int(kw["label_dim"]), learn_sigma=cout == 2 * cin,
            num_head_channels=64, use_new_attention_order=True, use_scale_shift_norm=True, resblock_updown=True,
            min_channels_per_group=mcpg, norm_eps=1e-5,
        )  # fmt: skip
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: not expressible as an ADM: {err}") from None


def _named_blocks(unet: PersistentRecord) -> list[tuple[str, PersistentRecord]]:
    return [(f"{g}.{k}", rec) for g in ("enc", "dec") for k, rec in _blocks(unet, g) if rec.class_name == "UNetBlock"]


def _group_norms(record) -> list[tuple[int, int]]:
    """``(channels, groups)`` of every recorded GroupNorm."""
    found = []
    if isinstance(record, PersistentRecord) and record.class_name == "GroupNorm":
        weight = (record.state.get("_parameters") or {}).get("weight")
        if isinstance(weight, torch.Tensor):
            found.append((weight.shape[0], int(record.state.get("num_groups", -1))))
    return found + [norm for child in _children(record).values() for norm in _group_norms(child)]


def _block_problem(block: PersistentRecord) -> str | None:
    """Why a recorded ``UNetBlock`` is not an ADM block (``None`` when it is)."""
    s, kids = block.state, _children(block)
    cout = int(s.get("out_channels", 0))
    heads = int(s.get("num_heads") or 0)
    if s.get("skip_scale", 1) != 1 or not s.get("adaptive_scale", True):
        return f"skip_scale={s.get('skip_scale')}, adaptive_scale={s.get('adaptive_scale')}"
    if heads and (cout % 64 or heads != cout // 64):
        return f"{heads} attention heads for {cout} channels (an ADM has 64 channels per head)"
    if any(
        abs(float(n.state.get("eps", 1e-5)) - 1e-5) > 1e-12 for n in kids.values() if n and n.class_name == "GroupNorm"
    ):
        return "GroupNorm eps is not 1e-5"
    for name in ("conv0", "skip"):
        conv = kids.get(name)
        f = (conv.state.get("_buffers") or {}).get("resample_filter") if conv is not None else None
        if isinstance(f, torch.Tensor) and not torch.allclose(f.float(), torch.full_like(f.float(), 0.25)):
            return f"{name} resamples with a filter other than [1, 1]"
    skip = kids.get("skip")
    if skip is not None and int(s.get("in_channels", 0)) == cout and "weight" in (skip.state.get("_parameters") or {}):
        return "a projected skip connection at equal widths (resample_proj)"
    return None


_BLOCK_NAMES = {"norm0": "in_layers.0", "conv0": "in_layers.2", "affine": "emb_layers.1", "norm1": "out_layers.0",
                "conv1": "out_layers.3", "skip": "skip_connection"}  # fmt: skip


def edm_to_adm(unet: PersistentRecord, cfg: ADMConfig) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The ADM state dict of a recorded ``DhariwalUNet`` and the names of the tensors it drops (``map_augment``:
    unused without augmentation labels; ``resample_filter``: the fixed ``[1, 1]`` box filter).

    EDM's blocks map one to one onto the ADM's, in order; its decoder's ``up`` block is the last layer of the ADM's
    previous output block. ``qkv`` rows are reordered from EDM's ``[head][channel][q|k|v]`` to ``[q|k|v][head][channel]``
    and 1x1 convolutions flattened to 1-d; ``map_label`` (a linear map of one-hot labels) becomes ``label_emb``.
    """
    tensors = flat_tensors(unet)
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(theirs: str, ours: str) -> None:
        for key in [k for k in tensors if k.startswith(theirs + ".") and not k.endswith("resample_filter")]:
            value = tensors[key]
            param = key[len(theirs) + 1 :]
            if ours.endswith(("qkv", "proj_out")) and param == "weight":
                value = value.reshape(value.shape[0], value.shape[1], 1)
            if ours.endswith("qkv"):
                c = value.shape[0] // 3
                rows = torch.arange(3 * c).reshape(c // 64, 64, 3).permute(2, 0, 1).reshape(-1)
                value = value[rows]
            out[f"{ours}.{param}"] = value
            used.add(key)

    def block(name: str, ours: str, attention_index: int | None = None) -> None:
        for theirs, mine in _BLOCK_NAMES.items():
            take(f"{name}.{theirs}", f"{ours}.{mine}")
        if attention_index is not None:
            att = ours.rsplit(".", 1)[0] + f".{attention_index}"
            take(f"{name}.norm2", f"{att}.norm")
            take(f"{name}.qkv", f"{att}.qkv")
            take(f"{name}.proj", f"{att}.proj_out")

    take("map_layer0", "time_embed.0")
    take("map_layer1", "time_embed.2")
    if "map_label.weight" in tensors:
        out["label_emb.weight"] = tensors["map_label.weight"].t().contiguous()
        used.add("map_label.weight")
    has_attention = {name: bool(rec.state.get("num_heads")) for name, rec in _named_blocks(unet)}
    enc = _blocks(unet, "enc")
    take(f"enc.{enc[0][0]}", "input_blocks.0.0")
    for n, (name, _) in enumerate(enc[1:], start=1):
        block(f"enc.{name}", f"input_blocks.{n}.0", 1 if has_attention[f"enc.{name}"] else None)
    dec = [name for name, _ in _blocks(unet, "dec")]
    block(f"dec.{dec[0]}", "middle_block.0", 1)
    block(f"dec.{dec[1]}", "middle_block.2")
    m = -1
    for name in dec[2:]:
        if name.endswith("_up"):  # the up-sampler closes the previous output block
            last = f"output_blocks.{m}"
            block(f"dec.{name}", f"{last}.{2 if any(k.startswith(last + '.1.qkv') for k in out) else 1}")
        else:
            m += 1
            block(f"dec.{name}", f"output_blocks.{m}.0", 1 if has_attention[f"dec.{name}"] else None)
    take("out_norm", "out.0")
    take("out_conv", "out.2")
    return out, sorted(set(tensors) - used)


def _precond(net: PersistentRecord, cfg: ADMConfig, source) -> tuple[dict, str]:
    kw = net.init_kwargs
    if net.class_name == "EDMPrecond":
        sigma_data = float(kw.get("sigma_data", net.state.get("sigma_data", 0.5)))
        precond = {"type": "edm", "sigma_data": sigma_data}
        for key in ("sigma_min", "sigma_max"):
            if key in kw or key in net.state:
                precond[key] = float(kw.get(key, net.state.get(key)))
        return precond, f"EDM preconditioning (EDMPrecond, sigma_data {sigma_data}, c_noise = ln(sigma) / 4)"
    # iDDPMPrecond: improved DDPM's cosine schedule over 1000 steps, the network indexed by the nearest step.
    c1, c2, m = kw.get("C_1", 0.001), kw.get("C_2", 0.008), kw.get("M", 1000)
    if (c1, c2, m) != (0.001, 0.008, 1000) or not cfg.learn_sigma:
        raise CheckpointError(f"{source}: iDDPMPrecond with C_1={c1}, C_2={c2}, M={m}: only EDM's defaults convert")
    return vp_precond("cosine"), "VP epsilon-prediction, cosine schedule, 1000 steps (EDM's iDDPMPrecond)"


def convert_edm(path: str | Path, out: str | Path) -> Path:
    """Convert an EDM network pickle (``DhariwalUNet`` under ``EDMPrecond`` or ``iDDPMPrecond``) into the model folder
    ``out``, reading it with :class:`RestrictedUnpickler` (none of the pickle's code runs).

    :return: ``out``. The teacher is EDM's own denoiser (:class:`~pagoda_inverse.core.precond.EDMPrecond` with the
        pickle's ``sigma_data``), or :class:`~pagoda_inverse.core.adm_teacher.VPEpsDenoiser` for ``iDDPMPrecond``.
    """
    path = Path(path)
    net, unet = find_network(read_edm_pickle(path), path)
    cfg = adm_config_from_edm(unet, path)
    state, dropped = edm_to_adm(unet, cfg)
    check_state(cfg, state, path, "its DhariwalUNet (as ADM names)")
    precond, denoiser = _precond(net, cfg, path)
    if use_fp16 := bool(net.init_kwargs.get("use_fp16", False)):
        cfg = ADMConfig.from_dict({**cfg.to_dict(), "use_fp16": use_fp16})
    how = f"the init arguments of its {net.class_name}({unet.class_name}) (module source sha256 {unet.module_sha256})"
    if dropped := [k for k in dropped if not k.endswith("resample_filter")]:
        how += f"; dropped {', '.join(dropped)}"
    return write_converted(out, "edm", [path], cfg, state, precond, denoiser, how)
