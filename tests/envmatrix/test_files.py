"""Files envmatrix writes are private: 0600 files in 0700 folders it creates, whatever the umask
(the audit database and the files SQLite makes beside it, plan files, matrices, calendars)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from envmatrix.audit.events import AuditEvent
from envmatrix.audit.store import SqliteAuditSink
from envmatrix.errors import UsageError
from envmatrix.files import create_atomic, ensure_private_file, write_atomic
from tests.world import World


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o002, 0o000])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_the_audit_database_and_its_sqlite_files_are_0600_in_0700_folders(
    tmp_path: Path, umask: int
) -> None:
    path = tmp_path / "new" / "deeper" / "audit.sqlite"
    with SqliteAuditSink(path) as store:
        store.record(AuditEvent("secret.put", "github:o/r/prod/X", "ok", "token:ci accessor:ab…"))
        sidecars = sorted(p.name for p in path.parent.iterdir())
        modes = {p.name: mode(p) for p in path.parent.iterdir()}
    assert sidecars == ["audit.sqlite", "audit.sqlite-shm", "audit.sqlite-wal"]  # WAL mode
    assert set(modes.values()) == {0o600}, modes
    assert mode(path.parent) == mode(path.parent.parent) == 0o700
    assert mode(tmp_path) == stat.S_IMODE(tmp_path.stat().st_mode)  # not ours: left alone


def test_an_existing_readable_database_and_journal_are_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    SqliteAuditSink(path).close()
    journal = tmp_path / "audit.sqlite-journal"
    journal.write_bytes(b"")
    for file in (path, journal):
        os.chmod(file, 0o644)
    SqliteAuditSink(path).close()
    assert mode(path) == mode(journal) == 0o600


def test_helpers_create_private_files_and_replace_whole(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "out.md"
    write_atomic(target, "first")
    assert target.read_text() == "first" and mode(target) == 0o600  # created private
    os.chmod(target, 0o644)  # its owner publishes it on purpose: a rewrite keeps that
    write_atomic(target, "new")
    assert target.read_text() == "new" and mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.md"]  # no temporary file left
    created = tmp_path / "a" / "b.db"
    ensure_private_file(created)
    assert mode(created) == 0o600 and mode(created.parent) == 0o700


def test_files_the_commands_write_are_private(world: World, umask: int) -> None:
    world.seed()
    world.write_policy(world.policy_path.read_text() + "audit: {sqlite: state/audit.db}\n")
    out = world.policy_path.parent
    runs = [
        world.run("apply", "--yes"),
        world.run("plan", "--out", str(out / "plan.json")),
        world.run("matrix", "--format", "html", "--out", str(out / "matrix.html")),
        world.run("rotation", "calendar", "--ics", str(out / "rotations.ics")),
    ]
    assert [r.code for r in runs] == [0, 0, 0, 0], [r.err for r in runs]
    written = [
        out / "plan.json",
        out / "matrix.html",
        out / "rotations.ics",
        *(out / "state").iterdir(),
    ]
    assert {p.name: mode(p) for p in written} == {p.name: 0o600 for p in written}
    assert mode(out / "state") == 0o700


def test_a_calendar_someone_made_readable_keeps_its_mode(world: World) -> None:
    ics = world.policy_path.parent / "rotations.ics"
    assert world.run("rotation", "calendar", "--ics", str(ics)).code == 0
    os.chmod(ics, 0o644)  # published on purpose
    assert world.run("rotation", "calendar", "--ics", str(ics)).code == 0
    assert mode(ics) == 0o644


def test_create_atomic_makes_a_private_file_and_never_replaces_one(
    tmp_path: Path, umask: int
) -> None:
    target = tmp_path / "policy.yaml"
    create_atomic(target, "version: 1\n", "policy")
    assert target.read_text() == "version: 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    for existing in (target, tmp_path):  # a file, or a folder in its place
        before = sorted(p.name for p in tmp_path.iterdir())
        with pytest.raises(UsageError):
            create_atomic(existing, "other\n", "policy")
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary file left
    assert target.read_text() == "version: 1\n"
