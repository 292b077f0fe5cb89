"""Rotation: schedules, the rotation engine (a journaled state machine) and its strategies.

It builds on the core (policy, pipeline, adapters) and nothing in the core imports it. Its one
import name is `envmatrix.rotation`: the repository keeps the code in `rotation/`, and
`envmatrix/rotation` points here, so the installed wheel holds it inside the `envmatrix` package
and nothing else lands in site-packages.
"""

if __name__ != "envmatrix.rotation":  # pragma: no cover - a wrong import path is a bug
    raise ImportError(f"import envmatrix.rotation, not {__name__}")
