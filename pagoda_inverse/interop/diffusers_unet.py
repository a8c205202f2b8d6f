"""diffusers ``UNet2DModel`` folders -> model folders, for the configurations that are ADMs under other names.

diffusers builds guided-diffusion's U-Net from blocks (``DownBlock2D``, ``AttnDownBlock2D``, ``ResnetDownsampleBlock2D``,
their ``Up`` mirrors and ``UNetMidBlock2D``): with the ADM's time embedding (``flip_sin_to_cos``, ``freq_shift = 0``),
the same attention at a level on both sides, one kind of resampling throughout and normalised mid-block attention,
a ``UNet2DModel`` is an :class:`~pagoda_inverse.nets.adm.ADM` whose tensors are renamed (and whose ``to_q`` / ``to_k`` /
``to_v`` are stacked into ``qkv``). Any other configuration (DDPM's CIFAR-10 U-Net, with its shifted embedding and
asymmetric padding, say) is refused with one line naming the setting. diffusers itself is not needed: the folder's
``config.json`` and ``diffusion_pytorch_model.safetensors`` (or ``.bin``, read with ``weights_only=True``) are read
directly.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pagoda_inverse.core.checkpoint import load_tensors
from pagoda_inverse.interop.guided_diffusion import check_schedule, read_state_dict
from pagoda_inverse.interop.model_folder import check_state, vp_denoiser, vp_precond, write_converted
from pagoda_inverse.nets.adm import ADMConfig
from pagoda_inverse.utils.errors import CheckpointError, UserError
from pagoda_inverse.utils.io import read_json

#: Weight files of a diffusers model folder, in the order they are looked for.
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
                "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.fp16.bin")  # fmt: skip
#: diffusers scheduler beta schedules -> guided-diffusion's names.
BETA_SCHEDULES = {"linear": "linear", "squaredcos_cap_v2": "cosine"}
_DOWN = {"DownBlock2D": (False, "conv"), "ResnetDownsampleBlock2D": (False, "resnet"), "AttnDownBlock2D": (True, None)}
_UP = {"UpBlock2D": (False, "conv"), "ResnetUpsampleBlock2D": (False, "resnet"), "AttnUpBlock2D": (True, None)}
_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "norm2": "out_layers.0",
           "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}  # fmt: skip
#: Attention layer names of diffusers' current and of its deprecated (pre-0.14) attention block.
_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out",
         "query": "q", "key": "k", "value": "v", "proj_attn": "proj_out"}  # fmt: skip


def read_diffusers_folder(folder: str | Path) -> tuple[dict, dict[str, torch.Tensor], Path, str | None]:
    """``(config, tensors, weights file, schedule)`` of a ``UNet2DModel`` folder, or of a pipeline folder holding one
    in ``unet/`` (whose ``scheduler/scheduler_config.json`` then gives the noise schedule; ``None`` without one)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; pass a diffusers model folder (config.json + weights)")
    root = folder
    if not (folder / "config.json").is_file() and (folder / "unet" / "config.json").is_file():
        folder = folder / "unet"
    config = _read_json(folder / "config.json")
    if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise CheckpointError(
            f"{folder / 'config.json'}: a {config['_class_name']}; only UNet2DModel converts to an ADM"
        )
    weights = next((folder / n for n in WEIGHT_FILES if (folder / n).is_file()), None)
    if weights is None:
        raise CheckpointError(f"{folder}: holds none of {', '.join(WEIGHT_FILES)}")
    tensors = load_tensors(weights) if weights.suffix == ".safetensors" else read_state_dict(weights)
    scheduler = root / "scheduler" / "scheduler_config.json"
    return config, tensors, weights, _schedule_of(_read_json(scheduler), scheduler) if scheduler.is_file() else None


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; a diffusers model folder has config.json beside its weights")
    data = read_json(path, CheckpointError)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def _schedule_of(scheduler: dict, path: Path) -> str:
    """The VP schedule of a DDPM/DDIM-style scheduler config (1000 steps, epsilon prediction, default betas); a
    scheduler without betas (a consistency model's ``CMStochasticIterativeScheduler``, say) is refused."""
    if "beta_schedule" not in scheduler:
        raise CheckpointError(
            f"{path}: a {scheduler.get('_class_name', 'scheduler')} without beta_schedule: not a VP epsilon-predictor "
            "(consistency models are not supported as teachers)"
        )
    kind = BETA_SCHEDULES.get(scheduler.get("beta_schedule", "linear"))
    default_betas = (scheduler.get("beta_start", 1e-4), scheduler.get("beta_end", 0.02)) == (1e-4, 0.02)
    if (
        kind is None
        or scheduler.get("num_train_timesteps", 1000) != 1000
        or scheduler.get("prediction_type", "epsilon") != "epsilon"
        or (kind == "linear" and not default_betas)
    ):
        raise CheckpointError(
            f"{path}: not a 1000-step epsilon-prediction VP schedule with guided-diffusion's betas "
            f"({scheduler.get('_class_name')}, beta_schedule={scheduler.get('beta_schedule')!r}, "
            f"prediction_type={scheduler.get('prediction_type', 'epsilon')!r})"
        )
    return kind


def adm_config_from_diffusers(cfg: dict, source: str | Path = "config.json") -> ADMConfig:
    """The :class:`ADMConfig` of a ``UNet2DModel`` config, or a one-line :class:`CheckpointError` naming the first
    setting an ADM cannot express."""
    get = cfg.get
    boc = [int(c) for c in get("block_out_channels", (224, 448, 672, 896))]
    down = [str(t) for t in get("down_block_types", ())]
    up = [str(t) for t in get("up_block_types", ())]
    ss = get("resnet_time_scale_shift", "default")
    required = {
        "time_embedding_type": (get("time_embedding_type", "positional"), "positional"),
        "flip_sin_to_cos": (get("flip_sin_to_cos", True), True),
        "freq_shift": (get("freq_shift", 0), 0),
        "center_input_sample": (get("center_input_sample", False), False),
        "act_fn": (get("act_fn", "silu") in ("silu", "swish"), True),
        "mid_block_type": (get("mid_block_type", "UNetMidBlock2D"), "UNetMidBlock2D"),
        "add_attention": (get("add_attention", True), True),
        "mid_block_scale_factor": (get("mid_block_scale_factor", 1), 1),
        "class_embed_type": (get("class_embed_type"), None),
        "time_embedding_dim": (get("time_embedding_dim") in (None, 4 * boc[0]), True),
        "resnet_time_scale_shift": (ss in ("default", "scale_shift"), True),
        "block types": (all(t in _DOWN for t in down) and all(t in _UP for t in up), True),
        "levels": (len(down) == len(up) == len(boc) > 0, True),
    }
    if bad := next((name for name, (value, want) in required.items() if value != want), None):
        setting = {"block types": f"{down} / {up}", "levels": f"{len(boc)} / {len(down)} / {len(up)}"}.get(
            bad, get(bad)
        )
        raise CheckpointError(f"{source}: not expressible as an ADM: {bad}={setting!r}")

    # The mirror blocks must agree on attention; the non-final levels on one kind of resampling.
    levels = len(boc)
    attn_down = [_DOWN[t][0] for t in down]
    attn_up = [_UP[t][0] for t in reversed(up)]
    if attn_down != attn_up:
        raise CheckpointError(
            f"{source}: not expressible as an ADM: attention per level differs (down {down}, up {up})"
        )
    kinds = {_DOWN[t][1] or get("downsample_type", "conv") for t in down[:-1]}
    kinds |= {_UP[t][1] or get("upsample_type", "conv") for t in up[:-1]}
    if len(kinds) > 1 or not kinds <= {"conv", "resnet"}:
        raise CheckpointError(f"{source}: not expressible as an ADM: mixed or unknown resampling {sorted(kinds)}")
    if "conv" in kinds and get("downsample_padding", 1) != 1:
        raise CheckpointError(f"{source}: not expressible as an ADM: downsample_padding={get('downsample_padding')}")
    groups = int(get("norm_num_groups", 32) or 0)
    mid_groups = get("attn_norm_num_groups") or (groups if ss == "default" else None)
    if mid_groups != groups:
        raise CheckpointError(
            f"{source}: not expressible as an ADM: the mid-block attention has {mid_groups} norm groups, the rest "
            f"{groups} (attn_norm_num_groups={get('attn_norm_num_groups')!r})"
        )
    in_ch, out_ch = int(get("in_channels", 3)), int(get("out_channels", 3))
    if out_ch not in (in_ch, 2 * in_ch):
        raise CheckpointError(f"{source}: not expressible as an ADM: out_channels={out_ch} for in_channels={in_ch}")
    size = get("sample_size") or 2 ** (levels - 1)
    if isinstance(size, list | tuple):
        if len(set(size)) != 1:
            raise CheckpointError(f"{source}: not expressible as an ADM: non-square sample_size={size}")
        size = size[0]
    head = get("attention_head_dim", 8)
    try:
        return ADMConfig(
            image_size=int(size), in_channels=in_ch, model_channels=boc[0], channel_mult=tuple(c / boc[0] for c in boc),
            num_res_blocks=int(get("layers_per_block", 2)),
            attention_resolutions=tuple(2**i for i in range(levels) if attn_down[i]), dropout=float(get("dropout", 0.0)),
            num_classes=int(get("num_class_embeds") or 0), learn_sigma=out_ch == 2 * in_ch, num_heads=1,
            num_head_channels=-1 if head is None else int(head), use_new_attention_order=True,
            use_scale_shift_norm=ss == "scale_shift", resblock_updown=kinds == {"resnet"}, norm_groups=groups,
            norm_eps=float(get("norm_eps", 1e-5)),
        )  # fmt: skip
    except ValueError as err:
        raise CheckpointError(f"{source}: not expressible as an ADM: {err}") from None


def diffusers_to_adm(state: dict[str, torch.Tensor], cfg: ADMConfig, resampling: str) -> dict[str, torch.Tensor]:
    """Rename a ``UNet2DModel`` state dict to the ADM's keys (``qkv`` = ``to_q``, ``to_k``, ``to_v`` stacked, as
    ``use_new_attention_order``). Tensors it does not know keep their name (the strict check then reports them)."""
    names: dict[str, str] = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
                             "time_embedding.linear_2": "time_embed.2", "class_embedding": "label_emb",
                             "conv_norm_out": "out.0", "conv_out": "out.2"}  # fmt: skip
    resnets: list[tuple[str, str]] = []
    attentions: list[tuple[str, str]] = []
    levels, n = len(cfg.channel_mult), 1
    for level in range(levels):
        attn = 2**level in cfg.attention_resolutions
        for j in range(cfg.num_res_blocks):
            resnets.append((f"down_blocks.{level}.resnets.{j}", f"input_blocks.{n}.0"))
            if attn:
                attentions.append((f"down_blocks.{level}.attentions.{j}", f"input_blocks.{n}.1"))
            n += 1
        if level < levels - 1:
            if resampling == "resnet":
                resnets.append((f"down_blocks.{level}.downsamplers.0", f"input_blocks.{n}.0"))
            else:
                names[f"down_blocks.{level}.downsamplers.0.conv"] = f"input_blocks.{n}.0.op"
            n += 1
    resnets += [("mid_block.resnets.0", "middle_block.0"), ("mid_block.resnets.1", "middle_block.2")]
    attentions.append(("mid_block.attentions.0", "middle_block.1"))
    m = 0
    for i in range(levels):  # up block i is level levels - 1 - i
        attn = 2 ** (levels - 1 - i) in cfg.attention_resolutions
        for j in range(cfg.num_res_blocks + 1):
            resnets.append((f"up_blocks.{i}.resnets.{j}", f"output_blocks.{m}.0"))
            if attn:
                attentions.append((f"up_blocks.{i}.attentions.{j}", f"output_blocks.{m}.1"))
            if j == cfg.num_res_blocks and i < levels - 1:
                k = 2 if attn else 1
                if resampling == "resnet":
                    resnets.append((f"up_blocks.{i}.upsamplers.0", f"output_blocks.{m}.{k}"))
                else:
                    names[f"up_blocks.{i}.upsamplers.0.conv"] = f"output_blocks.{m}.{k}.conv"
            m += 1
    for theirs, ours in resnets:
        names.update({f"{theirs}.{a}": f"{ours}.{b}" for a, b in _RESNET.items()})
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for theirs, ours in attentions:
        names.update({f"{theirs}.{a}": f"{ours}.{b}" for a, b in _ATTN.items()})

    out = {}
    for key, value in state.items():
        prefix, _, param = key.rpartition(".")
        target = names.get(prefix)
        if target is None:
            out[key] = value
        elif target.endswith((".q", ".k", ".v")):  # [C, C] linear -> rows of the [3C, C, 1] conv
            qkv.setdefault(f"{target[:-2]}.qkv.{param}", {})[target[-1]] = value
        elif target.endswith(".proj_out") and param == "weight" and value.dim() == 2:
            out[f"{target}.{param}"] = value[:, :, None]
        else:
            out[f"{target}.{param}"] = value
    for key, parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            out.update({f"{key}<{name}>": v for name, v in parts.items()})  # incomplete: reported as unexpected
            continue
        stacked = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
        out[key] = stacked[:, :, None] if stacked.dim() == 2 else stacked
    return out


def convert_diffusers(folder: str | Path, out: str | Path, schedule: str | None = None) -> Path:
    """Convert a diffusers ``UNet2DModel`` (epsilon-predicting, 1000-step VP) folder into the model folder ``out``.

    :param folder: the model folder (``config.json`` + weights), or a pipeline folder with ``unet/``.
    :param schedule: ``"linear"`` / ``"cosine"``; default: the pipeline's ``scheduler/scheduler_config.json``.
    :return: ``out``.
    """

    dcfg, state, weights, found = read_diffusers_folder(folder)
    cfg = adm_config_from_diffusers(dcfg, weights.parent / "config.json")
    schedule = check_schedule(schedule or found, folder)
    resampling = "resnet" if cfg.resblock_updown else "conv"
    adm_state = diffusers_to_adm(state, cfg, resampling)
    check_state(cfg, adm_state, weights, "its config.json (as ADM names)")
    files = [weights, weights.parent / "config.json"]
    return write_converted(out, "diffusers", files, cfg, adm_state, vp_precond(schedule), vp_denoiser(schedule),
                           "its config.json (UNet2DModel)")  # fmt: skip
