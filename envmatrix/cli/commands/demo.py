"""demo: the main job end to end on a local OpenBao and the GitHub sandbox."""

from __future__ import annotations

import typer

from envmatrix.render import report as render


def demo() -> None:
    """Run plan -> apply -> plan on a local OpenBao and GitHub sandbox. Nothing to configure."""
    from envmatrix.demo.run import run_demo

    raise typer.Exit(run_demo(render.console()))


def register(app: typer.Typer) -> None:
    """Add `demo` to `app`."""
    app.command()(demo)
