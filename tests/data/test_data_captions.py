"""Caption templates x synonyms."""

from __future__ import annotations

import re

import pytest

from pagoda_inverse.datasets import (
    CLASS_SYNONYMS,
    FMNIST_CLASSES,
    HELDOUT_TEMPLATES,
    NULL_CAPTION,
    TRAIN_TEMPLATES,
    all_captions,
    canonical_caption,
    captions_for,
)


def test_every_class_has_synonyms():
    assert sorted(CLASS_SYNONYMS) == list(range(len(FMNIST_CLASSES)))
    for syns in CLASS_SYNONYMS.values():
        assert 3 <= len(syns) <= 5 and len(set(syns)) == len(syns)
    all_syns = [s for syns in CLASS_SYNONYMS.values() for s in syns]
    assert len(set(all_syns)) == len(all_syns)  # no synonym shared by two classes


def test_templates():
    assert len(TRAIN_TEMPLATES) >= 8 and len(HELDOUT_TEMPLATES) >= 3
    for t in (*TRAIN_TEMPLATES, *HELDOUT_TEMPLATES):
        assert t.count("{}") == 1
    assert not set(TRAIN_TEMPLATES) & set(HELDOUT_TEMPLATES)
    assert NULL_CAPTION == ""


def test_heldout_captions_disjoint_from_train():
    train, _ = all_captions("train")
    heldout, _ = all_captions("heldout")
    assert not set(train) & set(heldout)
    assert NULL_CAPTION not in train and NULL_CAPTION not in heldout


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_all_captions_cover_every_class(split):
    caps, labels = all_captions(split)
    templates = TRAIN_TEMPLATES if split == "train" else HELDOUT_TEMPLATES
    assert len(caps) == labels.shape[0] == len(set(caps))
    for label, syns in CLASS_SYNONYMS.items():
        assert int((labels == label).sum()) == len(templates) * len(syns)
        assert [c for c, lab in zip(caps, labels.tolist(), strict=True) if lab == label] == captions_for(label, split)


def test_canonical_captions():
    canon = [canonical_caption(c) for c in range(10)]
    assert canon[9] == "a photo of an ankle boot"
    assert canon[0] == "a photo of a t-shirt"
    assert len(set(canon)) == 10
    for c in range(10):
        assert captions_for(c)[0] == canon[c]


def test_articles():
    caps = all_captions("train")[0] + all_captions("heldout")[0]
    assert not [c for c in caps if re.search(r"\ba [aeiou]", c)]
    assert "an image showing an overcoat" in captions_for(4, "heldout")


def test_bad_inputs():
    with pytest.raises(ValueError, match="10"):
        canonical_caption(10)
    with pytest.raises(ValueError, match="label"):
        captions_for("boot")
    with pytest.raises(ValueError, match="'val'"):
        captions_for(0, "val")
