"""rotation/strategies/gcp_service_account_key.py against the local IAM + token stand-in, and the
whole loop through the registry and the engine on OpenBao and the GitHub sandbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envmatrix.adapters.gcp_iam import mint_access_token
from envmatrix.adapters.github import GitHubAdapter
from envmatrix.errors import (
    CheckFailed,
    PolicyError,
    RotationTestFailed,
    RuntimeFailure,
    UsageError,
)
from envmatrix.rotation.engine import RotationEngine
from envmatrix.rotation.groups import groups_for
from envmatrix.rotation.journal import journal_path
from envmatrix.rotation.strategies.base import RotationContext
from envmatrix.rotation.strategies.gcp_service_account_key import (
    GcpServiceAccountKeyStrategy,
)
from envmatrix.secret import SecretValue
from tests.rotation.rotation_support import failure_texts, load, sync_all
from tests.standins.gcp_iam import MAX_KEYS, GcpIamStandIn

ACCOUNT = "ga-mcp@occ-demo.iam.gserviceaccount.com"
ADMIN = "envmatrix-rotator@occ-demo.iam.gserviceaccount.com"
KEY = "service_account_json"


@pytest.fixture
def iam() -> Iterator[GcpIamStandIn]:
    with GcpIamStandIn() as stand_in:
        stand_in.add_account(ACCOUNT)
        stand_in.add_account(ADMIN, manages=(ACCOUNT,))
        yield stand_in


def key_id(key_json: str) -> str:
    return str(json.loads(key_json)["private_key_id"])


def strategy(iam: GcpIamStandIn, admin: str, **options: Any) -> GcpServiceAccountKeyStrategy:
    options = {
        "service_account": ACCOUNT,
        "iam_url": iam.url,
        "credentials_secret": "GCP_ADMIN_KEY",
        "test_delay": 0,
        **options,
    }

    def read(name: str, environment: str | None) -> SecretValue:
        assert (name, environment) == ("GCP_ADMIN_KEY", "production")
        return SecretValue(admin)

    return GcpServiceAccountKeyStrategy(options, read)


def ctx(current: str, handle: dict[str, str] | None = None) -> RotationContext:
    return RotationContext(
        path="apps/production/ga-mcp",
        environment="production",
        keys={"GA_MCP_SERVICE_ACCOUNT_JSON": KEY},
        options={},
        current={KEY: SecretValue(current)},
        handle=handle or {},
    )


def test_create_test_revoke(iam: GcpIamStandIn) -> None:
    admin = iam.new_key_file(ADMIN)
    old = iam.new_key_file(ACCOUNT)
    rotation = strategy(iam, admin)
    created = rotation.create(ctx(old))
    new = created.values[KEY].reveal()
    assert key_id(new) != key_id(old)
    assert set(iam.user_keys(ACCOUNT)) == {key_id(old), key_id(new)}
    assert created.handle["service_account"] == ACCOUNT
    assert created.handle["key"] == "…" + key_id(new)[-4:]
    rotation.test(ctx(old, dict(created.handle)), created.values)

    rotation.revoke(ctx(new, dict(created.handle)), {KEY: SecretValue(old)})
    assert iam.user_keys(ACCOUNT) == [key_id(new)]
    with pytest.raises(CheckFailed, match="refused the key: HTTP 400"):
        mint_access_token(SecretValue(old))  # the deleted key no longer mints tokens
    rotation.revoke(ctx(new), {KEY: SecretValue(old)})  # resumed: already gone
    rotation.revoke(ctx(new), {KEY: SecretValue(new)})  # never the key in Vault
    assert iam.user_keys(ACCOUNT) == [key_id(new)]


@pytest.mark.parametrize("tamper", ["other-private-key", "deleted-key", "not-json", "no-key"])
def test_a_key_that_cannot_mint_a_token_fails_the_test_step(
    iam: GcpIamStandIn, tamper: str
) -> None:
    admin = iam.new_key_file(ADMIN)
    old = iam.new_key_file(ACCOUNT)
    rotation = strategy(iam, admin, test_attempts=2)
    created = rotation.create(ctx(old))
    data = json.loads(created.values[KEY].reveal())
    if tamper == "other-private-key":  # the id of the new key, the private key of another
        data["private_key"] = json.loads(iam.new_key_file(ACCOUNT))["private_key"]
    elif tamper == "deleted-key":
        rotation.discard(ctx(old, dict(created.handle)), created.values)
    bad = {
        "not-json": "{not json",
        "no-key": json.dumps({k: v for k, v in data.items() if k != "private_key"}),
    }.get(tamper, json.dumps(data))
    with pytest.raises(RotationTestFailed):
        rotation.test(ctx(old, dict(created.handle)), {KEY: SecretValue(bad)})
    assert iam.state.refused_tokens >= (2 if tamper in ("other-private-key", "deleted-key") else 0)


def test_the_ten_key_limit_stops_create_with_a_clear_error(iam: GcpIamStandIn) -> None:
    admin = iam.new_key_file(ADMIN)
    keys = [iam.new_key_file(ACCOUNT) for _ in range(MAX_KEYS)]
    with pytest.raises(RuntimeFailure, match="already has 10 user-managed keys"):
        strategy(iam, admin).create(ctx(keys[0]))
    assert len(iam.user_keys(ACCOUNT)) == MAX_KEYS


def test_discard_deletes_the_new_key_even_from_the_handle_alone(iam: GcpIamStandIn) -> None:
    admin = iam.new_key_file(ADMIN)
    old = iam.new_key_file(ACCOUNT)
    rotation = strategy(iam, admin)
    created = rotation.create(ctx(old))
    rotation.discard(ctx(old, dict(created.handle)), {})  # the values were lost
    assert iam.user_keys(ACCOUNT) == [key_id(old)]


def test_a_create_repeated_after_a_crash_deletes_the_key_the_first_one_made(
    iam: GcpIamStandIn,
) -> None:
    admin = iam.new_key_file(ADMIN)
    old = iam.new_key_file(ACCOUNT)
    other = iam.new_key_file(ACCOUNT)  # someone else's key: never touched
    rotation = strategy(iam, admin)
    intent = dict(rotation.intent(ctx(old)))
    assert key_id(old) not in repr(intent)
    lost = rotation.create(ctx(old, intent))  # the process died before Vault saw it
    again = rotation.create(ctx(old, intent))
    ids = set(iam.user_keys(ACCOUNT))
    assert key_id(lost.values[KEY].reveal()) not in ids
    assert {key_id(old), key_id(other), key_id(again.values[KEY].reveal())} == ids


@pytest.mark.parametrize(
    ("admin_kind", "expected"),
    [("unauthorised", "HTTP 403"), ("deleted", "the admin key"), ("unknown-account", "HTTP 404")],
)
def test_admin_failures_are_one_line_without_values(
    iam: GcpIamStandIn, admin_kind: str, expected: str
) -> None:
    old = iam.new_key_file(ACCOUNT)
    options: dict[str, Any] = {}
    if admin_kind == "unauthorised":
        iam.add_account("intruder@occ-demo.iam.gserviceaccount.com")
        admin = iam.new_key_file("intruder@occ-demo.iam.gserviceaccount.com")
    elif admin_kind == "deleted":
        admin = iam.new_key_file(ADMIN)
        with iam.state.lock:
            del iam.state.keys[key_id(admin)]
    else:
        admin = iam.new_key_file(ADMIN)
        options["service_account"] = "nobody@occ-demo.iam.gserviceaccount.com"
    text, *_ = failure_texts(lambda: strategy(iam, admin, **options).create(ctx(old)))
    assert expected in text and "\n" not in text
    for value in (admin, old, json.loads(admin)["private_key"]):
        assert value not in text


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"credentials_secret": "X"}, "service_account"),
        ({"service_account": "not-an-email", "credentials_secret": "X"}, "service_account"),
        ({"service_account": ACCOUNT}, "credentials_secret"),
        ({"service_account": ACCOUNT, "credentials_secret": "X", "iam": "x"}, "iam"),
    ],
)
def test_policy_options_are_validated_at_load(
    tmp_path: Path, vault_mount: str, options: dict[str, Any], fragment: str
) -> None:
    path = _write_policy(tmp_path, vault_mount, options)
    with pytest.raises(PolicyError, match=fragment):
        load(path)


def _write_policy(directory: Path, mount: str, options: dict[str, Any]) -> Path:
    rotation = {"max_age": "30d", "strategy": "gcp-service-account-key", "options": options}
    policy = {
        "version": 1,
        "vault": {"mount": mount},
        "github": {"repositories": ["occ-labs/operator-console"]},
        "environments": {"production": {"github": "production"}},
        "owners": {"analytics": {"contact": "analytics@example.test"}},
        "secrets": {
            "GA_MCP_SERVICE_ACCOUNT_JSON": {
                "owner": "analytics",
                "vault": "apps/{environment}/ga-mcp#service_account_json",
                "environments": ["production"],
                "rotation": rotation,
            },
            "GCP_ADMIN_KEY": {
                "owner": "analytics",
                "vault": "apps/{environment}/gcp-admin#key",
                "environments": ["production"],
            },
        },
    }
    path = directory / "envmatrix.yaml"
    path.write_text(json.dumps(policy, indent=2))
    return path


def test_the_engine_rotates_through_the_registry(
    tmp_path: Path, vault: Any, sandbox: Any, iam: GcpIamStandIn
) -> None:
    """Registry, engine, IAM, token endpoint, Vault, GitHub; the old key deleted; no value in
    the journal."""
    options = {
        "service_account": ACCOUNT,
        "iam_url": iam.url,
        "credentials_secret": "GCP_ADMIN_KEY",
        "test_delay": 0,
    }
    path = _write_policy(tmp_path, vault.mount, options)
    policy = load(path)
    admin, old = iam.new_key_file(ADMIN), iam.new_key_file(ACCOUNT)
    vault.write_values("apps/production/gcp-admin", {"key": SecretValue(admin)})
    vault.write_values("apps/production/ga-mcp", {KEY: SecretValue(old)})
    sync_all(path, vault, sandbox)

    engine = RotationEngine(policy, vault, GitHubAdapter(sandbox.url, "sandbox-token"))
    [outcome] = [engine.rotate(g) for g in groups_for(policy, "GA_MCP_SERVICE_ACCOUNT_JSON")]
    assert outcome.result == "done", outcome.message
    new = vault.read_values("apps/production/ga-mcp")[KEY].reveal()
    assert key_id(new) != key_id(old)
    held = sandbox.secret_value(
        "occ-labs/operator-console", "production", "GA_MCP_SERVICE_ACCOUNT_JSON"
    )
    assert held == new
    assert key_id(old) not in iam.user_keys(ACCOUNT)  # no grace in this policy: revoked now
    assert key_id(new) in iam.user_keys(ACCOUNT)
    mint_access_token(SecretValue(new))
    journal = repr(vault.read_document(journal_path("apps/production/ga-mcp")))
    assert "key_sha256" in journal
    for value in (old, new, admin, key_id(old), key_id(new)):
        assert value not in journal


def test_canary_never_in_handles_or_errors(iam: GcpIamStandIn) -> None:
    canary = f"canary{uuid.uuid4().hex}"
    admin = iam.new_key_file(ADMIN)
    old = iam.new_key_file(ACCOUNT)
    rotation = strategy(iam, admin, test_attempts=1)
    created = rotation.create(ctx(old))
    texts = [repr(created.handle), repr(created), repr(created.values)]
    texts += failure_texts(
        lambda: rotation.test(ctx(old), {KEY: SecretValue(canary)}), (RotationTestFailed,)
    )
    texts += failure_texts(lambda: strategy(iam, canary).create(ctx(old)), (UsageError,))
    unreachable = strategy(iam, admin, iam_url="http://127.0.0.1:1")
    texts += failure_texts(lambda: unreachable.create(ctx(old)))
    for text in texts:
        for value in (canary, admin, old, created.values[KEY].reveal()):
            assert value not in text
