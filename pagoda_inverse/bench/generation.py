"""Generation benchmark: sample with each sampler, score the samples in the evaluation classifier's features.

Metrics (all computed here from the samples, never cached): FD-FMNIST and KID-FMNIST between the samples'
and the reference split's penultimate ``fmnist-clf`` features, control accuracy (share of samples classified as
the requested class, overall and per class), samples per second and network evaluations per sample.

Sample ``i`` uses seed ``seeds[i]`` for its noise and requests condition ``i mod n`` (class ``i mod 10``, or the
``i mod n``-th held-out caption), so every sampler sees the same seeds and a balanced set of conditions.

Samplers (``sampler = ...`` in a task's ``[samplers.LABEL]`` table):

- ``onestep``: PaGoDA's one-step G of ``model`` (1 network evaluation per sample; with CFG 2, plus 1 for the
  guidance map when the model has one);
- ``heun``: the Heun PF-ODE sampler of ``model``'s teacher (``num_steps`` grid points); samples below the
  evaluation resolution are up-sampled bicubically (e.g. the 8x8 teacher of ``fmnist``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from pagoda_inverse.bench.engine import peak_memory_mb
from pagoda_inverse.control.generate import generate
from pagoda_inverse.core.classifier import classify, load_classifier
from pagoda_inverse.core.generator import one_step_nfe
from pagoda_inverse.core.model import load_model
from pagoda_inverse.train.config import DataConfig
from pagoda_inverse.train.data import load_images
from pagoda_inverse.utils import metrics as M
from pagoda_inverse.utils.device import synchronize
from pagoda_inverse.utils.errors import UserError


def sample_conditions(model, kind: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cond [count, D], requested labels [count])``: class ``i mod 10`` (canonical caption) or the ``i mod n``-th
    held-out caption phrasing (embeddings stored in the model, no text encoder needed)."""
    i = torch.arange(count)
    if kind == "class":
        labels = i % model.bank.num_classes
        return model.class_condition(labels), labels
    if kind == "prompt":
        j = i % len(model.bank.heldout_labels)
        return model.bank.heldout_embeddings[j], model.bank.heldout_labels[j].cpu()
    raise UserError(f"unknown condition kind {kind!r}; choose 'class' or 'prompt'")


def run_sampler(
    params: dict, default_model: str, cond_kind: str, seeds: tuple[int, ...], cfg_scale: float, resolution: int,
    callback: Callable[[dict], None] | None = None, device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, float, int]:  # fmt: skip
    """Samples of one sampler at ``resolution``: ``(samples [N, C, R, R] on the CPU, requested labels, seconds,
    NFE/sample)``; the sampler runs on ``device`` and its time is measured to the end of the device work."""
    kind = params.get("sampler")
    model = load_model(params.get("model", default_model)).to(device)
    cond, labels = sample_conditions(model, cond_kind, len(seeds))
    num_steps = int(params.get("num_steps", 18))
    start = time.perf_counter()
    samples = generate(
        model, cond, list(seeds), cfg_scale=cfg_scale, sampler=kind, num_steps=num_steps, callback=callback
    )
    if samples.shape[-1] != resolution:  # a low-resolution teacher: bicubic up-sampling to the evaluation size
        samples = F.interpolate(samples, size=(resolution, resolution), mode="bicubic", align_corners=False)
        samples = samples.clamp(-1, 1)
    synchronize(device)
    seconds = time.perf_counter() - start
    samples = samples.cpu()
    guided = 2 if cfg_scale != 1.0 else 1
    nfe = one_step_nfe(model, cfg_scale) if kind == "onestep" else guided * (2 * num_steps - 1)
    return samples, labels, seconds, nfe


def run_generation(
    spec,
    *,
    samplers: list[str] | None = None,
    model: str | None = None,
    limit: int | None = None,
    seeds: tuple[int, ...] | None = None,
    keep: int = 10,
    inception: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: torch.device | str = "cpu",
    callback: Callable[[dict], None] | None = None,
) -> dict:
    """Run a generation task (:class:`pagoda_inverse.bench.tasks.GenerationSpec`); same result layout as
    :func:`pagoda_inverse.bench.engine.run_task`: ``{"task", "images", "scores", "examples", "timing"}``.

    :param samplers: labels of the task's samplers to run (default: all, in the file's order).
    :param model: replaces the task's model for the samplers that do not name their own.
    :param limit: only the first ``limit`` samples; ``seeds`` replaces the task's seed range.
    :param keep: leading samples per sampler kept for the report grid.
    :param inception: Inception features (:class:`~pagoda_inverse.bench.backbones.InceptionFeatures`, from a
        weights file the user passed) for FID against the same reference split; ``None``: no FID.
    :param device: where the samplers run (the noise is drawn on the CPU per seed; scoring runs on the CPU).
    """
    start = time.perf_counter()
    labels_run = samplers or list(spec.samplers)
    unknown = [s for s in labels_run if s not in spec.samplers]
    if unknown:
        raise UserError(f"unknown sampler(s) {unknown} for task {spec.name}; valid: {', '.join(spec.samplers)}")
    seed_list = spec.run_seeds(limit, seeds)
    clf = load_classifier(spec.classifier)
    # The reference split, loaded once: fmnist-clf features for FD/KID, Inception features for FID.
    ref_images, _ = load_images(DataConfig(dataset=spec.dataset), spec.split)
    ref = classify(clf, ref_images)[0]
    fid_ref = inception(ref_images) if inception is not None else None
    scores, examples, sampler_seconds = {}, {}, 0.0
    for label in labels_run:
        samples, requested, seconds, nfe = run_sampler(
            spec.samplers[label], model or spec.model, spec.condition, seed_list, spec.cfg_scale, clf.config.resolution,
            callback=callback, device=device,
        )  # fmt: skip
        sampler_seconds += seconds
        feats, pred = classify(clf, samples)
        correct = (pred == requested).double()
        per_class = [
            float(correct[requested == c].mean()) if (requested == c).any() else None
            for c in range(clf.config.num_classes)
        ]
        s = {"accuracy": float(correct.mean()), "accuracy_per_class": per_class}
        if "fd" in spec.metrics:
            s["fd"] = M.frechet_distance(feats, ref)
        if "kid" in spec.metrics:
            s["kid"], s["kid_std"] = M.kernel_distance(feats, ref)
        if fid_ref is not None:
            s["fid"] = M.frechet_distance(inception(samples), fid_ref)
        s |= {"samples_per_second": len(samples) / seconds, "seconds_per_image": seconds / len(samples)}
        scores[label] = s | {"nfe": nfe, "images": len(samples)}
        examples[label] = samples[:keep]
    total = time.perf_counter() - start
    return {
        "task": spec.to_dict(),
        "images": len(seed_list),
        "scores": scores,
        "examples": examples,
        "timing": {
            "total_seconds": total,
            "solver_seconds": sampler_seconds,
            "engine_overhead": (total - sampler_seconds) / total,
            "peak_memory_mb": peak_memory_mb(torch.device(device)),
        },
    }
