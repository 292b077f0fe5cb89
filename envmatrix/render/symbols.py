"""The one set of symbols plan, apply, the matrix and the flags share, so a symbol means one thing
wherever it is printed:

    ✓  in sync (matrix), ready (flags)       +  missing in GitHub / create
    ~  Vault is newer: stale / update        !  changed outside envmatrix: drifted / update
    ✗  blocked: missing in Vault             -  delete (prune)
    ⇡  shadowed by a wider scope
    ?  orphan (left alone)                   ·  not required here
    ↻  rotation overdue

A plan row takes the symbol of what it would repair: `update` / `changed-outside` is `!` like
the `drifted` cell it rewrites, `update` / `vault-newer` is `~` like the `stale` one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from envmatrix.pipeline.plan import Action, Change, Reason
from envmatrix.views.matrix import Status


@dataclass(frozen=True)
class Mark:
    """A symbol, its rich style and what it means (for legends)."""

    symbol: str
    style: str
    meaning: str


IN_SYNC = Mark("✓", "green", "in GitHub and in sync with Vault")
MISSING = Mark("+", "cyan", "not in GitHub yet (apply creates it)")
STALE = Mark("~", "yellow", "Vault holds a newer value (apply updates it)")
DRIFTED = Mark("!", "magenta", "changed outside envmatrix (apply rewrites it from Vault)")
BLOCKED = Mark(
    "✗",
    "bold red",
    "missing, empty or too large in Vault, or over a GitHub limit: cannot be synced"
    " (ask the owner)",
)
SHADOWED = Mark(
    "⇡", "bold red", "absent here: jobs get a same-named repository/organization secret instead"
)
NOT_REQUIRED = Mark("·", "dim", "the policy does not target this environment")
DELETE = Mark("-", "red", "left the policy; envmatrix wrote it (apply deletes it: prune)")
ORPHAN = Mark("?", "dim", "in GitHub, not in the policy (left alone)")
OVERDUE = Mark("↻", "yellow", "rotation overdue (see envmatrix rotation due)")

STATUS_MARKS: Mapping[Status, Mark] = {
    Status.OK: IN_SYNC,
    Status.MISSING: MISSING,
    Status.STALE: STALE,
    Status.DRIFTED: DRIFTED,
    Status.BLOCKED: BLOCKED,
    Status.SHADOWED: SHADOWED,
    Status.NOT_REQUIRED: NOT_REQUIRED,
}
ACTION_MARKS: Mapping[Action, Mark] = {
    Action.CREATE: MISSING,
    Action.UPDATE: STALE,
    Action.DELETE: DELETE,
    Action.BLOCKED: BLOCKED,
    Action.ORPHAN: ORPHAN,
}


def change_mark(change: Change) -> Mark:
    """The mark of a plan row: its action's, except a rewrite of a copy changed outside."""
    if change.action is Action.UPDATE and change.reason is Reason.CHANGED_OUTSIDE:
        return DRIFTED
    return ACTION_MARKS[change.action]


def ready_mark(ready: bool) -> Mark:
    """A flag's readiness: ready is in sync, not ready is blocked."""
    return IN_SYNC if ready else BLOCKED
