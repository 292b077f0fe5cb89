"""The GitHub Action's entry point (`action.yml` runs `python -m envmatrix.cli.action`).

The action hands its inputs over as environment variables, never interpolated into a shell
line: `INPUT_COMMAND` (required), `INPUT_ARGS`, `INPUT_POLICY`, `INPUT_ENVIRONMENT`. This
module turns them into one envmatrix command line and runs it in this process:

    envmatrix COMMAND [--policy POLICY] [--environment ENVIRONMENT] ARGS...

COMMAND must be one of COMMANDS (extra spaces are ignored); anything else is refused with exit 3
before anything runs. ARGS is split as a POSIX shell would split it (`shlex`), but no shell ever
sees it: no expansion, no substitution, no redirection. The command itself writes the step
outputs, the step summary and the `::error`/`::warning` annotations (render/actions.py) because
the runner sets GITHUB_ACTIONS=true.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping

from envmatrix.cli.app import main as cli_main
from envmatrix.errors import ExitCode, UsageError
from envmatrix.render.actions import escape_data

COMMANDS = ("verify", "plan", "apply", "flags check", "rotation due", "scan")
NO_ENVIRONMENT = frozenset({"scan"})  # commands without an --environment option


def command_line(environ: Mapping[str, str]) -> list[str]:
    """The envmatrix argv for the action's inputs.

    Raises UsageError (exit 3) for a missing or unknown command, unbalanced quotes in `args`,
    or an `environment` given to a command that takes none."""
    command = " ".join(environ.get("INPUT_COMMAND", "").split())
    if not command:
        raise UsageError(f"the action's input 'command' is required: one of {_choices()}")
    if command not in COMMANDS:
        raise UsageError(f"the action's input 'command' is {command!r}: one of {_choices()}")
    try:
        extra = shlex.split(environ.get("INPUT_ARGS", ""))
    except ValueError as exc:
        raise UsageError(f"the action's input 'args' cannot be split: {exc}") from None
    argv = command.split()
    policy = environ.get("INPUT_POLICY", "").strip()
    if policy:
        argv += ["--policy", policy]
    environment = environ.get("INPUT_ENVIRONMENT", "").strip()
    if environment:
        if command in NO_ENVIRONMENT:
            raise UsageError(f"the action's input 'environment' does not apply to {command}")
        argv += ["--environment", environment]
    return argv + extra


def _choices() -> str:
    return ", ".join(repr(c) for c in COMMANDS)


def run(environ: Mapping[str, str]) -> int:
    """Run the command the inputs name; its exit code (3 when the inputs are refused)."""
    try:
        line = command_line(environ)
    except UsageError as exc:
        sys.stdout.write(f"::error title=envmatrix action::{escape_data(str(exc))}\n")
        sys.stderr.write(f"error: {exc}\n")
        return int(ExitCode.INVALID)
    sys.stderr.write(f"envmatrix {shlex.join(line)}\n")
    return cli_main(line)


if __name__ == "__main__":  # pragma: no cover - the action's step runs it
    import os

    sys.exit(run(os.environ))
