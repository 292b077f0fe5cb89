"""`envmatrix sandbox`: OpenBao and the GitHub sandbox for a local try-out, run as a user runs it
(a separate process), used through the export lines it prints, stopped with Ctrl-C or SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from envmatrix import cli
from envmatrix.connect import connections_at
from envmatrix.demo.run import seed_vault
from envmatrix.demo.tryout import sandbox_repositories
from envmatrix.errors import UsageError
from envmatrix.policy import load_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "policies" / "example.yaml"
EXPORTED = ("VAULT_ADDR", "VAULT_TOKEN", "GITHUB_API_URL", "GITHUB_TOKEN")
STARTUP_LIMIT = 90.0  # a safety net for a hung start, not a measurement


@dataclass
class Running:
    process: subprocess.Popen[str]
    banner: list[str]
    exports: dict[str, str]

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.exports, "ENVMATRIX_GITHUB_BACKOFF": "0.01"}

    def ports(self) -> list[int]:
        vault = int(self.exports["VAULT_ADDR"].rsplit(":", 1)[1])
        github = int(self.exports["GITHUB_API_URL"].rsplit(":", 1)[1])
        return [vault, vault + 1, github]  # the dev server's cluster port is listen port + 1


def start_sandbox(*args: str) -> Running:
    """`envmatrix sandbox ARGS` in its own process; returns once the export lines are out."""
    process = subprocess.Popen(
        [sys.executable, "-m", "envmatrix", "sandbox", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    banner: list[str] = []
    while not banner or not banner[-1].startswith("# Ctrl-C"):
        line = lines.get(timeout=STARTUP_LIMIT)
        assert line is not None, f"sandbox exited: {process.wait()} {process.stderr.read()}"  # type: ignore[union-attr]
        banner.append(line)
    return Running(process, banner, parse_exports(banner))


def parse_exports(lines: list[str]) -> dict[str, str]:
    """`export NAME=VALUE` lines, as a POSIX shell reads them."""
    exports = {}
    for line in lines:
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            (exports[name],) = shlex.split(value)
    return exports


def stop(running: Running, number: signal.Signals) -> tuple[int, str, str]:
    running.process.send_signal(number)
    out, err = running.process.communicate(timeout=STARTUP_LIMIT)
    return running.process.returncode, out, err


def envmatrix(running: Running, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envmatrix", *args],
        env=running.env(),
        capture_output=True,
        text=True,
        timeout=STARTUP_LIMIT,
    )


def refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def policy_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "envmatrix.yaml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    yield path


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_sandbox_serves_a_policy_through_its_export_lines_until_stopped(
    policy_file: Path, number: signal.Signals
) -> None:
    running = start_sandbox("--policy", str(policy_file), "--repo", "octo-org/extra")
    try:
        assert set(EXPORTED) <= set(running.exports)
        for address in ("VAULT_ADDR", "GITHUB_API_URL"):
            assert running.exports[address].startswith("http://127.0.0.1:")
        assert any(line.startswith("unset GH_TOKEN") for line in running.banner)
        # the sandbox holds the policy's repository and the --repo one
        for repository in ("occ-labs/operator-console", "octo-org/extra"):
            assert github_status(running, f"/repos/{repository}") == 200
        # a user fills Vault, then plans and applies their policy against the two servers
        policy = load_policy(policy_file)
        exports = running.exports
        with connections_at(
            exports["VAULT_ADDR"],
            exports["VAULT_TOKEN"],
            policy.vault.mount,
            exports["GITHUB_API_URL"],
            exports["GITHUB_TOKEN"],
        ) as connections:
            seeded = seed_vault(policy, connections.vault)
        plan = envmatrix(running, "plan", "--json", "--policy", str(policy_file))
        assert plan.returncode == 0, plan.stderr
        changes = json.loads(plan.stdout)["changes"]
        secrets = [c for c in changes if c["kind"] == "secret"]
        assert [c["action"] for c in secrets] == ["create"] * seeded
        applied = envmatrix(running, "apply", "--yes", "--policy", str(policy_file))
        assert applied.returncode == 0, applied.stderr
        again = envmatrix(running, "plan", "--detailed-exitcode", "--policy", str(policy_file))
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        code, out, err = stop(running, number)
    assert (code, err) == (0, "")  # stopped on purpose: a clean exit
    assert all(refused(port) for port in running.ports())


def github_status(running: Running, path: str) -> int:
    request = urllib.request.Request(
        running.exports["GITHUB_API_URL"] + path,
        headers={"Authorization": f"token {running.exports['GITHUB_TOKEN']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def test_without_openbao_installed_it_names_the_demo_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No `bao` beside the interpreter nor on PATH: the one-line MissingExtra error, exit 3,
    and nothing started."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    code = cli.main(["sandbox", "--repo", "o/r"])
    out, err = capsys.readouterr()
    assert code == 3 and out == ""
    assert err == (
        "error: this needs envmatrix's optional 'demo' dependencies, which are not installed:"
        " pip install 'envmatrix[demo]'\n"
    )


@pytest.mark.parametrize("value", ["nope", "a/b/c", "/b", "a/", " a/b", ""])
def test_a_repo_that_is_not_owner_name_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["sandbox", "--repo", value])
    _, err = capsys.readouterr()
    assert code == 3 and "--repo" in err and "owner/name" in err and err.count("\n") == 1


def test_repositories_come_from_the_policy_then_repo_each_once(policy_file: Path) -> None:
    assert sandbox_repositories(str(policy_file), ["OCC-labs/Operator-Console", "x/y", "X/Y"]) == (
        "occ-labs/operator-console",
        "x/y",
    )
    assert sandbox_repositories(None, []) == ()
    with pytest.raises(UsageError):
        sandbox_repositories(None, ["x"])


def test_an_invalid_policy_is_reported_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nenvironmnets: {}\n", encoding="utf-8")
    code = cli.main(["sandbox", "--policy", str(bad)])
    _, err = capsys.readouterr()
    assert code == 3 and "bad.yaml:" in err
