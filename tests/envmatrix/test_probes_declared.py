"""Declared probes (`probe:` on a secret) end to end: values in a real OpenBao, the providers'
stand-ins, `envmatrix probe` on the command line; and the policy rules for `probe:`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envmatrix.adapters.vault import VaultAdapter
from envmatrix.errors import PolicyError
from envmatrix.policy import load_policy
from envmatrix.secret import SecretValue
from envmatrix.views.probe import DeclaredProbe, ProbeSession
from tests.envmatrix.support_gates import example_policy, run, run_json
from tests.standins.ga_mcp import GoogleAnalyticsMcp
from tests.standins.services import Chatwoot, ShopifyAdmin, ZohoAccounts
from tests.standins.supabase import SupabaseSandbox

CANARY = "CANARY-declared-51c0"


@dataclass
class Providers:
    zoho: ZohoAccounts
    shopify: ShopifyAdmin
    chatwoot: Chatwoot
    ga: GoogleAnalyticsMcp
    supabase: SupabaseSandbox


@pytest.fixture
def providers() -> Iterator[Providers]:
    with (
        ZohoAccounts() as zoho,
        ShopifyAdmin() as shopify,
        Chatwoot() as chatwoot,
        GoogleAnalyticsMcp() as ga,
        SupabaseSandbox() as supabase,
    ):
        yield Providers(zoho, shopify, chatwoot, ga, supabase)


def declare(p: Providers) -> Any:
    """An edit of the example policy: a probe on each of the five services' secrets."""

    def edit(document: dict[str, Any]) -> None:
        secrets = document["secrets"]
        secrets["SUPABASE_SERVICE_KEY"]["probe"] = {
            "preset": "supabase",
            "base_url": p.supabase.url,
        }
        secrets["ZOHO_REFRESH_TOKEN"]["probe"] = {
            "preset": "zoho",
            "base_url": p.zoho.url,
            "uses": {"client_id": "ZOHO_CLIENT_ID", "client_secret": "ZOHO_CLIENT_SECRET"},
        }
        secrets["SHOPIFY_ADMIN_TOKEN"]["probe"] = {
            "preset": "shopify",
            "shop_domain": "occ-labs.myshopify.com",
            "base_url": p.shopify.url,
        }
        secrets["CHATWOOT_API_TOKEN"]["probe"] = {"preset": "chatwoot", "base_url": p.chatwoot.url}
        secrets["GA_MCP_SERVICE_ACCOUNT_JSON"]["probe"] = {
            "preset": "ga-mcp",
            "base_url": p.ga.mcp_url,
            "token_url": p.ga.token_url,
        }

    return edit


def seed(vault: VaultAdapter, p: Providers, env: str) -> dict[str, str]:
    """Working credentials for every service in `env`; returns them by secret name."""
    client_id, client_secret = p.zoho.add_client()
    values = {
        "SUPABASE_SERVICE_KEY": p.supabase.add_secret_key(env),
        "ZOHO_CLIENT_ID": client_id,
        "ZOHO_CLIENT_SECRET": client_secret,
        "ZOHO_REFRESH_TOKEN": p.zoho.add_refresh_token(client_id),
        "SHOPIFY_ADMIN_TOKEN": p.shopify.add_token(),
        "CHATWOOT_API_TOKEN": p.chatwoot.add_user_token(),
        "GA_MCP_SERVICE_ACCOUNT_JSON": p.ga.create_key(),
    }
    for name, value in values.items():
        put(vault, name, env, value)
    return values


def put(vault: VaultAdapter, name: str, env: str, value: str) -> None:
    paths = {
        "SUPABASE_SERVICE_KEY": ("supabase", "service_key"),
        "ZOHO_CLIENT_ID": ("zoho", "client_id"),
        "ZOHO_CLIENT_SECRET": ("zoho", "client_secret"),
        "ZOHO_REFRESH_TOKEN": ("zoho-oauth", "refresh_token"),
        "SHOPIFY_ADMIN_TOKEN": ("shopify", "SHOPIFY_ADMIN_TOKEN"),
        "CHATWOOT_API_TOKEN": ("chatwoot", "api_token"),
        "GA_MCP_SERVICE_ACCOUNT_JSON": ("ga-mcp", "service_account_json"),
    }
    folder, key = paths[name]
    path = f"apps/{env}/{folder}"
    try:
        current = dict(vault.read_values(path))
    except Exception:
        current = {}
    vault.write_values(path, {**current, key: SecretValue(value)})


@pytest.fixture
def cli_env(vault_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in vault_env.items():
        monkeypatch.setenv(name, value)


def test_every_preset_passes_with_working_credentials_and_fails_naming_the_owner(
    tmp_path: Path,
    vault: VaultAdapter,
    providers: Providers,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = str(example_policy(tmp_path, vault.mount, declare(providers)))
    good = seed(vault, providers, "staging")
    code, out, err = run(capsys, "probe", "--environment", "staging", "-p", policy)
    assert code == 0, out + err
    for line in (
        "probe supabase SUPABASE_SERVICE_KEY in staging: ok",
        "probe zoho ZOHO_REFRESH_TOKEN in staging: ok",
        "probe shopify SHOPIFY_ADMIN_TOKEN in staging: ok",
        "probe chatwoot CHATWOOT_API_TOKEN in staging: ok",
        "probe ga-mcp GA_MCP_SERVICE_ACCOUNT_JSON in staging: ok",
        "5 probes: 5 ok, 0 failed",
    ):
        assert line in out

    # production: every probed value is wrong (a canary each)
    seed(vault, providers, "production")
    wrong = {
        "SUPABASE_SERVICE_KEY": f"sb_secret_{CANARY}",
        "ZOHO_REFRESH_TOKEN": f"1000.{CANARY}",
        "SHOPIFY_ADMIN_TOKEN": f"shpat_{CANARY}",
        "CHATWOOT_API_TOKEN": CANARY,
        "GA_MCP_SERVICE_ACCOUNT_JSON": f"ya29.{CANARY}",  # not a key: sent as a bearer token
    }
    for name, value in wrong.items():
        put(vault, name, "production", value)
    code, out, err = run(capsys, "probe", "-e", "production", "-p", policy)
    assert code == 1
    owners = {
        "SUPABASE_SERVICE_KEY": "reliability (reliability@occ.example)",
        "ZOHO_REFRESH_TOKEN": "integrations (integrations@occ.example)",
        "SHOPIFY_ADMIN_TOKEN": "integrations (integrations@occ.example)",
        "CHATWOOT_API_TOKEN": "support (support@occ.example)",
        "GA_MCP_SERVICE_ACCOUNT_JSON": "data (data@occ.example)",
    }
    lines = out.splitlines()
    for name, owner in owners.items():
        line = next(x for x in lines if f" {name} in production: failed: {name}: " in x)
        assert line.endswith(f"— owner: {owner}"), line
    assert "0 ok, 5 failed" in out
    code, data = run_json(capsys, "probe", "-e", "production", "--json", "-p", policy)
    assert code == 1 and data["summary"] == {"ok": 0, "failed": 5}
    assert {p["owner"] for p in data["probes"]} == {
        "reliability",
        "integrations",
        "support",
        "data",
    }
    shown = out + err + str(data)
    for value in [*wrong.values(), *good.values()]:
        assert value not in shown
    assert CANARY not in shown


def test_zoho_is_refreshed_once_per_credential_and_run(
    tmp_path: Path, vault: VaultAdapter, providers: Providers
) -> None:
    policy = load_policy(example_policy(tmp_path, vault.mount, declare(providers)))
    seed(vault, providers, "staging")
    spec = policy.secrets["ZOHO_REFRESH_TOKEN"].probe
    assert spec is not None
    session = ProbeSession(policy, vault)
    results = [session.run(DeclaredProbe("ZOHO_REFRESH_TOKEN", "staging", spec)) for _ in range(3)]
    assert all(r.ok for r in results) and providers.zoho.refreshes() == 1
    # a new run refreshes again (nothing was cached on disk or in Vault)
    assert ProbeSession(policy, vault).run(DeclaredProbe("ZOHO_REFRESH_TOKEN", "staging", spec)).ok
    assert providers.zoho.refreshes() == 2


def test_missing_input_names_its_owner_and_nothing_is_sent(
    tmp_path: Path,
    vault: VaultAdapter,
    providers: Providers,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = str(example_policy(tmp_path, vault.mount, declare(providers)))
    seed(vault, providers, "staging")
    vault.write_values("apps/staging/zoho", {"client_id": SecretValue("x")})  # no client_secret
    code, out, _ = run(capsys, "probe", "-e", "staging", "-p", policy)
    assert code == 1
    assert (
        f"ZOHO_CLIENT_SECRET missing in Vault at {vault.mount}/apps/staging/zoho#client_secret"
        " — owner: integrations (integrations@occ.example)"
    ) in out
    assert providers.zoho.refreshes() == 0


@pytest.mark.parametrize("event", ["pull_request", "pull_request_target"])
def test_no_probe_in_a_pull_request_run_unless_asked(
    event: str,
    tmp_path: Path,
    vault: VaultAdapter,
    providers: Providers,
    cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = str(example_policy(tmp_path, vault.mount, declare(providers)))
    seed(vault, providers, "staging")
    monkeypatch.setenv("GITHUB_EVENT_NAME", event)
    for argv in (("probe",), ("probe", "supabase", "-e", "staging")):
        code, out, err = run(capsys, *argv, "-p", policy)
        assert (
            code == 0
            and f"probes not run: a pull-request-triggered run ({event}"
            in err.replace("GITHUB_EVENT_NAME=", "")
        )
    everything = [providers.zoho, providers.shopify, providers.chatwoot, providers.ga]
    assert all(s.received == [] for s in everything)
    code, out, err = run(capsys, "probe", "-e", "staging", "--allow-pull-request", "-p", policy)
    assert code == 0 and "5 probes: 5 ok" in out
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    assert run(capsys, "probe", "-e", "staging", "-p", policy)[0] == 0


def test_supabase_preset_goes_only_to_supabase_or_base_url(
    tmp_path: Path, vault: VaultAdapter, providers: Providers
) -> None:
    def from_vault(document: dict[str, Any]) -> None:
        document["secrets"]["SUPABASE_SERVICE_KEY"]["probe"] = {"preset": "supabase"}

    policy = load_policy(example_policy(tmp_path, vault.mount, from_vault))
    spec = policy.secrets["SUPABASE_SERVICE_KEY"].probe
    assert spec is not None and spec.input_secrets() == {"url": "SUPABASE_URL"}
    key = providers.supabase.add_secret_key()
    put(vault, "SUPABASE_SERVICE_KEY", "staging", key)
    for url in (
        providers.supabase.url,
        "https://evil.example/x.supabase.co",
        "http://a.supabase.co",
    ):
        vault.write_values(
            "apps/staging/supabase",
            {"url": SecretValue(url), "service_key": SecretValue(key)},
        )
        result = ProbeSession(policy, vault).run(
            DeclaredProbe("SUPABASE_SERVICE_KEY", "staging", spec)
        )
        assert not result.ok and "not https://<ref>.supabase.co" in result.detail
        assert url not in result.detail


def test_a_flag_can_require_a_declared_probe(
    tmp_path: Path,
    vault: VaultAdapter,
    vault_env: dict[str, str],
    sandbox: Any,
    providers: Providers,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from envmatrix.demo.run import seed_vault
    from tests.envmatrix.support_gates import use_services

    def edit(document: dict[str, Any]) -> None:
        declare(providers)(document)
        document["flags"]["FEATURE_STOREFRONT_SYNC"] = {
            "requires": ["SHOPIFY_ADMIN_TOKEN"],
            "environments": ["production"],
            "probe": "shopify",
        }

    path = example_policy(tmp_path, vault.mount, edit)
    use_services(monkeypatch, sandbox, vault_env)
    seed_vault(load_policy(path), vault)
    put(vault, "SHOPIFY_ADMIN_TOKEN", "production", f"shpat_{CANARY}")
    assert run(capsys, "apply", "--yes", "--policy", str(path))[0] == 1  # the flag stays off
    check = ("flags", "check", "FEATURE_STOREFRONT_SYNC", "-e", "production", "-p", str(path))
    code, out, _ = run(capsys, *check)
    assert code == 1 and "probe-failed: probe shopify: SHOPIFY_ADMIN_TOKEN: Shopify" in out
    assert "owner: integrations (integrations@occ.example)" in out and CANARY not in out
    put(vault, "SHOPIFY_ADMIN_TOKEN", "production", providers.shopify.add_token())
    assert run(capsys, "apply", "--yes", "--policy", str(path))[0] == 0
    assert run(capsys, *check)[0] == 0


BASE = """version: 1
environments: {production: {github: production}}
github: {repositories: [o/r]}
owners: {team: {contact: t@example.com}}
secrets:
  ZOHO_CLIENT_ID: {owner: team, vault: z#id, environments: [production]}
  ZOHO_CLIENT_SECRET: {owner: team, vault: z#secret, environments: [production]}
  TOKEN:
    owner: team
    vault: t
    environments: [production]
    probe: %s
"""


@pytest.mark.parametrize(
    ("probe", "key", "message"),
    [
        ("{preset: shopify}", "secrets.TOKEN.probe", "needs shop_domain"),
        ("{preset: shopify, shop_domain: evil.example}", "secrets.TOKEN.probe", "shop_domain"),
        ("{preset: zoho}", "secrets.TOKEN.probe", "needs uses: {client_id"),
        (
            "{preset: zoho, uses: {client_id: ZOHO_CLIENT_ID, client_secret: NOPE}}",
            "secrets.TOKEN.probe.uses.client_secret",
            "NOPE, which is not declared",
        ),
        ("{preset: chatwoot, base_url: 'http://chat.example'}", "base_url", "only https"),
        ("{preset: chatwoot, base_url: 'https://u:p@chat.example'}", "base_url", "user:password"),
        ("{preset: chatwoot, shop_domain: a.myshopify.com}", "probe", "for preset shopify"),
        ("{preset: nope}", "secrets.TOKEN.probe.preset", "'supabase'"),
        ("{preset: chatwoot, header: X-Key}", "probe", "custom probe"),
        ("{url: 'https://api.example/me'}", "probe", "url: and header:"),
        ("{url: 'https://api.example/me', header: 'Authorization: Bearer'}", "header", "{value}"),
        ("{url: 'https://api.example/me', header: X-Key, expect: 999}", "probe", "HTTP status"),
        ("{preset: ga-mcp, uses: {key: ZOHO_CLIENT_ID}}", "probe", "takes nothing"),
    ],
)
def test_bad_probe_blocks_are_policy_errors(
    tmp_path: Path, probe: str, key: str, message: str
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BASE % probe)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.line is not None and caught.value.line >= 10
    assert key in caught.value.key_path and message in caught.value.message, str(caught.value)


@pytest.mark.parametrize(
    "probe",
    [
        "{preset: shopify, shop_domain: occ-labs.myshopify.com, api_version: '2025-07'}",
        "{preset: zoho, base_url: 'https://accounts.zoho.eu',"
        " uses: {client_id: ZOHO_CLIENT_ID, client_secret: ZOHO_CLIENT_SECRET}}",
        "{preset: chatwoot, base_url: 'http://127.0.0.1:3000'}",
        "{preset: ga-mcp}",
        "{url: 'https://api.example/me', header: 'Authorization: Bearer {value}',"
        " expect: [200, 204]}",
    ],
)
def test_good_probe_blocks_load(tmp_path: Path, probe: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BASE % probe)
    assert load_policy(path).secrets["TOKEN"].probe is not None


def test_a_flag_probe_needs_a_declared_probe(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    text = BASE % "{preset: chatwoot}" + (
        "flags:\n  FEATURE_X: {requires: [TOKEN], environments: [production], probe: shopify}\n"
    )
    path.write_text(text)
    with pytest.raises(PolicyError, match="flags.FEATURE_X.probe: probe shopify: none of"):
        load_policy(path)
    path.write_text(text.replace("probe: shopify}", "probe: chatwoot}"))
    assert load_policy(path).flags["FEATURE_X"].probe == "chatwoot"
