"""schema: the policy's JSON Schema, for editors and other tools."""

from __future__ import annotations

import typer

from envmatrix.render import report as render


def schema() -> None:
    """Print the policy's JSON Schema (draft 2020-12), generated from envmatrix's own models."""
    from envmatrix.policy_schema import policy_json_schema

    render.print_json(policy_json_schema())


def register(app: typer.Typer) -> None:
    """Add `schema` to `app`."""
    app.command()(schema)
