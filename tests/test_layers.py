"""The package's layers, enforced on every import statement (module level and inside functions).

A module may import from its own layer and the layers before it, never from a later one:

    utils < ops < datasets < nets < core < control < solvers < interop < train < bench < cli

and never a private module (``_name``) of another package; and no two modules import each other, directly or
through others (an import circle, even one closed by an import inside a function). ``nets`` holds network definitions
that know nothing of the method, ``interop`` other toolkits' formats and APIs (checkpoint converters, deepinv), built
on the solvers. ``cli/``, ``datasets/`` and ``tasks/`` are top-level folders that setuptools maps into
``pagoda_inverse`` (``package-dir``), which is why this reads the source with ``ast`` rather than through
import-linter, whose graph builder walks only the ``pagoda_inverse/`` folder of an editable install.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("utils", "ops", "datasets", "nets", "core", "control", "solvers", "interop", "train", "bench", "cli")
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


def _from_target(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module
    base = module.split(".")
    return ".".join(base[: len(base) - node.level + is_package] + ([node.module] if node.module else []))


def _imports(path: Path, module: str):
    """``(line, imported module)`` of every import statement in the file, relative imports resolved."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, _from_target(node, module, is_package)


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


def test_networks_sit_below_the_method_and_interop_above_the_solvers(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from pagoda_inverse.core.unet import UNet\nfrom pagoda_inverse.interop import to_deepinv_model\n"
    )
    assert _violations([(probe, "pagoda_inverse.nets.adm")]) == [
        "probe.py:1 imports pagoda_inverse.core.unet (nets may not import core)",
        "probe.py:2 imports pagoda_inverse.interop (nets may not import interop)",
    ]
    assert _violations([(probe, "pagoda_inverse.solvers.one_step")]) == [
        "probe.py:2 imports pagoda_inverse.interop (solvers may not import interop)"
    ]
    assert not _violations([(probe, "pagoda_inverse.interop.deepinv_model")])


#: Import circles that stand, each a sorted tuple of its modules; a new one fails the test.
KNOWN_CIRCLES = {
    # latent.py looks the solver registry up inside a function (solvers/__init__ imports latent.py).
    ("pagoda_inverse.solvers", "pagoda_inverse.solvers.latent"),
}


def _graph(modules) -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from package import submodule`` counts as the submodule)."""
    modules = list(modules)
    names = {module for _, module in modules}
    graph = {}
    for path, module in modules:
        targets = {target for _, target in _imports(path, module)}
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = _from_target(node, module, path.name == "__init__.py")
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        graph[module] = (targets & names) - {module}
    return graph


def _circles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """The import circles of ``graph``: its strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = set()

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.add(tuple(sorted([v, *component])))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_new_import_circles():
    new = _circles(_graph(_modules())) - KNOWN_CIRCLES
    assert not new, "import circles: " + "; ".join(" <-> ".join(c) for c in sorted(new))


def test_the_circle_check_catches_a_circle_closed_inside_a_function(tmp_path):
    (tmp_path / "base.py").write_text("def f():\n    from .compose import Composed\n")
    (tmp_path / "compose.py").write_text("from .base import LinearOperator\n")
    (tmp_path / "registry.py").write_text("from pagoda_inverse.ops import compose\n")
    modules = [(tmp_path / f"{name}.py", f"pagoda_inverse.ops.{name}") for name in ("base", "compose", "registry")]
    assert _circles(_graph(modules)) == {("pagoda_inverse.ops.base", "pagoda_inverse.ops.compose")}
