"""rotation/strategies/supabase_api_key.py against the local Supabase sandbox."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from envmatrix.adapters.github import GitHubAdapter
from envmatrix.errors import RotationTestFailed, RuntimeFailure, UsageError
from envmatrix.rotation.engine import RotationEngine
from envmatrix.rotation.groups import groups_for
from envmatrix.rotation.journal import journal_path
from envmatrix.rotation.strategies.base import RotationContext
from envmatrix.rotation.strategies.supabase_api_key import SupabaseApiKeyStrategy
from envmatrix.secret import SecretValue
from tests.rotation.rotation_support import (
    copies,
    failure_texts,
    load,
    seed,
    sync_all,
    write_policy,
)
from tests.standins.supabase import SupabaseSandbox

PAT = "sbp_test_rotation_token"
ENV = {"SUPABASE_ACCESS_TOKEN": PAT}


@pytest.fixture
def sb() -> Iterator[SupabaseSandbox]:
    with SupabaseSandbox(access_token=PAT, project_ref="demo") as sandbox:
        yield sandbox


def strategy(sb: SupabaseSandbox, environ: dict[str, str] = ENV, **options: Any) -> Any:
    options = {
        "project_ref": "demo",
        "api_url": sb.url,
        "access_token_env": "SUPABASE_ACCESS_TOKEN",
        "test_delay": 0,
        **options,
    }
    return SupabaseApiKeyStrategy(options, environ)


def ctx_for(sb: SupabaseSandbox, key: str, handle: dict[str, str] | None = None) -> RotationContext:
    return RotationContext(
        path="apps/production/supabase",
        environment="production",
        keys={"SUPABASE_URL": "url", "SUPABASE_SERVICE_KEY": "service_key"},
        options={},
        current={"url": SecretValue(sb.url), "service_key": SecretValue(key)},
        handle=handle or {},
    )


def test_new_key_is_created_verified_and_the_old_deleted(sb: SupabaseSandbox) -> None:
    old = sb.add_secret_key("seeded")
    rotation = strategy(sb)
    created = rotation.create(ctx_for(sb, old))
    new = created.values["service_key"].reveal()
    assert set(created.values) == {"service_key", "url"}  # the group's keys; url carried over
    assert created.values["url"].reveal() == sb.url
    assert sb.is_valid(new) and new != old
    assert sb.key_ids()[-1] == created.handle["key_id"]
    assert created.handle["key_name"].startswith("envmatrix_")
    rotation.test(ctx_for(sb, old, dict(created.handle)), created.values)
    assert sb.is_valid(old)  # grace: both keys work

    after = ctx_for(sb, new, dict(created.handle))
    rotation.revoke(after, {"service_key": SecretValue(old), "url": SecretValue(sb.url)})
    assert not sb.is_valid(old)
    assert sb.is_valid(new)
    assert sb.key_ids() == [created.handle["key_id"]]
    rotation.revoke(after, {"service_key": SecretValue(old)})  # resumed: already gone


def test_a_refused_key_fails_the_test_step(sb: SupabaseSandbox) -> None:
    old = sb.add_secret_key()
    rotation = strategy(sb, test_attempts=2)
    pending = {"service_key": SecretValue("sb_secret_sandbox_not_a_key")}
    with pytest.raises(RotationTestFailed, match="after 2 attempt.*HTTP 401") as failure:
        rotation.test(ctx_for(sb, old), pending)
    assert "not_a_key" not in str(failure.value)


def test_the_key_in_vault_is_never_deleted(sb: SupabaseSandbox) -> None:
    key = sb.add_secret_key()
    strategy(sb).revoke(ctx_for(sb, key), {"service_key": SecretValue(key)})
    assert sb.is_valid(key)


def test_a_legacy_jwt_cannot_be_revoked_alone(sb: SupabaseSandbox) -> None:
    new = sb.add_secret_key()
    legacy = {"service_key": SecretValue("eyJhbGciOiJIUzI1NiJ9.e30.sandbox")}
    with pytest.raises(RuntimeFailure, match="legacy keys cannot be revoked one by one"):
        strategy(sb).revoke(ctx_for(sb, new), legacy)


def test_discard_deletes_the_new_key(sb: SupabaseSandbox) -> None:
    old = sb.add_secret_key()
    rotation = strategy(sb)
    created = rotation.create(ctx_for(sb, old))
    rotation.discard(ctx_for(sb, old, dict(created.handle)), created.values)
    assert not sb.is_valid(created.values["service_key"].reveal())
    assert sb.is_valid(old)


def test_a_wrong_access_token_is_a_one_line_401(sb: SupabaseSandbox) -> None:
    rotation = strategy(sb, {"SUPABASE_ACCESS_TOKEN": "sbp_wrong"})
    with pytest.raises(RuntimeFailure, match=r"POST /v1/projects/demo/api-keys failed: HTTP 401"):
        rotation.create(ctx_for(sb, sb.add_secret_key()))
    assert len(sb.key_ids()) == 1


def test_configuration_errors(sb: SupabaseSandbox) -> None:
    with pytest.raises(UsageError, match="access_token_env"):
        SupabaseApiKeyStrategy({"project_ref": "demo"}, ENV)
    with pytest.raises(UsageError, match="SUPABASE_ACCESS_TOKEN"):
        strategy(sb, {})
    with pytest.raises(UsageError, match="project_ref"):
        SupabaseApiKeyStrategy({"access_token_env": "SUPABASE_ACCESS_TOKEN"}, ENV)
    ambiguous = RotationContext("p", "e", {"A": "a", "B": "b"}, {}, {})
    with pytest.raises(UsageError, match="set options.key"):
        strategy(sb).create(ambiguous)


def test_options_from_the_environment(sb: SupabaseSandbox) -> None:
    environ = {**ENV, "SB_REF": "demo", "SB_API": sb.url}
    rotation = SupabaseApiKeyStrategy(
        {
            "project_ref_env": "SB_REF",
            "api_url_env": "SB_API",
            "access_token_env": "SUPABASE_ACCESS_TOKEN",
            "key": "service_key",
        },
        environ,
    )
    created = rotation.create(ctx_for(sb, sb.add_secret_key()))
    assert sb.is_valid(created.values["service_key"].reveal())


def test_canary_no_value_in_errors_or_handles(sb: SupabaseSandbox) -> None:
    canary = f"canary{uuid.uuid4().hex}"
    old = sb.add_secret_key()
    rotation = strategy(sb, test_attempts=1)
    created = rotation.create(ctx_for(sb, old))
    values = [PAT, old, created.values["service_key"].reveal(), canary, sb.url]
    texts = [repr(created.handle), repr(created), repr(created.values)]
    assert not set(created.handle.values()) & {v.reveal() for v in created.values.values()}

    texts += failure_texts(
        lambda: rotation.test(ctx_for(sb, old), {"service_key": SecretValue(canary)})
    )
    texts += failure_texts(
        lambda: strategy(sb, {"SUPABASE_ACCESS_TOKEN": canary}).create(ctx_for(sb, old))
    )
    texts += failure_texts(
        lambda: strategy(sb).revoke(ctx_for(sb, old), {"service_key": SecretValue(canary)})
    )
    unreachable = strategy(sb, {"SUPABASE_ACCESS_TOKEN": canary}, api_url="http://127.0.0.1:1")
    texts += failure_texts(lambda: unreachable.create(ctx_for(sb, old)))
    for text in texts:
        for value in values:
            assert value not in text


def test_the_engine_rotates_through_the_registry(
    tmp_path: Any, vault: Any, sandbox: Any, sb: SupabaseSandbox, monkeypatch: Any
) -> None:
    """The whole loop: registry, engine, Management API, Vault, GitHub, old key deleted."""
    monkeypatch.setenv("SB_TEST_PAT", PAT)  # build() reads admin credentials from os.environ
    options = {
        "project_ref": "demo",
        "api_url": sb.url,
        "access_token_env": "SB_TEST_PAT",
        "project_url": sb.url,
        "key": "token",
    }
    rotation = {"max_age": "30d", "strategy": "supabase-api-key", "options": options}
    path = write_policy(tmp_path, vault.mount, rotation, ["production"])
    policy = load(path)
    old = sb.add_secret_key("seeded")
    seed(policy, vault, sandbox, token=old)
    sync_all(path, vault, sandbox)

    engine = RotationEngine(policy, vault, GitHubAdapter(sandbox.url, "sandbox-token"))
    [outcome] = [engine.rotate(g) for g in groups_for(policy, "API_TOKEN")]
    assert outcome.result == "done", outcome.message
    new = vault.read_values("apps/production/api")["token"].reveal()
    assert sb.is_valid(new) and not sb.is_valid(old)
    assert copies(sandbox, "production") == [new, new]
    assert vault.read_values("apps/production/api")["client_id"].reveal() == "client-production"
    journal = repr(vault.read_document(journal_path("apps/production/api")))
    assert "envmatrix_" in journal  # the handle's key name: the document is really shown
    assert old not in journal and new not in journal and PAT not in journal


def test_a_create_repeated_after_a_crash_deletes_the_key_the_first_one_made(
    sb: SupabaseSandbox,
) -> None:
    old = sb.add_secret_key("seeded")
    other = sb.add_secret_key("someone_elses")
    rotation = strategy(sb)
    handle = {"rotation_id": uuid.uuid4().hex}
    lost = rotation.create(ctx_for(sb, old, handle))  # the process died before Vault saw it
    again = rotation.create(ctx_for(sb, old, handle))
    assert not sb.is_valid(lost.values["service_key"].reveal())
    assert sb.is_valid(again.values["service_key"].reveal())
    assert sb.is_valid(old) and sb.is_valid(other)  # keys of no rotation, or another, stay
    another = rotation.create(ctx_for(sb, old, {"rotation_id": uuid.uuid4().hex}))
    assert sb.is_valid(again.values["service_key"].reveal())
    assert sb.is_valid(another.values["service_key"].reveal())
