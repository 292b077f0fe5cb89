"""`envmatrix import` (issue 12 item 4), end to end on OpenBao and the GitHub sandbox: the draft
validates, a plan against the same world creates, deletes, orphans and blocks nothing (the adopted
secrets are update / changed-outside until the first apply), apply converges it; the import reads
no secret value (it runs with a Vault token that cannot read one) and prints none; what it cannot
match is listed on stderr, in the YAML and in --json; --out never replaces a file without --force.
The matching rule itself: plain tables over `build_draft`."""

from __future__ import annotations

import hvac
import pytest
from ruamel.yaml import YAML

from envmatrix.adapters.github import GitHubAdapter
from envmatrix.secret import SecretValue
from envmatrix.views.import_ import Holding, build_draft, logical_name
from tests.world import OTHER_REPO, REPO, World

ORG = "occ-labs"
VAULT = {
    "apps/staging/supabase": {"url": "https://stg.example", "service_key": "canary-stg-svc"},
    "apps/production/supabase": {"url": "https://prd.example", "service_key": "canary-prd-svc"},
    "apps/staging/stripe": {"STRIPE_KEY": "canary-stg-stripe"},
    "apps/production/stripe": {"STRIPE_KEY": "canary-prd-stripe"},
    "ci/sentry": {"auth_token": "canary-sentry"},
    "ci/codecov": {"codecov_token": "canary-codecov"},
}
ENVIRONMENT_SECRETS = ("SUPABASE_URL", "SUPABASE_SERVICE_KEY", "STRIPE_KEY")
GITHUB_CANARY = "canary-github-copy"


def _adoptable(world: World) -> None:
    """A world envmatrix never wrote: Vault holds the values, GitHub copies set by hand."""
    for path, values in VAULT.items():
        world.vault.write_values(path, {k: SecretValue(v) for k, v in values.items()})
    sandbox = world.sandbox
    for environment in ("staging", "production"):
        sandbox.create_environment(REPO, environment)
        for name in ENVIRONMENT_SECRETS:
            sandbox.write_secret_outside(REPO, environment, name, f"{GITHUB_CANARY}-{name}")
        sandbox.write_variable_outside(REPO, environment, "SUPABASE_REGION", "eu-central-1")
    for repository in (REPO, OTHER_REPO):
        sandbox.write_secret_outside(repository, None, "SENTRY_AUTH_TOKEN", GITHUB_CANARY)
    sandbox.write_secret_outside(REPO, None, "CODECOV_TOKEN", GITHUB_CANARY)


def _list_only_token(world: World, admin: hvac.Client) -> str:
    """A Vault token that may list the mount's metadata and read key names, never a value."""
    mount = world.vault.mount
    admin.sys.create_or_update_policy(
        f"import-{mount}",
        f'path "{mount}/metadata" {{ capabilities = ["list"] }}\n'
        f'path "{mount}/metadata/*" {{ capabilities = ["list"] }}\n'
        f'path "{mount}/subkeys/*" {{ capabilities = ["read"] }}\n',
    )
    token = admin.auth.token.create(policies=[f"import-{mount}"], ttl="10m")
    return str(token["auth"]["client_token"])


def _values() -> list[str]:
    return [v for values in VAULT.values() for v in values.values()] + [GITHUB_CANARY]


def test_import_adopts_the_world_and_plan_shows_only_changed_outside(
    world: World, vault_admin: hvac.Client
) -> None:
    _adoptable(world)
    token = _list_only_token(world, vault_admin)
    world.env["VAULT_TOKEN"], root = token, world.env["VAULT_TOKEN"]
    out = world.policy_path.parent / "imported.yaml"
    args = ("import", "-r", REPO, "-r", OTHER_REPO, "--mount", world.vault.mount)
    result = world.run(*args, "--out", str(out))
    assert result.code == 0, result.err
    text = out.read_text()
    for value in _values():
        assert value not in text + result.out + result.err
    assert "unassigned" in result.err and "unassigned" in text

    policy = YAML(typ="safe").load(text)
    assert policy["secrets"]["SUPABASE_SERVICE_KEY"]["vault"] == (
        "apps/{environment}/supabase#service_key"
    )
    assert policy["secrets"]["STRIPE_KEY"]["vault"] == "apps/{environment}/stripe#STRIPE_KEY"
    assert policy["secrets"]["SENTRY_AUTH_TOKEN"] == {
        "owner": "unassigned",
        "scope": "repository",
        "vault": "ci/sentry#auth_token",
    }
    assert policy["secrets"]["CODECOV_TOKEN"]["repositories"] == [REPO]
    assert policy["variables"]["SUPABASE_REGION"]["value"] == "eu-central-1"
    assert "# Not imported" not in text

    world.env["VAULT_TOKEN"] = root
    assert world.run("validate", "--policy", str(out)).code == 0
    plan = world.run("plan", "--json", "--policy", str(out))
    assert plan.code == 0, plan.err
    changes = plan.json()["changes"]
    assert {(c["action"], c["kind"], c["reason"]) for c in changes} == {
        ("update", "secret", "changed-outside")
    }
    cells = {(c["repository"], c["environment"], c["name"]) for c in changes}
    assert cells == {
        *((REPO, e, n) for e in ("staging", "production") for n in ENVIRONMENT_SECRETS),
        (REPO, None, "SENTRY_AUTH_TOKEN"),
        (OTHER_REPO, None, "SENTRY_AUTH_TOKEN"),
        (REPO, None, "CODECOV_TOKEN"),
    }
    assert world.run("apply", "--yes", "--policy", str(out)).code == 0
    assert world.sandbox.secret_value(REPO, "production", "STRIPE_KEY") == "canary-prd-stripe"
    assert world.run("plan", "--json", "--policy", str(out)).json()["changes"] == []


def test_import_reads_no_value_and_writes_nothing_to_vault(
    world: World, vault_admin: hvac.Client
) -> None:
    _adoptable(world)
    world.env["VAULT_TOKEN"] = _list_only_token(world, vault_admin)  # a value read would be 403
    before = vault_admin.secrets.kv.v2.list_secrets("", mount_point=world.vault.mount)["data"]
    result = world.run("import", "-r", REPO, "--mount", world.vault.mount)
    assert result.code == 0, result.err
    assert "SUPABASE_URL:" in result.out
    after = vault_admin.secrets.kv.v2.list_secrets("", mount_point=world.vault.mount)["data"]
    assert after == before  # no sync state, no lock, nothing


def test_what_cannot_be_matched_is_listed_on_stderr_in_the_yaml_and_in_json(
    world: World,
) -> None:
    _adoptable(world)
    sandbox = world.sandbox
    sandbox.write_secret_outside(REPO, "production", "LEGACY_TOKEN", GITHUB_CANARY)
    sandbox.write_variable_outside(REPO, "staging", "API_URL", "https://api.stg.example")
    sandbox.write_variable_outside(REPO, "production", "API_URL", "https://api.example")
    sandbox.write_variable_outside(REPO, "production", "API_HOST", "api.example")
    org = sandbox.state.add_organization(ORG)
    org.secrets.put("ORG_SENTRY_DSN", b"canary-org", sandbox.clock.now())
    world.vault.write_values("shared/one", {"legacy_token": SecretValue("canary-a")})
    world.vault.write_values("shared/two", {"legacy_token": SecretValue("canary-b")})

    out = world.policy_path.parent / "imported.yaml"
    args = ("import", "--organization", ORG, "--mount", world.vault.mount, "--out", str(out))
    result = world.run(*args, "--json")
    assert result.code == 0, result.err
    left_out = {(n["kind"], n["name"], n["environment"]): n for n in result.json()["not_imported"]}
    legacy = left_out[("secret", "LEGACY_TOKEN", "production")]["reason"]
    assert "shared/one#legacy_token" in legacy and "shared/two#legacy_token" in legacy
    assert ("variable", "API_URL", "production") in left_out or (
        "variable",
        "API_URL",
        "staging",
    ) in left_out
    assert (
        "organization scope" in left_out[("organization-secret", "ORG_SENTRY_DSN", None)]["reason"]
    )
    assert (
        "not imported: secret LEGACY_TOKEN in occ-labs/operator-console environment production"
        in result.err
    )
    text = out.read_text()
    assert "# - secret LEGACY_TOKEN in occ-labs/operator-console environment production" in text
    assert "# - organization-secret ORG_SENTRY_DSN in organization" in text
    policy = YAML(typ="safe").load(text)
    assert set(policy["github"]["repositories"]) == {REPO, OTHER_REPO}  # GET /orgs/{org}/repos
    assert policy["variables"]["API_HOST"] == {
        "owner": "unassigned",
        "value": "api.example",
        "environments": ["production"],
        "repositories": [REPO],
    }
    for value in (*_values(), "canary-org", "canary-a", "canary-b"):
        assert value not in text + result.out + result.err
    assert world.run("validate", "--policy", str(out)).code == 0


def test_out_is_never_replaced_without_force(world: World) -> None:
    _adoptable(world)
    out = world.policy_path.parent / "mine.yaml"
    out.write_text("# hand-written\n")
    args = ("import", "-r", REPO, "--mount", world.vault.mount, "--out", str(out))
    refused = world.run(*args)
    assert refused.code == 3
    assert "exists; pass --force" in refused.err
    assert out.read_text() == "# hand-written\n"
    assert world.run(*args, "--force").code == 0
    assert "SUPABASE_URL:" in out.read_text()


@pytest.mark.parametrize(
    "args",
    [("import",), ("import", "-r", "not-a-repo"), ("import", "--organization", "bad/org")],
)
def test_bad_command_lines_are_usage_errors(world: World, args: tuple[str, ...]) -> None:
    result = world.run(*args)
    assert result.code == 3
    assert result.err.count("\n") == 1


def test_an_unknown_organization_is_a_runtime_error(world: World) -> None:
    result = world.run("import", "--organization", "nobody-here")
    assert result.code == 1
    assert "/orgs/nobody-here/repos" in result.err


def test_the_adapter_lists_an_organizations_repositories_across_pages(world: World) -> None:
    for n in range(105):
        world.sandbox.add_repository(f"{ORG}/service-{n:03}")
    github = GitHubAdapter(world.sandbox.url, "sandbox-token")
    try:
        listed = github.list_organization_repositories(ORG)
    finally:
        github.close()
    assert len(listed) == 107
    assert {REPO, OTHER_REPO, f"{ORG}/service-104"} <= set(listed)


# -- the matching rule, as tables -------------------------------------------------------------


def _secrets(*cells: tuple[str, str | None]) -> list[Holding]:
    return [Holding("secret", name, REPO, environment) for name, environment in cells]


@pytest.mark.parametrize(
    ("catalog", "cells", "vault", "shared"),
    [
        # the key is named like the secret, case-insensitively
        (
            {"apps/staging/db": {"db_password"}, "apps/production/db": {"db_password"}},
            [("DB_PASSWORD", "staging"), ("DB_PASSWORD", "production")],
            "apps/{environment}/db#db_password",
            False,
        ),
        # last segment + key spell it; '-' reads as '_'
        (
            {"svc/prod/sentry": {"auth-token"}},
            [("SENTRY_AUTH_TOKEN", "prod")],
            "svc/{environment}/sentry#auth-token",
            False,
        ),
        # the environment anywhere in the path
        (
            {"staging/apps/x": {"X_KEY"}, "production/apps/x": {"X_KEY"}},
            [("X_KEY", "staging"), ("X_KEY", "production")],
            "{environment}/apps/x#X_KEY",
            False,
        ),
        # one path outside every environment's folders: shared by the environments
        (
            {"ci/npm": {"npm_token"}},
            [("NPM_TOKEN", "staging"), ("NPM_TOKEN", "production")],
            "ci/npm#npm_token",
            True,
        ),
        # a per-environment layout wins over a shared path
        (
            {
                "ci/npm": {"npm_token"},
                "apps/staging/npm": {"token"},
                "apps/production/npm": {"token"},
            },
            [("NPM_TOKEN", "staging"), ("NPM_TOKEN", "production")],
            "apps/{environment}/npm#token",
            False,
        ),
    ],
)
def test_a_secret_matches_one_vault_layout(
    catalog: dict[str, set[str]],
    cells: list[tuple[str, str]],
    vault: str,
    shared: bool,
) -> None:
    draft = build_draft("secret", [REPO], _secrets(*cells), _frozen(catalog))
    assert draft.not_imported == ()
    (entry,) = draft.secrets
    assert (entry.vault, entry.shared) == (vault, shared)


@pytest.mark.parametrize(
    ("catalog", "cells", "reason"),
    [
        ({}, [("API_KEY", "staging")], "no Vault key named like API_KEY"),
        (
            {"apps/staging/a": {"api_key"}, "apps/staging/b": {"api_key"}},
            [("API_KEY", "staging")],
            "several Vault keys match",
        ),
        (  # staging and production need different layouts: no one template fits
            {"apps/staging/a": {"api_key"}, "production/b": {"api_key"}},
            [("API_KEY", "staging"), ("API_KEY", "production")],
            "no one Vault layout fits",
        ),
        (  # a repository secret takes no per-environment path
            {"apps/staging/a": {"api_key"}},
            [("API_KEY", None), ("OTHER", "staging")],
            "no one Vault layout fits",
        ),
    ],
)
def test_what_matches_no_single_layout_is_left_out_with_the_reason(
    catalog: dict[str, set[str]], cells: list[tuple[str, str | None]], reason: str
) -> None:
    draft = build_draft("secret", [REPO], _secrets(*cells), _frozen(catalog))
    left_out = [n for n in draft.not_imported if n.name == "API_KEY"]
    assert left_out and all(reason in n.reason for n in left_out)
    assert "API_KEY" not in {e.name for e in draft.secrets}


def test_a_name_held_at_two_scopes_or_in_different_environments_keeps_one_shape() -> None:
    catalog = _frozen({"apps/staging/k": {"k"}, "apps/production/k": {"k"}})
    holdings = [
        Holding("secret", "K", REPO, "staging"),
        Holding("secret", "K", REPO, "production"),
        Holding("secret", "K", REPO, None),
        Holding("secret", "K", OTHER_REPO, "production"),
    ]
    draft = build_draft("secret", [REPO, OTHER_REPO], holdings, catalog)
    (entry,) = draft.secrets
    assert (entry.environments, entry.repositories) == (("production", "staging"), (REPO,))
    assert {(n.repository, n.environment) for n in draft.not_imported} == {
        (REPO, None),
        (OTHER_REPO, "production"),
    }


@pytest.mark.parametrize(
    ("github", "logical"),
    [
        ("production", "production"),
        ("Prod EU", "prod-eu"),
        ("stage/2", "stage-2"),
        ("ü", "env-unnamed"),
    ],
)
def test_logical_names_come_from_github_names(github: str, logical: str) -> None:
    assert logical_name(github) == logical


def _frozen(catalog: dict[str, set[str]]) -> dict[str, frozenset[str]]:
    return {path: frozenset(keys) for path, keys in catalog.items()}
