"""Guided manual rotations (Zoho, Shopify) end to end: OpenBao, the GitHub sandbox and the
providers' stand-ins. The owner is shown the service's steps and links; the secret's declared
probe must accept the new value before it is promoted and synced; a refused value keeps the
rotation open (staged, naming the owner, never the value) until `rotate --resume` passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from envmatrix.demo.run import github_value
from envmatrix.errors import UsageError
from envmatrix.pipeline.desired import desired_state
from envmatrix.rotation.journal import pending_path
from envmatrix.rotation.strategies import StrategySettings, get_strategy
from envmatrix.secret import SecretValue
from envmatrix.views.probe import RotationProbes, probes_touching
from tests.envmatrix.support_gates import example_policy
from tests.envmatrix.test_probes_declared import Providers, declare, providers, seed
from tests.world import World

__all__ = ["providers"]  # the fixture, shared with the declared-probe tests
CANARY = "CANARY-manual-guided-7d21"


def _policy(world: World, providers: Providers) -> dict[str, str]:
    assert example_policy(world.policy_path.parent, world.vault.mount, declare(providers)) == (
        world.policy_path
    )
    world.seed()
    return seed(world.vault, providers, "staging")


def _copy(world: World, name: str, environment: str) -> str | None:
    """The GitHub copy of `name` in `environment`, from the sandbox."""
    cells = desired_state(world.policy).secrets
    cell = next(c for c in cells if c.name == name and c.target.logical_environment == environment)
    return github_value(world.sandbox, cell.target, name)


def _value_file(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    return str(path)


def test_shopify_rotation_shows_the_steps_and_the_probe_confirms_before_sync(
    world: World, providers: Providers, tmp_path: Path
) -> None:
    good = _policy(world, providers)
    new = providers.shopify.add_token()
    rotated = world.run(
        "rotate", "SHOPIFY_ADMIN_TOKEN", "-e", "staging", "--yes",
        "--from-file", _value_file(tmp_path, "new", new),
    )  # fmt: skip
    assert rotated.code == 0, rotated.out + rotated.err
    assert "shopify.dev/docs/apps/build/authentication-authorization" in rotated.err
    assert "Admin API access token" in rotated.err
    assert "probe shopify SHOPIFY_ADMIN_TOKEN in staging" in rotated.out
    assert world.vault_value("SHOPIFY_ADMIN_TOKEN", "staging") == new
    assert _copy(world, "SHOPIFY_ADMIN_TOKEN", "staging") == new
    assert new not in rotated.out + rotated.err and good["SHOPIFY_ADMIN_TOKEN"] != new


@pytest.mark.parametrize("fix", ["at-the-provider", "in-vault"])
def test_a_refused_value_keeps_the_rotation_open_until_resume_passes(
    world: World, providers: Providers, tmp_path: Path, fix: str
) -> None:
    good = _policy(world, providers)
    wrong = f"shpat_{CANARY}"
    refused = world.run(
        "rotate", "SHOPIFY_ADMIN_TOKEN", "-e", "staging", "--yes", "--json",
        "--from-file", _value_file(tmp_path, "wrong", wrong),
    )  # fmt: skip
    assert refused.code == 1
    outcome = refused.json()["rotations"][0]
    assert outcome["result"] == "needs-owner"
    assert "owner: integrations (integrations@occ.example)" in outcome["message"]
    assert "--resume" in outcome["message"]
    assert CANARY not in refused.out + refused.err
    # nothing promoted or synced; the value waits, staged
    assert world.vault_value("SHOPIFY_ADMIN_TOKEN", "staging") == good["SHOPIFY_ADMIN_TOKEN"]
    assert _copy(world, "SHOPIFY_ADMIN_TOKEN", "staging") != wrong
    staged = pending_path("apps/staging/shopify")
    assert world.vault.read_values(staged)["SHOPIFY_ADMIN_TOKEN"].reveal() == wrong
    # a second rotation is refused while this one is open
    again = world.run("rotate", "SHOPIFY_ADMIN_TOKEN", "-e", "staging", "--yes")
    assert again.code == 1 and "--resume" in again.err
    still = world.run("rotate", "SHOPIFY_ADMIN_TOKEN", "-e", "staging", "--yes", "--resume")
    assert still.code == 1 and "owner: integrations" in still.err and CANARY not in still.err

    if fix == "at-the-provider":  # Shopify now accepts the token given
        providers.shopify.tokens.add(wrong)
        expected = wrong
    else:  # the owner writes the right value to the staged copy in Vault
        expected = providers.shopify.add_token()
        world.vault.write_values(
            staged,
            {"SHOPIFY_ADMIN_TOKEN": SecretValue(expected)},
            cas=world.vault.read_entry(staged).version,
        )
    resumed = world.run("rotate", "SHOPIFY_ADMIN_TOKEN", "-e", "staging", "--yes", "--resume")
    assert resumed.code == 0, resumed.out + resumed.err
    assert world.vault_value("SHOPIFY_ADMIN_TOKEN", "staging") == expected
    assert _copy(world, "SHOPIFY_ADMIN_TOKEN", "staging") == expected
    assert expected not in resumed.out + resumed.err


def test_zoho_client_secret_is_confirmed_by_the_refresh_token_probe_that_uses_it(
    world: World, providers: Providers, tmp_path: Path
) -> None:
    good = _policy(world, providers)
    client_id = good["ZOHO_CLIENT_ID"]
    stale = world.run(
        "rotate", "ZOHO_CLIENT_SECRET", "-e", "staging", "--yes",
        "--from-file", _value_file(tmp_path, "stale", f"{CANARY}-secret"),
    )  # fmt: skip
    assert stale.code == 1
    assert "api-console.zoho.com" in stale.err
    assert "zoho probe refused the new value in staging" in stale.err
    assert "invalid_client" in stale.err and CANARY not in stale.out + stale.err
    assert world.vault_value("ZOHO_CLIENT_SECRET", "staging") == good["ZOHO_CLIENT_SECRET"]
    # the owner regenerates the secret in Zoho's console and writes it to the staged copy
    providers.zoho.clients[client_id] = regenerated = "a" * 40
    staged = pending_path("apps/staging/zoho")
    world.vault.write_values(
        staged,
        {"client_secret": SecretValue(regenerated)},
        cas=world.vault.read_entry(staged).version,
    )
    resumed = world.run("rotate", "ZOHO_CLIENT_SECRET", "-e", "staging", "--yes", "--resume")
    assert resumed.code == 0, resumed.out + resumed.err
    assert world.vault_value("ZOHO_CLIENT_SECRET", "staging") == regenerated
    assert world.vault_value("ZOHO_CLIENT_ID", "staging") == client_id  # the path's other key
    assert _copy(world, "ZOHO_CLIENT_SECRET", "staging") == regenerated


def test_zoho_refresh_token_rotates_with_one_token_refresh(
    world: World, providers: Providers, tmp_path: Path
) -> None:
    good = _policy(world, providers)
    new = providers.zoho.add_refresh_token(good["ZOHO_CLIENT_ID"])
    before = providers.zoho.refreshes()
    rotated = world.run(
        "rotate", "ZOHO_REFRESH_TOKEN", "-e", "staging", "--yes",
        "--from-file", _value_file(tmp_path, "new", new),
    )  # fmt: skip
    assert rotated.code == 0, rotated.out + rotated.err
    assert providers.zoho.refreshes() == before + 1  # Zoho's token-refresh limit respected
    assert "Generate Code" in rotated.err and "oauth/v2/token/revoke" in rotated.err
    assert world.vault_value("ZOHO_REFRESH_TOKEN", "staging") == new
    assert new not in rotated.out + rotated.err


def test_service_option_picks_the_steps_when_no_probe_is_declared(
    world: World, tmp_path: Path
) -> None:
    text = world.policy_path.read_text().replace(
        "      max_age: 90d\n      strategy: manual                  # shpat_",
        "      max_age: 90d\n      options: {service: shopify}\n      strategy: manual  # shpat_",
    )
    world.write_policy(text)
    world.seed()
    rotated = world.run(
        "rotate", "SHOPIFY_ADMIN_TOKEN", "-e", "production", "--yes",
        "--from-file", _value_file(tmp_path, "v", "shpat_anything"),
    )  # fmt: skip
    assert rotated.code == 0, rotated.out + rotated.err  # no probe: only checked non-empty
    assert "Develop apps" in rotated.err
    plain = world.run(
        "rotate", "GA_MCP_SERVICE_ACCOUNT_JSON", "-e", "production", "--yes",
        "--from-file", _value_file(tmp_path, "w", "{}"),
    )  # fmt: skip
    assert plain.code == 0 and "rotate by hand" not in plain.err  # nothing guided


def test_unknown_service_and_unknown_option_are_refused() -> None:
    with pytest.raises(UsageError, match="service"):
        get_strategy("manual", {"service": "salesforce"}, StrategySettings())
    with pytest.raises(UsageError, match="unknown option"):
        get_strategy("manual", {"region": "eu"}, StrategySettings())


def test_probes_touching_finds_probes_on_and_using_the_secrets(
    world: World, providers: Providers
) -> None:
    _policy(world, providers)
    policy = world.policy
    found = {
        (p.secret, p.environment)
        for p in probes_touching(policy, ["ZOHO_CLIENT_SECRET"], "staging")
    }
    assert found == {("ZOHO_REFRESH_TOKEN", "staging")}
    assert probes_touching(policy, ["ZOHO_CLIENT_ID"], None) == ()
    probes = RotationProbes(policy, world.vault)
    assert probes.preset(["SHOPIFY_ADMIN_TOKEN"]) == "shopify"
    assert probes.preset(["ZOHO_CLIENT_SECRET"]) == "zoho"
    assert probes.preset(["GA_MCP_SERVICE_ACCOUNT_JSON"]) == "ga-mcp"  # no guide for it
    assert probes.preset(["FEATURE_NONE"]) is None
