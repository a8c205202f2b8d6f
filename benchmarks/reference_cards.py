"""Model cards of the reference models `fmnist-clf` and `fmnist-fullres`, written from their run folders.

Everything in a card is read or computed here: parameters and configs from the checkpoints, training time from
the run's log, the classifier's test accuracy (recomputed per class on the full test split), and the generation
metrics from a `pagoda-inv bench --task generate_class` results.json when one is given.

Usage (after scripts/train_reference.sh has trained both):
    python benchmarks/reference_cards.py --clf-run runs/00006-classifier-fmnist \
        --fullres-run runs/00005-teacher-fmnist-fullres --generation docs/generation/*/results.json
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch
from core import run_seconds

from pagoda_inverse.core.checkpoint import load_checkpoint
from pagoda_inverse.core.classifier import classify, load_classifier
from pagoda_inverse.train.config import DataConfig, from_dict
from pagoda_inverse.train.data import load_images

DATA = (
    "Fashion-MNIST train split (60,000 images, Debian package `dataset-fashion-mnist`, MIT licence, Zalando SE), "
    "28 px padded to 32"
)


SHARED = " (wall time; other jobs ran on the same 2 cores during this run, so alone it takes less)"


def classifier_card(run: Path, shared: bool) -> str:
    clf = load_classifier(str(run / "classifier"))
    _, config = load_checkpoint(run / "classifier")
    train = from_dict("classifier", config["train"])
    images, labels = load_images(DataConfig(), "test")
    _, pred = classify(clf, images)
    per_class = [(pred[labels == c] == c).double().mean().item() for c in range(10)]
    params = sum(p.numel() for p in clf.parameters())
    lines = [
        "# fmnist-clf: evaluation classifier on 32x32 Fashion-MNIST (FD/KID-FMNIST features, control accuracy)",
        "",
        f"- Data: {DATA}; random flips and translations by up to {train.shift:.3g} of the size.",
        f"- Network: 3 conv stages (GroupNorm, ReLU, max-pooling) -> {config['classifier']['feature_dim']}-d "
        f"penultimate features (used for FD/KID) -> 10 logits; {params:,} parameters.",
        f"- Training: `pagoda-inv train classifier --preset fmnist` ({train.loop.steps} steps x batch "
        f"{train.loop.batch_size}, AdamW, cosine decay) on the 2-core CPU machine: "
        f"**{run_seconds(run) / 60:.1f} min**{SHARED if shared else ''}.",
        "- Use: `load_classifier('fmnist-clf')`; the generation tasks (`pagoda-inv bench --task generate`) report "
        "FD-FMNIST / KID-FMNIST in its features (not FID: no Inception weights offline) and control accuracy.",
        f"- Card: `python benchmarks/reference_cards.py --clf-run {run} ...`",
        "",
        "| quantity | value |",
        "| --- | --- |",
        f"| test accuracy (10,000 test images) | {100 * (pred == labels).double().mean().item():.2f}% |",
    ]
    lines += [f"| test accuracy, class {c} | {100 * a:.1f}% |" for c, a in enumerate(per_class)]
    return "\n".join(lines) + "\n"


def fullres_card(run: Path, generation: list[Path], shared: bool) -> str:
    tensors, config = load_checkpoint(run / "teacher")
    train = from_dict("teacher", config["train"])
    unet = config["unet"]
    params = sum(v.numel() for k, v in tensors.items() if k.startswith("net."))
    losses = re.findall(r"loss ([\d.]+)", (run / "log.txt").read_text())
    lines = [
        "# fmnist-fullres: EDM model trained directly at 32x32 (the peers' prior and the generation reference)",
        "",
        f"- Data: {DATA}; the same caption conditioning as `fmnist` (all-MiniLM-L6-v2 embeddings, condition "
        f"dropout {train.cond_dropout}).",
        f"- Network: the `fmnist` teacher's U-Net at 32x32, channels {unet['channels']} x {unet['channel_mult']}, "
        f"{unet['num_blocks']} block(s) per level, attention at {unet['attn_resolutions']}; {params:,} parameters.",
        f"- Training: `pagoda-inv train teacher --preset fmnist-fullres` ({train.loop.steps} steps x batch "
        f"{train.loop.batch_size}, EDM loss, EMA {train.loop.ema_decay}) on the 2-core CPU machine: "
        f"**{run_seconds(run) / 60:.1f} min**{SHARED if shared else ''}; last logged loss {losses[-1] if losses else 'n/a'}.",
        "- Sampler: Heun PF-ODE, 18 grid points (35 network evaluations, 70 with CFG).",
        f"- Card: `python benchmarks/reference_cards.py --fullres-run {run} ...`",
        "",
    ]
    if generation:
        lines += ["Generation (CFG 2; FD/KID against the 10,000 test images; from "
                  + ", ".join(f"`{g}`" for g in generation) + "):", "",
                  "| task | samples | sampler | FD-FMNIST | KID-FMNIST | control accuracy | samples/s |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for path in generation:
            for r in json.loads(path.read_text())["results"]:
                for label, s in r["scores"].items():
                    lines.append(
                        f"| {r['task']['name']} | {s['images']} | {label} | {s.get('fd', float('nan')):.3f} | "
                        f"{s.get('kid', float('nan')):.4f} | {100 * s['accuracy']:.1f}% | "
                        f"{s['samples_per_second']:.1f} |"
                    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clf-run", type=Path)
    parser.add_argument("--fullres-run", type=Path)
    parser.add_argument("--generation", type=Path, nargs="*", default=[], help="results.json of generation benches")
    parser.add_argument("--out", type=Path, default=Path("docs/models"))
    parser.add_argument("--shared-cores", action="store_true", help="say that the runs shared the CPU")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(False)
    if args.clf_run:
        (args.out / "fmnist-clf.md").write_text(classifier_card(args.clf_run, args.shared_cores))
        print(args.out / "fmnist-clf.md")
    if args.fullres_run:
        (args.out / "fmnist-fullres.md").write_text(fullres_card(args.fullres_run, args.generation, args.shared_cores))
        print(args.out / "fmnist-fullres.md")


if __name__ == "__main__":
    main()
