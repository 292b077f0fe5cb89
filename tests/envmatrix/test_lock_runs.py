"""The apply lock between real `envmatrix apply` processes: runners whose clocks are hours apart
(libfaketime), an apply longer than its lease, and a runner that loses its lock mid-apply.

Slow GitHub writes come from sandbox faults; the test waits for what it needs (a lock in Vault,
a PUT received) instead of sleeping, with a bound so nothing hangs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envmatrix.adapters.vault import VaultAdapter
from envmatrix.audit.store import SqliteAuditSink
from envmatrix.lock import VaultLock
from envmatrix.sandbox import Fault, GitHubSandbox
from tests.envmatrix.apply_world import (
    ENVIRONMENTS,
    REPOSITORY,
    cli_env,
    plant_canaries,
    write_policy,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PUT_SECRET = r"/environments/[^/]+/secrets/[A-Z_]+$"
LOCK = "envmatrix/locks/apply"


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_runner_left() -> Iterator[None]:
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.kill()
        process.communicate()


def _apply(policy: Path, env: dict[str, str], skew: str | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "envmatrix", "apply", "--policy", str(policy), "--yes"]
    if skew is not None:  # this runner's clock (wall and monotonic) is off by `skew`
        command = ["faketime", "-f", skew, *command]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _STARTED.append(process)
    return process


def _wait_for(condition: Callable[[], bool], limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def _held(vault: VaultAdapter) -> bool:
    document = vault.read_document(LOCK)
    return document is not None and bool(document.data.get("id"))


def _secret_puts(sandbox: GitHubSandbox) -> int:
    return sum(
        n
        for (method, op), n in sandbox.request_counts().items()
        if method == "PUT" and "secret" in op
    )


@pytest.fixture
def world(
    tmp_path: Path, vault: VaultAdapter, vault_env: dict[str, str], sandbox: GitHubSandbox
) -> tuple[Path, dict[str, str], list[str]]:
    canaries = plant_canaries(vault)
    env = {**os.environ, **cli_env(vault_env, sandbox)}
    # one writer: the delays below add up write after write (the lease outlives them)
    env["ENVMATRIX_GITHUB_WRITE_CONCURRENCY"] = "1"
    return write_policy(tmp_path, vault.mount), env, canaries


@pytest.mark.parametrize(
    "holder_skew, waiter_skew",
    [
        ("-2h", None),
        ("+2h", None),
        (None, "+3h"),
        (None, "-3h"),
        ("-1d", "+1d"),
    ],
)
def test_runners_hours_apart_never_write_at_once(
    world: tuple[Path, dict[str, str], list[str]],
    vault: VaultAdapter,
    sandbox: GitHubSandbox,
    holder_skew: str | None,
    waiter_skew: str | None,
) -> None:
    policy, env, canaries = world
    sandbox.inject(Fault(method="PUT", path=PUT_SECRET, delay=4.0, times=1))
    holder = _apply(policy, env, holder_skew)
    _wait_for(lambda: _secret_puts(sandbox) >= 1)  # the holder is writing, under its lock
    document = vault.read_document(LOCK)
    assert document is not None

    waiter = _apply(policy, env, waiter_skew)
    out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 1, (out, err)
    assert err.startswith("error: state locked by token:") and err.count("\n") == 1, err
    assert f"envmatrix force-unlock {document.data['id']}" in err

    out, err = holder.communicate(timeout=120)
    assert holder.returncode == 0 and err == "", (out, err)
    assert "Apply complete: 8 written, 0 failed" in out
    assert _secret_puts(sandbox) == 4  # every secret written once, by the holder
    written = {
        sandbox.secret_value(REPOSITORY, e, n)
        for e in ENVIRONMENTS
        for n in ("SUPABASE_URL", "SUPABASE_SERVICE_KEY")
    }
    assert written == set(canaries)


def test_an_apply_longer_than_its_lease_keeps_the_lock_throughout(
    world: tuple[Path, dict[str, str], list[str]],
    vault: VaultAdapter,
    sandbox: GitHubSandbox,
    tmp_path: Path,
) -> None:
    policy, env, _ = world
    env = {**env, "ENVMATRIX_LOCK_LEASE": "2s"}
    # 3 PUTs of 1.5 s (2.25 leases), then one of 8 s: the waiter meets a lock held, renewed
    sandbox.inject(Fault(method="PUT", path=PUT_SECRET, delay=1.5, times=3))
    sandbox.inject(Fault(method="PUT", path=PUT_SECRET, delay=8.0, times=1))
    holder = _apply(policy, env)
    _wait_for(lambda: _secret_puts(sandbox) >= 3)  # past 2 leases of writing
    document = vault.read_document(LOCK)
    assert document is not None and document.data["id"] and document.data["renewals"] >= 4
    waiter = _apply(policy, env)
    assert waiter.wait(timeout=120) == 1  # still held: renewed, not expired
    out, err = holder.communicate(timeout=120)
    assert holder.returncode == 0 and err == "", (out, err)
    assert "Apply complete: 8 written, 0 failed" in out
    assert not _held(vault)
    with SqliteAuditSink(tmp_path / ".envmatrix" / "audit.sqlite") as store:
        locks = [(e.action, e.result) for e in store.query() if e.action.startswith("lock.")]
    assert sorted(locks) == [("lock.release", "ok"), ("lock.take", "failed"), ("lock.take", "ok")]


@pytest.mark.parametrize("take_it", [True, False])
def test_a_runner_that_loses_its_lock_stops_before_its_next_write_and_exits_1(
    world: tuple[Path, dict[str, str], list[str]],
    vault: VaultAdapter,
    sandbox: GitHubSandbox,
    tmp_path: Path,
    take_it: bool,
) -> None:
    policy, env, _ = world
    sandbox.inject(Fault(method="PUT", path=PUT_SECRET, delay=2.0, times=1))
    runner = _apply(policy, env)
    _wait_for(lambda: _secret_puts(sandbox) >= 1)
    document = vault.read_document(LOCK)
    assert document is not None
    someone = VaultLock(vault, "apply", "apply", "token:other accessor:xyz")
    someone.force_unlock(str(document.data["id"]))  # e.g. an operator who thought it dead
    other = someone.acquire() if take_it else None

    out, err = runner.communicate(timeout=120)
    assert runner.returncode == 1, (out, err)
    assert err.count("\n") == 1 and err.startswith(f"error: lost lock {document.data['id']} ")
    assert ("taken over by token:other accessor:xyz" if take_it else "force-unlock") in err
    assert ": 2 written, 0 failed, 6 not attempted; run plan to see what is left" in err
    assert "Apply stopped (lost lock" in out and out.count("not attempted") == 7
    assert _secret_puts(sandbox) == 1  # the write in flight landed; nothing after it
    if other is not None:
        assert someone.read() == other  # the loser left the new holder's lock alone
    with SqliteAuditSink(tmp_path / ".envmatrix" / "audit.sqlite") as store:
        actions = [(e.action, e.result) for e in store.query()]
    assert ("lock.lost", "failed") in actions
    assert [a for a in actions if a[0] == "secret.put"] == [("secret.put", "ok")]
