"""envmatrix/audit_store.py: SQLite and a real PostgreSQL; one row per write of an apply, and no
value in any row (canary values planted in Vault are searched for in the stored bytes)."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

import cli
from envmatrix.adapters.vault import VaultAdapter
from envmatrix.audit import AuditEvent
from envmatrix.audit_store import (
    GuardedSink,
    PostgresAuditSink,
    SqliteAuditSink,
    audit_sink_for,
    event_json,
)
from envmatrix.errors import UsageError
from envmatrix.policy import load_policy
from envmatrix.sandbox import GitHubSandbox
from tests.envmatrix.apply_world import cli_env, plant_canaries, write_policy
from tests.fixtures_services import PostgresServer

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
ACTOR = "token:ci"


def _events() -> list[AuditEvent]:
    return [
        AuditEvent("lock.take", "vault:kv/envmatrix/locks/apply", "ok", ACTOR, 4, "lock ID x", T0),
        AuditEvent("secret.put", "github:o/r/production/A", "ok", ACTOR, 3, "", T0 + HOUR),
        AuditEvent(
            "secret.put",
            "github:o/r/production/B",
            "failed",
            ACTOR,
            None,
            "GitHub 502",
            T0 + 2 * HOUR,
        ),
    ]


@pytest.fixture
def pg_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A database of its own for this test."""
    name = f"audit_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.dsn(dbname=name)
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _stores(tmp_path: Path, dsn: str) -> list[SqliteAuditSink | PostgresAuditSink]:
    return [SqliteAuditSink(tmp_path / "a" / "audit.sqlite"), PostgresAuditSink(dsn)]


def test_events_round_trip_and_filter_by_time(tmp_path: Path, pg_dsn: str) -> None:
    for store in _stores(tmp_path, pg_dsn):
        with store:
            for event in _events():
                store.record(event)
            assert store.query() == _events()
            assert store.query(T0 + timedelta(minutes=30)) == _events()[1:]
            assert store.query(T0 + timedelta(hours=1)) == _events()[1:]  # inclusive
            assert store.query(T0 + timedelta(hours=3)) == []


def test_a_reopened_store_keeps_its_rows(tmp_path: Path, pg_dsn: str) -> None:
    sqlite_file = tmp_path / "audit.sqlite"
    for make in (lambda: SqliteAuditSink(sqlite_file), lambda: PostgresAuditSink(pg_dsn)):
        with make() as first:
            first.record(_events()[0])
        with make() as second:
            second.record(_events()[1])
            assert second.query() == _events()[:2]


def test_sqlite_store_uses_wal(tmp_path: Path) -> None:
    SqliteAuditSink(tmp_path / "audit.sqlite").close()
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failing_store_warns_and_counts_instead_of_stopping_the_run(tmp_path: Path) -> None:
    warnings: list[str] = []
    store = SqliteAuditSink(tmp_path / "audit.sqlite")
    guarded = GuardedSink(store, warnings.append)
    store.close()  # every write now fails
    guarded.record(_events()[1])
    assert guarded.lost == 1
    assert warnings == [
        "audit event not recorded (secret.put github:o/r/production/A ok): cannot write to"
        f" {tmp_path / 'audit.sqlite'}: Cannot operate on a closed database."
    ]


# -- which store ------------------------------------------------------------------------------


def test_the_default_store_is_a_sqlite_file_next_to_the_policy(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, "kv")
    store = audit_sink_for(load_policy(policy), policy, environ={})
    store.close()
    assert store.where == str(tmp_path / ".envmatrix" / "audit.sqlite")
    assert (tmp_path / ".envmatrix" / "audit.sqlite").is_file()


def test_envmatrix_audit_db_moves_the_default_file(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, "kv")
    elsewhere = tmp_path / "logs" / "trail.sqlite"
    environ = {"ENVMATRIX_AUDIT_DB": str(elsewhere)}
    store = audit_sink_for(load_policy(policy), policy, environ=environ)
    store.close()
    assert store.where == str(elsewhere) and elsewhere.is_file()


def test_policy_sqlite_path_is_relative_to_the_policy_file(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, "kv", audit="audit: {sqlite: state/audit.db}\n")
    store = audit_sink_for(load_policy(policy), policy, environ={"ENVMATRIX_AUDIT_DB": "/ignored"})
    store.close()
    assert store.where == str(tmp_path / "state" / "audit.db")


def test_policy_postgres_names_the_variable_holding_the_dsn(tmp_path: Path, pg_dsn: str) -> None:
    policy = load_policy(write_policy(tmp_path, "kv", audit="audit: {postgres: AUDIT_DSN}\n"))
    with pytest.raises(UsageError, match="audit.postgres names the environment variable AUDIT_DSN"):
        audit_sink_for(policy, tmp_path / "envmatrix.yaml", environ={})
    store = audit_sink_for(policy, tmp_path / "envmatrix.yaml", environ={"AUDIT_DSN": pg_dsn})
    store.close()
    assert isinstance(store, PostgresAuditSink) and store.where == "PostgreSQL ($AUDIT_DSN)"


def test_an_unreachable_postgres_fails_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="cannot open the audit table in PostgreSQL"):
        PostgresAuditSink("host=127.0.0.1 port=1 user=postgres dbname=postgres connect_timeout=2")


# -- an apply, end to end ---------------------------------------------------------------------

_ACTION = {
    ("secret", "create"): "secret.put",
    ("secret", "update"): "secret.put",
    ("secret", "delete"): "secret.delete",
    ("variable", "create"): "variable.set",
    ("variable", "update"): "variable.set",
    ("environment", "create"): "environment.create",
}


def _apply(policy: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    assert cli.main(["apply", "--policy", str(policy), "--yes", "--json"]) == 0
    results: list[dict[str, object]] = json.loads(capsys.readouterr().out)["results"]
    return results


def _expected_rows(results: list[dict[str, object]]) -> list[tuple[str, str, str]]:
    return sorted(
        (
            _ACTION[(str(r["kind"]), str(r["action"]))],
            f"github:{r['repository']}/{r['environment']}/{r['name']}",
            str(r["result"]),
        )
        for r in results
    )


def _check_trail(events: list[AuditEvent], results: list[dict[str, object]], mount: str) -> None:
    writes = [e for e in events if e.target.startswith("github:")]
    assert sorted((e.action, e.target, e.result) for e in writes) == _expected_rows(results)
    assert len(writes) == 8  # 2 environments created, 2 secrets x 2 environments, 1 flag x 2
    assert {e.action for e in writes} == {"environment.create", "secret.put", "variable.set"}
    assert all(e.vault_version == 1 for e in writes if e.action == "secret.put")
    lock_target = f"vault:{mount}/envmatrix/locks/apply"
    assert [e.action for e in events if e.target == lock_target] == ["lock.take", "lock.release"]
    assert [e.action for e in events if e.target.startswith(f"vault:{mount}/envmatrix/state/")] == [
        "state.write",
        "state.write",
    ]
    assert all(re.match(r"token:\S+ accessor:\S+ / github-token@", e.actor) for e in events)


@pytest.fixture
def world(
    vault: VaultAdapter,
    vault_env: dict[str, str],
    sandbox: GitHubSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> list[str]:
    """Canary values in Vault and the CLI's environment set; returns the canaries."""
    for name, value in cli_env(vault_env, sandbox).items():
        monkeypatch.setenv(name, value)
    return plant_canaries(vault)


def test_an_apply_leaves_one_sqlite_row_per_write_and_no_value(
    tmp_path: Path, vault: VaultAdapter, world: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    policy = write_policy(tmp_path, vault.mount)
    results = _apply(policy, capsys)
    with SqliteAuditSink(tmp_path / ".envmatrix" / "audit.sqlite") as store:
        _check_trail(store.query(), results, vault.mount)
    stored = b"".join(p.read_bytes() for p in (tmp_path / ".envmatrix").iterdir())
    assert b"CANARY-" not in stored and not any(c.encode() in stored for c in world)

    assert cli.main(["audit", "--policy", str(policy), "--json", "--since", "1h"]) == 0
    listed = json.loads(capsys.readouterr().out)["events"]
    assert len(listed) == 12 and "CANARY-" not in json.dumps(listed)
    assert cli.main(["audit", "--policy", str(policy)]) == 0
    table = capsys.readouterr().out
    assert "secret.put" in table and "lock.take" in table and "CANARY-" not in table


def test_an_apply_leaves_one_postgres_row_per_write_and_no_value(
    tmp_path: Path,
    vault: VaultAdapter,
    world: list[str],
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TEAM_AUDIT_DSN", pg_dsn)
    policy = write_policy(tmp_path, vault.mount, audit="audit: {postgres: TEAM_AUDIT_DSN}\n")
    results = _apply(policy, capsys)
    with PostgresAuditSink(pg_dsn) as store:
        _check_trail(store.query(), results, vault.mount)
    with psycopg.connect(pg_dsn) as db:
        rows = db.execute("SELECT row_to_json(a)::text FROM envmatrix_audit a").fetchall()
    dump = "\n".join(r[0] for r in rows)
    assert dump.count('"action"') == 12
    assert "CANARY-" not in dump and not any(c in dump for c in world)
    assert not (tmp_path / ".envmatrix").exists()  # nothing went to the default SQLite file


def test_audit_since_filters_and_rejects_nonsense(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVMATRIX_AUDIT_DB", str(tmp_path / "audit.sqlite"))
    with SqliteAuditSink(tmp_path / "audit.sqlite") as store:
        for event in _events():
            store.record(event)
    policy = str(write_policy(tmp_path, "kv"))
    assert cli.main(["audit", "--policy", policy, "--json", "--since", "2025-03-01T10:30"]) == 0
    assert [e["target"] for e in json.loads(capsys.readouterr().out)["events"]] == [
        "github:o/r/production/B"
    ]
    assert cli.main(["audit", "--policy", policy, "--json", "--since", "24h"]) == 0
    assert json.loads(capsys.readouterr().out) == {"events": []}
    assert cli.main(["audit", "--policy", policy, "--since", "yesterday"]) == 3
    assert "--since 'yesterday'" in capsys.readouterr().err


def test_many_first_runs_can_open_a_new_sqlite_file_at_once(tmp_path: Path) -> None:
    start, failures = threading.Barrier(16), []

    def first_run() -> None:
        start.wait()
        try:
            with SqliteAuditSink(tmp_path / "new.sqlite") as store:
                store.record(_events()[0])
        except Exception as exc:  # noqa: BLE001 - collected and asserted on below
            failures.append(str(exc))

    threads = [threading.Thread(target=first_run) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    with SqliteAuditSink(tmp_path / "new.sqlite") as store:
        assert len(store.query()) == 16


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
def test_a_rotation_leaves_a_row_per_step_and_per_github_write_and_no_value(
    store_kind: str,
    tmp_path: Path,
    vault: VaultAdapter,
    world: list[str],
    pg_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TEAM_AUDIT_DSN", pg_dsn)
    audit = "audit: {postgres: TEAM_AUDIT_DSN}\n" if store_kind == "postgres" else ""
    policy = write_policy(tmp_path, vault.mount, audit=audit)
    rotating = '    vault: "apps/{environment}/supabase#service_key"\n'
    policy.write_text(
        policy.read_text().replace(
            rotating, rotating + ("    rotation: {max_age: 30d, strategy: generate}\n")
        )
    )
    _apply(policy, capsys)
    code = cli.main(
        [
            "rotate",
            "SUPABASE_SERVICE_KEY",
            "--environment",
            "production",
            "--yes",
            "--policy",
            str(policy),
        ]
    )
    assert code == 0, capsys.readouterr()
    capsys.readouterr()
    rotated = [vault.read_values("apps/production/supabase")["service_key"].reveal()]
    assert rotated[0] not in world  # the rotation made a new value

    store = audit_sink_for(load_policy(policy), policy)
    try:
        events = store.query()
    finally:
        store.close()
    first = next(i for i, e in enumerate(events) if e.action.startswith("rotation."))
    group = f"vault:{vault.mount}/apps/production/supabase"
    lock = f"vault:{vault.mount}/envmatrix/locks/apply"
    before_sync = ("start", "create", "stage", "test", "promote")
    assert [(e.action, e.target, e.result) for e in events[first:]] == [
        *((f"rotation.{step}", group, "ok") for step in before_sync),
        ("lock.take", lock, "ok"),
        ("secret.put", "github:occ-labs/operator-console/production/SUPABASE_SERVICE_KEY", "ok"),
        (
            "state.write",
            f"vault:{vault.mount}/envmatrix/state/occ-labs/operator-console/production",
            "ok",
        ),
        ("lock.release", lock, "ok"),
        *((f"rotation.{step}", group, "ok") for step in ("sync", "revoke", "done")),
    ]
    assert events[first + 6].vault_version == events[first + 4].vault_version == 2  # promoted v2
    stored = json.dumps([event_json(e) for e in events])
    assert not any(value in stored for value in [*world, *rotated])
    if store_kind == "sqlite":
        raw = b"".join(p.read_bytes() for p in (tmp_path / ".envmatrix").iterdir())
        assert not any(value.encode() in raw for value in [*world, *rotated])
