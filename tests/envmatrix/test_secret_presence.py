"""One meaning of "present" (`envmatrix.secret.absence`), used by plan, apply, flags, verify and
rotation alike: empty, whitespace-only and null values are not secrets. End-to-end on OpenBao and
the GitHub sandbox, with several placeholder values."""

from __future__ import annotations

import json

import pytest

from envmatrix.secret import SecretValue, absence, is_present
from tests.world import REPO, World


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "empty"),
        (" ", "whitespace-only"),
        ("\t\n  \r", "whitespace-only"),
        ("\u00a0\u2003", "whitespace-only"),  # no-break and em spaces
        (None, "null"),
        ("null", "null"),
        ("  NULL\n", "null"),
        (SecretValue(""), "empty"),
        (SecretValue("null"), "null"),
    ],
)
def test_placeholders_are_not_secrets(value: str | SecretValue | None, why: str) -> None:
    assert absence(value) == why
    assert not is_present(value)


@pytest.mark.parametrize("value", ["x", "0", "false", "nullable-token", " padded ", "ñ"])
def test_real_values_are_present(value: str) -> None:
    assert absence(value) is None and is_present(SecretValue(value))


PLACEHOLDERS = {
    "empty": "",
    "whitespace-only": "  \t ",
    "newline": "\n",
    "null": None,  # a JSON null in Vault KV
    'the text "null"': "null",
}


def _write_service_key(world: World, value: str | None) -> None:
    """Vault's production supabase path with service_key = `value` (JSON null when None)."""
    path = f"/v1/{world.vault.mount}/data/apps/production/supabase"
    data = {"url": "https://prod.supabase.example", "service_key": value}
    world.vault._client.adapter.post(path, json={"data": data})  # noqa: SLF001 - a raw JSON null


@pytest.mark.parametrize("label", list(PLACEHOLDERS))
def test_a_placeholder_in_vault_is_blocked_never_written_and_fails_every_gate(
    world: World, label: str
) -> None:
    world.seed()
    _write_service_key(world, PLACEHOLDERS[label])

    plan = world.run("plan", "--json", "-e", "production")
    rows = [
        c
        for c in plan.json()["changes"]
        if c["name"] == "SUPABASE_SERVICE_KEY" and c["kind"] == "secret"
    ]
    assert [(r["action"], r["reason"], r["owner"]) for r in rows] == [
        ("blocked", "empty-in-vault", "reliability")
    ]
    assert "owner: reliability (reliability@occ.example)" in rows[0]["detail"]
    flag = [c for c in plan.json()["changes"] if c["name"] == "FEATURE_AI_ESCALATIONS"]
    assert flag[0]["value"] == "false"

    applied = world.run("apply", "--yes", "-e", "production")
    assert applied.code == 0, applied.err
    assert world.sandbox.secret_value(REPO, "production", "SUPABASE_SERVICE_KEY") is None
    assert world.sandbox.variable_value(REPO, "production", "FEATURE_AI_ESCALATIONS") == "false"

    flags = world.run("flags", "check", "FEATURE_AI_ESCALATIONS", "-e", "production", "--no-probe")
    assert flags.code == 1
    vault = world.run("verify", "-e", "production", "--source", "vault", "--json")
    assert vault.code == 1
    assert vault.json()["missing"][0]["name"] == "SUPABASE_SERVICE_KEY"
    github = world.run("verify", "-e", "production", "--source", "github")
    assert github.code == 1


def test_a_placeholder_after_a_real_value_leaves_the_old_copy_and_turns_the_flag_off(
    world: World,
) -> None:
    """Vault's value becomes whitespace after a sync: blocked (GitHub keeps the last good copy,
    nothing is overwritten with the placeholder) and the flag is no longer ready."""
    world.seed()
    assert world.run("apply", "--yes").code == 0
    before = world.sandbox.secret_value(REPO, "staging", "SUPABASE_SERVICE_KEY")
    world.set_vault_value("SUPABASE_SERVICE_KEY", "staging", "   ")
    applied = world.run("apply", "--yes", "--json")
    assert applied.code == 0
    assert [b["reason"] for b in applied.json()["blocked"]] == ["empty-in-vault"]
    assert world.sandbox.secret_value(REPO, "staging", "SUPABASE_SERVICE_KEY") == before
    assert world.sandbox.variable_value(REPO, "staging", "FEATURE_AI_ESCALATIONS") == "false"
    assert world.run("flags", "check", "FEATURE_AI_ESCALATIONS", "-e", "staging").code == 1


@pytest.mark.parametrize("value", ["", "   ", "null", "\n"])
def test_the_environ_gate_refuses_placeholders(world: World, value: str) -> None:
    world.seed()
    assert world.run("apply", "--yes").code == 0
    for name in world.policy.secrets:
        world.monkeypatch.setenv(name, "a-real-looking-value")
    world.monkeypatch.setenv("SUPABASE_URL", value)
    result = world.run("verify", "-e", "staging", "--source", "environ", "--json")
    assert result.code == 1
    assert [m["name"] for m in result.json()["missing"]] == ["SUPABASE_URL"]


def test_plan_output_never_shows_the_values_it_looked_at(world: World) -> None:
    canary = "canary-presence-51f0"
    world.seed()
    _write_service_key(world, " ")
    world.set_vault_value("SUPABASE_URL", "production", canary)
    out = world.run("plan", "--json")
    assert canary not in out.out + out.err
    assert canary not in json.dumps(out.json())
