"""Run a task suite: degrade test images with per-image seeds, run each solver, score every image.

Image ``i`` of a task uses seed ``seeds[i]`` for its operator parameters (kernel, mask), its measurement noise
and (offset by ``SOLVER_SEED_OFFSET``) its solver noise, so a rerun gives identical numbers on CPU and the result
of image ``i`` does not depend on the batch it is in.
"""

from __future__ import annotations

import inspect
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from pagoda_inverse.bench.tasks import PER_IMAGE_METRICS, SET_METRICS, TaskSpec
from pagoda_inverse.core.classifier import classify, load_classifier
from pagoda_inverse.core.model import load_model
from pagoda_inverse.datasets import area_resize
from pagoda_inverse.ops import make_operator
from pagoda_inverse.solvers import SOLVERS, check_needs, solve
from pagoda_inverse.train.config import DataConfig
from pagoda_inverse.train.data import load_images
from pagoda_inverse.utils import metrics as M
from pagoda_inverse.utils.device import synchronize
from pagoda_inverse.utils.errors import NotApplicableError, UserError

SOLVER_SEED_OFFSET = 1_000_003
#: The classifier whose features the set metrics use (FD-FMNIST, as the generation bench; never called FID).
FEATURE_CLASSIFIER = "fmnist-clf"
#: The pseudo-solver row of the set metrics' floor: the run's true images, scored like one solver's samples.
REAL_ROW = "real images"
#: Fewest images a set metric is computed from (a Fréchet distance of fewer is noise); smaller runs omit it.
MIN_SET_IMAGES = 8


@dataclass
class SolverScores:
    """Per-image scores of one solver on one task (lists aligned with the task's images)."""

    values: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    nfe: int = 0
    images: int = 0
    skipped: str = ""
    features: list[list[float]] = field(default_factory=list)  # one sample's classifier features, per image
    sets: dict[str, float] = field(default_factory=dict)  # the set metrics, once every image is in

    def add(self, name: str, v: torch.Tensor) -> None:
        self.values.setdefault(name, []).extend(v.detach().cpu().tolist())

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict:
        if self.skipped:
            return {"skipped": self.skipped}
        # nan per-image values (a residual ratio where the truth fits y exactly) are left out of the mean.
        out = {name: _nanmean(v) for name, v in self.values.items()} | self.sets
        if self.images:
            out |= {"seconds_per_image": self.seconds / self.images, "nfe": self.nfe, "images": self.images}
        return out


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if v == v]
    return sum(kept) / len(kept) if kept else float("nan")


def set_metrics(scores: dict[str, SolverScores], observation: list[list[float]], reference: torch.Tensor,
                metrics: tuple[str, ...]) -> None:  # fmt: skip
    """Fill each solver's ``sets`` from its per-image sample features: ``fd_sample`` (FD-FMNIST of one sample per
    image against ``reference`` features) and ``cfid`` (conditional FD of (observation, sample) against
    (observation, truth) pairs, :func:`~pagoda_inverse.utils.metrics.conditional_frechet_distance`); the
    :data:`REAL_ROW` pseudo-solver holds the truths' features (its ``cfid`` is 0 by definition, so not shown). Runs
    of fewer than :data:`MIN_SET_IMAGES` images omit them."""
    truth = torch.tensor(scores[REAL_ROW].features, dtype=torch.float64)
    obs = torch.tensor(observation, dtype=torch.float64)
    for name, s in scores.items():
        feats = torch.tensor(s.features, dtype=torch.float64)
        if s.skipped or len(feats) < MIN_SET_IMAGES or not feats.isfinite().all():
            continue  # too few images for a distance, or non-finite samples: the metric is omitted
        if "fd_sample" in metrics:
            s.sets["fd_sample"] = M.frechet_distance(feats, reference)
        if "cfid" in metrics and name != REAL_ROW:
            s.sets["cfid"] = M.conditional_frechet_distance(feats, truth, obs)


def reference_features(task: dict) -> torch.Tensor:
    """``[N, D]`` :data:`FEATURE_CLASSIFIER` features of ``task``'s split beyond its image range (the run's own
    images, the split's first ``task["images"]``, are the real-images row, so they are not in the reference)."""
    clf = load_classifier(FEATURE_CLASSIFIER)
    data = DataConfig(dataset=task["dataset"], resolution=clf.config.resolution)
    return classify(clf, load_images(data, task["split"])[0][task["images"] :])[0]


def finish_set_metrics(scores: dict[str, SolverScores], observation: list[list[float]], task: dict) -> None:
    """Compute the set metrics once every image's features are in, then drop the features (they are not results)."""
    if any(m in task["metrics"] for m in SET_METRICS) and REAL_ROW in scores:
        set_metrics(scores, observation, reference_features(task), tuple(task["metrics"]))
    for s in scores.values():
        s.features = []


def _generators(seeds, offset: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s) + offset) for s in seeds]


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: CUDA allocator peak on GPU, the process's peak resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_task(
    spec: TaskSpec,
    *,
    solvers: list[str] | None = None,
    model: str | None = None,
    limit: int | None = None,
    seeds: tuple[int, ...] | None = None,
    batch_size: int = 32,
    keep: int = 8,
    shard: tuple[int, int] = (0, 1),
    lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    device: torch.device | str = "cpu",
    callback: Callable[[dict], None] | None = None,
    prior: str | None = None,
) -> dict:
    """Run ``spec`` and return ``{"task", "images", "scores": {solver: summary}, "per_image", "examples", "timing"}``.

    :param solvers: solvers to run (default: the task's non-optional ones, in the file's order); hyper-parameters
        from the task file.
    :param model: replaces the task's model (an embedded name or a model folder).
    :param limit: use only the first ``limit`` images; ``seeds`` replaces the task's seed range.
    :param keep: how many leading images to keep (observation, estimates, truth) for the report grids.
    :param lpips: an LPIPS metric (:class:`~pagoda_inverse.bench.backbones.LPIPSMetric`, from a weights file the
        user passed) to score every estimate with; ``None``: no LPIPS.
    :param shard: ``(rank, world_size)``: run only this rank's contiguous share of the images (``torchrun``);
        :func:`merge_shards` joins the shards' results into the single-process result.
    :param prior: the prior (model name or folder, e.g. a ``pagoda-inv convert`` folder) of every solver that takes
        one (the peers' ``prior`` hyper-parameter), replacing the task file's.
    :param device: where the model, the images and the solvers run (operator parameters and noise are still drawn
        from the images' CPU generators, so the measurements do not depend on it); a solver's time is measured to
        the end of its device work.
    """
    start = time.perf_counter()
    names = solvers or spec.default_solvers
    unknown = [n for n in names if n not in SOLVERS]
    if unknown:
        raise UserError(f"unknown solver(s) {unknown}; valid: {', '.join(SOLVERS)}")
    for name in names:  # a missing package fails the run before any work, not as a skipped row
        check_needs(name)
    seed_list = spec.run_seeds(limit, seeds)
    lo, hi = shard_bounds(len(seed_list), *shard)
    seed_list = seed_list[lo:hi]
    device = torch.device(device)
    model = load_model(model or spec.model).to(device)
    res = model.resolution
    images = load_images(DataConfig(dataset=spec.dataset, resolution=res), spec.split, limit=hi)[0][lo:]
    images = area_resize(images, res).to(device)  # area down-sampling to the model's resolution
    scores = {n: SolverScores() for n in names}
    # The set metrics score one sample per image in the classifier's features, beside the truths (the real row).
    clf = None
    if any(m in spec.metrics for m in SET_METRICS):
        clf = load_classifier(FEATURE_CLASSIFIER)
        scores[REAL_ROW] = SolverScores()
    observation: list[list[float]] = []
    examples: dict[str, torch.Tensor] = {}
    setup_seconds, solver_seconds, metric_seconds = time.perf_counter() - start, 0.0, 0.0
    for b0 in range(0, len(seed_list), batch_size):
        batch_seeds = seed_list[b0 : b0 + batch_size]
        x = images[b0 : b0 + len(batch_seeds)]
        # Degrade: per-image operator parameters and noise from the image's seed.
        op = make_operator(
            spec.operator,
            shape=tuple(x.shape[1:]),
            batch=len(x),
            seeds=batch_seeds,
            sigma_y=spec.sigma_y,
            device=device,
            **spec.operator_params,
        )
        y = op(x, generator=_generators(batch_seeds))
        if clf is not None:  # the observation's features (cfid's condition): A^+ y, the same for every solver
            observation += classify(clf, _classifier_input(op.initial_estimate(y), clf.config.resolution))[0].tolist()
            real = scores[REAL_ROW]
            real.features += classify(clf, _classifier_input(x, clf.config.resolution))[0].tolist()
            if "residual_ratio" in spec.metrics:
                real.add("residual_ratio", M.residual_ratio(op, x, x, y))
        for name in names:
            if scores[name].skipped:
                continue
            hparams = {k: v for k, v in spec.solvers.get(name, {}).items()}
            if prior is not None and "prior" in inspect.signature(SOLVERS[name].fn).parameters:
                hparams["prior"] = prior
            t0 = time.perf_counter()
            try:
                out = solve(name, model, op, y, generator=_generators(batch_seeds, SOLVER_SEED_OFFSET), **hparams)
            except NotApplicableError as err:  # the registry says it does not apply: a warning row; all else fails
                scores[name].skipped = str(err)
                continue
            synchronize(device)
            elapsed = time.perf_counter() - t0
            solver_seconds += elapsed
            s = scores[name]
            s.seconds += elapsed
            s.images += len(x)
            s.nfe = out.info["nfe"]
            t0 = time.perf_counter()
            for metric in spec.metrics:
                if metric in PER_IMAGE_METRICS:
                    s.add(metric, PER_IMAGE_METRICS[metric](op, x, y, out))
            if clf is not None:
                s.features += classify(clf, _classifier_input(out.samples[0], clf.config.resolution))[0].tolist()
            if lpips is not None:
                s.add("lpips", lpips(out.estimate, x))
            metric_seconds += time.perf_counter() - t0
            if b0 == 0:
                examples[name] = out.estimate[:keep].clamp(-1, 1).cpu()
        if b0 == 0:
            shown = y if y.shape[1:] == x.shape[1:] else F.interpolate(y, size=x.shape[-2:], mode="nearest")
            shown = shown.expand(-1, x.shape[1], -1, -1)  # a gray observation in every channel
            examples = {"observation": shown[:keep].clamp(-1, 1).cpu(), **examples, "truth": x[:keep].cpu()}
        if callback is not None:
            callback({"step": b0 + len(x), "total": len(seed_list)})
    if shard[1] == 1:  # every image is here: the set metrics now (a sharded run's come in merge_shards)
        finish_set_metrics(scores, observation, spec.to_dict())
    total = time.perf_counter() - start
    return {
        "task": spec.to_dict(),
        "images": len(seed_list),
        "scores": {n: s.summary() for n, s in scores.items()},
        "per_image": {n: s.to_dict() for n, s in scores.items()},
        "observation_features": observation if shard[1] > 1 else [],
        "examples": examples,
        "timing": {
            "total_seconds": total,
            "solver_seconds": solver_seconds,
            "engine_overhead": (total - solver_seconds) / total,
            "setup_seconds": setup_seconds,  # model and images loaded
            "metric_seconds": metric_seconds,  # scoring the estimates
            "peak_memory_mb": peak_memory_mb(device),
        },
    }


def _classifier_input(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """``x [B, C, H, W]`` resampled to the classifier's input ``resolution`` by adaptive average pooling (area
    pooling down, pixel replication up: the tests' 16-pixel models are scored by the 32-pixel classifier)."""
    return x if x.shape[-1] == resolution else F.adaptive_avg_pool2d(x, resolution)


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous image range ``[lo, hi)`` of ``rank`` among ``world_size`` for ``n`` images (sizes differ by
    at most one; rank 0 gets the leading images, so the report grids match a single-process run)."""
    return rank * n // world_size, (rank + 1) * n // world_size


def merge_shards(parts: list[dict]) -> dict:
    """Join the results of one task's shards (in rank order) into the result of a single-process run.

    Per-image values are concatenated in image order and summarised again, so the scores equal the
    single-process ones up to floating-point rounding; the examples are rank 0's; the wall time is the slowest
    rank's, the engine overhead the ranks' mean, the peak memory the largest.
    """
    merged: dict[str, SolverScores] = {}
    observation = []
    for part in parts:
        observation += part.get("observation_features", [])
        for name, d in part["per_image"].items():
            s = merged.setdefault(name, SolverScores())
            for metric, values in d["values"].items():
                s.values.setdefault(metric, []).extend(values)
            s.seconds += d["seconds"]
            s.images += d["images"]
            s.nfe = max(s.nfe, d["nfe"])
            s.skipped = s.skipped or d["skipped"]
            s.features += d.get("features", [])
            s.sets = d.get("sets", {}) if len(parts) == 1 else {}
    if len(parts) > 1:
        finish_set_metrics(merged, observation, parts[0]["task"])
    timings = [p["timing"] for p in parts]
    timing = {key: max(t[key] for t in timings) for key in timings[0]}  # the slowest (largest) rank's
    timing |= {"engine_overhead": sum(t["engine_overhead"] for t in timings) / len(timings), "ranks": len(parts)}
    return {
        "task": parts[0]["task"],
        "images": sum(p["images"] for p in parts),
        "scores": {n: s.summary() for n, s in merged.items()},
        "per_image": {n: s.to_dict() for n, s in merged.items()},
        "examples": parts[0].get("examples", {}),
        "timing": timing,
    }
