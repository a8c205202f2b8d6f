"""Caption templates x class synonyms for text-conditioned Fashion-MNIST.

Training captions are every ``TRAIN_TEMPLATES`` x ``CLASS_SYNONYMS[label]`` pair; ``HELDOUT_TEMPLATES`` are
phrasings never seen in training, for measuring how well prompt control generalises. The empty string
:data:`NULL_CAPTION` is the unconditional prompt used by classifier-free guidance. Indefinite articles are fixed
after filling a template (``"a photo of a ankle boot"`` -> ``"a photo of an ankle boot"``).
"""

from __future__ import annotations

import operator
import re

import torch

__all__ = [
    "CLASS_SYNONYMS",
    "FUNCTION_WORDS",
    "HELDOUT_TEMPLATES",
    "NULL_CAPTION",
    "TRAIN_TEMPLATES",
    "all_captions",
    "canonical_caption",
    "captions_for",
    "class_phrases",
    "content_words",
    "prompt_list",
]

#: Natural names per label (see ``FMNIST_CLASSES``); the first one is canonical. Plural garments are phrased as
#: "pair of ..." so that every template reads with a singular article.
CLASS_SYNONYMS: dict[int, tuple[str, ...]] = {
    0: ("t-shirt", "top", "tee", "tank top"),
    1: ("pair of trousers", "pair of pants", "pair of jeans", "pair of slacks"),
    2: ("pullover", "sweater", "jumper", "knit sweater"),
    3: ("dress", "gown", "long dress", "summer dress"),
    4: ("coat", "jacket", "overcoat", "parka"),
    5: ("sandal", "flip-flop", "open-toe shoe", "summer sandal"),
    6: ("shirt", "button-up shirt", "blouse", "collared shirt"),
    7: ("sneaker", "sports shoe", "running shoe", "athletic shoe"),
    8: ("bag", "handbag", "purse", "tote bag"),
    9: ("ankle boot", "boot", "short boot", "bootie"),
}

#: Phrasings used to train; ``{}`` is replaced by a synonym. The first one gives the canonical caption.
TRAIN_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}",
    "a {} on a plain background",
    "a grayscale picture of a {}",
    "{}",
    "a picture of a {}",
    "a black and white photo of a {}",
    "a low-resolution image of a {}",
    "a small {}",
    "a catalog image of a {}",
    "a centered photo of a {}",
)

#: Phrasings never used in training (evaluation of prompt generalisation only).
HELDOUT_TEMPLATES: tuple[str, ...] = (
    "an image showing a {}",
    "product shot of a {}",
    "this is a {}",
    "a thumbnail of a {}",
)

#: The unconditional prompt (classifier-free guidance, condition dropout).
NULL_CAPTION = ""

_SPLITS = ("train", "heldout")
_WORD = re.compile(r"[a-z][a-z'-]*")
_ARTICLE = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")


def _fill(template: str, synonym: str) -> str:
    return _ARTICLE.sub(r"\1n ", template.format(synonym))


def _check_label(label: int) -> int:
    try:
        idx = operator.index(label)  # ints, numpy ints and 0-d integer tensors
    except TypeError:
        idx = None
    if idx is None or idx not in CLASS_SYNONYMS:
        raise ValueError(f"unknown class label {label!r}; Fashion-MNIST labels are 0-{len(CLASS_SYNONYMS) - 1}")
    return idx


def _templates(split: str) -> tuple[str, ...]:
    if split == "train":
        return TRAIN_TEMPLATES
    if split == "heldout":
        return HELDOUT_TEMPLATES
    raise ValueError(f"unknown caption split {split!r}; use one of {_SPLITS}")


def canonical_caption(label: int) -> str:
    """The canonical caption of a class: the first training template with the first synonym.

    :param int label: class label in ``[0, 9]``.
    :return: e.g. ``"a photo of an ankle boot"`` for label 9.
    :raises ValueError: unknown label.

    >>> canonical_caption(9)
    'a photo of an ankle boot'
    >>> canonical_caption(1)
    'a photo of a pair of trousers'
    """
    return _fill(TRAIN_TEMPLATES[0], CLASS_SYNONYMS[_check_label(label)][0])


def captions_for(label: int, split: str = "train") -> list[str]:
    """All captions of one class: templates x synonyms, template-major (index 0 is the canonical caption).

    :param int label: class label in ``[0, 9]``.
    :param str split: ``"train"`` (``TRAIN_TEMPLATES``) or ``"heldout"`` (``HELDOUT_TEMPLATES``).
    :return: ``len(templates) * len(CLASS_SYNONYMS[label])`` distinct strings.
    :raises ValueError: unknown label or split.

    >>> captions_for(8, "heldout")[:2]
    ['an image showing a bag', 'an image showing a handbag']
    """
    templates = _templates(split)
    synonyms = CLASS_SYNONYMS[_check_label(label)]
    return [_fill(t, s) for t in templates for s in synonyms]


def all_captions(split: str = "train") -> tuple[list[str], torch.Tensor]:
    """Every caption of a split for all classes, class by class, with their labels.

    :param str split: ``"train"`` or ``"heldout"``.
    :return: ``(captions, labels)``: ``M`` strings and an ``int64`` tensor ``[M]`` of their class labels, sorted.
    :raises ValueError: unknown split.

    >>> caps, labels = all_captions("heldout")
    >>> len(caps) == labels.shape[0], labels[0].item(), caps[0]
    (True, 0, 'an image showing a t-shirt')
    """
    captions: list[str] = []
    labels: list[int] = []
    for label in sorted(CLASS_SYNONYMS):
        caps = captions_for(label, split)
        captions += caps
        labels += [label] * len(caps)
    return captions, torch.tensor(labels, dtype=torch.int64)


#: Words that carry no content, left out when prompt lists and the phrase bank are compared word by word.
FUNCTION_WORDS = frozenset(
    {"a", "an", "of", "on", "and", "the", "for", "with", "to", "in", "you", "my", "some", "is", "this"}
)


_CLASS_NOUNS = frozenset(
    word + ending
    for names in CLASS_SYNONYMS.values()
    for name in names
    for word in _WORD.findall(name)
    for ending in ("", "s", "es")
)


def content_words(text: str) -> set[str]:
    """The content words of a prompt or phrase: its lowercase words less :data:`FUNCTION_WORDS` and the class nouns
    of the training captions (the words of :data:`CLASS_SYNONYMS`) with their plurals.

    >>> sorted(content_words("a pair of comfy jeans for hiking boots"))
    ['comfy', 'hiking']
    """
    return set(_WORD.findall(text.lower())) - FUNCTION_WORDS - _CLASS_NOUNS


def _labelled_lines(filename: str) -> list[tuple[int, str]]:
    """``label<TAB>text`` rows of a text file shipped beside this module (``#`` lines are comments)."""
    from importlib.resources import files

    rows = []
    for line in (files(__package__) / filename).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            label, text = line.split("\t")
            rows.append((_check_label(int(label)), text))
    return rows


def prompt_list(name: str) -> list[tuple[int, str]]:
    """A list of free-text prompts shipped beside this module, ``prompts-<name>.txt``: ``"tuning"`` (settings may be
    chosen on it) or ``"heldout"`` (only measured on). Lines are ``label<TAB>prompt``; ``#`` lines are comments.

    :return: ``(label, prompt)`` pairs in file order.

    >>> len(prompt_list("heldout")), prompt_list("heldout")[0]
    (60, (0, 'graphic tee with short sleeves'))
    """
    return _labelled_lines(f"prompts-{name}.txt")


def class_phrases() -> list[tuple[int, str]]:
    """The phrase bank ``class-phrases.txt``: everyday wordings of each class (synonyms, materials, parts, uses),
    which :meth:`~pagoda_inverse.core.text.CaptionBank.snap` adds to the training captions when it recognises the
    class of a free-text prompt. Training-side data: it shares no content word with ``prompts-heldout.txt``.

    :return: ``(label, phrase)`` pairs in file order.
    """
    return _labelled_lines("class-phrases.txt")
