"""Boundaries that erode unless a test holds them (they fail the moment one is crossed):

1. Each outside library is imported by one adapter module only (at top level or in a function).
2. Layers run one way: leaves <- core <- rotation <- application. Nothing in the core (policy,
   pipeline, lock, audit, adapters) imports rotation or the application; rotation imports no
   application module (workflow, composition root, views, render, cli, demo).
3. The command line is thin: `envmatrix.cli` imports no adapter, lock or audit module, and
   adapters are constructed only in the composition root (`envmatrix.connect`).
4. One import name per module: nothing imports the repository's `rotation` or `cli` by those
   top-level names (the installed package is `envmatrix` only).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

ALLOWED = {
    "hvac": {"envmatrix.adapters.vault"},
    "github": {"envmatrix.adapters.github"},
    "boto3": {"envmatrix.rotation.strategies.aws_iam"},
    "botocore": {"envmatrix.rotation.strategies.aws_iam"},
    "supabase": {"envmatrix.adapters.supabase"},
    "supabase_auth": {"envmatrix.adapters.supabase"},
    "psycopg": {"envmatrix.adapters.postgres"},
    "google": {"envmatrix.adapters.google_oauth"},
}

LEAVES = (
    "errors",
    "secret",
    "ports",
    "timefmt",
    "failpoints",
    "files",
    "actor",
    "strategy_registry",
    "redact",
    "debuglog",
    "safeio",
    "settings",
    "interrupt",
    "__version__",
)
CORE = (*LEAVES, "policy", "policy_schema", "pipeline", "lock", "guard", "audit", "adapters")
ROTATION = ("rotation",)
APPLICATION = ("workflow", "connect", "views", "render", "cli", "demo", "__main__")
SANDBOX = ("sandbox",)
# what each layer may import from envmatrix (by the first name under `envmatrix.`)
MAY_IMPORT = {
    "leaf": set(LEAVES),
    "core": set(CORE),
    "rotation": {*CORE, *ROTATION},
    "application": {*CORE, *ROTATION, *APPLICATION, *SANDBOX},
    "sandbox": set(SANDBOX),
}


def modules() -> dict[str, Path]:
    """Every envmatrix module by dotted name; the rotation package from its real folder."""
    found = {}
    for path in (ROOT / "envmatrix").rglob("*.py"):
        relative = path.relative_to(ROOT / "envmatrix")
        if relative.parts[0] != "rotation":  # the link to ../rotation: read below, once
            found[_dotted("envmatrix", relative)] = path
    for path in (ROOT / "rotation").rglob("*.py"):
        found[_dotted("envmatrix.rotation", path.relative_to(ROOT / "rotation"))] = path
    return found


def _dotted(package: str, relative: Path) -> str:
    parts = [package, *relative.with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Dotted names a file imports (absolute imports, anywhere in the file)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    return names


def layer(module: str) -> str:
    room = module.split(".")[1] if "." in module else ""
    for name, rooms in (
        ("leaf", LEAVES),
        ("core", CORE),
        ("rotation", ROTATION),
        ("sandbox", SANDBOX),
    ):
        if room in rooms:
            return name
    return "application"


def test_libraries_are_imported_only_by_their_adapter() -> None:
    sources = {**modules(), "cli": ROOT / "cli.py"}
    crossings = sorted(
        f"{module} imports {library}"
        for module, path in sources.items()
        for library in {n.split(".")[0] for n in imported(path)} & set(ALLOWED)
        if module not in ALLOWED[library]
    )
    assert crossings == []


def test_layers_run_one_way() -> None:
    crossings = sorted(
        f"{module} ({layer(module)}) imports {name}"
        for module, path in modules().items()
        for name in imported(path)
        if name.startswith("envmatrix.") and name.split(".")[1] not in MAY_IMPORT[layer(module)]
    )
    assert crossings == []


def test_the_cli_builds_nothing_and_imports_no_adapter_lock_or_audit_module() -> None:
    forbidden = ("envmatrix.adapters", "envmatrix.lock", "envmatrix.audit")
    crossings = sorted(
        f"{module} imports {name}"
        for module, path in modules().items()
        if module.startswith("envmatrix.cli")
        for name in imported(path)
        if name.startswith(forbidden)
    )
    assert crossings == []


def test_adapters_are_built_only_in_the_composition_root() -> None:
    adapters = {"envmatrix.adapters.vault", "envmatrix.adapters.github"}
    builders = sorted(
        module
        for module, path in modules().items()
        if imported(path) & adapters and module not in {"envmatrix.connect", *adapters}
    )
    assert builders == []


@pytest.mark.parametrize("top_level", ["rotation", "cli"])
def test_one_import_name_per_module(top_level: str) -> None:
    sources = [*modules().values(), *ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py")]
    users = sorted(
        str(path.relative_to(ROOT))
        for path in sources
        if any(n == top_level or n.startswith(f"{top_level}.") for n in imported(path))
    )
    assert users == []


def test_the_checks_see_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from github import Github\n    import hvac.exceptions\n")
    assert {n.split(".")[0] for n in imported(sample)} == {"github", "hvac"}


def test_the_layer_check_catches_a_core_module_importing_rotation(tmp_path: Path) -> None:
    sample = tmp_path / "plan.py"
    sample.write_text("from envmatrix.rotation.schedule import RotationStatus\n")
    names = imported(sample)
    assert layer("envmatrix.pipeline.plan") == "core"
    assert any(
        n.split(".")[1] not in MAY_IMPORT["core"] for n in names if n.startswith("envmatrix.")
    )
