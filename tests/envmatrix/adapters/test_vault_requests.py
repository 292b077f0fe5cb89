"""`--json`'s `vault_requests` (issue 13 item 4): every round trip to Vault, by operation and mount.

Counted by a response hook on the adapter's HTTP session, against a real OpenBao server.
"""

from __future__ import annotations

import pytest

from envmatrix.adapters.accounting import vault_operation
from envmatrix.adapters.vault import VaultAdapter
from envmatrix.errors import VaultNotFound
from envmatrix.secret import SecretValue
from tests.world import World


@pytest.mark.parametrize(
    ("method", "url", "operation"),
    [
        ("GET", "http://v:8200/v1/secret/data/apps/prod/db", "kv read secret/"),
        ("POST", "http://v:8200/v1/secret/data/apps/prod/db", "kv write secret/"),
        ("LIST", "http://v:8200/v1/secret/metadata/apps/", "kv metadata list secret/"),
        ("GET", "http://v:8200/v1/secret/metadata/apps?list=true", "kv metadata list secret/"),
        ("GET", "http://v:8200/v1/secret/metadata/apps/prod/db", "kv metadata read secret/"),
        ("GET", "http://v:8200/v1/secret/subkeys/apps/prod/db", "kv read secret/"),
        ("GET", "http://v:8200/v1/secret/config", "kv config read secret/"),
        ("POST", "http://v:8200/v1/secret/undelete/apps/x", "kv undelete secret/"),
        ("GET", "http://v:8200/v1/team/kv/data/a", "kv read team/kv/"),
        ("POST", "http://v:8200/v1/transit/hmac/my-key", "transit hmac transit/"),
        ("GET", "http://v:8200/v1/auth/token/lookup-self", "token lookup-self"),
        ("POST", "http://v:8200/v1/auth/approle/login", "login auth/approle/"),
        ("GET", "http://v:8200/v1/sys/mounts", "read sys/"),
    ],
)
def test_round_trips_are_named_by_operation_and_mount_never_by_path(
    method: str, url: str, operation: str
) -> None:
    mount = "team/kv" if "/team/" in url else "secret"
    assert vault_operation(method, url, mount) == operation


def test_each_round_trip_is_counted_once(vault: VaultAdapter, vault_mount: str) -> None:
    assert vault.requests.to_json() == {"by_operation": {}, "total": 0}
    vault.write_values("apps/db", {"password": SecretValue("s3cret-canary")})
    vault.read_values("apps/db")
    vault.read_values("apps/db")
    with pytest.raises(VaultNotFound):
        vault.read_values("apps/missing")
    counted = vault.requests.to_json()
    by_operation = counted["by_operation"]
    assert by_operation[f"kv read {vault_mount}/"] == 3  # a 404 is a round trip too
    assert by_operation.get(f"kv write {vault_mount}/", 0) >= 1
    assert counted["total"] == sum(by_operation.values())
    assert "apps" not in str(counted) and "s3cret" not in str(counted)


def test_plan_and_apply_json_report_vault_round_trips(world: World) -> None:
    world.seed()
    plan = world.run("plan", "--json")
    assert plan.code in (0, 2), plan.err
    vault_requests = plan.json()["vault_requests"]
    mount = world.policy.vault.mount
    assert vault_requests["total"] == sum(vault_requests["by_operation"].values()) > 0
    assert all(mount + "/" in op or "token" in op for op in vault_requests["by_operation"])
    applied = world.run("apply", "--yes", "--json")
    assert applied.code == 0, applied.err
    after = applied.json()["vault_requests"]
    assert after["total"] > 0
    assert any(op.startswith("kv write") for op in after["by_operation"])  # sync state
