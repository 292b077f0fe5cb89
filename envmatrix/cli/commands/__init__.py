"""One module per command group; each `register(app)` adds its commands to the typer app."""
