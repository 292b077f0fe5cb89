"""What the commands share: option types, the policy path rule, prompts and warnings."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Annotated, Optional, TypeVar

import typer

from envmatrix.errors import UsageError

T = TypeVar("T")

PolicyOption = Annotated[
    Optional[str],  # noqa: UP045 - typer reads the annotation at runtime
    typer.Option(
        "--policy",
        "-p",
        metavar="FILE",
        help="Policy file (default $ENVMATRIX_POLICY, else envmatrix.yaml).",
    ),
]
EnvironmentOption = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--environment", "-e", metavar="ENV", help="Limit to this environment (repeatable)."
    ),
]
OneEnvironmentOption = Annotated[
    str,
    typer.Option(
        "--environment", "-e", metavar="ENV", help="The environment (logical or GitHub name)."
    ),
]
RepositoryOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--repository", "-r", metavar="REPO", help="Only this repository (owner/name)."),
]
RepositoriesOption = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--repository",
        "-r",
        metavar="REPO",
        help="Only this repository, owner/name (repeatable; like -target).",
    ),
]
SecretsOption = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--secret",
        metavar="NAME",
        help="Only this secret (repeatable; like -target): no flags, no prune.",
    ),
]
ShardOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--shard",
        metavar="SHARD",
        help="K/N: only shard K of N of the repositories (a CI matrix); org-level items in 1.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
NotifyOption = Annotated[
    bool,
    typer.Option(
        "--notify",
        help="Send the policy's notifications now (in CI: on the default branch or a schedule).",
    ),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def policy_path(option: str | None) -> str:
    """--policy, else $ENVMATRIX_POLICY, else envmatrix.yaml."""
    return option or os.environ.get("ENVMATRIX_POLICY") or "envmatrix.yaml"


def warn(message: str) -> None:
    """A warning on stderr: the run goes on."""
    sys.stderr.write(f"warning: {message}\n")


def must_ask(yes: bool, command: str) -> bool:
    """Terraform's rule: ask on a terminal; without one, refuse unless --yes."""
    if yes:
        return False
    if not sys.stdin.isatty():
        raise UsageError(f"{command} needs --yes when not run from a terminal")
    return True


def ask_yes(question: str) -> None:
    """Go on only when the answer is exactly 'yes'; anything else ends the run (exit 1)."""
    if not answered_yes(question):
        raise typer.Exit(1)


def answered_yes(question: str) -> bool:
    """Ask `question`; whether the answer is exactly 'yes' (Terraform's rule)."""
    answer = str(typer.prompt(f"{question}? Only 'yes' will be accepted", default=""))
    return answer.strip() == "yes"


def parsed(option: str, text: str, parse: Callable[[str], T], example: str) -> T:
    """`parse(text)`, or a UsageError naming the option and an example of a good value."""
    try:
        return parse(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not {example}") from None
