"""demo and sandbox: the main job end to end, and the two local servers to try a policy on."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from envmatrix.cli.options import PolicyOption
from envmatrix.render import report as render


def demo() -> None:
    """Run plan -> apply -> plan on a local OpenBao and GitHub sandbox. Nothing to configure."""
    from envmatrix.demo.run import run_demo

    raise typer.Exit(run_demo(render.console()))


def sandbox(
    policy: PolicyOption = None,
    repo: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--repo", metavar="REPO", help="Create this repository (owner/name; repeatable)."
        ),
    ] = None,
) -> None:
    """Start OpenBao and the GitHub sandbox on free local ports, print the export lines that
    point envmatrix at them, and serve until Ctrl-C (exit 0). Needs the demo extra."""
    from envmatrix.demo.tryout import serve_sandbox

    raise typer.Exit(serve_sandbox(sys.stdout, policy, repo or ()))


def register(app: typer.Typer) -> None:
    """Add `demo` and `sandbox` to `app`."""
    app.command()(demo)
    app.command()(sandbox)
