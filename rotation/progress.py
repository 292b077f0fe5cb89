"""Rotations left half-way: journals that stopped between steps (a crash, a failed sync, a runner
that lost its lease), for `plan` and `rotation status` to show with the command that finishes
them. A rotation waiting out its grace period is not half-way; a finished one is not either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from envmatrix.policy import Policy
from envmatrix.ports import VaultPort
from envmatrix.rotation.groups import rotating_paths
from envmatrix.rotation.journal import JournalStore, RotationJournal


@dataclass(frozen=True)
class RotationInProgress:
    """One secret of a group whose rotation stopped half-way (metadata only, never a value)."""

    secret: str
    environment: str | None  # None: a repository-scope group
    path: str
    step: str  # the last step the journal reached
    holder: str
    since: str  # when the rotation started, UTC
    resume: str  # the command that finishes it

    def to_json(self) -> dict[str, Any]:
        """The contract's `rotations_in_progress` row."""
        return {
            "secret": self.secret,
            "environment": self.environment,
            "step": self.step,
            "resume": self.resume,
        }


def rotations_in_progress(
    policy: Policy, vault: VaultPort, environments: Sequence[str] = ()
) -> tuple[RotationInProgress, ...]:
    """Every secret whose group's journal is half-way, in policy order (one read per path)."""
    store = JournalStore(vault)
    found: list[RotationInProgress] = []
    for path in rotating_paths(policy, environments):
        entry = store.read(path)
        if entry is not None and entry.journal.left_half_way:
            found.extend(_rows(entry.journal))
    return tuple(found)


def _rows(journal: RotationJournal) -> list[RotationInProgress]:
    from envmatrix.rotation.engine import resume_command

    since = journal.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        RotationInProgress(
            secret, journal.environment, journal.path, journal.step.value, journal.holder, since,
            resume_command(journal, secret),
        )
        for secret in journal.secrets
    ]  # fmt: skip


def in_progress_line(row: RotationInProgress) -> str:
    """The human line: what stopped where, and the command that finishes it."""
    where = row.environment or "(repository)"
    return (
        f"rotation left half-way: {row.secret} in {where} (Vault {row.path}, step {row.step},"
        f" started {row.since} by {row.holder}); finish it with: {row.resume}"
    )
