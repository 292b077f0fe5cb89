"""import: a starting policy from what GitHub and Vault hold (adopting an existing organization).

The command is `import` (a Python keyword, hence this module's name)."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from envmatrix.cli.options import JsonOption, RepositoriesOption, warn
from envmatrix.errors import UsageError
from envmatrix.render import report as render


def import_policy(
    repository: RepositoriesOption = None,
    organization: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--organization",
            "-o",
            metavar="ORG",
            help=(
                "Import every repository of this organization (GET /orgs/{org}/repos) and the"
                " organization's own secrets, variables and Dependabot secrets."
            ),
        ),
    ] = None,
    out: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--out", metavar="FILE", help="Write the policy here (default: stdout)."),
    ] = None,
    mount: Annotated[
        str,
        typer.Option("--mount", metavar="MOUNT", help="The Vault KV v2 mount to match against."),
    ] = "secret",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Write a starting policy from the secret and variable names GitHub holds (environment,
    repository, Dependabot and, with --organization, the organization's own), matched against
    the Vault mount's paths and key names. Reads no secret value and writes no sync state."""
    from envmatrix.files import create_atomic, write_atomic
    from envmatrix.render.policy_yaml import draft_yaml, not_imported_lines
    from envmatrix.views.import_ import PLACEHOLDER_OWNER, import_draft

    if out is not None and not force and os.path.lexists(out):  # before any request is sent
        raise UsageError(f"{out} exists; pass --force to replace it")
    draft = import_draft(repository or (), organization, mount)
    text = draft_yaml(draft)
    if out is not None:
        (write_atomic if force else create_atomic)(out, text, "policy")
    for line in not_imported_lines(draft):
        warn(f"not imported: {line}")
    if json_output:
        render.print_json({**draft.to_json(), "out": out})
        return
    if out is None:
        sys.stdout.write(text)
    where = out or "the policy above"
    sys.stderr.write(
        f"Imported {len(draft.secrets)} secrets and {len(draft.variables)} variables"
        f" ({len(draft.not_imported)} not imported). Every owner in {where} is the placeholder"
        f" '{PLACEHOLDER_OWNER}': replace it before the first apply.\n"
    )


def register(app: typer.Typer) -> None:
    """Add `import` to `app`."""
    app.command("import")(import_policy)
