"""`validate`'s output: one line per problem (`file:line: key.path: message`), or the JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console

from envmatrix.errors import PolicyError
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


def summary_error(invalid: Sequence[PolicyCheck]) -> PolicyError:
    """The one line on stderr after the list (exit 3): the problem itself when there is one,
    else `FILE: 3 problems; the policy is invalid`."""
    problems = [p for c in invalid for p in c.problems]
    if len(problems) == 1:
        return problems[0]
    what = "the policy is invalid" if len(invalid) == 1 else "the policies are invalid"
    files = ", ".join(c.file for c in invalid)
    return PolicyError(files, None, "", f"{len(problems)} problems; {what}")
