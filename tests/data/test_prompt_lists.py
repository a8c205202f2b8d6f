"""The free-text prompt lists (datasets/prompts-*.txt) and the phrase bank (datasets/class-phrases.txt): well formed,
held-out list large enough, no content word of a training template, no prompt in both lists, and no content word of
the held-out list in the phrase bank (class nouns of the training captions and their plurals aside)."""

import re

from pagoda_inverse.datasets.captions import (
    CLASS_SYNONYMS,
    FUNCTION_WORDS,
    TRAIN_TEMPLATES,
    class_phrases,
    content_words,
    prompt_list,
)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z][a-z'-]*", text.lower()))


def test_prompt_lists_are_held_apart_from_the_templates_and_each_other():
    template_words = set().union(*(_words(t) for t in TRAIN_TEMPLATES)) - FUNCTION_WORDS
    tuning, heldout = prompt_list("tuning"), prompt_list("heldout")
    assert len(heldout) >= 50 and len(tuning) >= 30
    for rows in (tuning, heldout):
        assert {label for label, _ in rows} == set(CLASS_SYNONYMS)  # every class asked for
        assert not [p for _, p in rows if _words(p) & template_words]
    assert not {p for _, p in tuning} & {p for _, p in heldout}
    assert len({p for _, p in heldout}) == len(heldout)


def test_phrase_bank_shares_no_content_word_with_the_heldout_prompts():
    phrases = class_phrases()
    heldout_words = set().union(*(content_words(p) for _, p in prompt_list("heldout")))
    assert not [p for _, p in phrases if content_words(p) & heldout_words]
    counts = {c: sum(label == c for label, _ in phrases) for c in CLASS_SYNONYMS}
    assert min(counts.values()) >= 50, counts  # every class well covered
    assert len({p for _, p in phrases}) == len(phrases)
