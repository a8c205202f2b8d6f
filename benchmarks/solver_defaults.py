"""The ``one_step`` settings a model ships (its ``solver_defaults.json``), derived from the task suites that the docs
report, so that ``pagoda-inv solve``, ``solve_image`` and ``solve()`` give the estimate the bench reports.

    python benchmarks/solver_defaults.py --model fmnist           # the JSON for `pagoda-inv export --solver-defaults`
    python benchmarks/solver_defaults.py --model fmnist --card    # the model card's line about them

Only ``one_step``'s settings are taken (``samples``, ``precision``): the fmnist model has a posterior encoder for
every family it has suites for, so ``encode_perturb`` (for a model without one) is optional in its suites. The setting most suites share is the solver's own; a family whose suites use another
gets it under ``"families"`` (see :func:`pagoda_inverse.solvers.model_settings`).
"""

from __future__ import annotations

import argparse
import json
import textwrap
from collections import Counter

from pagoda_inverse.bench.tasks import TaskSpec, list_tasks, load_task

#: The one_step hyper-parameters the shipped defaults carry.
KEYS = ("samples", "precision")


def derive(model: str, solver: str = "one_step") -> dict:
    """``{solver: {...}, "families": {family: {solver: {...}}}}`` from the shipped task suites of ``model`` (``{}``
    when none runs ``solver``); suites of one family that disagree are an error."""
    by_family: dict[str, dict] = {}
    for name in list_tasks():
        spec = load_task(name)
        if not isinstance(spec, TaskSpec) or spec.model != model or solver not in spec.solvers:
            continue
        settings = {k: spec.solvers[solver][k] for k in KEYS if k in spec.solvers[solver]}
        if by_family.setdefault(spec.family, settings) != settings:
            raise SystemExit(f"tasks/{name}.toml: {solver} {settings} differs from its family's other suites")
    if not by_family:
        return {}
    counts = Counter(json.dumps(s, sort_keys=True) for s in by_family.values())
    common = json.loads(counts.most_common(1)[0][0])
    common = {k: common[k] for k in KEYS if k in common}
    families = {
        family: {solver: {k: v for k, v in s.items() if common.get(k) != v}}
        for family, s in sorted(by_family.items())
        if s != common
    }
    return {solver: common, **({"families": families} if families else {})}


def card_line(defaults: dict, solver: str = "one_step") -> str:
    """The model card's line about the shipped settings."""
    own = ", ".join(f"{k}={v}" for k, v in defaults.get(solver, {}).items())
    per_family = "; ".join(
        f"{family}: " + ", ".join(f"{k}={v}" for k, v in s.get(solver, {}).items())
        for family, s in defaults.get("families", {}).items()
    )
    text = (
        f"- Solver settings shipped with the model (`solver_defaults.json`, applied beneath your own): {solver} {own}"
        + (f" ({per_family})" if per_family else "")
        + ", those of the task suites (`tasks/*.toml`, `python benchmarks/solver_defaults.py`), so `pagoda-inv solve`"
        " gives the estimate the results report (the mean of the samples; `--samples 1` for a single one)."
    )
    return "\n".join(textwrap.wrap(text, width=118, subsequent_indent="  ", break_on_hyphens=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fmnist", help="the task suites' model name")
    parser.add_argument("--card", action="store_true", help="print the model card's line instead of the JSON")
    args = parser.parse_args()
    defaults = derive(args.model)
    print(card_line(defaults) if args.card else json.dumps(defaults))


if __name__ == "__main__":
    main()
