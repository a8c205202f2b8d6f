"""Safe loading: no code path unpickles anything (checkpoints are safetensors + JSON; see issue 8), except EDM network
pickles, read by one allow-list unpickler that rebuilds no object of the file's choosing (issue 23)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("pagoda_inverse", "cli", "datasets") for p in (ROOT / folder).rglob("*.py"))
# Calls that unpickle (or, for torch.distributed's *_object collectives, pickle over the wire).
FORBIDDEN = {"pickle.load", "pickle.loads", "dill.load", "joblib.load", "broadcast_object_list", "all_gather_object",
             "gather_object", "scatter_object_list", "recv_object_list"}  # fmt: skip


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _violations(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        keywords = {k.arg: k.value for k in node.keywords}
        where = f"{path.name}:{node.lineno}: {name}"
        if name in FORBIDDEN or name.split(".")[-1] in FORBIDDEN:
            found.append(where)
        elif name.endswith("torch.load") or name == "load" and "weights_only" in keywords:
            flag = keywords.get("weights_only")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                found.append(f"{where} without weights_only=True")
        elif name in ("np.load", "numpy.load"):
            flag = keywords.get("allow_pickle")
            if not (isinstance(flag, ast.Constant) and flag.value is False):
                found.append(f"{where} without allow_pickle=False")
    return found


def test_the_package_never_unpickles():
    assert len(SOURCES) > 50
    assert [v for path in SOURCES for v in _violations(path)] == []


def test_the_only_unpickler_is_the_restricted_one():
    """A ``pickle.Unpickler`` subclass reads only what its ``find_class`` allows: there is exactly one, and it does."""
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and any(_name(b).endswith("Unpickler") for b in node.bases):
                methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
                found.append((path.name, node.name, {"find_class", "persistent_load"} <= methods))
    assert found == [("edm_pickle.py", "RestrictedUnpickler", True)]


@pytest.mark.parametrize(
    ("code", "hit"),
    [
        ("import torch\ntorch.load('m.pt')", "without weights_only=True"),
        ("import torch\ntorch.load('m.pt', weights_only=False)", "without weights_only=True"),
        ("import numpy as np\nnp.load('k.npy')", "without allow_pickle=False"),
        ("import pickle\npickle.loads(b'')", "pickle.loads"),
        ("import torch\ntorch.distributed.broadcast_object_list([1])", "broadcast_object_list"),
    ],
)
def test_the_scanner_catches_unsafe_calls(tmp_path, code, hit):
    path = tmp_path / "probe.py"
    path.write_text(code)
    (found,) = _violations(path)
    assert hit in found


def test_the_scanner_accepts_safe_calls(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text(
        "import torch, numpy as np\ntorch.load('m.pt', weights_only=True)\nnp.load('k', allow_pickle=False)"
    )
    assert _violations(path) == []
