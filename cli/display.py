"""Turn library callbacks into one rich progress bar on stderr (stdout carries only results)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def is_main_process() -> bool:
    """False on the non-zero ranks of a ``torchrun`` job, which stay silent."""
    return os.environ.get("RANK", "0") == "0"


console = Console(stderr=True, quiet=not is_main_process(), markup=False)  # paths and messages as written


def emit(value) -> None:
    """Print a command's result on stdout (once, from rank 0 under ``torchrun``)."""
    if is_main_process():
        print(value)


@contextlib.contextmanager
def progress_callback(description: str, total: int | None = None, quiet: bool = False) -> Iterator[Callable]:
    """Yield ``callback(info)`` updating a bar from ``info["step"]``/``info["total"]`` (+ ``loss`` if present)."""
    enabled = not quiet and sys.stderr.isatty()
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[extra]}")]
    with Progress(*columns, console=console, disable=not enabled) as progress:
        task = progress.add_task(description, total=total, extra="")

        def callback(info: dict) -> None:
            extra = f"loss {info['loss']:.4f}" if "loss" in info else ""
            progress.update(task, completed=info.get("step", 0), total=info.get("total", total), extra=extra)

        yield callback
