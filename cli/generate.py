"""``pagoda-inv generate``: class- or prompt-conditioned samples, one-step G or the teacher's Heun sampler."""

from __future__ import annotations

from pathlib import Path

import typer

from pagoda_inverse.cli.options import DeviceOpt, ModelOpt, PreviewOpt, parse_int_list

EPILOG = """Examples:

  pagoda-inv generate --class 9 --seeds 0-63 --out boots.png

  pagoda-inv generate --class 9 --seeds 0-999 --out-dir boots/ --tensor boots.safetensors

  pagoda-inv generate --prompt "a pair of jeans" --cfg 2 --out jeans.png

  pagoda-inv generate --class sneaker --sampler heun --out teacher.png

  pagoda-inv generate --model converted/imagenet64 --class 207 --sampler heun --steps 40 --out dogs.png
"""


def _class_index(value: str, names: tuple[str, ...], num_classes: int | None = None) -> int:
    """A class given as its index or (case-insensitively) its name; ``num_classes`` (an imported model, whose classes
    have no names here): an index below it."""
    count = len(names) if num_classes is None else num_classes
    if value.isdigit() and int(value) < count:
        return int(value)
    lowered = [n.lower() for n in names]
    if value.lower() in lowered:
        return lowered.index(value.lower())
    choices = ", ".join(f"{i}={n}" for i, n in enumerate(names)) if names else f"an index 0-{count - 1}"
    raise typer.BadParameter(f"unknown class {value!r}; choose one of: {choices}", param_hint="--class")


def _write_tensor(path: Path, x, metadata: dict) -> None:
    """``[N, C, H, W]`` samples in ``[-1, 1]`` as ``.safetensors`` (key ``samples``, ``metadata`` in the header) or
    ``.npy`` (float32, with ``metadata`` in ``PATH.json`` beside it)."""
    import json

    from pagoda_inverse.core.checkpoint import save_tensors
    from pagoda_inverse.utils.atomic import atomic_path, write_json_atomic

    if path.suffix == ".safetensors":
        save_tensors(path, {"samples": x}, {k: json.dumps(v) for k, v in metadata.items()})
        return
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, x.float().numpy())
    write_json_atomic(path.with_name(path.name + ".json"), metadata)


def generate(
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Output image (.png, .jpg/.jpeg or .webp, by its suffix): a grid of all seeds at their true size.",
        rich_help_panel="Output",
    ),
    out_dir: Path | None = typer.Option(
        None,
        "--out-dir",
        help="Folder for one PNG per seed (SEED.png, 6 digits), at the true size.",
        rich_help_panel="Output",
    ),  # fmt: skip
    tensor: Path | None = typer.Option(
        None,
        "--tensor",
        help="All samples as one [N, C, H, W] tensor in [-1, 1]: .safetensors (seeds, condition and "
        "settings in its metadata) or .npy (metadata in FILE.npy.json).",
        rich_help_panel="Output",
    ),  # fmt: skip
    class_: str | None = typer.Option(
        None, "--class", help="Class index 0-9 or name (e.g. 9 or 'ankle boot'); an imported model: its class index."
    ),
    prompt: str | None = typer.Option(None, "--prompt", help="Free-text prompt (runs the text encoder)."),
    raw_prompt: bool = typer.Option(
        False,
        "--raw-prompt",
        help="Condition on the prompt's own embedding instead of the class it is read as.",
    ),
    seeds: str = typer.Option("0-63", "--seeds", help="Seeds, e.g. 0-63 or 1,5,9; one sample each."),
    cfg: float | None = typer.Option(
        None,
        "--cfg",
        min=0.0,
        help="Classifier-free guidance scale (1 = none); a model with a guidance map takes 1 to the map's trained "
        "maximum. \\[default: the model's recommended scale (its generation.json, printed when used), else 1]",
        show_default=False,
    ),  # fmt: skip
    sampler: str = typer.Option("onestep", "--sampler", help="onestep (G, 1 NFE) or heun (teacher PF-ODE)."),
    steps: int = typer.Option(18, "--steps", min=2, help="Heun grid points (heun sampler only)."),
    model: ModelOpt = "fmnist",
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace existing output files.", rich_help_panel="Output"
    ),
    preview_scale: PreviewOpt = 1,
    device: DeviceOpt = None,
) -> None:
    """Generate samples conditioned on a class or a prompt: a PNG grid, one PNG per seed, and/or one tensor file."""
    if class_ is not None and prompt is not None:
        raise typer.BadParameter("give --class or --prompt, not both", param_hint="--class/--prompt")
    if out is None and out_dir is None and tensor is None:
        raise typer.BadParameter(
            "give at least one of --out GRID.png, --out-dir DIR, --tensor FILE", param_hint="--out"
        )
    if tensor is not None and tensor.suffix not in (".safetensors", ".npy"):
        raise typer.BadParameter(f"{tensor}: write .safetensors or .npy", param_hint="--tensor")
    seed_list = parse_int_list(seeds)
    from pagoda_inverse.utils.atomic import check_output_folder, check_output_path
    from pagoda_inverse.utils.images import image_format

    if out is not None:
        image_format(out)  # the suffix names the format: .png, .jpg/.jpeg or .webp
    preview = (
        out.with_name(f"{out.stem}-x{preview_scale}{out.suffix}") if out is not None and preview_scale > 1 else None
    )
    targets = [p for p in (out, preview, tensor) if p is not None]
    targets += [out_dir / f"{seed:06d}.png" for seed in seed_list] if out_dir is not None else []
    # Missing folders are created when the samples are written; a file in their way is refused now.
    for path, option in ((out, "--out"), (preview, "--out"), (tensor, "--tensor")):
        if path is not None:
            check_output_path(path, option)
    if out_dir is not None:
        check_output_folder(out_dir, "--out-dir")
    for path in targets:
        if path.exists() and not overwrite:
            raise typer.BadParameter(f"{path} exists; pass --overwrite to replace it", param_hint="--out")
    import time

    import torch

    from pagoda_inverse.cli.display import console
    from pagoda_inverse.control.generate import generate as generate_samples
    from pagoda_inverse.control.generate import recommended_cfg_scale
    from pagoda_inverse.core.model import load_model
    from pagoda_inverse.core.parts import section_of
    from pagoda_inverse.datasets import FMNIST_CLASSES
    from pagoda_inverse.utils.device import resolve_device
    from pagoda_inverse.utils.images import save_grid, save_image

    m = load_model(model).to(resolve_device(device))
    imported = section_of(m.config) != "unet"  # a converted model: classes by index (one-hot), no names or prompts
    if imported and prompt is not None:
        raise typer.BadParameter(f"{model}: an imported model takes no prompt; use --class", param_hint="--prompt")
    if class_ is None:
        label = None
    elif imported:  # (an unconditional one: class_condition refuses --class below)
        label = _class_index(class_, (), m.bank.num_classes) if m.conditional else 0
    else:
        label = _class_index(class_, FMNIST_CLASSES)
    conditioned = label is not None or prompt is not None
    if cfg is None:  # guidance only acts on a condition: the model's recommended scale for conditioned samples
        cfg = recommended_cfg_scale(m) if conditioned else 1.0  # what generate() takes without cfg_scale
        if conditioned and "cfg_scale" in m.generation_defaults:
            why = m.generation_defaults.get("why")
            console.print(
                f"cfg {cfg:g}: the model's recommended guidance{f' ({why})' if why else ''}; --cfg 1 for none"
            )
    n = len(seed_list)
    if label is not None:
        cond = m.class_condition(torch.full((n,), label))
    elif prompt is not None:
        if raw_prompt:
            cond = m.prompt_condition([prompt], snap=False).expand(n, -1)
        else:
            read_as = int(m.prompt_labels([prompt])[0])
            cond = m.class_condition(torch.full((n,), read_as))
            console.print(
                f"prompt read as {FMNIST_CLASSES[read_as]!r} (the condition of --class {read_as}); --raw-prompt to "
                "condition on the prompt's own embedding"
            )
    else:
        cond = m.null_condition(n)
    start = time.time()
    x = generate_samples(m, cond, seed_list, cfg_scale=cfg, sampler=sampler, num_steps=steps).cpu()
    elapsed = time.time() - start
    written = []
    if out is not None:
        save_grid(x, out)
        written.append(out)
        if preview is not None:
            save_grid(x, preview, scale=preview_scale)
            written.append(preview)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for seed, image in zip(seed_list, x, strict=True):
            save_image(image, out_dir / f"{seed:06d}.png")
        written.append(out_dir)
    if tensor is not None:
        meta = {"seeds": seed_list, "class": label, "prompt": prompt, "cfg": cfg, "sampler": sampler,
                "model": str(model), "range": [-1, 1]}  # fmt: skip
        _write_tensor(tensor, x.clamp(-1, 1).cpu(), meta)
        written.append(tensor)
    where = ", ".join(map(str, written))
    console.print(f"{n} samples at {x.shape[-1]}x{x.shape[-1]} ({sampler}, cfg {cfg}) in {elapsed:.2f} s -> {where}")
