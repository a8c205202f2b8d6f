"""The package's layers, enforced on every import statement (module level and inside functions).

A module may import from its own layer and the layers before it, never from a later one:

    utils < ops < datasets < core < control < solvers < train < bench < cli

and never a private module (``_name``) of another package. ``cli/``, ``datasets/`` and ``tasks/`` are top-level folders
that setuptools maps into ``pagoda_inverse`` (``package-dir``), which is why this reads the source with ``ast`` rather
than through import-linter, whose graph builder walks only the ``pagoda_inverse/`` folder of an editable install.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("utils", "ops", "datasets", "core", "control", "solvers", "train", "bench", "cli")
#: Package folders and the module names they are installed as.
FOLDERS = {ROOT / "pagoda_inverse": "pagoda_inverse", ROOT / "cli": "pagoda_inverse.cli",
           ROOT / "datasets": "pagoda_inverse.datasets"}  # fmt: skip


def _modules():
    for folder, package in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[0] == "models":  # embedded model folders hold no code of their own
                continue
            yield path, ".".join([package, *parts[: -1 if parts[-1] == "__init__" else None]])


def _imports(path: Path, module: str):
    """``(line, imported module)`` of every import statement in the file, relative imports resolved."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = module.split(".")
            if node.level:
                base = base[: len(base) - node.level + is_package]
                yield node.lineno, ".".join(base + ([node.module] if node.module else []))
            else:
                yield node.lineno, node.module


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def _violations(modules) -> list[str]:
    """One line per import of a later layer or of another package's private module."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    wrong = []
    for path, module in modules:
        own = _layer(module)
        for line, target in _imports(path, module):
            if not target.startswith("pagoda_inverse."):
                continue
            other = _layer(target)
            where = f"{path.name}:{line} imports {target}"
            if own is not None and other is not None and rank[other] > rank[own]:
                wrong.append(f"{where} ({own} may not import {other})")
            if any(p.startswith("_") for p in target.split(".")[2:]) and target.split(".")[1] != own:
                wrong.append(f"{where} (private to {target.split('.')[1]})")
    return wrong


def test_every_import_respects_the_layers():
    assert not (wrong := _violations(_modules())), "\n".join(wrong)


def test_the_layer_check_reads_the_mapped_folders_and_catches_violations(tmp_path):
    modules = dict(_modules())
    assert modules[ROOT / "cli" / "solve.py"] == "pagoda_inverse.cli.solve"
    assert modules[ROOT / "datasets" / "fmnist.py"] == "pagoda_inverse.datasets.fmnist"
    bad = tmp_path / "model.py"
    bad.write_text(
        "import torch\n\ndef f():\n    from pagoda_inverse.solvers import solve\n    from ..ops._checks import fail\n"
    )
    assert _violations([(bad, "pagoda_inverse.core.model")]) == [
        "model.py:4 imports pagoda_inverse.solvers (core may not import solvers)",
        "model.py:5 imports pagoda_inverse.ops._checks (private to ops)",
    ]
