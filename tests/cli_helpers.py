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
