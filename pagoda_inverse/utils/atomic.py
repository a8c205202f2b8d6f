"""Atomic file output: write to a temporary file in the same folder, then rename over the target.

Output folders are created as needed (``mkdir -p``); :func:`check_output_path` / :func:`check_output_folder` let a
command refuse a path that cannot be written before its work starts. Files and folders get the normal mode
(``0666`` / ``0777`` less the umask), not the private ``0600`` / ``0700`` that ``mkstemp`` / ``mkdtemp`` give.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import UserError

_UMASK = os.umask(0o022)  # reading the umask means setting it: done once, at import (single-threaded)
os.umask(_UMASK)


def current_umask() -> int:
    """The process umask, read without changing it (Linux: ``/proc/self/status``); elsewhere the one at import.

    >>> 0 <= current_umask() <= 0o777
    True
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _UMASK


def set_normal_mode(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Give ``path`` the mode a plain ``open`` / ``mkdir`` would: ``0666`` (folders ``0777``) less the umask."""
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def _writable_ancestor(path: Path, folder: Path, option: str) -> None:
    """Raise :class:`UserError` (naming ``path``) unless ``folder`` or its nearest existing ancestor is a folder we may
    write in."""
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{path}: {ancestor} is a file, not a folder; choose another {option}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{path}: folder {ancestor} is not writable; choose another {option}")


def check_output_path(path: str | os.PathLike, option: str = "output path") -> None:
    """Refuse (:class:`UserError` naming ``option``) a file output that could not be written: a folder of that name,
    or a parent that cannot be created. Missing parent folders are fine (:func:`atomic_path` creates them)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give {option} a file name")
    _writable_ancestor(path, path.parent, option)


def check_output_folder(path: str | os.PathLike, option: str = "output folder") -> None:
    """Refuse (:class:`UserError` naming ``option``) an output folder that could not be created or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: is a file, not a folder; choose another {option}")
    _writable_ancestor(path, path, option)


def make_folders(folder: str | os.PathLike) -> None:
    """``mkdir -p folder``; a file in the way (or no permission) is a one-line :class:`UserError`."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{folder}: cannot create the folder ({err.strerror}); choose another output path") from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error delete it.

    Missing parent folders are created; the file gets the normal mode (``0666`` less the umask).
    """
    path = Path(path)
    make_folders(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        set_normal_mode(tmp)  # mkstemp's 0600 would make every output private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, data) -> None:
    """Write ``data`` to ``path`` atomically as indented JSON ending in a newline (a text file like any other)."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
