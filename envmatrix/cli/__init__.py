"""The envmatrix command line: `app` (typer) and `main`, the one handler around it."""

from __future__ import annotations

from envmatrix.cli.app import app, main

__all__ = ["app", "main"]
