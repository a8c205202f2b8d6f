"""Running the CLI in a subprocess (real exit codes, real stderr) and checking its one-line errors."""

import os
import subprocess
import sys


def run_cli(*args, env=None, cwd=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pagoda_inverse.cli", *args], capture_output=True, text=True, env=full_env, cwd=cwd
    )


def one_line_error(result, *needles):
    """Exit code 2, no traceback, and exactly one error line that holds every needle."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], result.stderr


def cli_in_process(capsys, *args):
    """Run ``pagoda-inv ARGS`` through the console script's ``main`` in this process (no interpreter start-up).

    Returns a ``CompletedProcess`` like :func:`run_cli`; an exception that ``main`` lets through propagates.
    """
    from unittest import mock

    from pagoda_inverse.cli.app import main

    capsys.readouterr()
    with mock.patch.object(sys, "argv", ["pagoda-inv", *map(str, args)]):
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)
