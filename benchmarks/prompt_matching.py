"""How often prompt matching recognises the asked class on the tuning prompts, text only (no generation); the
protocol is ``PAGE_INTRO``, which heads the ``--md`` page. Usage::

    python benchmarks/prompt_matching.py --md docs/generation/prompt-matching.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from pagoda_inverse.core.model import load_model
from pagoda_inverse.core.text import TextEncoder, class_phrase_embeddings
from pagoda_inverse.datasets.captions import class_phrases, content_words, prompt_list

PAGE_INTRO = (
    "Text only, no generation. The held-out prompts share no content word with the phrase bank "
    "(`tests/data/test_prompt_lists.py`); to see the tuning prompts the same way, each is matched with the bank less "
    "every phrase sharing a content word with it (*per prompt*) or with any tuning prompt (*all tuning words*, "
    "harsher than the held-out rule). *Captions only*: the 400 training captions alone vote. "
    "`CaptionBank.recognise`'s `k` is chosen here: the `k` whose worse phrase-bank column is best."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fmnist")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 3, 5, 8])
    parser.add_argument("--md", type=Path, default=None, help="also write the table as a markdown page")
    args = parser.parse_args()
    bank = load_model(args.model).bank
    rows = prompt_list("tuning")
    labels = torch.tensor([label for label, _ in rows])
    prompts = TextEncoder().encode([prompt for _, prompt in rows])
    phrase_emb, phrase_labels = class_phrase_embeddings()
    phrase_words = [content_words(p) for _, p in class_phrases()]
    own_words = [content_words(prompt) for _, prompt in rows]
    tuning_words = set().union(*own_words)
    all_tuning = torch.tensor([not (w & tuning_words) for w in phrase_words])
    lines = [
        f"{len(rows)} tuning prompts; phrase bank of {len(phrase_words)} phrases, {int(all_tuning.sum())} of them "
        "without a tuning word. Share of the prompts whose class is recognised:",
        "",
        "| k | captions only | phrase bank, per prompt | phrase bank, all tuning words |",
        "| ---: | ---: | ---: | ---: |",
    ]
    # Per prompt: the bank less the phrases sharing a content word with that prompt.
    keeps = [torch.tensor([not (w & own) for w in phrase_words]) for own in own_words]
    for k in args.k:
        captions = bank.recognise(prompts, k).eq(labels).double().mean()
        harsh = bank.recognise(prompts, k, (phrase_emb[all_tuning], phrase_labels[all_tuning]))
        per_prompt = torch.cat([bank.recognise(prompts[i : i + 1], k, (phrase_emb[keep], phrase_labels[keep]))
                                for i, keep in enumerate(keeps)]).eq(labels).double().mean()  # fmt: skip
        harsh = harsh.eq(labels).double().mean()
        lines.append(f"| {k} | {float(captions):.3f} | {float(per_prompt):.3f} | {float(harsh):.3f} |")
    print("\n".join(lines))
    if args.md:
        command = "python benchmarks/prompt_matching.py " + " ".join(sys.argv[1:])
        args.md.write_text(f"# Prompt matching on the tuning prompts\n\nCommand: `{command}`\n\n{PAGE_INTRO}\n\n"
                           + "\n".join(lines) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
