"""Each outside system sits behind one module: an unenforced boundary erodes, so this test fails
the moment another module imports one of these libraries (at top level or inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ALLOWED = {
    "hvac": {"envmatrix/adapters/vault.py"},
    "github": {"envmatrix/adapters/github.py"},
    "boto3": {"rotation/strategies/aws_iam.py"},
    "botocore": {"rotation/strategies/aws_iam.py"},
    "supabase": {"envmatrix/probe.py"},
    "supabase_auth": {"envmatrix/probe.py"},
    "psycopg": {"envmatrix/adapters/postgres.py"},
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_libraries_are_imported_only_by_their_adapter() -> None:
    sources = [ROOT / "cli.py", *ROOT.glob("envmatrix/**/*.py"), *ROOT.glob("rotation/**/*.py")]
    crossings = sorted(
        f"{path.relative_to(ROOT)} imports {library}"
        for path in sources
        for library in imported_roots(path) & set(ALLOWED)
        if str(path.relative_to(ROOT)) not in ALLOWED[library]
    )
    assert crossings == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from github import Github\n    import hvac.exceptions\n")
    assert imported_roots(sample) == {"github", "hvac"}
