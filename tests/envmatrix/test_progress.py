"""Progress: apply and rotate show each write as it lands (plain lines off a terminal, a rich
bar with ETA on one), `--json` keeps stdout one document, and slow reads show a spinner on a
terminal only. Real subprocesses against OpenBao and the GitHub sandbox; a pseudo-terminal
(`pty`) stands for the user's terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from envmatrix.sandbox import Fault
from tests.rotation.rotation_support import load, run_cli, seed, sync_all, trust_initial
from tests.rotation.rotation_support import write_policy as write_rotation_policy
from tests.world import REPO, World

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SECRET_LINE = re.compile(r"^✓ create secret \S+ [A-Z_]+$")
WRITES = 20  # the example policy's first apply: 2 environments, 16 secrets, 2 flags


def cli_env(world: World, **extra: str) -> dict[str, str]:
    """What a user's shell would hand the CLI: the world's settings and a sane locale."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        **world.env,
        **extra,
    }


def envmatrix(*args: str) -> list[str]:
    return [sys.executable, "-m", "envmatrix", *args]


def run_on_terminal(
    args: Sequence[str], env: dict[str, str], cwd: Path, stdout_on_terminal: bool = True
) -> tuple[int, str, str]:
    """Run the CLI with stderr (and stdout, unless told otherwise) on a pseudo-terminal; the
    exit code, what the terminal showed (ANSI codes kept) and what the stdout pipe carried."""
    controller, terminal = pty.openpty()
    env = {**env, "TERM": "xterm-256color", "COLUMNS": "110", "LINES": "40"}
    process = subprocess.Popen(
        list(args),
        stdin=subprocess.DEVNULL,
        stdout=terminal if stdout_on_terminal else subprocess.PIPE,
        stderr=terminal,
        env=env,
        cwd=cwd,
    )
    os.close(terminal)
    shown = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: every writer of the terminal is gone
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    piped = ""
    if process.stdout is not None:
        with process.stdout:
            piped = process.stdout.read().decode()
    return process.wait(timeout=300), shown.decode("utf-8", "replace"), piped


def test_without_a_terminal_each_write_is_a_line_before_the_apply_ends(
    world: World, tmp_path: Path
) -> None:
    world.seed()
    # the 4th secret PUT hangs for an hour: the run cannot end before the test has read on
    world.sandbox.inject(Fault(method="PUT", path=r"/secrets/[A-Z]", delay=3600, after=3, times=1))
    # one writer: the lines' order is the writes' order (several writers interleave targets)
    env = cli_env(world, ENVMATRIX_GITHUB_TIMEOUT="3600", ENVMATRIX_GITHUB_WRITE_CONCURRENCY="1")
    process = subprocess.Popen(
        envmatrix("apply", "--yes"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
        text=True,
    )
    assert process.stdout is not None
    try:
        lines: list[str] = []
        while sum(bool(SECRET_LINE.match(line)) for line in lines) < 3:
            line = process.stdout.readline()
            assert line, f"the output ended before three writes were shown: {lines}"
            lines.append(line.rstrip("\n"))
        assert process.poll() is None  # still running: the lines came as the writes landed
    finally:
        process.kill()
        process.wait(timeout=60)
        process.stdout.close()
    assert lines[0] == f"✓ create environment {REPO}/production production"
    assert all(not ANSI.search(line) and "━" not in line for line in lines)  # plain, no bar
    assert all(SECRET_LINE.match(line) for line in lines[1:])


def test_without_a_terminal_each_result_is_printed_once_then_the_summary(world: World) -> None:
    world.seed(leave_out=("ZOHO_REFRESH_TOKEN", "production"))  # blocked: a warning at the end
    refused = r"/environments/production/secrets/SHOPIFY_ADMIN_TOKEN$"
    world.sandbox.inject(Fault(method="PUT", path=refused, status=422))
    done = world.run("apply", "--yes")
    assert done.code == 1, done.err
    lines = done.out.splitlines()
    results = [line for line in lines if line.startswith(("✓ ", "✗ "))]
    assert len(results) == len(set(results)) == WRITES - 1  # every attempted write, once
    assert lines[: len(results)] == results  # as they landed; then the warnings and summary
    assert [line for line in results if line.startswith("✗ ")] == [
        next(line for line in results if "SHOPIFY_ADMIN_TOKEN" in line and "production" in line)
    ]
    assert lines[len(results)].startswith("warning: ZOHO_REFRESH_TOKEN in ")
    assert [line for line in lines if line.startswith("Apply ")] == [lines[-1]]
    assert lines[-1] == "Apply incomplete: 18 written, 1 failed, 1 blocked (warnings)."


def test_json_keeps_stdout_one_document_and_stderr_quiet_off_a_terminal(world: World) -> None:
    world.seed()
    done = world.run("apply", "--yes", "--json")
    assert done.code == 0, done.err
    document = done.json()
    assert document["summary"] == {"written": WRITES, "failed": 0, "blocked": 0}
    assert "✓" not in done.err and "Applying" not in done.err


def test_on_a_terminal_a_progress_bar_with_eta_and_each_write_once(
    world: World, tmp_path: Path
) -> None:
    world.seed()
    code, shown, _ = run_on_terminal(envmatrix("apply", "--yes"), cli_env(world), tmp_path)
    assert code == 0, shown
    assert ANSI.search(shown)  # a terminal gets rich's rendering
    text = ANSI.sub("", shown)
    assert "Applying" in text and "ETA" in text and f"/{WRITES}" in text  # the bar, N of 20
    assert "Locking and planning" in text  # the spinner before the first write
    for name in ("SUPABASE_URL", "SHOPIFY_ADMIN_TOKEN", "ZOHO_CLIENT_ID"):
        line = f"✓ create secret {REPO}/production {name}"
        assert text.count(line + "\r") + text.count(line + "\n") == 1, line
    assert text.count("Apply complete: 20 written, 0 failed, 0 blocked (warnings).") == 1


def test_json_on_a_terminal_shows_progress_on_stderr_and_stdout_stays_json(
    world: World, tmp_path: Path
) -> None:
    world.seed()
    args = envmatrix("apply", "--yes", "--json")
    code, shown, piped = run_on_terminal(args, cli_env(world), tmp_path, stdout_on_terminal=False)
    assert code == 0, shown
    assert json.loads(piped)["summary"]["written"] == WRITES
    text = ANSI.sub("", shown)
    assert f"✓ create secret {REPO}/staging SUPABASE_URL" in text and "Applying" in text
    assert "Apply complete" not in text  # the summary is the JSON's


@pytest.mark.parametrize(
    "args", [("plan",), ("matrix",), ("flags", "--no-probe")], ids=["plan", "matrix", "flags"]
)
def test_slow_reads_show_a_spinner_on_a_terminal_only(
    world: World, tmp_path: Path, args: tuple[str, ...]
) -> None:
    world.seed()
    code, shown, piped = run_on_terminal(
        envmatrix(*args), cli_env(world), tmp_path, stdout_on_terminal=False
    )
    assert code == 0, shown
    assert "Vault and GitHub…" in ANSI.sub("", shown)  # the spinner, on stderr
    assert "Vault and GitHub…" not in piped
    quiet = world.run(*args)
    assert quiet.code == 0 and "Vault and GitHub…" not in quiet.err + quiet.out


def test_rotate_prints_each_github_write_of_its_sync_step(
    tmp_path: Path, vault: Any, vault_env: dict[str, str], sandbox: Any
) -> None:
    rotation = {"max_age": "30d", "strategy": "generate"}
    path = write_rotation_policy(tmp_path, vault.mount, rotation, ["staging", "production"])
    trust_initial(tmp_path, seed(load(path), vault, sandbox))
    sync_all(path, vault, sandbox)
    done = run_cli(["rotate", "API_TOKEN", "--policy", str(path), "--yes"], vault_env, sandbox)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    writes = [
        i for i, line in enumerate(lines) if re.match(r"✓ update secret \S+ API_TOKEN$", line)
    ]
    assert len(writes) == len({lines[i] for i in writes}) == 4  # 2 paths x 2 repositories
    for environment in ("staging", "production"):
        promoted = lines.index(next(x for x in lines if f"/{environment}/api promoted:" in x))
        synced = lines.index(next(x for x in lines if f"/{environment}/api synced:" in x))
        mine = [i for i in writes if f"/{environment} API_TOKEN" in lines[i]]
        assert len(mine) == 2 and promoted < min(mine) and max(mine) < synced  # as they land
