"""The envmatrix command line: the typer app and the one handler around it.

Each command lives in a module of `envmatrix.cli.commands` by group (pre-commit's `main.py` +
`commands/`): it parses, calls one function (`envmatrix.workflow`, a view, or the rotation
layer), renders, and picks the exit code. Adapters are built only by `envmatrix.connect`.

One handler (`main`) turns every EnvmatrixError into a one-line message and its exit code, and
any other exception into a one-line internal error naming only its type (exception text from
libraries could carry data we do not control). Typer's local-variable tracebacks are off.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from envmatrix import debuglog, interrupt
from envmatrix.cli import helptext
from envmatrix.cli.commands import adopt, demo, rotation, schema, sync, views
from envmatrix.errors import EnvmatrixError, ExitCode, missing_extra
from envmatrix.render import report as render

app = typer.Typer(
    name="envmatrix",
    help="Sync secrets from Vault into GitHub Actions environments; rotate them; gate flags.",
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from envmatrix import __version__

        render.console().print(f"envmatrix {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Sync secrets from Vault into GitHub Actions environments; rotate them; gate flags."""


for group in (sync, views, rotation, demo, schema, adopt):
    group.register(app)
helptext.add_help(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map every failure to one line and an exit code."""
    # an allow-list of loggers and message shapes, never a library's own text (debuglog.py)
    debuglog.configure(os.environ)
    try:
        with interrupt.handling():
            code = app(args=argv, prog_name="envmatrix", standalone_mode=False)
        if code == ExitCode.INTERRUPTED:  # typer's answer to a KeyboardInterrupt
            return _fail(interrupt.stopped_at_once_message(), interrupt.exit_code())
    except typer.Abort:
        return _fail("aborted", ExitCode.FAILURE)
    except typer.TyperException as exc:  # typer's (vendored click's) command-line errors
        message = exc.format_message()
        if not message:  # no command given: the help was printed, that says it all
            return int(ExitCode.INVALID)
        return _fail(message, ExitCode.INVALID)
    except EnvmatrixError as exc:
        return _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:  # outside typer's own handling (e.g. while rendering)
        return _fail(interrupt.stopped_at_once_message(), interrupt.exit_code())
    except Exception as exc:
        return _unexpected(exc)
    return int(code or 0)


def _unexpected(exc: Exception) -> int:
    """A missing optional dependency names its extra; anything else is an internal error in one
    line naming only its type (library messages may carry data)."""
    extra = missing_extra(exc) if isinstance(exc, ModuleNotFoundError) else None
    if extra is not None:
        return _fail(str(extra), extra.exit_code)
    if debuglog.debug_enabled(os.environ):
        _print_frames(exc)
    return _fail(f"internal error ({type(exc).__name__}); please report it", ExitCode.FAILURE)


def _fail(message: str, code: ExitCode) -> int:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    sys.stderr.write(f"error: {first_line}\n")
    return int(code)


def _print_frames(exc: BaseException) -> None:
    """Where it failed (file:line function), without messages or locals."""
    for frame in traceback.extract_tb(exc.__traceback__):
        sys.stderr.write(f"  {Path(frame.filename).name}:{frame.lineno} in {frame.name}\n")
