"""Ctrl-C and SIGTERM sent to a real `envmatrix apply` process (envmatrix/interrupt.py): it stops
after the write in flight, reports what landed and what did not, releases the lock and exits 130
(SIGINT) or 143 (SIGTERM); the next apply finishes the rest without force-unlock."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envmatrix.adapters.vault import VaultAdapter
from envmatrix.audit.store import SqliteAuditSink
from envmatrix.sandbox import Fault, GitHubSandbox
from tests.envmatrix.apply_world import REPOSITORY, cli_env, plant_canaries, write_policy

REPO_ROOT = Path(__file__).resolve().parents[2]
PUT_SECRET = r"/environments/[^/]+/secrets/[A-Z_]+$"
_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_runner_left() -> Iterator[None]:
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.kill()
        process.communicate()


def _apply(policy: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "envmatrix", "apply", "--policy", str(policy), "--yes"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _STARTED.append(process)
    return process


def _wait_for(condition: Callable[[], bool], limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


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
    env = {**os.environ, **cli_env(vault_env, sandbox), "NO_COLOR": "1"}
    # one writer, so exactly one write is in flight (test_apply_concurrency.py covers several)
    env["ENVMATRIX_GITHUB_WRITE_CONCURRENCY"] = "1"
    return write_policy(tmp_path, vault.mount), env, canaries


@pytest.mark.parametrize(
    "signum, code, name, puts",
    [
        (signal.SIGINT, 130, "Ctrl-C", 1),
        (signal.SIGINT, 130, "Ctrl-C", 3),
        (signal.SIGTERM, 143, "SIGTERM", 2),
    ],
)
def test_a_signal_mid_apply_stops_after_the_write_in_flight_and_reports_it(
    world: tuple[Path, dict[str, str], list[str]],
    vault: VaultAdapter,
    sandbox: GitHubSandbox,
    tmp_path: Path,
    signum: int,
    code: int,
    name: str,
    puts: int,
) -> None:
    policy, env, canaries = world
    sandbox.inject(Fault(method="PUT", path=PUT_SECRET, delay=1.0))
    running = _apply(policy, env)
    _wait_for(lambda: _secret_puts(sandbox) >= puts)  # the puts-th secret write is in flight
    running.send_signal(signum)
    out, err = running.communicate(timeout=120)

    assert running.returncode == code, (out, err)
    landed = re.findall(r"^✓ \w+ secret \S+/(\S+) (\S+)$", out, re.MULTILINE)
    left = re.findall(r"^- \w+ (\w+) \S+/(\S+) (\S+).*: not attempted$", out, re.MULTILINE)
    written = out.count("\n✓ ") + out.startswith("✓ ")
    assert len(landed) == puts == _secret_puts(sandbox)  # the write in flight landed, no other
    assert written + len(left) == 8 and left
    assert f"Apply stopped (interrupted ({name}) after the write in flight)" in out
    assert err == (
        f"error: interrupted ({name}) after the write in flight: {written} written,"
        f" 0 failed, {len(left)} not attempted; run plan to see what is left\n"
    )
    for environment, secret in landed:
        assert sandbox.secret_value(REPOSITORY, environment, secret) in canaries
    for kind, environment, secret in left:
        if kind == "secret":
            assert sandbox.secret_value(REPOSITORY, environment, secret) is None

    lock = vault.read_document("envmatrix/locks/apply")
    assert lock is not None and "id" not in lock.data  # released
    with SqliteAuditSink(tmp_path / ".envmatrix" / "audit.sqlite") as store:
        events = store.query()
    assert sum(e.action == "secret.put" and e.result == "ok" for e in events) == puts
    assert [e.action for e in events if e.action.startswith("lock.")] == [
        "lock.take",
        "lock.release",
    ]

    sandbox.clear_faults()  # the next apply needs no force-unlock and writes only the rest
    again = _apply(policy, env)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, (out, err)
    assert f"Apply complete: {len(left)} written, 0 failed" in out


def test_ctrl_c_while_planning_stops_at_once_having_written_nothing(
    world: tuple[Path, dict[str, str], list[str]],
    vault: VaultAdapter,
    sandbox: GitHubSandbox,
) -> None:
    policy, env, _ = world
    sandbox.inject(Fault(method="GET", path=r"/environments$", delay=5.0))
    running = _apply(policy, env)
    _wait_for(
        lambda: any(m == "GET" and "environments" in op for (m, op) in sandbox.request_counts())
    )
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=120)
    assert running.returncode == 130
    assert err == "error: interrupted (Ctrl-C) before anything was written\n" and out == ""
    assert not any(m in ("PUT", "POST", "PATCH", "DELETE") for m, _ in sandbox.request_counts())
    lock = vault.read_document("envmatrix/locks/apply")
    assert lock is not None and "id" not in lock.data
