"""Locks in Vault, so two runners never write the same things at once (Terraform's state lock).

A lock is a KV v2 document at `<mount>/envmatrix/locks/<name>`:
`{id, holder, operation, created_at, expires_at}`. Every change to it is a check-and-set write,
so exactly one of several racing runners wins:

- take: `cas=0` when the path is new; `cas=<version>` over a released or expired lock;
- release and force-unlock: write a *released* document (`{released_at, released_by, ...}`, no
  `id`) with `cas=<the version we took>`. A lock is never deleted: a delete cannot be made
  conditional in KV v2, so "read, check the id, delete" could remove a lock someone took in
  between. Each take and release is one KV version, so Vault's version history doubles as a
  lock log (bounded by the mount's `max_versions`).

A held lock makes the runner wait, polling, up to its timeout (default 0: fail at once, as
Terraform's `-lock-timeout`), then raise `LockHeldError` naming the holder and the lock ID.
Locks are not refreshed while held: they expire after `DEFAULT_EXPIRY` (long enough for any
apply or rotation run; a crashed runner's lock is taken over by the next runner after that, or
freed sooner with `envmatrix force-unlock ID`). Takes, releases and break-ins are audit events.

Rotation needs no lock of its own (its journal, created with `cas=0`, already excludes a second
rotation of a group); it takes the apply lock around its GitHub sync step.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from envmatrix.audit import AuditEvent, AuditSink, NullSink
from envmatrix.errors import (
    EnvmatrixError,
    LockHeldError,
    RuntimeFailure,
    UsageError,
    VaultCasMismatch,
)
from envmatrix.ports import VaultDocument, VaultPort

LOCK_PREFIX = "envmatrix/locks/"
APPLY_LOCK = "apply"  # one lock per mount: every apply against a mount excludes the others
DEFAULT_EXPIRY = timedelta(hours=1)
POLL_INTERVAL = 2.0  # seconds between looks at a held lock while waiting
_NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


def lock_path(name: str) -> str:
    """The lock document's path under the mount (`apply`: the mount's apply lock)."""
    if not _NAME.match(name) or ".." in name.split("/"):
        raise UsageError(f"lock name {name!r} must be path segments of letters, digits, _ . -")
    return LOCK_PREFIX + name


def holder_identity(actor: str) -> str:
    """Who holds a lock: the actor (Vault token / CI identity), host and process."""
    return f"{actor or 'unknown'} on {socket.gethostname()} pid {os.getpid()}"


@dataclass(frozen=True)
class HeldLock:
    """A held lock as stored in Vault, plus the KV version that stores it."""

    id: str
    holder: str
    operation: str
    created_at: datetime
    expires_at: datetime
    version: int

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def holder_gone(self) -> bool:
        """The holder ran on this host and its process no longer exists (it was killed).

        Only a same-host holder can be checked; a lock from another machine waits for its expiry
        or force-unlock, as in Terraform.
        """
        match = re.search(r" on (?P<host>\S+) pid (?P<pid>\d+)$", self.holder)
        if match is None or match["host"] != socket.gethostname():
            return False
        try:
            os.kill(int(match["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, owned by someone else
            return False
        return False

    def to_document(self) -> dict[str, str]:
        return {
            "id": self.id,
            "holder": self.holder,
            "operation": self.operation,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }

    @classmethod
    def from_document(cls, document: VaultDocument) -> HeldLock | None:
        """The held lock a document describes, or None when it is a released (free) lock."""
        data: Mapping[str, Any] = document.data
        if not data.get("id"):
            return None
        try:
            return cls(
                str(data["id"]),
                str(data.get("holder", "unknown")),
                str(data.get("operation", "unknown")),
                datetime.fromisoformat(str(data["created_at"])),
                datetime.fromisoformat(str(data["expires_at"])),
                document.version,
            )
        except (KeyError, ValueError):
            raise RuntimeFailure(
                f"lock document at {document.path} is malformed; delete it in Vault if no "
                "envmatrix run is active"
            ) from None

    def describe(self) -> str:
        """`state locked by ... since ...` without the advice; for audit details."""
        return (
            f"held by {self.holder} since {self.created_at:%Y-%m-%d %H:%M:%S %Z} "
            f"(lock ID {self.id}, operation {self.operation})"
        )


def held_message(lock: HeldLock) -> str:
    """The one line a second runner prints (Terraform's "Error acquiring the state lock")."""
    return (
        f"state locked by {lock.holder} since {lock.created_at:%Y-%m-%d %H:%M:%S %Z} "
        f"(lock ID {lock.id}, operation {lock.operation}); wait, or run "
        f"envmatrix force-unlock {lock.id}"
    )


class VaultLock:
    """A lock in Vault, used as a context manager around one run's writes."""

    def __init__(
        self,
        vault: VaultPort,
        name: str,
        operation: str,
        actor: str,
        audit: AuditSink | None = None,
        timeout: float = 0.0,
        expiry: timedelta = DEFAULT_EXPIRY,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._vault, self.path, self._operation = vault, lock_path(name), operation
        self._actor, self._audit = actor, audit or NullSink()
        self._timeout, self._expiry = timeout, expiry
        self._clock, self._sleep = clock, sleep
        self.held: HeldLock | None = None
        self._last_seen: HeldLock | None = None
        self.release_error: str | None = None  # why the lock could not be released, if so
        self.took_over: str | None = None  # the dead or expired lock this run broke, if any

    def __enter__(self) -> HeldLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def acquire(self) -> HeldLock:
        """Take the lock, waiting up to the timeout; raises LockHeldError naming the holder."""
        waited = 0.0
        while True:
            document = self._vault.read_document(self.path)
            current = HeldLock.from_document(document) if document is not None else None
            if current is None:
                taken = self._write_lock(document.version if document is not None else 0)
            elif current.expired(self._clock()):
                taken = self._write_lock(current.version, broken=current, why="expired")
            elif current.holder_gone():
                taken = self._write_lock(current.version, broken=current, why="holder process gone")
            else:
                taken, self._last_seen = None, current
            if taken is not None:
                return taken
            waited = self._wait_or_fail(waited)

    def release(self) -> None:
        """Free the lock if we still hold it (a lock taken over after expiry is left alone)."""
        held, self.held = self.held, None
        if held is None:
            return
        try:
            version = self._write_released(held, "released")
        except VaultCasMismatch:
            self._record(
                "lock.release",
                "failed",
                held.version,
                f"lock {held.id} was broken or taken over meanwhile; left as it is",
            )
            return
        except EnvmatrixError as exc:  # Vault sealed or down: keep the run's own report
            self.release_error = (
                f"lock {held.id} not released ({exc}); it expires at "
                f"{held.expires_at:%Y-%m-%d %H:%M %Z} or use force-unlock"
            )
            self._record("lock.release", "failed", held.version, self.release_error)
            return
        self._record("lock.release", "ok", version, f"lock ID {held.id}")

    def force_unlock(self, lock_id: str) -> HeldLock:
        """Free someone else's lock, only when `lock_id` is the one held. Returns what was freed."""
        current = self.read()
        if current is None:
            raise RuntimeFailure(f"no lock is held at {self._vault.mount}/{self.path}")
        if current.id != lock_id:
            raise LockHeldError(
                f"lock ID {lock_id} does not match the lock held at {self._vault.mount}/"
                f"{self.path} (lock ID {current.id}); nothing unlocked"
            )
        try:
            version = self._write_released(current, "force-unlock")
        except VaultCasMismatch:
            raise LockHeldError(
                f"lock {lock_id} changed while unlocking (released or taken over); nothing unlocked"
            ) from None
        self._record("lock.broken", "ok", version, f"force-unlock: lock {current.describe()}")
        return current

    def read(self) -> HeldLock | None:
        """The lock held now, or None."""
        document = self._vault.read_document(self.path)
        return HeldLock.from_document(document) if document is not None else None

    # -- internals ----------------------------------------------------------------------------

    def _write_lock(
        self, cas: int, broken: HeldLock | None = None, why: str = "expired"
    ) -> HeldLock | None:
        """Write our lock over version `cas`; None when a racer changed the lock first."""
        now = self._clock()
        mine = HeldLock(
            str(uuid.uuid4()),
            holder_identity(self._actor),
            self._operation,
            now,
            now + self._expiry,
            0,
        )
        try:
            version = self._vault.write_document(self.path, mine.to_document(), cas=cas)
        except VaultCasMismatch:
            self._last_seen = self.read()  # the racer that won, reported if we give up now
            return None
        self.held = replace(mine, version=version)
        if broken is not None:
            self.took_over = f"took over lock {broken.id} ({why}; it was {broken.describe()})"
            self._record("lock.broken", "ok", version, f"{why}: lock {broken.describe()}")
        self._record("lock.take", "ok", version, f"lock ID {mine.id}, operation {self._operation}")
        return self.held

    def _wait_or_fail(self, waited: float) -> float:
        """Sleep one poll interval, or give up when the timeout is spent."""
        if waited >= self._timeout:
            raise self._give_up()
        pause = min(POLL_INTERVAL, self._timeout - waited)
        self._sleep(pause)
        return waited + pause

    def _give_up(self) -> LockHeldError:
        seen = self._last_seen
        if seen is None:
            self._record("lock.take", "failed", None, "check-and-set lost, no holder readable")
            return LockHeldError(
                f"cannot take the lock at {self._vault.mount}/{self.path}: another runner changed"
                " it at the same moment, or its current version is deleted (remove it with"
                f" `bao kv metadata delete -mount={self._vault.mount} {self.path}`)"
            )
        self._record("lock.take", "failed", seen.version, seen.describe())
        return LockHeldError(held_message(seen))

    def _write_released(self, held: HeldLock, how: str) -> int:
        document = {
            "released_at": self._clock().isoformat(),
            "released_by": holder_identity(self._actor),
            "released_how": how,
            "last_id": held.id,
        }
        return self._vault.write_document(self.path, document, cas=held.version)

    def _record(self, action: str, result: str, version: int | None, detail: str) -> None:
        self._audit.record(
            AuditEvent(
                action,
                f"vault:{self._vault.mount}/{self.path}",
                result,
                self._actor,
                version,
                detail,
            )
        )
