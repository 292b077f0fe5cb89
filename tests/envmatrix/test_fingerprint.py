"""`verify --fingerprint`: the value a job received is the version envmatrix synced, compared by
Vault transit HMACs (OpenBao's transit engine; values go only to Vault, the key never leaves)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import hvac
import pytest

from envmatrix.adapters.vault import TRANSIT_BATCH_ITEMS, VaultAdapter
from envmatrix.secret import SecretValue
from tests.world import REPO, World

CANARY = "canary-fingerprint-3e8a1f"


@pytest.fixture
def transit(vault_admin: hvac.Client) -> Iterator[str]:
    """A transit engine of this test's own with a non-exportable key `envmatrix`."""
    mount = f"transit-{uuid.uuid4().hex[:12]}"
    vault_admin.sys.enable_secrets_engine("transit", path=mount)
    vault_admin.secrets.transit.create_key(name="envmatrix", mount_point=mount)
    yield mount
    vault_admin.sys.disable_secrets_engine(path=mount)


def _with_transit(world: World, transit: str) -> None:
    mount = world.vault.mount
    text = world.policy_path.read_text()
    line = f"  mount: {mount}\n"
    assert line in text
    world.write_policy(
        text.replace(line, f"{line}  transit: {{mount: {transit}, key: envmatrix}}\n")
    )


def _job_environ(world: World, environment: str) -> dict[str, str]:
    """What a job in `environment` receives: the GitHub copies (the sandbox decrypts them)."""
    received = {}
    for name, spec in world.policy.secrets.items():
        if environment in spec.environments:
            value = world.sandbox.secret_value(REPO, environment, name)
            if value is not None:
                received[name] = value
    return received


def _verify(world: World, received: dict[str, str], *extra: str) -> tuple[int, str, str]:
    for name, value in received.items():
        world.monkeypatch.setenv(name, value)
    result = world.run("verify", "-e", "production", "--source", "environ", "--fingerprint", *extra)
    return result.code, result.out, result.err


def test_apply_records_an_hmac_per_value_and_the_synced_values_pass(
    world: World, transit: str, vault_admin: hvac.Client
) -> None:
    _with_transit(world, transit)
    world.seed()
    assert world.run("apply", "--yes").code == 0
    key = vault_admin.secrets.transit.read_key(name="envmatrix", mount_point=transit)["data"]
    assert key["exportable"] is False
    state = world.vault.read_document(f"envmatrix/state/{REPO}/production")
    assert state is not None
    hmacs = state.data["hmac"]
    assert set(hmacs) == set(state.data["secrets"]) and len(hmacs) == 8
    assert all(h.startswith("vault:v1:") for h in hmacs.values())
    received = _job_environ(world, "production")
    code, out, err = _verify(world, received, "--json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["ok"] is True and report["mismatched"] == []
    assert not any(v in out + err for v in received.values())


@pytest.mark.parametrize(
    "wrong",
    ["outside-write", "trailing-newline", "staging-value", "one-char-off"],
)
def test_a_value_that_is_not_the_synced_one_fails_naming_secret_and_owner(
    world: World, transit: str, wrong: str
) -> None:
    _with_transit(world, transit)
    world.seed()
    assert world.run("apply", "--yes").code == 0
    received = _job_environ(world, "production")
    good = received["SHOPIFY_ADMIN_TOKEN"]
    received["SHOPIFY_ADMIN_TOKEN"] = {
        "outside-write": CANARY,
        "trailing-newline": good + "\n",
        "staging-value": _job_environ(world, "staging")["SHOPIFY_ADMIN_TOKEN"],
        "one-char-off": good[:-1] + ("x" if good[-1] != "x" else "y"),
    }[wrong]
    code, out, err = _verify(world, received)
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith("SHOPIFY_ADMIN_TOKEN:"))
    assert "not the one envmatrix synced" in line and "— owner: " in line
    assert "1 not the value envmatrix synced" in out
    assert not any(v in out + err for v in received.values())
    assert CANARY not in out + err


def test_an_outside_write_to_github_fails_the_job(world: World, transit: str) -> None:
    _with_transit(world, transit)
    world.seed()
    assert world.run("apply", "--yes").code == 0
    world.sandbox.write_secret_outside(REPO, "production", "ZOHO_CLIENT_SECRET", CANARY)
    code, out, err = _verify(world, _job_environ(world, "production"), "--json")
    assert code == 1
    report = json.loads(out)
    assert [m["name"] for m in report["mismatched"]] == ["ZOHO_CLIENT_SECRET"]
    assert report["mismatched"][0]["owner"]
    assert CANARY not in out + err


def test_values_synced_before_transit_was_set_cannot_be_vouched_for(
    world: World, transit: str
) -> None:
    world.seed()
    assert world.run("apply", "--yes").code == 0
    _with_transit(world, transit)
    code, out, _ = _verify(world, _job_environ(world, "production"), "--json")
    assert code == 1
    reasons = {m["reason"] for m in json.loads(out)["mismatched"]}
    assert len(reasons) == 1 and "no fingerprint recorded" in reasons.pop()


@pytest.mark.parametrize(
    ("args", "with_transit"),
    [(("--source", "github"), True), (("--source", "vault"), True), ((), False)],
)
def test_fingerprint_usage_errors_exit_3(
    world: World, transit: str, args: tuple[str, ...], with_transit: bool
) -> None:
    if with_transit:
        _with_transit(world, transit)
    source = args or ("--source", "environ")
    result = world.run("verify", "-e", "production", "--fingerprint", *source)
    assert result.code == 3
    assert "--fingerprint" in result.err


def test_a_missing_transit_key_is_a_one_line_error(world: World, vault_admin: hvac.Client) -> None:
    mount = f"transit-{uuid.uuid4().hex[:12]}"
    vault_admin.sys.enable_secrets_engine("transit", path=mount)
    try:
        _with_transit(world, mount)  # no key created
        world.seed()
        result = world.run("apply", "--yes")
        assert result.code == 1
        assert f"no transit key 'envmatrix' at {mount}/" in result.out + result.err
    finally:
        vault_admin.sys.disable_secrets_engine(path=mount)


@pytest.mark.parametrize("count", [1, TRANSIT_BATCH_ITEMS, 3 * TRANSIT_BATCH_ITEMS + 7])
def test_transit_batches_stay_under_openbao_limits_and_keep_order(
    vault: VaultAdapter, transit: str, vault_admin: hvac.Client, count: int
) -> None:
    values = [SecretValue(f"{CANARY}-{i}") for i in range(count)]
    hmacs = vault.transit_hmac(transit, "envmatrix", values)
    assert len(hmacs) == count and len(set(hmacs)) == count
    for i in (0, count // 2, count - 1):
        one = vault.transit_hmac(transit, "envmatrix", [values[i]], key_version=1)
        assert one == [hmacs[i]]


def test_hmacs_follow_the_recorded_key_version_after_a_key_rotation(
    vault: VaultAdapter, transit: str, vault_admin: hvac.Client
) -> None:
    value = [SecretValue(CANARY)]
    v1 = vault.transit_hmac(transit, "envmatrix", value)
    vault_admin.secrets.transit.rotate_key(name="envmatrix", mount_point=transit)
    assert vault.transit_hmac(transit, "envmatrix", value)[0].startswith("vault:v2:")
    assert vault.transit_hmac(transit, "envmatrix", value, key_version=1) == v1
