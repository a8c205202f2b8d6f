"""The networks of a model folder's parts, whichever backbone they hold: the toolkit's own U-Net or an imported ADM.

A part's ``config.json`` names its backbone by the section it holds:

- ``"unet"``: :class:`~pagoda_inverse.core.unet.UNet` (teachers, decoders, encoders trained here);
- ``"adm"``: :class:`~pagoda_inverse.nets.adm.ADM` (a teacher written by ``pagoda-inv convert``, with its ``"precond"``
  section; or a learned encoder initialised from one);
- ``"adm_decoder"``: :class:`~pagoda_inverse.core.adm_decoder.ADMDecoderNet` (a decoder grown from an imported teacher).

The helpers here turn a loaded backbone into the role it plays (teacher denoiser, one-step decoder, learned encoder),
make the decoder and encoder a training run starts from, and give the conditioning of an imported teacher (which has
no caption bank): one-hot classes for a class-conditional ADM, a 1-wide zero condition for an unconditional one.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from pagoda_inverse.core.adm_decoder import ADMDecoderConfig, ADMDecoderNet, ADMGenerator, ADMLearnedEncoder
from pagoda_inverse.core.adm_teacher import build_teacher
from pagoda_inverse.core.checkpoint import load_checkpoint, load_module_state, split_prefix
from pagoda_inverse.core.generator import Generator
from pagoda_inverse.core.learned_encoder import LearnedEncoder
from pagoda_inverse.core.precond import EDMPrecond
from pagoda_inverse.core.sigmas import SIGMA_MAX
from pagoda_inverse.core.text import CaptionBank
from pagoda_inverse.core.unet import UNet, UNetConfig
from pagoda_inverse.nets.adm import ADM, ADMConfig, state_mismatch
from pagoda_inverse.utils.errors import CheckpointError

#: The backbone sections a part's ``config.json`` may hold, in the order they are looked for.
SECTIONS = ("unet", "adm_decoder", "adm")


def section_of(config: dict) -> str | None:
    """Which backbone section ``config`` holds (``None``: none)."""
    return next((s for s in SECTIONS if s in config), None)


def image_geometry(config: dict) -> tuple[int, int]:
    """``(channels, teacher resolution)`` of a part's ``config.json`` (U-Net, ADM or ADM-decoder section)."""
    if "unet" in config:
        return int(config["unet"]["in_channels"]), int(config["unet"]["resolution"])
    adm = config["adm_decoder"]["adm"] if "adm_decoder" in config else config["adm"]
    return int(adm["in_channels"]), int(adm["image_size"])


def output_resolution(config: dict) -> int:
    """The resolution a part's network outputs: the teacher's times ``2**growth stages`` for a decoder."""
    stages = (config.get("unet") or config.get("adm_decoder") or {}).get("grow_channels", ())
    return image_geometry(config)[1] * 2 ** len(stages)


def build_backbone(config: dict, source: Path) -> nn.Module:
    """An untrained backbone of the architecture ``config`` describes (an ``"adm"`` one on the meta device, without
    storage); a bad section is a :class:`CheckpointError`."""
    section = section_of(config)
    if section is None:
        raise CheckpointError(f"{source}: has no 'unet' or 'adm' section; not a pagoda-inv model checkpoint")
    try:
        if section == "unet":
            return UNet(UNetConfig.from_dict(config["unet"]))
        if section == "adm_decoder":
            return ADMDecoderNet(ADMDecoderConfig.from_dict(config["adm_decoder"]))
        with torch.device("meta"):  # no memory until load_part assigns the loaded tensors (one copy, not two)
            net = ADM(ADMConfig.from_dict(config["adm"]))
        if config.get("kind") == "teacher":
            build_teacher(config, net)  # check the "precond" section now (one line, not a traceback later)
        return net
    except (TypeError, ValueError, KeyError) as err:
        raise CheckpointError(f"{source}: invalid {section!r} section ({err})") from None


def load_part(folder: Path) -> tuple[nn.Module, dict, dict[str, torch.Tensor]]:
    """``(backbone in eval mode without gradients, config, tensors)`` of a part folder (safetensors + JSON only)."""
    folder = Path(folder)
    tensors, config = load_checkpoint(folder)
    net = build_backbone(config, folder / "config.json")
    state = split_prefix(tensors, "net")
    if isinstance(net, ADM):
        if problem := state_mismatch(net.config, state):
            raise CheckpointError(f"{folder / 'model.safetensors'}: {problem}; the weights do not match config.json")
        net.load_state_dict(state, assign=True)  # the loaded tensors become the parameters
    else:
        load_module_state(net, state, folder / "model.safetensors")
    return net.eval().requires_grad_(False), config, tensors


def teacher_denoiser(net: nn.Module, config: dict) -> nn.Module:
    """The teacher's EDM denoiser ``D(x, sigma, cond)`` around its backbone."""
    return build_teacher(config, net) if isinstance(net, ADM) else EDMPrecond(net)


def as_decoder(net: nn.Module, config: dict) -> Generator:
    """The one-step decoder of a decoder part's backbone."""
    cls = ADMGenerator if isinstance(net, ADMDecoderNet) else Generator
    return cls(net, sigma_max=float(config.get("sigma_max", SIGMA_MAX)))


def as_encoder(net: nn.Module, config: dict) -> LearnedEncoder:
    """The learned encoder of an encoder part's backbone."""
    cls = ADMLearnedEncoder if isinstance(net, ADM) else LearnedEncoder
    return cls(net, sigma_max=float(config.get("sigma_max", SIGMA_MAX)))


def decoder_from_teacher(teacher: nn.Module) -> Generator:
    """PaGoDA's initial G: a copy of the teacher's network, the teacher's one-step denoiser at ``sigma_max``."""
    G = ADMGenerator.from_teacher(teacher) if isinstance(teacher.net, ADM) else Generator.from_teacher(teacher.net)
    return G.train().requires_grad_(True)


def encoder_from_teacher(teacher: nn.Module) -> LearnedEncoder:
    """The learned encoder's initialisation: a copy of the teacher's network."""
    cls = ADMLearnedEncoder if isinstance(teacher.net, ADM) else LearnedEncoder
    return cls(copy.deepcopy(teacher.net)).train().requires_grad_(True)


def backbone_section(net: nn.Module) -> dict:
    """The ``config.json`` section that rebuilds ``net`` (``{"unet": ...}``, ``{"adm": ...}`` or
    ``{"adm_decoder": ...}``)."""
    if isinstance(net, ADMDecoderNet):
        return {"adm_decoder": net.config.to_dict()}
    return {"adm" if isinstance(net, ADM) else "unet": net.config.to_dict()}


def part_bank(config: dict, tensors: dict[str, torch.Tensor]) -> CaptionBank:
    """The conditioning of a part: its stored caption bank, or, for an imported teacher (no ``captions.*`` tensors),
    :meth:`CaptionBank.one_hot` of its classes (unconditional: a 1-wide zero condition the network ignores)."""
    if any(k.startswith("captions.") for k in tensors) or section_of(config) == "unet":
        return CaptionBank.from_tensors(tensors)
    adm = config["adm_decoder"]["adm"] if "adm_decoder" in config else config["adm"]
    classes = int(adm.get("num_classes", 0))
    return CaptionBank.one_hot(classes) if classes else CaptionBank.unconditional(embed_dim=1)
