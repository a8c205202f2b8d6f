"""guided-diffusion (and consistency-model) ``.pt`` state dicts -> model folders (:mod:`.model_folder`).

These files are plain state dicts: they are read with ``torch.load(weights_only=True)`` only, so a file that needs any
other object unpickled is refused, never run. The tensor shapes fix most of the architecture
(:func:`infer_adm_structure`); the attention heads and the noise schedule come from a preset
(:mod:`pagoda_inverse.interop.adm_presets`) or a JSON file of guided-diffusion's flags. Every mismatch between the
tensors and the configuration is one line naming the keys, and nothing is written.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from pagoda_inverse.core.adm_teacher import SCHEDULES, vp_alphas_cumprod
from pagoda_inverse.interop.adm_presets import ALIASES, PRESETS, get_preset, matching_presets
from pagoda_inverse.interop.model_folder import check_state, vp_denoiser, vp_precond, write_converted
from pagoda_inverse.nets.adm import SHAPE_FIELDS, ADMConfig, first_names
from pagoda_inverse.utils.errors import CheckpointError, UserError
from pagoda_inverse.utils.io import read_json

#: ``--from`` choices of ``pagoda-inv convert``.
SOURCES = ("guided-diffusion", "diffusers", "edm")
#: guided-diffusion flags that do not change the network or its denoiser (sampling and training options).
IGNORED_FLAGS = {"use_checkpoint", "timestep_respacing", "use_kl", "rescale_learned_sigmas", "rescale_timesteps",
                 "clip_denoised", "num_samples", "batch_size", "use_ddim", "model_path", "classifier_scale"}  # fmt: skip
#: Keys under which training scripts nest a state dict.
WRAPPER_KEYS = ("state_dict", "model", "ema", "model_ema", "net")
_BLOCK_KEY = re.compile(r"^(input_blocks|output_blocks)\.(\d+)\.(\d+)\.(.+)$")
#: Noise-schedule buffers that some networks keep in their state dict (deepinv's ``DiffUNet``, the form deepinv users
#: fine-tune), each a function of ``abar_t`` (:func:`~pagoda_inverse.core.adm_teacher.vp_alphas_cumprod`). They are
#: not weights: :func:`check_schedule_buffers` compares them with the schedule, then they are dropped.
SCHEDULE_BUFFERS = {
    "sqrt_alphas_cumprod": lambda abar: abar.sqrt(),
    "sqrt_1m_alphas_cumprod": lambda abar: (1 - abar).sqrt(),
}
#: How far a schedule buffer may be from the schedule (float32 or float16 rounding; linear and cosine differ by 0.3).
SCHEDULE_ATOL = 1e-3


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pt`` / ``.pth`` file, read with ``torch.load(weights_only=True)`` (never other objects).

    A state dict nested under one of :data:`WRAPPER_KEYS` is unwrapped, a ``module.`` prefix (DataParallel) removed.
    Missing, truncated or non-state-dict files and files needing arbitrary unpickling are one-line
    :class:`CheckpointError` s.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; pass a guided-diffusion .pt checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"(?:Unsupported global|Unsupported operand)[^\n]*", str(err))
        what = found.group(0).strip().rstrip(".") if found else str(err).splitlines()[0][:160]
        raise CheckpointError(
            f"{path}: needs arbitrary objects unpickled ({what}); refusing (only plain state dicts are read: "
            "re-save it with torch.save(model.state_dict(), ...))"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0][:160]
        raise CheckpointError(f"{path}: not a readable PyTorch file, truncated or corrupt ({first})") from None
    return _as_state_dict(obj, path)


def _as_state_dict(obj, source) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: holds a {type(obj).__name__}, not a state dict of tensors")
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        nested = [k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        if len(nested) == 1 and all(isinstance(v, torch.Tensor) for v in obj[nested[0]].values()):
            return _as_state_dict(obj[nested[0]], source)
        other = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
        raise CheckpointError(
            f"{source}: not a state dict: {len(other)} entries are not tensors ({first_names(other)})"
        )
    state = {str(k): v for k, v in obj.items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def infer_adm_structure(state: Mapping[str, torch.Tensor], source: str | Path = "state dict") -> ADMConfig:
    """The :data:`~pagoda_inverse.nets.adm.SHAPE_FIELDS` of a guided-diffusion state dict, read from its keys and
    shapes (the other fields keep their defaults: they do not show in the tensors).

    Levels are found from the decoder's up-samplers (a ``conv`` layer, or a second residual block with
    ``resblock_updown``), widths from each level's residual blocks, attention from the ``qkv`` layers. A state dict
    that is not an ADM is a one-line :class:`CheckpointError` naming what is missing.
    """
    core = ("time_embed.0.weight", "input_blocks.0.0.weight", "out.2.weight", "middle_block.0.out_layers.3.weight")
    if missing := [k for k in core if k not in state]:
        raise CheckpointError(
            f"{source}: not a guided-diffusion UNet state dict: missing {first_names(missing, 4)}; "
            f"its {len(state)} tensors start {first_names(sorted(state))}"
        )
    mc = state["time_embed.0.weight"].shape[1]
    in_ch, out_ch = state["input_blocks.0.0.weight"].shape[1], state["out.2.weight"].shape[0]
    if out_ch not in (in_ch, 2 * in_ch):
        raise CheckpointError(f"{source}: {out_ch} output channels for {in_ch} input channels (expected C or 2C)")
    blocks = {"input_blocks": {}, "output_blocks": {}}
    for key in state:
        if m := _BLOCK_KEY.match(key):
            blocks[m[1]].setdefault(int(m[2]), {}).setdefault(int(m[3]), set()).add(m[4])
    outputs = [blocks["output_blocks"].get(n, {}) for n in range(max(blocks["output_blocks"], default=-1) + 1)]

    # Decoder levels end with an up-sampler: layer ``conv`` (plain) or a residual block after the first layer.
    ups = {n: ("conv" if "conv.weight" in layer else "res") for n, layers in enumerate(outputs)
           for i, layer in layers.items() if i > 0 and ("conv.weight" in layer or "in_layers.2.weight" in layer)}  # fmt: skip
    levels = len(ups) + 1
    per_level = len(outputs) // levels
    if not outputs or len(outputs) % levels or sorted(ups) != [per_level * (k + 1) - 1 for k in range(levels - 1)]:
        raise CheckpointError(
            f"{source}: cannot read the level structure from its {len(outputs)} output blocks "
            f"(up-samplers at {sorted(ups)}); pass --config"
        )
    nrb = per_level - 1
    widths = [state[f"output_blocks.{(levels - 1 - level) * per_level}.0.out_layers.3.weight"].shape[0]
              for level in range(levels)]  # fmt: skip
    attention = [
        2**level
        for level in range(levels)
        if any(
            "qkv.weight" in blocks["input_blocks"].get(1 + level * (nrb + 1) + j, {}).get(1, ()) for j in range(nrb)
        )
    ]
    scale_shift = state["middle_block.0.emb_layers.1.weight"].shape[0] == 2 * widths[-1]
    return ADMConfig(
        image_size=2 ** (levels - 1), in_channels=in_ch, model_channels=mc, channel_mult=tuple(w / mc for w in widths),
        num_res_blocks=nrb, attention_resolutions=tuple(attention), learn_sigma=out_ch == 2 * in_ch,
        num_classes=state["label_emb.weight"].shape[0] if "label_emb.weight" in state else 0,
        use_scale_shift_norm=scale_shift, resblock_updown="res" in ups.values(), conv_resample=True,
    )  # fmt: skip


def describe_structure(cfg: ADMConfig) -> str:
    """One line with the shape fields of ``cfg``, e.g. for an error message."""
    return ", ".join(f"{name}={getattr(cfg, name)}" for name in SHAPE_FIELDS)


def resolve_config(
    state: Mapping[str, torch.Tensor], config: str | Path | None, schedule: str | None, source: str | Path
) -> tuple[ADMConfig, str, str]:
    """``(ADMConfig, schedule, how)`` for a guided-diffusion state dict.

    :param config: a preset name, a JSON file of guided-diffusion's flags (``{"image_size": 64, "num_channels": 192,
        ..., "noise_schedule": "cosine"}``; missing flags take guided-diffusion's defaults), or ``None``: the one preset
        whose tensor shapes are those of ``state``.
    :param schedule: ``"linear"`` / ``"cosine"``, overriding the preset's or the file's.
    :return: the configuration, the schedule and a short note on where they came from (for the model card).
    """
    if config is None:
        structure = infer_adm_structure(state, source)
        names = matching_presets(structure)
        if len(names) != 1:
            raise CheckpointError(
                f"{source}: its tensors match no preset ({describe_structure(structure)}); the attention heads and the "
                f"noise schedule are not in the weights: pass --config PRESET ({', '.join(PRESETS)}) or --config "
                "FILE.json with guided-diffusion's flags"
            )
        config, how = names[0], f"preset {names[0]} (matched by the tensor shapes)"
    elif str(config) in PRESETS or str(config) in ALIASES:
        how = f"preset {config}"
    else:
        cfg, file_schedule = _config_from_json(Path(config))
        return cfg, check_schedule(schedule or file_schedule, source), f"flags of {Path(config).name}"
    preset = get_preset(str(config))
    return preset.config, check_schedule(schedule or preset.schedule, source), how


def check_schedule(schedule: str | None, source) -> str:
    """``schedule`` if it is one of :data:`~pagoda_inverse.core.adm_teacher.SCHEDULES`, else a one-line error."""
    if schedule not in SCHEDULES:
        raise UserError(f"{source}: noise schedule {schedule!r} unknown; pass --schedule {'|'.join(SCHEDULES)}")
    return schedule


def _config_from_json(path: Path) -> tuple[ADMConfig, str | None]:
    if path.suffix != ".json" or not path.is_file():
        names = ", ".join([*PRESETS, *ALIASES])
        raise UserError(f"--config {path}: neither a preset ({names}) nor a JSON file of guided-diffusion's flags")
    flags = read_json(path)
    if not isinstance(flags, dict):
        raise UserError(f"{path}: expected a JSON object of guided-diffusion flags")
    flags = {k: v for k, v in flags.items() if k not in IGNORED_FLAGS}
    schedule = flags.pop("noise_schedule", None)
    if flags.pop("diffusion_steps", 1000) != 1000 or flags.pop("predict_xstart", False):
        raise UserError(
            f"{path}: only 1000-step epsilon-predicting models are supported (diffusion_steps, predict_xstart)"
        )
    try:
        return ADMConfig.from_flags(**flags), schedule
    except TypeError as err:
        raise UserError(f"{path}: unknown guided-diffusion flag ({err})") from None
    except ValueError as err:
        raise UserError(f"{path}: {err}") from None


def split_schedule_buffers(state: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
    """``(weights, buffers)``: ``state`` without and with only its :data:`SCHEDULE_BUFFERS`."""
    weights = {k: v for k, v in state.items() if k not in SCHEDULE_BUFFERS}
    return weights, {k: v for k, v in state.items() if k in SCHEDULE_BUFFERS}


def check_schedule_buffers(buffers: Mapping[str, torch.Tensor], schedule: str, source, what: str) -> str | None:
    """Check noise-schedule buffers (:func:`split_schedule_buffers`) against the 1000-step ``schedule`` that
    ``what`` (the configuration's origin) gives.

    :return: ``None`` without buffers, else a note for the model card naming them and the largest difference.
    :raises CheckpointError: one line when they hold another schedule (naming it, and the ``--schedule`` that
        fits) or no known one.
    """
    if not buffers:
        return None

    for name, value in buffers.items():
        if tuple(value.shape) != (1000,):
            raise CheckpointError(
                f"{source}: noise-schedule buffer {name} has shape {list(value.shape)}, not the [1000] of a 1000-step "
                "schedule"
            )

    def gap(kind: str) -> float:
        abar = vp_alphas_cumprod(kind)
        return max(
            float((value.double() - SCHEDULE_BUFFERS[name](abar)).abs().max()) for name, value in buffers.items()
        )

    gaps = {kind: gap(kind) for kind in SCHEDULES}
    names = ", ".join(sorted(buffers))
    if gaps[schedule] > SCHEDULE_ATOL:
        fits = [s for s in SCHEDULES if gaps[s] <= SCHEDULE_ATOL]
        hint = f"they hold the {fits[0]} schedule: pass --schedule {fits[0]}" if fits else "nor any other known one"
        raise CheckpointError(
            f"{source}: its noise-schedule buffers ({names}) do not hold the {schedule} schedule ({what}; off by up "
            f"to {gaps[schedule]:.2g}); {hint}"
        )
    return f"noise-schedule buffers {names} match the {schedule} schedule (within {gaps[schedule]:.0e}), not kept"


def convert_guided_diffusion(
    path: str | Path, out: str | Path, config: str | Path | None = None, schedule: str | None = None
) -> Path:
    """Convert a guided-diffusion / consistency-model UNet ``.pt`` state dict into the model folder ``out``.

    :param path: the ``.pt`` file (read with ``torch.load(weights_only=True)`` only).
    :param out: model folder to create (must not exist).
    :param config: preset name, JSON file of guided-diffusion flags, or ``None`` to match a preset by the shapes.
    :param schedule: ``"linear"`` / ``"cosine"``, overriding the preset's.
    :return: ``out``. Noise-schedule buffers (:data:`SCHEDULE_BUFFERS`, e.g. of deepinv's ``DiffUNet``) are checked
        against the schedule and dropped. The teacher is :class:`~pagoda_inverse.core.adm_teacher.VPEpsDenoiser` around the network.
    """
    path = Path(path)
    state, buffers = split_schedule_buffers(read_state_dict(path))
    cfg, schedule, how = resolve_config(state, config, schedule, path)
    check_state(cfg, state, path, how)
    if note := check_schedule_buffers(buffers, schedule, path, how):
        how = f"{how}; {note}"
    return write_converted(
        out, "guided-diffusion", [path], cfg, state, vp_precond(schedule), vp_denoiser(schedule), how
    )
