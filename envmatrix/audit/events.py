"""The audit trail: one record per write envmatrix makes, never a value.

`AuditEvent` is what every writer (apply, rotation, locks) emits; an `AuditSink` stores it. Sinks:
`NullSink` (tests of pure logic), and the SQLite / PostgreSQL sinks in `envmatrix.audit.store`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol


@dataclass(frozen=True)
class AuditEvent:
    """One write: who did what to which target, from which Vault version, and how it ended."""

    action: str  # e.g. secret.put, secret.delete, variable.set, environment.create, lock.take
    target: str  # e.g. github:occ-labs/operator-console/production/SUPABASE_URL
    result: str  # ok | failed | skipped
    actor: str = ""
    vault_version: int | None = None
    detail: str = ""  # cause of a failure; never a value
    time: datetime = field(default_factory=lambda: datetime.now(UTC))


class AuditSink(Protocol):
    """Somewhere audit events are stored."""

    def record(self, event: AuditEvent) -> None: ...


class NullSink:
    """Discards events (pure-logic tests, dry runs)."""

    def record(self, event: AuditEvent) -> None:
        return None


class MemorySink:
    """Keeps events in a list (tests, and the demo's report)."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)
