"""Shared setup for the matrix/flags/verify/scan/probe command tests: the example policy on a
test's own Vault mount, and the environment the CLI reads (sandbox GitHub, test OpenBao)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from envmatrix import cli
from envmatrix.sandbox import GitHubSandbox

EXAMPLE = Path(__file__).resolve().parents[2] / "policies" / "example.yaml"


def example_policy(
    tmp_path: Path, mount: str, edit: Callable[[dict[str, Any]], None] | None = None
) -> Path:
    """policies/example.yaml with `vault.mount` set to the test's mount (and `edit` applied)."""
    yaml = YAML(typ="rt")
    document = yaml.load(EXAMPLE.read_text(encoding="utf-8"))
    document["vault"]["mount"] = mount
    if edit is not None:
        edit(document)
    path = tmp_path / "envmatrix.yaml"
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def use_services(
    monkeypatch: pytest.MonkeyPatch, sandbox: GitHubSandbox, vault_env: dict[str, str]
) -> None:
    """Point the CLI at the sandbox and the test OpenBao, as a user's shell would."""
    monkeypatch.setenv("GITHUB_API_URL", sandbox.url)
    monkeypatch.setenv("GITHUB_TOKEN", "sandbox-token")
    monkeypatch.setenv("COLUMNS", "200")
    for name, value in vault_env.items():
        monkeypatch.setenv(name, value)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`envmatrix ARGV` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code, out, err = run(capsys, *argv)
    assert out.strip(), err
    return code, json.loads(out)
