"""The free-text prompt lists (datasets/prompts-*.txt): well formed, held-out list large enough, no content word of a
training template, and no prompt in both lists."""

import re

from pagoda_inverse.datasets.captions import CLASS_SYNONYMS, TRAIN_TEMPLATES, prompt_list

FUNCTION_WORDS = {"a", "an", "of", "on", "and", "the", "for", "with", "to", "in", "you", "my", "some", "is", "this"}


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
