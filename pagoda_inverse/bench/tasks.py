"""Benchmark task suites: ``tasks/*.toml`` files, validated on load.

A task fixes the operator and its parameters, the noise level (``sigma_y`` in ``[-1, 1]`` units), the model, the
dataset split, the image count, the per-image seed range, the metrics and the solvers with their hyper-parameters::

    [task]
    family = "superres"            # --task superres selects every task of the family
    model = "fmnist"
    dataset = "fmnist"
    split = "test"
    images = 256
    seeds = "0-255"                # image i uses seed seeds[i] (operator parameters, noise, solver noise)
    metrics = ["psnr", "ssim", "consistency", "diversity"]

    [operator]
    name = "downsample_area"       # a key of pagoda_inverse.ops.OPERATORS
    sigma_y = 0.05                 # with units = "pm1" (default): [-1, 1] units, the DPS convention;
                                   # units = "01": [0, 1] units (deepinv/DDRM/DiffPIR), stored doubled
    factor = 4                     # any other key is passed to the operator

    [solvers.one_step]             # a key of pagoda_inverse.solvers.SOLVERS; keys below are its hyper-parameters
    samples = 4

    [solvers.dps]
    optional = true                # run only when named: pagoda-inv bench --task T --solvers dps,...
    weight = 100.0

A generation task has a ``[generation]`` table instead of ``[operator]`` and ``[samplers.LABEL]`` tables instead
of solvers (see :mod:`pagoda_inverse.bench.generation`)::

    [task]
    family = "generate"
    model = "fmnist"
    dataset = "fmnist"
    split = "test"                 # the FD/KID reference split
    images = 10000                 # samples per sampler
    metrics = ["fd", "kid", "accuracy"]

    [generation]
    condition = "class"            # "class" (canonical captions) or "prompt" (held-out caption phrasings)
    cfg_scale = 2.0
    classifier = "fmnist-clf"

    [samplers.pagoda_onestep]
    sampler = "onestep"            # or "heun"; optional model = "...", num_steps = 18
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from pagoda_inverse.utils.errors import UserError


def _m():  # the metric functions need torch: imported when a task runs, not when a task file loads
    from pagoda_inverse.utils import metrics

    return metrics


#: The per-image metrics of an inverse task, ``name -> score(op, truth, y, result) -> [B]``: the estimate's PSNR,
#: SSIM and consistency ``||A x - y||``; ``psnr_sample``: PSNR of the first posterior sample alone (of the estimate
#: for a deterministic solver); ``diversity``: the samples' spread; ``residual_ratio``: the first sample's
#: ``||A x - y||`` over the truth's (1 for a posterior sample).
PER_IMAGE_METRICS = {
    "psnr": lambda op, x, y, res: _m().psnr(res.estimate, x),
    "psnr_sample": lambda op, x, y, res: _m().psnr(res.samples[0], x),
    "ssim": lambda op, x, y, res: _m().ssim(res.estimate, x),
    "consistency": lambda op, x, y, res: _m().consistency(op, res.estimate, y),
    "diversity": lambda op, x, y, res: _m().diversity(res.samples),
    "residual_ratio": lambda op, x, y, res: _m().residual_ratio(op, res.samples[0], x, y),
}
#: The set metrics, computed once per solver from every image's features (:mod:`pagoda_inverse.bench.engine`):
#: FD-FMNIST of one sample per image and its conditional FD given the observation.
SET_METRICS = ("fd_sample", "cfid")
METRICS = (*PER_IMAGE_METRICS, *SET_METRICS)
GENERATION_METRICS = ("fd", "kid", "accuracy")
#: ``[operator] units``: what ``sigma_y`` is relative to, and the factor to ``[-1, 1]`` units. ``"pm1"`` (default)
#: is the DPS/DAPS convention (noise added to ``[-1, 1]`` images: 0.05 there is 0.025 on ``[0, 1]`` images);
#: ``"01"`` is deepinv's, DDRM's and DiffPIR's (noise on ``[0, 1]`` images).
SIGMA_UNITS = {"pm1": 1.0, "01": 2.0}


@dataclass(frozen=True, kw_only=True)
class _Spec:
    """The ``[task]`` table every task has: what to evaluate on, how many images (samples), which seeds."""

    name: str
    family: str
    model: str
    dataset: str
    split: str
    images: int
    seeds: tuple[int, ...]
    metrics: tuple[str, ...]
    description: str = ""
    path: str = ""

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    def run_seeds(self, limit: int | None = None, seeds: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """The per-image seeds of a run: ``seeds`` (else the task's) cut to ``limit`` (else the task's image count).

        A ``limit`` larger than the seeds available is an error, not a silently smaller run.
        """
        available = tuple(seeds) if seeds else self.seeds
        count = limit or (len(available) if seeds else self.images)
        if count > len(available):
            raise UserError(
                f"task {self.name!r}: {count} images asked for but only {len(available)} seeds given; "
                f"pass --seeds 0-{count - 1} (or a smaller --limit)"
            )
        return available[:count]


@dataclass(frozen=True, kw_only=True)
class TaskSpec(_Spec):
    """A validated inverse-problem task suite (see the module docstring for the file format)."""

    operator: str
    sigma_y: float
    operator_params: dict = field(default_factory=dict)
    solvers: dict = field(default_factory=dict)
    optional: tuple[str, ...] = ()  # solvers run only when named with --solvers (``optional = true``: the slow peers)

    @property
    def default_solvers(self) -> list[str]:
        """The solvers a run without ``--solvers`` compares: every listed one but the optional ones."""
        return [name for name in self.solvers if name not in self.optional]


@dataclass(frozen=True, kw_only=True)
class GenerationSpec(_Spec):
    """A validated generation task (see the module docstring for the file format)."""

    condition: str
    cfg_scale: float
    classifier: str
    samplers: dict = field(default_factory=dict)


def tasks_dir() -> Path:
    """The folder of the shipped task files (installed as ``pagoda_inverse.tasks``)."""
    return Path(str(resources.files("pagoda_inverse.tasks")))


def list_tasks() -> list[str]:
    """Names of the shipped tasks."""
    return sorted(p.stem for p in tasks_dir().glob("*.toml"))


def _line_of(text: str, key: str) -> int:
    """1-based line where ``key =`` (or the table ``[key]``) first appears, 0 if not found."""
    for i, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*(\[{re.escape(key)}\]|{re.escape(key)}\s*=)", line):
            return i
    return 0


MAX_SEEDS = 10_000_000  # more seeds than any suite needs; guards against "0-99999999999" exhausting memory


def parse_seeds(value) -> tuple[int, ...]:
    """``"0-255"``, ``"0-9,20"`` or a list of integers (each >= 0) -> a tuple of at most :data:`MAX_SEEDS` seeds.

    >>> parse_seeds("0-3,10")
    (0, 1, 2, 3, 10)
    """
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        out = list(value)
    elif isinstance(value, str):
        out = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            lo, _, hi = part.partition("-")
            if not lo.strip().isdigit() or not (hi or lo).strip().isdigit():
                raise ValueError(f"a range like '0-255' (non-negative integers), not {part!r}")
            lo, hi = int(lo), int(hi or lo)
            if hi < lo or len(out) + hi - lo + 1 > MAX_SEEDS:
                raise ValueError(f"ranges LO-HI with LO <= HI and at most {MAX_SEEDS} seeds in all, not {part!r}")
            out.extend(range(lo, hi + 1))
    else:
        raise ValueError("a string like '0-255' or a list of non-negative integers")
    if len(out) > MAX_SEEDS:
        raise ValueError(f"at most {MAX_SEEDS} seeds")
    return tuple(out)


def load_task(name_or_path: str | Path) -> TaskSpec | GenerationSpec:
    """Load and validate a task by name (a shipped ``tasks/NAME.toml``) or by path."""
    path = Path(name_or_path)
    if not path.suffix == ".toml":
        path = tasks_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            raise UserError(f"unknown task {str(name_or_path)!r}; choose one of: {', '.join(list_tasks())}")
    if not path.is_file():
        raise UserError(f"{path}: no such task file")
    try:
        text = path.read_bytes().decode("utf-8")
        raw = tomllib.loads(text)
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path}: malformed TOML ({err}); fix the file") from None

    def bad(key: str, why: str) -> UserError:
        return UserError(f"{path}:{_line_of(text, key.split('.')[-1])}: field '{key}' {why}")

    generation = "generation" in raw
    tables = ("task", "generation", "samplers") if generation else ("task", "operator", "solvers")
    for key in tables:
        if not isinstance(raw.get(key), dict):
            raise UserError(f"{path}: missing table [{key}]; see pagoda_inverse.bench.tasks for the format")
    task = raw["task"]
    fields = {"family": str, "model": str, "dataset": str, "split": str, "images": int}
    for key, kind in fields.items():
        if not isinstance(task.get(key), kind) or isinstance(task.get(key), bool):
            raise bad(f"task.{key}", f"must be a {kind.__name__}, got {task.get(key)!r}")
    if not 1 <= task["images"] <= MAX_SEEDS:
        raise bad("task.images", f"must be between 1 and {MAX_SEEDS}")
    try:
        seeds = parse_seeds(task.get("seeds", f"0-{task['images'] - 1}"))
    except ValueError as err:
        raise bad("task.seeds", f"must be {err}") from None
    if len(seeds) < task["images"]:
        raise bad("task.seeds", f"gives {len(seeds)} seeds for {task['images']} images")
    valid = GENERATION_METRICS if generation else METRICS
    metrics = task.get("metrics", list(valid))
    unknown = (
        [m for m in metrics if not isinstance(m, str) or m not in valid] if isinstance(metrics, list) else [metrics]
    )
    if unknown:
        raise bad("task.metrics", f"has unknown metric(s) {unknown}; valid: {', '.join(valid)}")
    common = {
        "name": path.stem,
        **{key: task[key] for key in fields},
        "seeds": seeds[: task["images"]],
        "metrics": tuple(metrics),
        "description": task.get("description", ""),
        "path": str(path),
    }
    if generation:
        return _generation_spec(raw, common, bad)

    from pagoda_inverse.ops.registry import OPERATORS
    from pagoda_inverse.solvers import SOLVERS, check_hparams

    op, solvers = raw["operator"], raw["solvers"]
    if not isinstance(op.get("name"), str) or op["name"] not in OPERATORS:
        raise bad("operator.name", f"{op.get('name')!r} is not an operator; valid: {', '.join(sorted(OPERATORS))}")
    sigma_y = op.get("sigma_y", 0.0)
    if not isinstance(sigma_y, int | float) or isinstance(sigma_y, bool) or not 0 <= sigma_y < math.inf:
        raise bad("operator.sigma_y", f"must be a number >= 0 ([-1, 1] units), got {sigma_y!r}")
    units = op.get("units", "pm1")
    if not isinstance(units, str) or units not in SIGMA_UNITS:
        raise bad("operator.units", f"must be one of {', '.join(SIGMA_UNITS)}, got {units!r}")
    sigma_y *= SIGMA_UNITS[units]
    for name, hparams in solvers.items():
        if name not in SOLVERS:
            raise bad(f"solvers.{name}", f"is not a solver; valid: {', '.join(SOLVERS)}")
        if not isinstance(hparams, dict):
            raise bad(f"solvers.{name}", "must be a table of hyper-parameters")
        if not isinstance(hparams.get("optional", False), bool):
            raise bad(f"solvers.{name}.optional", f"must be true or false, got {hparams['optional']!r}")
        try:
            check_hparams(name, {k: v for k, v in hparams.items() if k != "optional"})
        except UserError as err:
            raise bad(f"solvers.{name}", f"is invalid: {err}") from None
    params = {k: v for k, v in op.items() if k not in ("name", "sigma_y", "units")}
    return TaskSpec(
        **common,
        operator=op["name"],
        sigma_y=float(sigma_y),
        operator_params=params,
        solvers={name: {k: v for k, v in h.items() if k != "optional"} for name, h in solvers.items()},
        optional=tuple(name for name, h in solvers.items() if h.get("optional", False)),
    )


def _generation_spec(raw: dict, common: dict, bad) -> GenerationSpec:
    """The ``[generation]`` and ``[samplers.*]`` tables of a generation task, validated."""
    from pagoda_inverse.control.generate import SAMPLERS

    gen, samplers = raw["generation"], raw["samplers"]
    if gen.get("condition", "class") not in ("class", "prompt"):
        raise bad("generation.condition", f"must be 'class' or 'prompt', got {gen.get('condition')!r}")
    cfg_scale = gen.get("cfg_scale", 1.0)
    if not isinstance(cfg_scale, int | float) or isinstance(cfg_scale, bool) or not 0 <= cfg_scale < math.inf:
        raise bad("generation.cfg_scale", f"must be a number >= 0, got {cfg_scale!r}")
    for label, params in samplers.items():
        if not isinstance(params, dict) or params.get("sampler") not in SAMPLERS:  # a non-string is no name
            got = params.get("sampler") if isinstance(params, dict) else params
            raise bad(f"samplers.{label}", f"needs sampler = one of {', '.join(SAMPLERS)}, got {got!r}")
        steps = params.get("num_steps", 18)
        if not isinstance(steps, int) or isinstance(steps, bool) or not 2 <= steps <= 10_000:
            raise bad(f"samplers.{label}.num_steps", "must be an integer between 2 and 10000")
        unknown = sorted(set(params) - {"sampler", "model", "num_steps"})
        if unknown or not isinstance(params.get("model", ""), str):
            raise bad(f"samplers.{label}", f"takes sampler, model (a name or folder) and num_steps; got {params!r}")
    if not samplers:
        raise bad("samplers", "must list at least one sampler")
    return GenerationSpec(
        **common,
        condition=gen.get("condition", "class"),
        cfg_scale=float(cfg_scale),
        classifier=str(gen.get("classifier", "fmnist-clf")),
        samplers=dict(samplers),
    )


def select_tasks(selector: str) -> list[TaskSpec | GenerationSpec]:
    """A task name, a path to a ``.toml`` file, a family name (every shipped task of that family), ``all``, or a
    comma-separated list of those (e.g. ``superres,inpaint``; duplicates are dropped, order is kept)."""
    if "," in selector:
        specs: dict[str, TaskSpec | GenerationSpec] = {}
        for part in filter(None, (p.strip() for p in selector.split(","))):
            specs.update({spec.path: spec for spec in select_tasks(part) if spec.path not in specs})
        return list(specs.values())
    if selector.endswith(".toml") or selector in list_tasks():
        return [load_task(selector)]
    if selector == "all":
        return [load_task(t) for t in list_tasks()]
    family = [spec for spec in map(load_task, list_tasks()) if spec.family == selector]
    if not family:
        families = sorted({load_task(t).family for t in list_tasks()})
        raise UserError(
            f"unknown task {selector!r}; tasks: {', '.join(list_tasks())}; families: {', '.join(families)}"
        )
    return family
