"""`validate`'s output: one line per problem (`file:line: key.path: message`), or the JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console

from envmatrix.policy import PolicyCheck


def validate_json(checks: Sequence[PolicyCheck]) -> dict[str, Any]:
    """`{"valid": bool, "problems": [{"file", "line", "key", "message"}]}` over every file."""
    return {
        "valid": all(c.valid for c in checks),
        "problems": [p for c in checks for p in c.to_json()["problems"]],
    }


def render_validate(checks: Sequence[PolicyCheck], console: Console) -> None:
    """A valid file: one line with its counts. An invalid one: each problem, in file order."""
    for check in checks:
        if check.policy is not None and check.valid:
            loaded = check.policy
            console.print(
                f"{check.file}: valid — {len(loaded.secrets)} secrets,"
                f" {len(loaded.environments)} environments, {len(loaded.flags)} flags,"
                f" {len(loaded.owners)} owners",
                markup=False,
            )
        for problem in check.problems:
            console.print(str(problem), markup=False)


def problems_line(invalid: Sequence[PolicyCheck]) -> str:
    """The summary: `3 problems; the policy is invalid` (the files are named before it)."""
    count = sum(len(c.problems) for c in invalid)
    what = "the policy is invalid" if len(invalid) == 1 else "the policies are invalid"
    return f"{count} problem{'s' if count != 1 else ''}; {what}"
