"""Where audit events are kept: a SQLite file (default) or a PostgreSQL table.

Both stores hold one row per event in a table `envmatrix_audit`:

    id             integer, ascending        (SQLite AUTOINCREMENT / PostgreSQL identity)
    time           UTC time of the event     (SQLite ISO 8601 text / PostgreSQL timestamptz)
    actor          Vault token (display name, accessor prefix) / GitHub or CI identity
    action         secret.put, secret.delete, variable.set, environment.create, state.write,
                   lock.take, lock.release, lock.broken, rotation steps ...
    target         github:owner/repo/env/NAME, vault:mount/path
    vault_version  the Vault version written from (or the lock document's version); may be NULL
    result         ok | failed | skipped
    detail         cause of a failure, lock ID ...; never a value

`AuditEvent` has no value field, and every detail is built from names, paths and statuses, so no
value can reach a row. Which store (`audit_sink_for`), in order:

1. `audit: {postgres: ENV_NAME}` in the policy: the DSN is read from that environment variable
   (a DSN carries a password, so it never sits in the policy file);
2. `audit: {sqlite: PATH}`: PATH relative to the policy file;
3. `$ENVMATRIX_AUDIT_DB`, else `.envmatrix/audit.sqlite` next to the policy file.

A store that cannot be opened fails the command before anything is written. A store that fails
later does not stop the writes it records (they already happened): `GuardedSink` counts the lost
event and hands a one-line warning naming its action and target to the caller (the CLI prints it
on stderr), so no fact is lost silently.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from envmatrix.audit.events import AuditEvent, AuditSink
from envmatrix.errors import AuditStoreError, PostgresError, UsageError
from envmatrix.files import ensure_private_file
from envmatrix.policy import Policy

DEFAULT_SQLITE = Path(".envmatrix") / "audit.sqlite"
_SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
TABLE = "envmatrix_audit"
COLUMNS = ("time", "actor", "action", "target", "vault_version", "result", "detail")

_SQLITE_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    time          TEXT    NOT NULL,
    actor         TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    target        TEXT    NOT NULL,
    vault_version INTEGER,
    result        TEXT    NOT NULL,
    detail        TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS {TABLE}_time ON {TABLE} (time);
"""

_POSTGRES_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time          timestamptz NOT NULL,
    actor         text        NOT NULL,
    action        text        NOT NULL,
    target        text        NOT NULL,
    vault_version bigint,
    result        text        NOT NULL,
    detail        text        NOT NULL DEFAULT ''
)""",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_time ON {TABLE} (time)",
)
# Two first runs creating the table at once would collide in the catalog; serialize them.
_SCHEMA_LOCK_KEY = 0x656E766D6174  # "envmat"


class AuditStore(AuditSink, Protocol):
    """An audit sink that can also be read back and closed."""

    where: str

    def query(self, since: datetime | None = None) -> list[AuditEvent]: ...

    def close(self) -> None: ...


class _SqlAuditSink:
    """What both stores do alike: one INSERT per event, one SELECT to read them back.

    A store names its driver's parameter marker and error class, and how a time goes into its
    `time` column and comes back out."""

    where: str
    _db: Any  # sqlite3.Connection or a PostgresSession: execute() gives iterable rows, close()
    _errors: type[Exception]
    _MARK: str

    def _to_column(self, moment: datetime) -> object:
        raise NotImplementedError

    def _from_column(self, value: Any) -> datetime:
        raise NotImplementedError

    def record(self, event: AuditEvent) -> None:
        """Append one event."""
        marks = ", ".join([self._MARK] * len(COLUMNS))
        try:
            self._db.execute(
                f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({marks})",
                (self._to_column(event.time), *_fields(event)),
            )
        except self._errors as exc:
            raise AuditStoreError(f"cannot write to {self.where}: {_reason(exc)}") from None

    def query(self, since: datetime | None = None) -> list[AuditEvent]:
        """Events at or after `since` (all when None), oldest first."""
        sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE}"
        params: tuple[object, ...] = ()
        if since is not None:
            sql, params = sql + f" WHERE time >= {self._MARK}", (self._to_column(since),)
        try:
            rows = list(self._db.execute(sql + " ORDER BY id", params))
        except self._errors as exc:
            raise AuditStoreError(f"cannot read {self.where}: {_reason(exc)}") from None
        return [_event(self._from_column(row[0]), row[1:]) for row in rows]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteAuditSink(_SqlAuditSink):
    """Audit events in a SQLite file (WAL mode, one commit per event)."""

    _errors = sqlite3.Error
    _MARK = "?"

    def __init__(self, path: str | Path) -> None:
        self.where = str(path)
        try:
            _private_sqlite_files(path)
            # autocommit: each event is durable on its own, whatever happens to the run after it
            self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
            _prepare_sqlite(self._db)
        except (OSError, sqlite3.Error) as exc:
            cause = _reason(exc)
            raise AuditStoreError(f"cannot open the audit database {path}: {cause}") from None

    def _to_column(self, moment: datetime) -> str:
        return _iso(moment)

    def _from_column(self, value: Any) -> datetime:
        return datetime.fromisoformat(value)


def _private_sqlite_files(path: str | Path) -> None:
    """The database file exists 0600 (folders 0700) before SQLite opens it: SQLite gives its
    -wal, -shm and -journal files the database file's mode. Leftover ones are narrowed too."""
    ensure_private_file(path)
    for suffix in _SQLITE_SIDECARS:
        sidecar = Path(f"{path}{suffix}")
        if sidecar.is_file():
            ensure_private_file(sidecar)


def _prepare_sqlite(db: sqlite3.Connection, attempts: int = 50) -> None:
    """WAL mode and the schema. Switching to WAL does not wait on the busy timeout, so when
    several first runs open a new file at once the losers retry (bounded) instead of failing."""
    for attempt in range(attempts):
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SQLITE_SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (1 + attempt % 5))


class PostgresAuditSink(_SqlAuditSink):
    """Audit events in a PostgreSQL table (psycopg 3, autocommit: one event per statement)."""

    _MARK = "%s"

    def __init__(self, dsn: str, where: str = "PostgreSQL", source: str = "") -> None:
        # only a PostgreSQL audit store needs the driver; the seam's errors never quote the DSN
        from envmatrix.adapters import postgres

        self.where, self._errors = where, PostgresError
        parsed = postgres.PostgresDsn(dsn, source or f"the DSN of {where}")  # UsageError: malformed
        try:
            self._db = postgres.open_session(parsed, timeout=10)
        except PostgresError as exc:
            raise AuditStoreError(f"cannot open the audit table in {where}: {exc}") from None
        try:
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
                for statement in _POSTGRES_SCHEMA:
                    self._db.execute(statement)
        except PostgresError as exc:
            self._db.close()
            raise AuditStoreError(f"cannot open the audit table in {where}: {exc}") from None

    def _to_column(self, moment: datetime) -> datetime:
        return _utc(moment)

    def _from_column(self, value: Any) -> datetime:
        return _utc(value)


class GuardedSink:
    """Wraps a store so a failing `record` never stops a run: it warns and counts instead."""

    def __init__(self, store: AuditStore, warn: Callable[[str], None]) -> None:
        self.store, self.where, self._warn = store, store.where, warn
        self.lost = 0

    def record(self, event: AuditEvent) -> None:
        """Pass the event on; a failure becomes a warning naming the event, never an error."""
        try:
            self.store.record(event)
        except Exception as exc:  # any store failure: the write itself already happened
            self.lost += 1
            cause = str(exc) if isinstance(exc, AuditStoreError) else type(exc).__name__
            self._warn(
                f"audit event not recorded ({event.action} {event.target} {event.result}): {cause}"
            )

    def query(self, since: datetime | None = None) -> list[AuditEvent]:
        return self.store.query(since)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> GuardedSink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def audit_sink_for(
    policy: Policy,
    policy_path: str | Path,
    environ: Mapping[str, str] = os.environ,
) -> AuditStore:
    """Open the store the policy names (see the module docstring for the order)."""
    spec = policy.audit
    base = Path(policy_path).resolve().parent
    if spec is not None and spec.postgres is not None:
        dsn = environ.get(spec.postgres, "").strip()
        if not dsn:
            raise UsageError(
                f"audit.postgres names the environment variable {spec.postgres}, which is not set;"
                " export the PostgreSQL DSN there"
            )
        return PostgresAuditSink(
            dsn,
            where=f"PostgreSQL (${spec.postgres})",
            source=f"audit.postgres: the DSN in ${spec.postgres}",
        )
    if spec is not None and spec.sqlite is not None:
        return SqliteAuditSink(base / spec.sqlite)
    return SqliteAuditSink(environ.get("ENVMATRIX_AUDIT_DB") or base / DEFAULT_SQLITE)


def _fields(event: AuditEvent) -> tuple[Any, ...]:
    return (
        event.actor,
        event.action,
        event.target,
        event.vault_version,
        event.result,
        event.detail,
    )


def _event(time: datetime, row: Any) -> AuditEvent:
    actor, action, target, vault_version, result, detail = row
    return AuditEvent(action, target, result, actor, vault_version, detail, time)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    # one fixed width, so SQLite's text comparison orders times correctly
    return _utc(moment).isoformat(timespec="microseconds")


def _reason(exc: BaseException) -> str:
    """The first line of a store error (they name hosts, files and SQL states, never values)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
