"""envmatrix/lock.py against a real OpenBao: take, hold, wait, expire, take over, force-unlock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envmatrix import cli
from envmatrix.adapters.vault import VaultAdapter
from envmatrix.audit.events import MemorySink
from envmatrix.errors import LockHeldError, LockLost, RuntimeFailure, UsageError
from envmatrix.lock import VaultLock, configured_lease, lock_path
from envmatrix.sandbox import GitHubSandbox
from envmatrix.secret import SecretValue
from tests.envmatrix.apply_world import cli_env, write_policy


def _lock(vault: VaultAdapter, audit: MemorySink | None = None, **kwargs: object) -> VaultLock:
    return VaultLock(vault, "apply", "apply", "token:ci accessor:abc", audit, **kwargs)  # type: ignore[arg-type]


def test_a_held_lock_refuses_a_second_runner_naming_the_holder(vault: VaultAdapter) -> None:
    audit = MemorySink()
    with _lock(vault, audit) as held:
        document = vault.read_document("envmatrix/locks/apply")
        assert document is not None and document.data["id"] == held.id
        with pytest.raises(LockHeldError) as refused:
            _lock(vault, audit).acquire()
    message = str(refused.value)
    assert message.startswith("state locked by token:ci accessor:abc on ")
    assert f"{socket.gethostname()} pid {os.getpid()}" in message
    assert message.endswith(
        f"(lock ID {held.id}, operation apply); wait, or run envmatrix force-unlock {held.id}"
    )
    assert "\n" not in message
    assert [(e.action, e.result) for e in audit.events] == [
        ("lock.take", "ok"),
        ("lock.take", "failed"),
        ("lock.release", "ok"),
    ]
    assert {e.target for e in audit.events} == {f"vault:{vault.mount}/envmatrix/locks/apply"}


def test_a_released_lock_can_be_taken_again(vault: VaultAdapter) -> None:
    with _lock(vault) as first:
        pass
    with _lock(vault) as second:
        assert second.id != first.id
        assert second.version > first.version  # taken over the released document, with cas
    assert _lock(vault).read() is None


def test_exactly_one_of_many_racing_runners_takes_the_lock(vault: VaultAdapter) -> None:
    start = threading.Barrier(6)
    outcomes: list[str] = []

    def runner() -> None:
        start.wait()
        try:
            _lock(vault).acquire()
            outcomes.append("took")
        except LockHeldError:
            outcomes.append("refused")

    threads = [threading.Thread(target=runner) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused"] * 5 + ["took"]


def test_an_expired_lock_is_taken_over_and_the_break_is_audited(vault: VaultAdapter) -> None:
    audit = MemorySink()
    long_ago = datetime.now(UTC) - timedelta(hours=3)  # the crashed runner's clock is 3 h behind
    crashed = _lock(vault, clock=lambda: long_ago, lease=timedelta(seconds=2))
    stale = crashed.acquire()  # and it never renews: it crashed
    with pytest.raises(LockHeldError):  # its clock says nothing: Vault saw it written just now
        _lock(vault).acquire()
    waiter = _lock(vault, audit, timeout=60.0, sleep=_pause)  # until Vault's clock says 2 s passed
    with waiter as taken:
        assert taken.id != stale.id
        crashed.release()  # the crashed run wakes up: it must not free the new holder's lock
        assert _lock(vault).read() == taken
    broken = [e for e in audit.events if e.action == "lock.broken"]
    assert len(broken) == 1 and broken[0].detail.startswith("expired: lock held by")
    assert stale.id in broken[0].detail


def _pause(seconds: float) -> None:
    time.sleep(min(seconds, 0.5))


def _planted_lock(vault: VaultAdapter, holder: str) -> str:
    now = datetime.now(UTC)
    document = {
        "id": "dead-run",
        "holder": holder,
        "operation": "apply",
        "created_at": now.isoformat(),
        "expires_at": (now + timedelta(hours=1)).isoformat(),
    }
    vault.write_document("envmatrix/locks/apply", document)
    return "dead-run"


def test_a_lock_whose_process_died_on_this_host_is_taken_over(vault: VaultAdapter) -> None:
    pid = _exited_pid()
    _planted_lock(vault, f"token:ci accessor:abc on {socket.gethostname()} pid {pid}")
    audit = MemorySink()
    runner = _lock(vault, audit)
    with runner as taken:
        assert taken.id != "dead-run"
    assert runner.took_over is not None and "holder process gone" in runner.took_over
    assert [e.detail.split(":")[0] for e in audit.events if e.action == "lock.broken"] == [
        "holder process gone"
    ]


def test_a_live_or_remote_holder_is_not_taken_over(vault: VaultAdapter) -> None:
    for holder in (
        f"token:ci accessor:abc on {socket.gethostname()} pid {os.getpid()}",
        f"token:ci accessor:abc on another-runner pid {_exited_pid()}",
    ):
        _planted_lock(vault, holder)
        with pytest.raises(LockHeldError):
            _lock(vault).acquire()


def _exited_pid() -> int:
    child = subprocess.Popen(["true"])  # noqa: S603,S607
    child.wait()
    return child.pid


def test_a_waiting_runner_takes_the_lock_when_the_holder_finishes(vault: VaultAdapter) -> None:
    holder = _lock(vault)
    holder.acquire()
    pauses: list[float] = []

    def sleep(seconds: float) -> None:  # the holder finishes while we wait
        pauses.append(seconds)
        holder.release()

    taken = _lock(vault, timeout=30.0, sleep=sleep).acquire()
    assert len(pauses) == 1 and _lock(vault).read() == taken


def test_a_waiting_runner_gives_up_after_its_timeout(vault: VaultAdapter) -> None:
    _lock(vault).acquire()
    pauses: list[float] = []
    with pytest.raises(LockHeldError, match="state locked by"):
        _lock(vault, timeout=5.0, sleep=pauses.append).acquire()
    assert sum(pauses) == 5.0 and len(pauses) == 3  # polls every 2 s, the last one 1 s


def test_force_unlock_needs_the_id_of_the_lock_held(vault: VaultAdapter) -> None:
    audit = MemorySink()
    held = _lock(vault).acquire()
    with pytest.raises(LockHeldError, match="does not match"):
        _lock(vault, audit).force_unlock("not-the-id")
    assert _lock(vault).read() == held
    freed = _lock(vault, audit).force_unlock(held.id)
    assert freed.id == held.id and _lock(vault).read() is None
    assert [(e.action, e.result) for e in audit.events] == [("lock.broken", "ok")]
    with pytest.raises(RuntimeFailure, match="no lock is held"):
        _lock(vault).force_unlock(held.id)


@pytest.mark.parametrize("name", ["", "../state", "a//b", "/apply", "a b"])
def test_lock_names_stay_under_envmatrix_locks(name: str) -> None:
    with pytest.raises(UsageError):
        lock_path(name)


# -- the command line -------------------------------------------------------------------------


@pytest.fixture
def policy_file(
    tmp_path: Path,
    vault_mount: str,
    vault_env: dict[str, str],
    sandbox: GitHubSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    for name, value in cli_env(vault_env, sandbox).items():
        monkeypatch.setenv(name, value)
    return write_policy(tmp_path, vault_mount)


def test_cli_force_unlock_refuses_a_wrong_id_and_frees_the_right_one(
    vault: VaultAdapter, policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    held = _lock(vault).acquire()
    assert cli.main(["force-unlock", "wrong-id", "--policy", str(policy_file), "--yes"]) == 1
    err = capsys.readouterr().err
    assert f"does not match the lock held at {vault.mount}/envmatrix/locks/apply" in err
    assert _lock(vault).read() == held

    # no terminal and no --yes: refused
    assert cli.main(["force-unlock", held.id, "--policy", str(policy_file)]) == 3
    assert "needs --yes" in capsys.readouterr().err

    assert cli.main(["force-unlock", held.id, "--policy", str(policy_file), "--yes"]) == 0
    assert f"Lock {held.id} is released" in capsys.readouterr().out
    assert _lock(vault).read() is None
    assert cli.main(["audit", "--policy", str(policy_file), "--json"]) == 0
    assert '"action": "lock.broken"' in capsys.readouterr().out


def test_cli_apply_fails_at_once_while_the_lock_is_held(
    vault: VaultAdapter,
    policy_file: Path,
    capsys: pytest.CaptureFixture[str],
    sandbox: GitHubSandbox,
) -> None:
    held = _lock(vault).acquire()
    assert cli.main(["apply", "--policy", str(policy_file), "--yes"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: state locked by token:ci accessor:abc on ")
    assert f"envmatrix force-unlock {held.id}" in err
    writes = [m for m, _ in sandbox.request_counts() if m in ("PUT", "POST", "PATCH", "DELETE")]
    assert writes == []


def test_cli_rejects_a_bad_lock_timeout(
    policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["apply", "--policy", str(policy_file), "--yes", "--lock-timeout", "soon"]) == 3
    assert "--lock-timeout 'soon'" in capsys.readouterr().err


def test_cli_apply_of_a_saved_plan_takes_the_lock_too(
    vault: VaultAdapter,
    policy_file: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    vault.write_values(
        "apps/staging/supabase",
        {"url": SecretValue("https://x.example"), "service_key": SecretValue("k")},
    )
    saved = str(tmp_path / "plan.json")
    assert cli.main(["plan", "--policy", str(policy_file), "--out", saved]) == 0
    held = _lock(vault).acquire()
    assert cli.main(["apply", saved, "--yes"]) == 1
    assert f"envmatrix force-unlock {held.id}" in capsys.readouterr().err
    _lock(vault).force_unlock(held.id)
    assert cli.main(["apply", saved, "--yes"]) == 0
    assert "Apply complete: 6 written, 0 failed" in capsys.readouterr().out
    assert cli.main(["audit", "--policy", str(policy_file), "--json"]) == 0
    events = json.loads(capsys.readouterr().out)["events"]
    locks = [(e["action"], e["result"]) for e in events if e["action"].startswith("lock.")]
    assert locks == [("lock.take", "failed"), ("lock.take", "ok"), ("lock.release", "ok")]


# -- leases: renewed while held, judged by Vault's clock, lost locks stop the run ---------------


@pytest.mark.parametrize(
    "holder_skew, waiter_skew",
    [
        (timedelta(hours=-2), timedelta(0)),
        (timedelta(hours=2), timedelta(0)),
        (timedelta(0), timedelta(hours=3)),
        (timedelta(days=-1), timedelta(days=1)),
        (timedelta(days=30), timedelta(days=-30)),
    ],
)
def test_no_runner_clock_makes_a_live_lock_look_expired(
    vault: VaultAdapter, holder_skew: timedelta, waiter_skew: timedelta
) -> None:
    holder = _lock(vault, clock=lambda: datetime.now(UTC) + holder_skew)
    with holder as held:
        with pytest.raises(LockHeldError, match=held.id):
            _lock(vault, clock=lambda: datetime.now(UTC) + waiter_skew).acquire()
        holder.check_held()  # and the holder still holds it
    assert _lock(vault).read() is None


@pytest.mark.parametrize("written_by_clock", [timedelta(hours=-3), timedelta(days=-400)])
def test_a_lock_document_from_before_leases_is_judged_by_vault_not_its_expires_at(
    vault: VaultAdapter, written_by_clock: timedelta
) -> None:
    then = datetime.now(UTC) + written_by_clock  # its writer's clock was behind: "expired" long ago
    vault.write_document(
        "envmatrix/locks/apply",
        {
            "id": "old-format",
            "holder": "token:ci on another-runner pid 1",
            "operation": "apply",
            "created_at": then.isoformat(),
            "expires_at": (then + timedelta(hours=1)).isoformat(),
        },
    )
    with pytest.raises(LockHeldError, match="old-format"):
        _lock(vault).acquire()


def test_a_run_longer_than_its_lease_keeps_its_lock(vault: VaultAdapter) -> None:
    audit = MemorySink()
    holder = _lock(vault, audit, lease=timedelta(seconds=2))
    with holder as held:
        _wait_for(lambda: _renewals(vault) >= 6)  # 6 quarter-leases: 1.5 leases by Vault's clock
        with pytest.raises(LockHeldError, match=held.id):
            _lock(vault, timeout=0.0).acquire()
        holder.check_held()
    assert _lock(vault).read() is None
    assert [e.action for e in audit.events] == ["lock.take", "lock.release"]


@pytest.mark.parametrize("how", ["force-unlock", "taken over"])
def test_a_runner_that_lost_its_lock_stops_and_leaves_the_new_holders_lock_alone(
    vault: VaultAdapter, how: str
) -> None:
    audit = MemorySink()
    holder = _lock(vault, audit)
    with holder as held:
        _lock(vault).force_unlock(held.id)
        other = _lock(vault).acquire() if how == "taken over" else None
        with pytest.raises(LockLost) as lost:
            holder.check_held()
        with pytest.raises(LockLost):  # and every later write is refused too
            holder.check_held()
    message = str(lost.value)
    assert message.startswith(f"lost lock {held.id} at {vault.mount}/envmatrix/locks/apply: ")
    if other is not None:
        assert f"taken over by token:ci accessor:abc on {socket.gethostname()}" in message
        assert _lock(vault).read() == other  # the loser's release did not free it
    else:
        assert "released by someone else (force-unlock)" in message
    assert holder.release_error is None  # the loss was reported once, by check_held
    actions = [(e.action, e.result) for e in audit.events]
    assert actions == [("lock.take", "ok"), ("lock.lost", "failed"), ("lock.release", "failed")]


def test_a_renewal_that_finds_the_lock_taken_marks_it_lost(vault: VaultAdapter) -> None:
    holder = _lock(vault, lease=timedelta(seconds=2))
    with holder as held:
        _lock(vault).force_unlock(held.id)
        taker = _lock(vault).acquire()
        _wait_for(lambda: holder.lost is not None)  # the renewal thread noticed by itself
        assert taker.id in (holder.lost or "")
        with pytest.raises(LockLost, match="taken over by"):
            holder.check_held()


def test_a_holder_that_could_not_renew_for_most_of_its_lease_stops(vault: VaultAdapter) -> None:
    stalled = _lock(vault, lease=timedelta(seconds=2))
    held = stalled.acquire()  # no renewal thread: as if the process was paused
    _wait_for(lambda: _raises_lock_lost(stalled))
    with pytest.raises(LockLost, match=rf"lost lock {held.id}: it could not be renewed for \d+s"):
        stalled.check_held()


@pytest.mark.parametrize("text", ["0s", "1s", "25h", "nan", "-5s", "10", "soon", "1.5m"])
def test_a_bad_lease_setting_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="ENVMATRIX_LOCK_LEASE=.* must be a duration from 2s"):
        configured_lease({"ENVMATRIX_LOCK_LEASE": text})


@pytest.mark.parametrize(
    "text, seconds", [("", 120), ("2s", 2), ("45s", 45), ("10m", 600), ("24h", 86400)]
)
def test_the_lease_setting(text: str, seconds: int) -> None:
    assert configured_lease({"ENVMATRIX_LOCK_LEASE": text}).total_seconds() == seconds


def _renewals(vault: VaultAdapter) -> int:
    document = vault.read_document("envmatrix/locks/apply")
    return int(document.data.get("renewals", 0)) if document is not None else 0


def _raises_lock_lost(lock: VaultLock) -> bool:
    try:
        lock.check_held()
    except LockLost:
        return True
    return False


def _wait_for(condition: Callable[[], bool], limit: float = 60.0) -> None:
    """Poll until `condition` holds (a bound against hanging, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.1)


@pytest.mark.parametrize("lease", ["nan", "0s", "forever"])
def test_cli_apply_refuses_a_bad_lease_setting_before_writing(
    policy_file: Path,
    capsys: pytest.CaptureFixture[str],
    sandbox: GitHubSandbox,
    monkeypatch: pytest.MonkeyPatch,
    lease: str,
) -> None:
    monkeypatch.setenv("ENVMATRIX_LOCK_LEASE", lease)
    assert cli.main(["apply", "--policy", str(policy_file), "--yes"]) == 3
    err = capsys.readouterr().err
    assert err == (
        f"error: ENVMATRIX_LOCK_LEASE={lease!r} must be a duration from 2s to 24h, like 2m\n"
    )
    writes = [m for m, _ in sandbox.request_counts() if m in ("PUT", "POST", "PATCH", "DELETE")]
    assert writes == []
