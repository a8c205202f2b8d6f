"""Prompt control on free-text prompts: the share of one-step samples that ``fmnist-clf`` puts in the asked class.

For every prompt of a list (``--list tuning``: ``datasets/prompts-tuning.txt``, to choose settings; ``--list heldout``:
``datasets/prompts-heldout.txt``, to report), ``--samples`` seeds are generated at the model's recommended guidance
(or at each ``--cfg`` scale) from: the prompt's embedding as it is (``raw``); the asked class's own condition (what
``--class`` gives, the ceiling of any prompt matching on these seeds); the embedding snapped onto the training
captions (:meth:`~pagoda_inverse.core.text.CaptionBank.snap`) with each ``k`` asked for, the class voted for by the
training captions alone and by the captions with the phrase bank ``datasets/class-phrases.txt``; and the canonical
caption of the class the phrase bank votes for (``model.prompt_condition``, the CLI's default). The ``class
recognised`` column is the share of prompts read as the asked class. Usage::

    python benchmarks/prompts.py --list tuning --k 1 3 5
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from pagoda_inverse.control.generate import generate
from pagoda_inverse.core.classifier import classify, load_classifier
from pagoda_inverse.core.model import load_model
from pagoda_inverse.core.text import TextEncoder, class_phrase_embeddings
from pagoda_inverse.datasets import FMNIST_CLASSES
from pagoda_inverse.datasets.captions import prompt_list


@torch.no_grad()
def on_class(model, clf, cond: torch.Tensor, labels: torch.Tensor, samples: int, cfg: float) -> torch.Tensor:
    """``[P]`` share of ``samples`` seeds classified as each prompt's label (seeds 0 .. samples-1 for every prompt)."""
    rows = cond.repeat_interleave(samples, 0)
    seeds = list(range(samples)) * len(cond)
    pred = classify(clf, generate(model, rows, seeds, cfg_scale=cfg))[1].reshape(len(cond), samples)
    return (pred == labels[:, None]).double().mean(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", choices=["tuning", "heldout"], required=True, help="datasets/prompts-LIST.txt")
    parser.add_argument("--model", default="fmnist")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--k", type=int, nargs="+", default=[1])
    parser.add_argument("--cfg", type=float, nargs="+", default=None, help="guidance scales (default: the model's)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--md", type=Path, default=None, help="also write the table as a markdown page")
    args = parser.parse_args()
    model, clf = load_model(args.model), load_classifier("fmnist-clf")
    default_cfg = float(model.generation_defaults.get("cfg_scale", 1.0))
    scales = args.cfg or [default_cfg]
    rows = prompt_list(args.list)
    labels = torch.tensor([label for label, _ in rows])
    emb = TextEncoder().encode([prompt for _, prompt in rows])
    phrases = class_phrase_embeddings()
    snapped = {}
    for k in args.k:
        snapped[f"snapped to the captions, k={k}"] = model.bank.snap(emb, k)
        snapped[f"snapped with the phrase bank, k={k}"] = model.bank.snap(emb, k, phrases)
        recognised = model.bank.recognise(emb, k, phrases)
        snapped[f"canonical caption of the class the phrase bank votes for, k={k}"] = model.class_condition(recognised)
    variants = {"raw": emb, "the asked class itself (as --class)": model.class_condition(labels)} | snapped
    results = {
        (cfg, name): on_class(model, clf, cond, labels, args.samples, cfg)
        for cfg in scales
        for name, cond in variants.items()
    }
    lines = [
        f"{len(rows)} prompts of `datasets/prompts-{args.list}.txt`, {args.samples} seeds each, model `{args.model}` "
        f"(recommended CFG {default_cfg:g}); on-class: the share of samples `fmnist-clf` puts in the asked class.",
        "",
        "| CFG | conditioning | class recognised | on-class | worst class | worst prompt |",
        "| ---: | --- | ---: | ---: | --- | --- |",
    ]
    for (cfg, name), acc in results.items():
        per_class = {c: float(acc[labels == c].mean()) for c in labels.unique().tolist()}
        worst_c = min(per_class, key=per_class.get)
        worst = int(acc.argmin())
        recognised = (
            f"{float(model.bank.caption_class(snapped[name]).eq(labels).double().mean()):.3f}"
            if name in snapped
            else "-"
        )
        lines.append(f"| {cfg:g} | {name} | {recognised} | {float(acc.mean()):.3f} | {FMNIST_CLASSES[worst_c]} "
                     f"{per_class[worst_c]:.2f} | '{rows[worst][1]}' {float(acc[worst]):.2f} |")  # fmt: skip
    print("\n".join(lines))
    if args.md:
        command = "python benchmarks/prompts.py " + " ".join(sys.argv[1:])
        args.md.write_text(
            f"# Prompt control: `prompts-{args.list}.txt`\n\nCommand: `{command}`\n\n<!-- --8<-- [start:table] -->\n"
            + "\n".join(lines)
            + "\n<!-- --8<-- [end:table] -->\n"
        )
    if args.json:
        out = [
            {"cfg": cfg, "conditioning": name, "mean": float(acc.mean()), "per_prompt": acc.tolist()}
            for (cfg, name), acc in results.items()
        ]
        args.json.write_text(json.dumps({"list": args.list, "samples": args.samples,
                                         "prompts": rows, "results": out}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
