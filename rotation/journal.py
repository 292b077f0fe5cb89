"""The rotation journal: one Vault document per rotation group, written before every next step.

It lives at `<mount>/envmatrix/rotation/<path>` (`<path>` is the group's resolved Vault path) and
is both the record of where a rotation stands and its lock: a rotation begins by writing the
journal with check-and-set against the version it read (0 when there is none), so of two runners
that start together exactly one wins, and every later step write is check-and-set too, so a
runner that lost the journal notices before its next step. The journal never holds a value:
values wait at `<mount>/envmatrix/pending/<path>` until promotion.

Steps, in order (a crash after any of them resumes with the next):

    started      the lock is taken; nothing else happened yet
    created      the strategy minted the credential; its handle is journaled (values in memory)
    staged       the new values are in Vault at envmatrix/pending/<path>
    tested       the strategy accepted (set) and proved (test) the new credential
    promoted     the new values are the path's current Vault version
    synced       every GitHub copy holds the new version; the grace period runs
    revoked      the previous credential is retired
    done         finished (terminal)
    rolling-back the previous values are being made current again
    rolled-back  finished by rollback (terminal)
    failed       abandoned before cut-over, new credential discarded (terminal)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from envmatrix.actor import holder_gone
from envmatrix.errors import LockHeldError, VaultCasMismatch
from envmatrix.ports import VaultPort
from envmatrix.timefmt import iso_utc, parse_iso_utc

JOURNAL_PREFIX = "envmatrix/rotation"
PENDING_PREFIX = "envmatrix/pending"
JOURNAL_FORMAT = 1
# A journal not written for this long belongs to a runner that is gone: `rotate --due` resumes
# it. Every step rewrites the journal, and no single step is meant to take this long.
JOURNAL_LEASE = timedelta(hours=1)


class Step(StrEnum):
    """Where a rotation stands; see the module docstring."""

    STARTED = "started"
    CREATED = "created"
    STAGED = "staged"
    TESTED = "tested"
    PROMOTED = "promoted"
    SYNCED = "synced"
    REVOKED = "revoked"
    DONE = "done"
    ROLLING_BACK = "rolling-back"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (Step.DONE, Step.ROLLED_BACK, Step.FAILED)

    @property
    def before_cutover(self) -> bool:
        return self in (Step.STARTED, Step.CREATED, Step.STAGED, Step.TESTED)


def journal_path(path: str) -> str:
    """Where the journal of the group at Vault `path` lives."""
    return f"{JOURNAL_PREFIX}/{path}"


def pending_path(path: str) -> str:
    """Where the group's new values wait until promotion."""
    return f"{PENDING_PREFIX}/{path}"


def _stamp(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment else None


def _parse(text: Any) -> datetime | None:
    if not text:
        return None
    return parse_iso_utc(str(text))


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class RotationJournal:
    """One rotation of one group: metadata only, never a value."""

    id: str
    path: str
    environment: str | None  # the logical environment the strategy acts for; None: repository
    environments: tuple[str, ...]  # every logical environment whose secrets read this path
    secrets: tuple[str, ...]  # the secrets whose values the strategy replaces
    strategy: str
    step: Step
    holder: str
    started_at: datetime
    updated_at: datetime
    previous_version: int | None = None  # current Vault version when the rotation began
    new_version: int | None = None  # the version promotion wrote
    restored_version: int | None = None  # the version rollback wrote
    handle: Mapping[str, str] = field(default_factory=dict)
    grace: str | None = None  # the policy's rotation.grace, e.g. "7d"
    grace_until: datetime | None = None
    history: Mapping[str, str] = field(default_factory=dict)  # step -> time reached
    error: str | None = None  # one line, why it failed; never a value
    forced: bool = False  # `rotate --force`: an emergency rotation, no grace
    retire_version: int | None = None  # forced: an earlier version still to revoke (in grace)

    def at(self, step: Step, now: datetime, **changes: Any) -> RotationJournal:
        """This journal moved on to `step` at `now`, with other fields changed."""
        history = {**self.history, step.value: _stamp(now) or ""}
        return replace(self, step=step, updated_at=now, history=history, **changes)

    def to_document(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            format=JOURNAL_FORMAT,
            step=self.step.value,
            environments=list(self.environments),
            secrets=list(self.secrets),
            handle=dict(self.handle),
            history=dict(self.history),
            started_at=_stamp(self.started_at),
            updated_at=_stamp(self.updated_at),
            grace_until=_stamp(self.grace_until),
        )
        return data

    @classmethod
    def from_document(cls, data: Mapping[str, Any]) -> RotationJournal:
        return cls(
            id=str(data["id"]),
            path=str(data["path"]),
            environment=_optional_text(data.get("environment")),
            environments=tuple(data.get("environments") or ()),
            secrets=tuple(data.get("secrets") or ()),
            strategy=str(data["strategy"]),
            step=Step(data["step"]),
            holder=str(data.get("holder", "")),
            started_at=_parse(data["started_at"]) or datetime.now(UTC),
            updated_at=_parse(data["updated_at"]) or datetime.now(UTC),
            previous_version=data.get("previous_version"),
            new_version=data.get("new_version"),
            restored_version=data.get("restored_version"),
            handle={str(k): str(v) for k, v in (data.get("handle") or {}).items()},
            grace=data.get("grace"),
            grace_until=_parse(data.get("grace_until")),
            history=dict(data.get("history") or {}),
            error=data.get("error"),
            forced=bool(data.get("forced", False)),
            retire_version=data.get("retire_version"),
        )

    def holder_lost(self, now: datetime) -> bool:
        """The runner holding this unfinished rotation is gone: its process on this host no
        longer exists, or it has not written the journal for JOURNAL_LEASE."""
        return holder_gone(self.holder) or now - self.updated_at >= JOURNAL_LEASE

    @property
    def left_half_way(self) -> bool:
        """Stopped between steps (not waiting for its grace period, not finished)."""
        return not self.step.terminal and self.step is not Step.SYNCED

    def held_message(self) -> str:
        """Who holds this rotation, since when, and what to do about it."""
        return (
            f"{self.path} is being rotated by {self.holder} since {_stamp(self.started_at)}"
            f" (step {self.step.value}, rotation {self.id})"
        )


@dataclass(frozen=True)
class JournalEntry:
    """A journal and the Vault document version it was read at or written as (for CAS)."""

    journal: RotationJournal
    version: int


class JournalStore:
    """Reads and check-and-set writes of rotation journals in Vault."""

    def __init__(self, vault: VaultPort) -> None:
        self._vault = vault

    def read(self, path: str) -> JournalEntry | None:
        """The group's journal, or None when it was never rotated."""
        document = self._vault.read_document(journal_path(path))
        if document is None:
            return None
        return JournalEntry(RotationJournal.from_document(document.data), document.version)

    def begin(self, journal: RotationJournal, over: JournalEntry | None) -> JournalEntry:
        """Take the group: write a new journal over the finished one read (or none).

        Losing the check-and-set means another runner began first: LockHeldError names it.
        """
        try:
            version = self._write(journal, over.version if over else 0)
        except VaultCasMismatch:
            raise self._held(journal.path) from None
        return JournalEntry(journal, version)

    def advance(self, entry: JournalEntry, journal: RotationJournal) -> JournalEntry:
        """Record the next step; fails with LockHeldError if someone else wrote meanwhile."""
        try:
            version = self._write(journal, entry.version)
        except VaultCasMismatch:
            raise self._held(journal.path) from None
        return JournalEntry(journal, version)

    def _write(self, journal: RotationJournal, cas: int) -> int:
        return self._vault.write_document(
            journal_path(journal.path), journal.to_document(), cas=cas
        )

    def _held(self, path: str) -> LockHeldError:
        current = self.read(path)
        if current is None:
            return LockHeldError(f"{path}: the rotation journal changed under this runner")
        return LockHeldError(current.journal.held_message())
