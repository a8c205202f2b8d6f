"""User-facing errors: one line that names the file or parameter and the fix; the CLI maps them to exit code 2."""


class UserError(Exception):
    """A mistake in the user's input (file, option, checkpoint). ``str(err)`` is the one-line message."""


class DatasetNotFoundError(UserError):
    """A dataset's files are missing; the message says how to install them."""


class CheckpointError(UserError):
    """A checkpoint folder is missing, corrupt, or does not match its config."""


class NotApplicableError(UserError):
    """A solver does not apply to an operator (its registry entry says so): the benchmark's only skipped rows."""
