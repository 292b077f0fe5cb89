"""The demo's last two steps: the env matrix as committed evidence, and adopting an existing org.

- `matrix --format markdown --check FILE`: the demo writes the matrix as Markdown (what
  `matrix --format markdown --out FILE` writes), checks it (exit 0), changes a variable by hand
  in the sandbox, and checks again: exit 1 with the short unified diff. The same functions the
  command uses (`committed_matrix`, `check_format`, `render_matrix`, `matrix_diff`).
- `import --organization occ-labs --out FILE`: the starting policy written from what the sandbox
  holds matched against the OpenBao mount (`import_draft`, `draft_yaml`), its first lines, its
  `validate` result and the not-imported list.

Nothing here prints a value: the matrix has statuses only, and the policy lines shown stop
before `variables:` (whose literals are not secret, but the demo shows none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from rich.console import Console

from envmatrix.errors import ExitCode
from envmatrix.files import create_atomic, write_atomic
from envmatrix.policy import check_policy
from envmatrix.render.matrix import check_format, matrix_diff, render_matrix
from envmatrix.render.policy_yaml import draft_yaml, not_imported_lines
from envmatrix.views.import_ import PLACEHOLDER_OWNER, import_draft
from envmatrix.views.matrix import Matrix
from envmatrix.workflow import committed_matrix

MATRIX_FILE = "secrets-matrix.md"
IMPORTED_FILE = "imported.yaml"
SHOWN_POLICY_LINES = 18  # of the imported policy, after its header comments


def check_matrix_file(path: Path, matrix_now: Matrix, fmt: str | None = None) -> list[str]:
    """`matrix --check FILE` against a matrix already made: the short unified diff between the
    committed FILE and the matrix now ([] when they match: exit 0; else exit 1). UsageError for
    a missing or unreadable FILE or an unknown suffix, as the command."""
    fmt = check_format(str(path), fmt)
    committed = committed_matrix(str(path))
    return matrix_diff(committed, render_matrix(matrix_now, fmt), path.name)


def matrix_evidence(
    out: Console,
    folder: Path,
    matrix_now: Callable[[], Matrix],
    change_outside: Callable[[], str],
) -> bool:
    """Write the matrix as Markdown into `folder`, `--check` it (must pass), run
    `change_outside` (returns what it did, in words), `--check` again (must fail with a diff).
    Returns whether both checks came out as they should."""
    path = folder / MATRIX_FILE
    write_atomic(str(path), render_matrix(matrix_now(), "markdown"), "matrix")
    out.print(f"$ envmatrix matrix --format markdown --out {MATRIX_FILE}    # commit it")
    command = f"$ envmatrix matrix --format markdown --check {MATRIX_FILE}"
    out.print(command, markup=False, highlight=False)
    first = check_matrix_file(path, matrix_now(), "markdown")
    if not first:
        out.print(f"{MATRIX_FILE} matches the matrix now.  (exit {ExitCode.OK:d})")
    out.print(change_outside())
    out.print(command, markup=False, highlight=False)
    second = check_matrix_file(path, matrix_now(), "markdown")
    for line in second:
        out.print(line, markup=False, highlight=False)
    if second:
        out.print(
            f"error: {MATRIX_FILE} no longer matches the matrix; regenerate it with"
            f" envmatrix matrix --format markdown --out {MATRIX_FILE}"
            f"  (exit {ExitCode.FAILURE:d})",
            markup=False,
            highlight=False,
        )
    return not first and bool(second)


def import_step(out: Console, folder: Path, organization: str, environ: Mapping[str, str]) -> bool:
    """`envmatrix import --organization ORG --out FILE` against the servers `environ` names
    (VAULT_ADDR, VAULT_TOKEN, GITHUB_API_URL, GITHUB_TOKEN): print the policy's first lines,
    whether it validates, and what was not imported. Returns whether the policy validates."""
    path = folder / IMPORTED_FILE
    out.print(f"$ envmatrix import --organization {organization} --out {IMPORTED_FILE}")
    draft = import_draft((), organization, "secret", environ)
    text = draft_yaml(draft)
    create_atomic(str(path), text, "policy")
    body = [line for line in text.splitlines() if not line.startswith("#")]
    shown = _until_variables(body)[:SHOWN_POLICY_LINES]
    for line in shown:
        out.print("  " + line, markup=False, highlight=False)
    out.print(f"  … ({len(body) - len(shown)} more lines in {IMPORTED_FILE})")
    check = check_policy(path)
    verdict = "valid" if check.valid else f"INVALID: {check.problems[0]}"
    out.print(
        f"$ envmatrix validate {IMPORTED_FILE}: {verdict} ({len(draft.secrets)} secrets,"
        f" {len(draft.variables)} variables imported; every owner is the placeholder"
        f" '{PLACEHOLDER_OWNER}' to replace before the first apply)",
        markup=False,
        highlight=False,
    )
    left_out = not_imported_lines(draft)
    out.print(f"Not imported ({len(left_out)}; also as comments at the end of the file):")
    for line in left_out:
        out.print(f"  - {line}", markup=False, highlight=False)
    return check.valid


def _until_variables(lines: list[str]) -> list[str]:
    """The policy lines before `variables:` (whose literals the demo does not show)."""
    return lines[: lines.index("variables:")] if "variables:" in lines else lines
