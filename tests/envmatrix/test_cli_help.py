"""The command line as a newcomer meets it: `-h` everywhere, an example per command, the exit
codes and every environment variable in `--help`, readable placeholders, shell completion."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from envmatrix.cli.app import app
from envmatrix.cli.helptext import ENVIRONMENT, EXAMPLES
from tests.envmatrix.support_gates import run

ROOT = Path(__file__).resolve().parents[2]
ENVMATRIX = Path(sys.executable).parent / "envmatrix"


def commands(command: Any = None, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every command and group of the app by path (`flags check`), the root as ``."""
    command = command or typer.main.get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, f"{path} {name}".strip())


PATHS = [path for path, _ in commands()]


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one help line per line, whatever the terminal


def help_of(capsys: pytest.CaptureFixture[str], path: str, flag: str = "--help") -> str:
    code, out, err = run(capsys, *path.split(), flag)
    assert (code, err) == (0, ""), err
    return out


@pytest.mark.parametrize("path", PATHS, ids=[p or "envmatrix" for p in PATHS])
def test_dash_h_is_help_everywhere(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    short = help_of(capsys, path, "-h")
    assert short == help_of(capsys, path, "--help")
    assert f"Usage: envmatrix {path}".rstrip() in short


@pytest.mark.parametrize("path", [p for p in PATHS if p], ids=[p for p in PATHS if p])
def test_each_command_shows_an_example_and_the_exit_codes(
    path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_of(capsys, path)
    assert EXAMPLES.get(path), f"add an example for `envmatrix {path}` to envmatrix/cli/helptext.py"
    examples = text.split("Examples:", 1)[1].split("Exit codes:", 1)[0]
    assert all(line in examples for line in EXAMPLES[path])
    assert all(line.startswith(f"envmatrix {path.split()[0]}") for line in EXAMPLES[path])
    codes = " ".join(text.split("Exit codes:", 1)[1].split())
    assert all(f"{code} " in codes for code in (0, 1, 3, 130))
    assert "ENVMATRIX_POLICY" in text and "VAULT_ADDR" in text and "GITHUB_TOKEN" in text


def variables_read_by_the_code() -> set[str]:
    """The ENVMATRIX_*, VAULT_*, GITHUB_*, GH_* names the sources spell out."""
    names: set[str] = set()
    for folder in ("envmatrix", "rotation"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(
                re.findall(
                    r"[\"']((?:ENVMATRIX|VAULT|GITHUB|GH)_[A-Z0-9_]+)[\"']", path.read_text()
                )
            )
    return names - {"ENVMATRIX_FAILPOINTS"}  # the tests' own fault injection


def test_root_help_names_every_variable_and_every_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = help_of(capsys, "")
    listed = text.split("Environment variables:", 1)[1]
    missing = sorted(n for n in variables_read_by_the_code() if f"{n}:" not in listed)
    assert missing == [], "name them in envmatrix/cli/helptext.py ENVIRONMENT"
    assert set(ENVIRONMENT) >= {"VAULT_ADDR", "VAULT_TOKEN", "GH_TOKEN", "GITHUB_TOKEN"}
    codes = text.split("Exit codes:", 1)[1]
    for code in ("0 ok", "1 ", "2 ", "3 invalid", "130 interrupted"):
        assert f"\n   {code}" in codes or f"  {code}" in codes


def test_every_value_has_a_readable_placeholder(capsys: pytest.CaptureFixture[str]) -> None:
    unnamed = [
        f"envmatrix {path} {param.name}"
        for path, command in commands()
        for param in command.params
        if not getattr(param, "is_flag", False)
        and not re.fullmatch(r"[A-Z][A-Z_]*", param.metavar or "")
        and param.name not in ("install_completion", "show_completion")
    ]
    assert unnamed == []
    lines = help_of(capsys, "plan").splitlines()
    assert any(re.search(r"--policy\s+-p\s+FILE\s", line) for line in lines)
    assert any(re.search(r"--environment\s+-e\s+ENV\s", line) for line in lines)
    verify = help_of(capsys, "verify")
    assert re.search(r"--repository\s+-r\s+REPO\s", verify)
    assert re.search(
        r"Usage: envmatrix flags check \[OPTIONS\] \W?NAME\b", help_of(capsys, "flags check")
    )
    assert "<str>" not in " ".join(line for line in lines if "--" in line)


def completion(words: str) -> list[str]:
    """What bash completion offers after `words` (the last word is being typed)."""
    environ = {
        **os.environ,
        "_ENVMATRIX_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    result = subprocess.run(
        [str(ENVMATRIX)], env=environ, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.split()


def test_shell_completion_is_offered_and_completes_commands_and_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = help_of(capsys, "")
    assert "--install-completion" in root and "--show-completion" in root
    shown = subprocess.run(
        [str(ENVMATRIX), "--show-completion", "bash"], capture_output=True, text=True, timeout=60
    )
    out = shown.stdout
    assert shown.returncode == 0 and "_ENVMATRIX_COMPLETE=complete_bash" in out
    assert "complete -o default -F _envmatrix_completion envmatrix" in out
    assert completion("envmatrix val") == ["validate"]
    assert completion("envmatrix rotation c") == ["calendar"]
    assert completion("envmatrix flags ch") == ["check"]
    assert "--detailed-exitcode" in completion("envmatrix plan --de")
