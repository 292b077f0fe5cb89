"""Locks in Vault, so two runners never write the same things at once (Terraform's state lock).

A lock is a KV v2 document at `<mount>/envmatrix/locks/<name>`:
`{id, holder, operation, created_at, lease_seconds, renewals}`. Every change to it is a
check-and-set write, so exactly one of several racing runners wins:

- take: `cas=0` when the path is new; `cas=<version>` over a released or expired lock;
- renew: the holder rewrites its document with `cas=<the version it wrote last>`;
- release and force-unlock: write a *released* document (`{released_at, released_by, ...}`, no
  `id`) with `cas=<the version we took>`. A lock is never deleted: a delete cannot be made
  conditional in KV v2, so "read, check the id, delete" could remove a lock someone took in
  between. Each take, renewal and release is one KV version (Vault keeps the mount's
  `max_versions` of them); takes, releases, losses and break-ins are audit events.

Leases, judged by Vault's clock only. A lock is a lease of `lease_seconds` (default
`DEFAULT_LEASE`, `ENVMATRIX_LOCK_LEASE` sets it) that the holder renews from a background thread
every quarter lease while its run lasts, so runs longer than the lease keep their lock. A waiter
considers a lock expired only when Vault says so: the `Date` of Vault's answer minus the
`created_time` of the lock's current version (its last renewal) is at least the holder's lease.
No runner's own clock is compared with another's, so runners hours apart still exclude each
other. A crashed holder stops renewing and its lock expires one lease later; a holder process
gone from this very host is taken over at once; `envmatrix force-unlock ID` frees a lock sooner.

Losing a lock. Before each write a run calls `check_held`: it stops (`LockLost`, exit 1) when
its renewal found the lock taken over or freed, when the lock document no longer carries its
ID, or when no renewal succeeded for three quarters of the lease by its own monotonic clock
(a waiter could take the lock a quarter lease later). Only the write in flight can still land.

A held lock makes the runner wait, polling, up to its timeout (default 0: fail at once, as
Terraform's `-lock-timeout`), then raise `LockHeldError` naming the holder and the lock ID.

Rotation needs no lock of its own (its journal, created with `cas=0`, already excludes a second
rotation of a group); it takes the apply lock around its GitHub sync step.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from envmatrix.actor import holder_gone, holder_identity
from envmatrix.audit.events import AuditEvent, AuditSink, NullSink
from envmatrix.errors import (
    EnvmatrixError,
    LockHeldError,
    LockLost,
    RuntimeFailure,
    UsageError,
    VaultCasMismatch,
)
from envmatrix.ports import VaultDocument, VaultPort
from envmatrix.timefmt import parse_duration

LOCK_PREFIX = "envmatrix/locks/"
APPLY_LOCK = "apply"  # one lock per mount: every apply against a mount excludes the others
DEFAULT_LEASE = timedelta(minutes=2)
LEGACY_LEASE = timedelta(hours=1)  # locks written before leases had a fixed hour
LEASE_BOUNDS = (timedelta(seconds=2), timedelta(hours=24))
LEASE_SETTING = "ENVMATRIX_LOCK_LEASE"
POLL_INTERVAL = 2.0  # seconds between looks at a held lock while waiting
_NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


def lock_path(name: str) -> str:
    """The lock document's path under the mount (`apply`: the mount's apply lock)."""
    if not _NAME.match(name) or ".." in name.split("/"):
        raise UsageError(f"lock name {name!r} must be path segments of letters, digits, _ . -")
    return LOCK_PREFIX + name


def configured_lease(environ: Mapping[str, str] = os.environ) -> timedelta:
    """The lease a run's locks get: `ENVMATRIX_LOCK_LEASE` (`30s`, `5m`), else DEFAULT_LEASE.

    Raises UsageError (exit 3) for anything that is not a duration within LEASE_BOUNDS.
    """
    text = environ.get(LEASE_SETTING, "").strip()
    if not text:
        return DEFAULT_LEASE
    low, high = LEASE_BOUNDS
    try:
        lease = parse_duration(text)
    except ValueError:
        lease = None
    if lease is None or not low <= lease <= high:
        raise UsageError(f"{LEASE_SETTING}={text!r} must be a duration from 2s to 24h, like 2m")
    return lease


@dataclass(frozen=True)
class HeldLock:
    """A held lock as stored in Vault, plus the KV version that stores it.

    `written_at` and `read_at` are Vault's clock (the version's creation and the read); they are
    None when the Vault port does not report them.
    """

    id: str
    holder: str
    operation: str
    created_at: datetime
    lease: timedelta
    version: int
    renewals: int = 0
    written_at: datetime | None = field(default=None, compare=False)
    read_at: datetime | None = field(default=None, compare=False)

    def expired(self) -> bool:
        """Vault's clock says the lease was not renewed for a whole lease; False when unknown."""
        if self.written_at is None or self.read_at is None:
            return False
        return self.read_at - self.written_at >= self.lease

    def holder_gone(self) -> bool:
        """The holder ran on this host and its process no longer exists (it was killed).

        Only a same-host holder can be checked; a lock from another machine waits for its expiry
        or force-unlock, as in Terraform.
        """
        return holder_gone(self.holder)
        return False

    def to_document(self) -> dict[str, object]:
        return {
            "id": self.id,
            "holder": self.holder,
            "operation": self.operation,
            "created_at": self.created_at.isoformat(),
            "lease_seconds": self.lease.total_seconds(),
            "renewals": self.renewals,
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
                _lease_of(data),
                document.version,
                int(data.get("renewals", 0)),
                document.written_at,
                document.read_at,
            )
        except (KeyError, ValueError, TypeError):
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


def _lease_of(data: Mapping[str, Any]) -> timedelta:
    if "lease_seconds" not in data:
        return LEGACY_LEASE
    seconds = float(data["lease_seconds"])
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("lease_seconds")
    return timedelta(seconds=seconds)


def held_message(lock: HeldLock) -> str:
    """The one line a second runner prints (Terraform's "Error acquiring the state lock")."""
    return (
        f"state locked by {lock.holder} since {lock.created_at:%Y-%m-%d %H:%M:%S %Z} "
        f"(lock ID {lock.id}, operation {lock.operation}); wait, or run "
        f"envmatrix force-unlock {lock.id}"
    )


class VaultLock:
    """A lock in Vault, used as a context manager around one run's writes.

    As a context manager it takes the lock, renews it from a daemon thread until the block ends,
    then releases it. `acquire()` alone takes it without renewing (its lease runs out unless
    `start_renewing()` follows). Times: `lease` and `timeout` are durations; `clock` is only
    written into documents for people to read, never compared with another runner's.
    """

    def __init__(
        self,
        vault: VaultPort,
        name: str,
        operation: str,
        actor: str,
        audit: AuditSink | None = None,
        timeout: float = 0.0,
        lease: timedelta | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._vault, self.path, self._operation = vault, lock_path(name), operation
        self._actor, self._audit = actor, audit or NullSink()
        self._timeout, self.lease = timeout, lease or configured_lease()
        self._clock, self._sleep = clock, sleep
        self.held: HeldLock | None = None
        self._last_seen: HeldLock | None = None
        self.release_error: str | None = None  # why the lock could not be released, if so
        self.took_over: str | None = None  # the dead or expired lock this run broke, if any
        self.lost: str | None = None  # why this run no longer holds the lock, once it does not
        self._loss_recorded = False
        self._mutex = threading.Lock()  # one renewal, check or release at a time
        self._renewed = 0.0  # monotonic time the last successful write of our lock was sent
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._unchanged: tuple[str, int, float] | None = None  # (id, version, first seen)

    def __enter__(self) -> HeldLock:
        held = self.acquire()
        self.start_renewing()
        return held

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
            elif current.expired() or self._unrenewed_while_waiting(current):
                taken = self._write_lock(current.version, broken=current, why="expired")
            elif current.holder_gone():
                taken = self._write_lock(current.version, broken=current, why="holder process gone")
            else:
                taken, self._last_seen = None, current
            if taken is not None:
                return taken
            waited = self._wait_or_fail(waited)

    def start_renewing(self) -> None:
        """Renew the held lock every quarter lease from a daemon thread, until release()."""
        if self.held is None or self._renewer is not None:
            return
        self._stop.clear()
        self._renewer = threading.Thread(
            target=self._renew_loop, name=f"envmatrix-lock-{self.path}", daemon=True
        )
        self._renewer.start()

    def check_held(self) -> None:
        """Raise LockLost unless this run still holds the lock; call it before every write.

        Lost means: a renewal found the lock taken over or freed, the lock document no longer
        carries our ID, or no renewal succeeded for three quarters of the lease (by this
        process's monotonic clock). A failed look at Vault is not a loss by itself.
        """
        with self._mutex:
            if self.lost is None:
                self.lost = self._why_lost()
            if self.lost is not None:
                if not self._loss_recorded:  # the renewal thread never touches the audit store
                    self._loss_recorded = True
                    version = self.held.version if self.held else None
                    self._record("lock.lost", "failed", version, self.lost)
                raise LockLost(self.lost)

    def release(self) -> None:
        """Free the lock if we still hold it (a lock taken over meanwhile is left alone)."""
        self._stop_renewing()
        with self._mutex:
            held, self.held = self.held, None
        if held is None:
            return
        try:
            version = self._write_released(held, "released")
        except VaultCasMismatch:
            if self.lost is None:
                self.lost = self._loss_message(held, self._read_quietly())
                self.release_error = f"{self.lost}; left as it is"
            self._record(
                "lock.release",
                "failed",
                held.version,
                f"lock {held.id} was broken or taken over meanwhile; left as it is",
            )
            return
        except EnvmatrixError as exc:  # Vault sealed or down: keep the run's own report
            self.release_error = (
                f"lock {held.id} not released ({exc}); it expires one lease"
                f" ({_seconds(held.lease)}) after its last renewal, or use"
                " force-unlock"
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
        now, sent = self._clock(), time.monotonic()
        mine = HeldLock(
            str(uuid.uuid4()), holder_identity(self._actor), self._operation, now, self.lease, 0
        )
        try:
            version = self._vault.write_document(self.path, mine.to_document(), cas=cas)
        except VaultCasMismatch:
            self._last_seen = self.read()  # the racer that won, reported if we give up now
            return None
        self.held, self._renewed, self.lost = replace(mine, version=version), sent, None
        if broken is not None:
            self.took_over = f"took over lock {broken.id} ({why}; it was {broken.describe()})"
            self._record("lock.broken", "ok", version, f"{why}: lock {broken.describe()}")
        self._record("lock.take", "ok", version, f"lock ID {mine.id}, operation {self._operation}")
        return self.held

    def _unrenewed_while_waiting(self, current: HeldLock) -> bool:
        """Without Vault's timestamps: the same version seen unchanged for a whole lease while
        we waited (our monotonic clock measures the wait, never a time the holder wrote)."""
        if current.written_at is not None and current.read_at is not None:
            return False
        seen = self._unchanged
        if seen is None or seen[:2] != (current.id, current.version):
            self._unchanged = (current.id, current.version, time.monotonic())
            return False
        return time.monotonic() - seen[2] >= current.lease.total_seconds()

    def _renew_loop(self) -> None:
        every = self.lease.total_seconds() / 4
        pause = every
        while not self._stop.wait(pause):
            try:
                self._renew()
                pause = every
            except LockLost:
                return
            except EnvmatrixError:  # Vault unreachable for now: retry soon; check_held judges
                pause = max(every / 4, 0.1)

    def _renew(self) -> None:
        """Rewrite our lock document (check-and-set on the version we wrote last)."""
        with self._mutex:
            held = self.held
            if held is None or self.lost is not None:
                raise LockLost(self.lost or "not held")
            renewed = replace(held, renewals=held.renewals + 1)
            sent = time.monotonic()
            try:
                version = self._vault.write_document(
                    self.path, renewed.to_document(), cas=held.version
                )
            except VaultCasMismatch:
                current = self._read_quietly()
                if isinstance(current, HeldLock) and current.id == held.id:
                    version = current.version  # a retried write of ours had landed already
                else:
                    self.lost = self._loss_message(held, current)
                    raise LockLost(self.lost) from None
            self.held, self._renewed = replace(renewed, version=version), sent

    def _why_lost(self) -> str | None:
        held = self.held
        if held is None:
            return "the lock is not held (released already)"
        lapse = time.monotonic() - self._renewed
        if lapse >= held.lease.total_seconds() * 3 / 4:
            return (
                f"lost lock {held.id}: it could not be renewed for {lapse:.0f}s of its"
                f" {_seconds(held.lease)} lease, so another runner may take it over"
            )
        current = self._read_quietly()
        if current is False or (isinstance(current, HeldLock) and current.id == held.id):
            return None
        return self._loss_message(held, current)

    def _read_quietly(self) -> HeldLock | None | bool:
        """The lock now; False when Vault could not be asked."""
        try:
            return self.read()
        except EnvmatrixError:
            return False

    def _loss_message(self, held: HeldLock, current: HeldLock | None | bool) -> str:
        where = f"{self._vault.mount}/{self.path}"
        if isinstance(current, HeldLock):
            return (
                f"lost lock {held.id} at {where}: it was taken over by {current.holder}"
                f" (lock ID {current.id}, operation {current.operation})"
            )
        if current is None:
            return f"lost lock {held.id} at {where}: it was released by someone else (force-unlock)"
        return f"lost lock {held.id} at {where}: it changed and Vault cannot be read to say how"

    def _stop_renewing(self) -> None:
        renewer, self._renewer = self._renewer, None
        self._stop.set()
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join()

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
                " it at the same moment and its lock cannot be read; try again"
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


def _seconds(lease: timedelta) -> str:
    return f"{lease.total_seconds():g}s"


# -- the apply lock with shards (`--shard K/N`, issue 13) ---------------------------------------

SHARD_INDEX = "apply-shards"  # lists the shard locks ever taken on the mount (never shrinks)
_SHARD_LOCK = re.compile(r"^apply/shard-(\d+)-of-(\d+)$")


def shard_lock_name(index: int, count: int) -> str:
    """`apply/shard-K-of-N`: the lock shard K of N holds (force-unlock --lock takes it)."""
    return f"apply/shard-{index}-of-{count}"


class ApplyLock:
    """The apply lock of one run: the mount's `apply` lock, or its shard's lock.

    - unsharded (`shard` None): `<mount>/envmatrix/locks/apply`, and no shard lock may be held;
    - shard K of N: `<mount>/envmatrix/locks/apply/shard-K-of-N`, and neither `apply` nor a
      shard lock of another N (their repositories overlap) may be held. Shards K and K' of the
      same N hold disjoint repositories and run at once.

    Shard locks are found through an index document (`envmatrix/locks/apply-shards`: the names
    of every shard lock taken on the mount, written with check-and-set). Each side takes its
    own lock first, then (a shard after adding itself to the index) looks at the others': with
    Vault's linearizable writes, of two runs that conflict at least one sees the other, and it
    releases its lock and waits (up to `timeout`) or raises LockHeldError naming the holder.
    A conflicting lock whose lease expired, or whose holder process is gone from this host,
    does not count. Used like VaultLock: `with lock:`, `check_held()`, `took_over`,
    `release_error`.
    """

    def __init__(
        self,
        vault: VaultPort,
        operation: str,
        actor: str,
        audit: AuditSink | None = None,
        timeout: float = 0.0,
        shard: tuple[int, int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._vault, self._operation, self._actor = vault, operation, actor
        self._audit, self._timeout, self._sleep = audit, timeout, sleep
        self.shard = shard
        self.name = APPLY_LOCK if shard is None else shard_lock_name(*shard)
        self._inner: VaultLock | None = None

    @property
    def took_over(self) -> str | None:
        return self._inner.took_over if self._inner is not None else None

    @property
    def release_error(self) -> str | None:
        return self._inner.release_error if self._inner is not None else None

    def __enter__(self) -> HeldLock:
        waited = 0.0
        while True:
            lock = VaultLock(
                self._vault,
                self.name,
                self._operation,
                self._actor,
                self._audit,
                timeout=max(0.0, self._timeout - waited),
                sleep=self._sleep,
            )
            started = time.monotonic()
            try:
                held = lock.acquire()
            except LockHeldError as exc:
                if self.shard is None:
                    raise
                raise LockHeldError(f"{exc} --lock {self.name}") from None
            waited += time.monotonic() - started
            if self.shard is not None:
                self._register()
            conflict = self._conflict()
            if conflict is None:
                self._inner = lock
                lock.start_renewing()
                return held
            lock.release()
            if waited >= self._timeout:
                name, other = conflict
                raise LockHeldError(
                    f"{held_message(other)} --lock {name} (an unsharded apply excludes every"
                    " shard, and shards of different N exclude each other)"
                )
            pause = min(POLL_INTERVAL, self._timeout - waited)
            self._sleep(pause)
            waited += pause

    def __exit__(self, *exc: object) -> None:
        if self._inner is not None:
            self._inner.release()

    def check_held(self) -> None:
        """LockLost unless this run still holds its lock (VaultLock.check_held)."""
        if self._inner is None:
            raise LockLost("the lock is not held")
        self._inner.check_held()

    def _conflict(self) -> tuple[str, HeldLock] | None:
        """A live lock this run may not run beside: (its name, it), or None."""
        names = [] if self.shard is None else [APPLY_LOCK]
        names += [n for n in self._index()[1] if self._excludes(n)]
        for name in names:
            document = self._vault.read_document(lock_path(name))
            other = HeldLock.from_document(document) if document is not None else None
            if other is not None and not other.expired() and not other.holder_gone():
                return name, other
        return None

    def _excludes(self, name: str) -> bool:
        """Whether the shard lock `name` excludes this run (unsharded: every one; shard K/N:
        those of another N)."""
        found = _SHARD_LOCK.match(name)
        if found is None or name == self.name:
            return False
        return self.shard is None or int(found[2]) != self.shard[1]

    def _index(self) -> tuple[int, list[str]]:
        """(version, shard lock names) of the index document; (0, []) when there is none."""
        document = self._vault.read_document(LOCK_PREFIX + SHARD_INDEX)
        if document is None:
            return 0, []
        names = document.data.get("locks")
        listed = [str(n) for n in names] if isinstance(names, list) else []
        return document.version, listed

    def _register(self) -> None:
        """Add this shard's lock name to the index (check-and-set; retried on a race)."""
        for _ in range(20):
            version, names = self._index()
            if self.name in names:
                return
            try:
                self._vault.write_document(
                    LOCK_PREFIX + SHARD_INDEX, {"locks": sorted([*names, self.name])}, cas=version
                )
                return
            except VaultCasMismatch:
                continue
        raise RuntimeFailure(
            f"cannot record lock {self.name} in {self._vault.mount}/{LOCK_PREFIX}{SHARD_INDEX}:"
            " it kept changing; try again"
        )
