"""The generate, manual and command strategies on their own (command runs real executables)."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from envmatrix.errors import RotationTestFailed, RuntimeFailure, UsageError
from envmatrix.rotation.strategies import StrategySettings, get_strategy
from envmatrix.rotation.strategies.base import RotationContext
from envmatrix.secret import SecretValue

CTX = RotationContext(
    "apps/production/api",
    "production",
    {"API_TOKEN": "token"},
    {},
    {"token": SecretValue("old-value")},
)


@pytest.mark.parametrize(
    ("options", "length", "alphabet"),
    [
        ({}, 32, set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")),
        ({"length": 64, "alphabet": "hex"}, 64, set("0123456789abcdef")),
        (
            {"alphabet": "urlsafe"},
            32,
            set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"),
        ),
        ({"length": 20, "alphabet": "xy"}, 20, {"x", "y"}),
    ],
)
def test_generate_makes_values_of_the_asked_length_and_alphabet(options, length, alphabet) -> None:
    strategy = get_strategy("generate", options)
    values = [strategy.create(CTX).values["token"].reveal() for _ in range(5)]
    assert all(len(v) == length and set(v) <= alphabet for v in values)
    assert len(set(values)) == 5
    strategy.test(CTX, {"token": SecretValue(values[0])})
    with pytest.raises(RotationTestFailed):
        strategy.test(CTX, {"token": SecretValue("short")})


@pytest.mark.parametrize(
    "options",
    [
        {"length": 8},
        {"length": "32"},
        {"alphabet": "a"},
        {"alphabet": 5},
        {"size": 3},
    ],
)
def test_generate_refuses_bad_options(options) -> None:
    with pytest.raises(UsageError):
        get_strategy("generate", options)


def test_an_unknown_strategy_names_the_ones_available() -> None:
    with pytest.raises(
        UsageError, match="not available.*command, gcp-service-account-key, generate, manual"
    ):
        get_strategy("vault-magic", {})


def test_manual_takes_the_value_from_the_source_and_refuses_empty() -> None:
    asked = []

    def source(name: str, key: str) -> SecretValue:
        asked.append((name, key))
        return SecretValue("typed-by-owner")

    created = get_strategy("manual", {}, StrategySettings(value_source=source)).create(CTX)
    assert created.values["token"].reveal() == "typed-by-owner" and asked == [
        ("API_TOKEN", "token")
    ]
    empty = get_strategy("manual", {}, StrategySettings(value_source=lambda n, k: SecretValue(" ")))
    with pytest.raises(UsageError, match="whitespace-only, not a secret; refused"):
        empty.create(CTX)
    with pytest.raises(UsageError, match="rotate manually"):
        get_strategy("manual", {}).create(CTX)


def _rotator(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "bin" / "rotator"
    script.parent.mkdir(exist_ok=True)
    script.write_text(
        f"#!{sys.executable}\nimport json, os, sys\nrequest = json.load(sys.stdin)\n{body}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_command_create_speaks_json_and_resolves_relative_to_the_policy(
    tmp_path, monkeypatch
) -> None:
    _rotator(
        tmp_path,
        "assert 'VAULT_TOKEN' not in os.environ\n"
        "print(json.dumps({'values': {'token': request['current']['token'] + '-next'},"
        " 'handle': {'step': request['step'], 'cwd': os.getcwd()}}))",
    )
    monkeypatch.setenv("VAULT_TOKEN", "must-not-leak")
    strategy = get_strategy("command", {"command": ["bin/rotator"]}, StrategySettings(tmp_path))
    created = strategy.create(CTX)
    assert created.values["token"].reveal() == "old-value-next"
    assert created.handle == {"step": "create", "cwd": str(tmp_path)}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("print('not json')", "printed no JSON"),
        ("print(json.dumps({'values': {'other': 'x'}}))", r"lack \['token'\]"),
        ("print(json.dumps({'values': {'token': 'x'}, 'handle': {'n': 1}}))", "handle must map"),
    ],
)
def test_command_create_rejects_bad_answers(tmp_path, body, message) -> None:
    _rotator(tmp_path, body)
    strategy = get_strategy("command", {"command": ["bin/rotator"]}, StrategySettings(tmp_path))
    with pytest.raises(RuntimeFailure, match=message):
        strategy.create(CTX)


def test_a_failing_step_reports_the_exit_code_and_never_its_output(tmp_path) -> None:
    _rotator(
        tmp_path,
        "sys.stderr.write(request['pending']['token']); print(request['pending']['token']);"
        " sys.exit(7)",
    )
    strategy = get_strategy("command", {"command": ["bin/rotator"]}, StrategySettings(tmp_path))
    with pytest.raises(RotationTestFailed) as failed:
        strategy.test(CTX, {"token": SecretValue("pending-secret")})
    assert "failed at step test (exit 7)" in str(failed.value)
    assert "pending-secret" not in str(failed.value)
    with pytest.raises(RuntimeFailure, match="failed at step revoke"):
        strategy.revoke(CTX, {"token": SecretValue("old-value")})


def test_command_options_are_checked(tmp_path) -> None:
    with pytest.raises(UsageError, match="must be a list"):
        get_strategy("command", {"command": "rotate.sh"})
    with pytest.raises(UsageError, match="timeout"):
        get_strategy("command", {"command": ["x"], "timeout": 0})
    missing = get_strategy("command", {"command": ["bin/absent"]}, StrategySettings(tmp_path))
    with pytest.raises(RuntimeFailure, match="could not run step create"):
        missing.create(CTX)
