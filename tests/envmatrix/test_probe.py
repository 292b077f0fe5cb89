"""The Supabase probe against a local server that answers like Supabase (401 for a wrong key,
200 for an active secret key), with the values read from a real OpenBao."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envmatrix.adapters.vault import VaultAdapter
from envmatrix.demo import seed_vault
from envmatrix.errors import CheckFailed
from envmatrix.policy import load_policy
from envmatrix.probe import check_supabase, run_probe
from envmatrix.sandbox import GitHubSandbox
from envmatrix.sandbox.supabase import SupabaseSandbox
from envmatrix.secret import SecretValue
from tests.envmatrix.support_gates import example_policy, run, run_json, use_services

WRONG_KEY = "sb_secret_canary_wrong_7d1e"
FLAG = "FEATURE_AI_ESCALATIONS"


@pytest.fixture
def supabase() -> Iterator[SupabaseSandbox]:
    with SupabaseSandbox() as server:
        yield server


def put_supabase(vault: VaultAdapter, env: str, url: str, key: str | None) -> None:
    values = {"url": SecretValue(url)}
    if key is not None:
        values["service_key"] = SecretValue(key)
    vault.write_values(f"apps/{env}/supabase", values)


def test_check_supabase_accepts_the_right_key_and_rejects_a_wrong_one(
    supabase: SupabaseSandbox,
) -> None:
    good = supabase.add_secret_key("ci")
    check_supabase(SecretValue(supabase.url), SecretValue(good))
    with pytest.raises(CheckFailed, match="HTTP 401") as failure:
        check_supabase(SecretValue(supabase.url), SecretValue(WRONG_KEY))
    assert WRONG_KEY not in str(failure.value) and supabase.url not in str(failure.value)


def test_library_text_never_reaches_the_message() -> None:
    url = "http://127.0.0.1:9/canary-in-the-url"  # nothing listens on port 9
    with pytest.raises(CheckFailed) as failure:
        check_supabase(SecretValue(url), SecretValue(WRONG_KEY))
    message = str(failure.value)
    assert "canary" not in message and "\n" not in message and "unreachable" in message
    assert failure.value.__cause__ is None and failure.value.__suppress_context__


def test_run_probe_reads_vault_and_names_the_owner_when_a_value_is_missing(
    tmp_path: Path, vault: VaultAdapter, supabase: SupabaseSandbox
) -> None:
    policy = load_policy(example_policy(tmp_path, vault.mount))
    put_supabase(vault, "production", supabase.url, None)
    result = run_probe("supabase", policy, vault, "production")
    assert not result.ok
    assert result.detail == (
        f"SUPABASE_SERVICE_KEY missing in Vault at {vault.mount}/apps/"
        "production/supabase#service_key — owner: reliability"
    )
    put_supabase(vault, "production", supabase.url, supabase.add_secret_key())
    assert run_probe("supabase", policy, vault, "production").ok


def test_probe_command(
    tmp_path: Path,
    vault: VaultAdapter,
    vault_env: dict[str, str],
    supabase: SupabaseSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = str(example_policy(tmp_path, vault.mount))
    for name, value in vault_env.items():
        monkeypatch.setenv(name, value)
    good = supabase.add_secret_key()
    put_supabase(vault, "staging", supabase.url, good)
    put_supabase(vault, "production", supabase.url, WRONG_KEY)
    code, out, err = run(capsys, "probe", "supabase", "--environment", "staging", "-p", policy)
    assert code == 0 and "probe supabase in staging: ok" in out
    code, out, err = run(capsys, "probe", "supabase", "--environment", "production", "-p", policy)
    assert code == 1 and "rejected SUPABASE_SERVICE_KEY (HTTP 401)" in out
    code, data = run_json(capsys, "probe", "supabase", "-e", "production", "--json", "-p", policy)
    assert code == 1 and data["ok"] is False
    for text in (out, err, str(data)):
        assert WRONG_KEY not in text and good not in text and supabase.url not in text


def test_a_wrong_key_keeps_a_probed_flag_from_being_ready(
    tmp_path: Path,
    vault: VaultAdapter,
    vault_env: dict[str, str],
    sandbox: GitHubSandbox,
    supabase: SupabaseSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def probed(document: dict[str, Any]) -> None:
        document["flags"][FLAG]["probe"] = "supabase"

    path = example_policy(tmp_path, vault.mount, probed)
    use_services(monkeypatch, sandbox, vault_env)
    seed_vault(load_policy(path), vault)
    put_supabase(vault, "staging", supabase.url, supabase.add_secret_key())
    put_supabase(vault, "production", supabase.url, WRONG_KEY)
    # apply writes the secrets but refuses to set the probed flag true (exit 1)
    code, out, _ = run(capsys, "apply", "--yes", "--policy", str(path))
    assert code == 1 and "probe supabase failed" in out
    check = ("flags", "check", FLAG, "--environment", "production", "--policy", str(path))
    code, out, _ = run(capsys, *check)
    assert code == 1 and "probe-failed: probe supabase: Supabase rejected" in out
    assert WRONG_KEY not in out
    assert run(capsys, *check, "--no-probe")[0] == 0  # present and in sync: only the probe fails

    put_supabase(vault, "production", supabase.url, supabase.add_secret_key())
    code, out, err = run(capsys, "apply", "--yes", "--policy", str(path))
    assert code == 0, out + err
    code, out, _ = run(capsys, *check)
    assert code == 0, out
