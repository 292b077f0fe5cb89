"""KV v2's own lifecycle under `VaultAdapter`, on a real OpenBao: deleted, destroyed and
metadata-deleted paths, `cas_required` mounts, `max_versions`, and tokens Vault no longer knows."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import hvac
import pytest

from envmatrix.adapters.vault import CAS_MISMATCH, CAS_REQUIRED, VaultAdapter
from envmatrix.demo.openbao import OpenBaoDevServer
from envmatrix.errors import VaultCasMismatch, VaultError, VaultPermissionDenied
from envmatrix.secret import SecretValue

REMOVALS = ("deleted", "destroyed", "metadata-deleted")
# the kinds of document envmatrix keeps under its mount (sync state, lock, journal, pending)
DOCUMENTS = (
    "envmatrix/state/acme/web/production",
    "envmatrix/locks/apply",
    "envmatrix/rotation/apps/production/api",
    "envmatrix/pending/apps/production/api",
)


def remove(admin: hvac.Client, mount: str, path: str, how: str) -> None:
    """What an operator does with `bao kv delete`, `bao kv destroy`, `bao kv metadata delete`."""
    kv = admin.secrets.kv.v2
    if how == "deleted":
        kv.delete_latest_version_of_secret(path=path, mount_point=mount)
    elif how == "destroyed":
        current = kv.read_secret_metadata(path=path, mount_point=mount)["data"]["current_version"]
        kv.destroy_secret_versions(path=path, versions=[current], mount_point=mount)
    else:
        kv.delete_metadata_and_all_versions(path=path, mount_point=mount)


@pytest.fixture
def adapter_with(
    openbao_server: OpenBaoDevServer, vault_mount: str
) -> Iterator[Callable[[str], VaultAdapter]]:
    made: list[VaultAdapter] = []

    def build(token: str) -> VaultAdapter:
        made.append(VaultAdapter(openbao_server.addr, token, mount=vault_mount, retries=1))
        return made[-1]

    yield build
    for adapter in made:
        adapter.close()


@pytest.mark.parametrize("how", REMOVALS)
@pytest.mark.parametrize("path", DOCUMENTS)
def test_a_removed_document_reads_absent_and_is_created_over(
    vault: VaultAdapter, vault_admin: hvac.Client, path: str, how: str
) -> None:
    for version in (1, 2):
        assert vault.write_document(path, {"n": version}, cas=version - 1) == version
    remove(vault_admin, vault.mount, path, how)
    assert vault.read_document(path) is None
    assert vault.read_entry(path).version is None
    # "absent" for envmatrix: the create-only write lands over whatever Vault still holds
    written = vault.write_document(path, {"n": "again"}, cas=0)
    assert written == (1 if how == "metadata-deleted" else 3)
    document = vault.read_document(path)
    assert document is not None and document.data == {"n": "again"}
    assert document.version == written
    # and the next check-and-set write goes on from there
    assert vault.write_document(path, {"n": "next"}, cas=written) == written + 1


@pytest.mark.parametrize("how", REMOVALS)
def test_values_over_a_removed_current_version_are_created_with_cas_zero(
    vault: VaultAdapter, vault_admin: hvac.Client, how: str
) -> None:
    vault.write_values("apps/prod/db", {"password": SecretValue("old")})
    remove(vault_admin, vault.mount, "apps/prod/db", how)
    version = vault.write_values("apps/prod/db", {"password": SecretValue("new")}, cas=0)
    assert vault.read_values("apps/prod/db", version)["password"].reveal() == "new"


def test_create_only_over_a_live_version_still_loses_naming_vaults_words(
    vault: VaultAdapter, vault_admin: hvac.Client
) -> None:
    vault.write_document("envmatrix/locks/apply", {"a": 1}, cas=0)
    vault.write_document("envmatrix/locks/apply", {"a": 2}, cas=1)
    # an older version deleted does not make the path absent: version 2 is live
    vault_admin.secrets.kv.v2.delete_secret_versions(
        path="envmatrix/locks/apply", versions=[1], mount_point=vault.mount
    )
    for cas in (0, 1, 5):
        with pytest.raises(VaultCasMismatch) as lost:
            vault.write_document("envmatrix/locks/apply", {"a": 3}, cas=cas)
        assert CAS_MISMATCH in str(lost.value) and "\n" not in str(lost.value)
    assert vault.read_document("envmatrix/locks/apply").data == {"a": 2}  # type: ignore[union-attr]


@pytest.mark.parametrize("scope", ["mount", "secret"])
def test_cas_required_is_named_as_such_and_writes_with_cas_work(
    vault: VaultAdapter, vault_admin: hvac.Client, scope: str
) -> None:
    path = "apps/prod/api"
    if scope == "mount":
        vault_admin.secrets.kv.v2.configure(cas_required=True, mount_point=vault.mount)
    else:
        vault_admin.secrets.kv.v2.update_metadata(
            path=path, cas_required=True, mount_point=vault.mount
        )
    with pytest.raises(VaultError) as refused:
        vault.write_values(path, {"k": SecretValue("v")})  # no cas
    message = str(refused.value)
    assert not isinstance(refused.value, VaultCasMismatch)
    assert CAS_REQUIRED in message and "cas_required=true" in message
    assert "changed meanwhile" not in message
    assert vault.write_values(path, {"k": SecretValue("v")}, cas=0) == 1
    assert vault.write_document(path, {"doc": 1}, cas=1) == 2


def test_kept_versions_follows_the_secret_then_the_mount_then_kvs_default(
    vault: VaultAdapter, vault_admin: hvac.Client
) -> None:
    kv = vault_admin.secrets.kv.v2
    assert vault.kept_versions("apps/never-written") == 10
    vault.write_values("apps/a", {"k": SecretValue("1")})
    assert vault.kept_versions("apps/a") == 10
    kv.configure(max_versions=4, mount_point=vault.mount)
    assert vault.kept_versions("apps/a") == 4
    kv.update_metadata(path="apps/a", max_versions=1, mount_point=vault.mount)
    assert vault.kept_versions("apps/a") == 1
    assert vault.kept_versions("apps/b") == 4


def test_kept_versions_is_unknown_without_read_on_metadata(
    vault: VaultAdapter, vault_admin: hvac.Client, adapter_with: Callable[[str], VaultAdapter]
) -> None:
    name = f"data-only-{uuid.uuid4().hex[:8]}"
    vault_admin.sys.create_or_update_policy(
        name=name, policy=f'path "{vault.mount}/data/*" {{ capabilities = ["read"] }}'
    )
    token = vault_admin.auth.token.create(policies=[name], ttl="5m")["auth"]["client_token"]
    assert adapter_with(token).kept_versions("apps/a") is None


def test_an_invalid_token_is_reported_as_invalid_not_as_a_missing_capability(
    vault: VaultAdapter, vault_admin: hvac.Client, adapter_with: Callable[[str], VaultAdapter]
) -> None:
    vault.write_values("apps/a", {"k": SecretValue("1")})
    revoked = vault_admin.auth.token.create(policies=["root"], ttl="5m")["auth"]["client_token"]
    vault_admin.auth.token.revoke(revoked)
    for token in (revoked, "s.not-a-token", "hvs." + "x" * 24):
        adapter = adapter_with(token)
        for attempt in (
            lambda a=adapter: a.read_entry("apps/a"),
            lambda a=adapter: a.read_document("apps/a"),
            lambda a=adapter: a.write_values("apps/a", {"k": SecretValue("2")}, cas=1),
            adapter.identity,
        ):
            with pytest.raises(VaultError) as refused:
                attempt()
            message = str(refused.value)
            assert not isinstance(refused.value, VaultPermissionDenied), message
            assert "invalid, expired or revoked" in message and token not in message
    # a valid token without the capability is still told so
    name = f"other-{uuid.uuid4().hex[:8]}"
    vault_admin.sys.create_or_update_policy(
        name=name, policy='path "other/*" { capabilities = ["read"] }'
    )
    valid = vault_admin.auth.token.create(policies=[name], ttl="5m")["auth"]["client_token"]
    with pytest.raises(VaultPermissionDenied, match="lacks that capability"):
        adapter_with(valid).read_entry("apps/a")
