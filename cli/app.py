"""Root of the ``pagoda-inv`` CLI: builds the Typer app and maps user errors to one red line + exit code 2."""

from __future__ import annotations

import os
import sys

import typer

from pagoda_inverse.cli import bench as bench_cmd
from pagoda_inverse.cli import convert as convert_cmd
from pagoda_inverse.cli import encode as encode_cmd
from pagoda_inverse.cli import generate as generate_cmd
from pagoda_inverse.cli import models as models_cmd
from pagoda_inverse.cli import solve as solve_cmd
from pagoda_inverse.cli import train as train_cmd


def make_app(help: str) -> typer.Typer:
    """A Typer app with the project's shared settings (no locals in tracebacks, -h, wide help)."""
    return typer.Typer(
        help=help,
        no_args_is_help=True,
        rich_markup_mode="rich",
        pretty_exceptions_show_locals=False,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
    )


app = make_app("PaGoDA one-step generators for image inverse problems and controlled generation.")
app.add_typer(train_cmd.app, name="train")
app.add_typer(solve_cmd.app, name="solve")
app.command("encode", epilog=encode_cmd.EPILOG)(encode_cmd.encode)
app.command("generate", epilog=generate_cmd.EPILOG)(generate_cmd.generate)
app.command("bench", epilog=bench_cmd.EPILOG)(bench_cmd.bench)
app.command("models")(models_cmd.models)
app.command("photos")(models_cmd.photos)
app.command("export")(models_cmd.export)
app.command("convert", epilog=convert_cmd.EPILOG)(convert_cmd.convert)


def main() -> None:
    """Entry point: run the app; a :class:`UserError` or a Typer usage error (an unknown, missing or out-of-range
    option) prints one ``error:`` line and exits with code 2.

    ``--debug`` (anywhere on the command line) or ``PAGODA_INV_DEBUG=1`` shows full tracebacks instead.
    """
    debug = "--debug" in sys.argv or os.environ.get("PAGODA_INV_DEBUG") == "1"
    if "--debug" in sys.argv:
        sys.argv.remove("--debug")
    try:
        app(standalone_mode=False)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except Exception as err:  # noqa: BLE001 - the one place that turns errors into exit codes
        from pagoda_inverse.utils.errors import UserError

        if type(err).__name__ == "Abort":
            sys.exit(130)
        if hasattr(err, "show") and hasattr(err, "exit_code"):  # Typer's (vendored) click usage errors
            if type(err).__name__ == "NoArgsIsHelpError":  # a bare group or command: its help
                err.show()
                sys.exit(2)
            _error_line(_usage_message(err))
        if debug or not isinstance(err, UserError | ValueError):
            raise
        _error_line(str(err))
    finally:
        if "torch.distributed" in sys.modules:  # a torchrun job: leave the process group, then exit at once
            import torch.distributed

            if torch.distributed.is_initialized():
                _exit_torchrun_rank(sys.exc_info()[1])


def _usage_message(err) -> str:
    """A Typer usage error (bad or missing option, a value out of its range) on one line, with where to look."""
    message = " ".join(err.format_message().split()).rstrip(".")
    ctx, names = getattr(err, "ctx", None), []
    while ctx is not None and ctx.parent is not None:  # the sub-command names, whatever launched the root
        names.insert(0, ctx.info_name)
        ctx = ctx.parent
    return f"{message} (see '{' '.join(['pagoda-inv', *names, '-h'])}')"


def _error_line(message: str) -> None:
    """Print ``error: MESSAGE`` (one red word, the message as is) on stderr and exit with code 2."""
    from rich.text import Text

    from pagoda_inverse.cli.display import console

    console.print(Text.assemble(("error:", "red"), f" {message}"), highlight=False, soft_wrap=True)
    sys.exit(2)


def _exit_torchrun_rank(error: BaseException | None) -> None:
    """End a torchrun rank with the exit code ``main`` chose (a traceback is printed first, as Python would)."""
    import traceback

    from pagoda_inverse.train.distributed import exit_distributed

    if isinstance(error, SystemExit):
        code = error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
    elif error is not None:
        traceback.print_exception(error)
        code = 1
    else:
        code = 0
    exit_distributed(code)


if __name__ == "__main__":
    main()
