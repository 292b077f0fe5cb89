"""`envmatrix import` (issue 12 item 4), end to end on OpenBao and the GitHub sandbox: the draft
validates, a plan against the same world creates, deletes, orphans and blocks nothing (the adopted
secrets are update / changed-outside until the first apply), apply converges it; the import reads
no secret value (it runs with a Vault token that cannot read one) and prints none; what it cannot
match is listed on stderr, in the YAML and in --json; --out never replaces a file without --force.
With --organization the organization's own Actions secrets (all / private / selected), Actions
variables and Dependabot secrets are imported too, and each repository's Dependabot secrets; one
list call per organization and store. The matching rule itself: plain tables over `build_draft`."""

from __future__ import annotations

import hvac
import pytest
from ruamel.yaml import YAML

from envmatrix.adapters.github import GitHubAdapter
from envmatrix.sandbox.faults import Fault
from envmatrix.secret import SecretValue
from envmatrix.views.import_ import Holding, build_draft, logical_name
from tests.envmatrix.sandbox import call, put_secret_body
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
ORG_VAULT = {
    "ci/npm": {"token": "canary-npm"},
    "ci/docker": {"password": "canary-docker"},
    "ci/deploy": {"key": "canary-deploy"},
    "ci/registry": {"token": "canary-registry"},
    "ci/bot": {"gh_pat": "canary-bot"},
}
# (store, name, visibility, selected repositories): the organization's own secrets
ORG_SECRETS = (
    ("actions", "NPM_TOKEN", "all", ()),
    ("actions", "DOCKER_PASSWORD", "private", ()),
    ("actions", "DEPLOY_KEY", "selected", (REPO, OTHER_REPO)),
    ("dependabot", "BOT_GH_PAT", "selected", (OTHER_REPO,)),
)
# (name, value, visibility, selected repositories): the organization's variables
ORG_VARIABLES = (
    ("ORG_REGION", "eu-central-1", "selected", (REPO,)),
    ("DOCS_URL", "https://docs.example", "all", ()),
)
DEPENDABOT_SECRET = "REGISTRY_TOKEN"  # in both repositories, from ci/registry#token


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


def _repository_ids(world: World, repositories: tuple[str, ...]) -> list[int]:
    return [int(call(world.sandbox.url, "GET", f"/repos/{r}").json()["id"]) for r in repositories]


def _org_secret_outside(
    world: World,
    store: str,
    name: str,
    visibility: str,
    selected: tuple[str, ...] = (),
    value: str = GITHUB_CANARY,
) -> None:
    """An organization secret set by hand (as `gh secret set --org` would)."""
    url, base = world.sandbox.url, f"/orgs/{ORG}/{store}/secrets"
    body: dict[str, object] = {
        **put_secret_body(url, f"{base}/public-key", value),
        "visibility": visibility,
    }
    if visibility == "selected":
        body["selected_repository_ids"] = _repository_ids(world, selected)
    assert call(url, "PUT", f"{base}/{name}", body).status in (201, 204)


def _org_variable_outside(
    world: World, name: str, value: str, visibility: str, selected: tuple[str, ...] = ()
) -> None:
    body: dict[str, object] = {"name": name, "value": value, "visibility": visibility}
    if visibility == "selected":
        body["selected_repository_ids"] = _repository_ids(world, selected)
    assert call(world.sandbox.url, "POST", f"/orgs/{ORG}/actions/variables", body).status == 201


def _dependabot_secret_outside(world: World, repository: str, name: str) -> None:
    url, base = world.sandbox.url, f"/repos/{repository}/dependabot/secrets"
    body = put_secret_body(url, f"{base}/public-key", GITHUB_CANARY)
    assert call(url, "PUT", f"{base}/{name}", body).status in (201, 204)


def _adoptable_organization(world: World) -> None:
    """The organization's own secrets, variables and Dependabot secrets, set by hand."""
    for path, values in ORG_VAULT.items():
        world.vault.write_values(path, {k: SecretValue(v) for k, v in values.items()})
    for store, name, visibility, selected in ORG_SECRETS:
        _org_secret_outside(world, store, name, visibility, selected)
    for name, value, visibility, selected in ORG_VARIABLES:
        _org_variable_outside(world, name, value, visibility, selected)
    for repository in (REPO, OTHER_REPO):
        _dependabot_secret_outside(world, repository, DEPENDABOT_SECRET)


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
    vault = [v for values in (*VAULT.values(), *ORG_VAULT.values()) for v in values.values()]
    return [*vault, GITHUB_CANARY]


def test_import_adopts_the_world_and_plan_shows_only_changed_outside(
    world: World, vault_admin: hvac.Client
) -> None:
    _adoptable(world)
    _adoptable_organization(world)
    token = _list_only_token(world, vault_admin)
    world.env["VAULT_TOKEN"], root = token, world.env["VAULT_TOKEN"]
    out = world.policy_path.parent / "imported.yaml"
    args = ("import", "--organization", ORG, "--mount", world.vault.mount)
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
    assert policy["github"]["organization"] == ORG
    assert set(policy["github"]["repositories"]) == {REPO, OTHER_REPO}
    assert policy["secrets"]["NPM_TOKEN"] == {
        "owner": "unassigned",
        "scope": "organization",
        "visibility": "all",
        "vault": "ci/npm#token",
    }
    assert policy["secrets"]["DOCKER_PASSWORD"]["visibility"] == "private"
    assert "repositories" not in policy["secrets"]["DOCKER_PASSWORD"]
    assert policy["secrets"]["DEPLOY_KEY"]["repositories"] == sorted([REPO, OTHER_REPO])
    assert policy["secrets"]["BOT_GH_PAT"] == {
        "owner": "unassigned",
        "scope": "organization",
        "store": "dependabot",
        "visibility": "selected",
        "vault": "ci/bot#gh_pat",
        "repositories": [OTHER_REPO],
    }
    assert policy["secrets"][DEPENDABOT_SECRET] == {
        "owner": "unassigned",
        "scope": "repository",
        "store": "dependabot",
        "vault": "ci/registry#token",
    }
    assert policy["variables"]["ORG_REGION"] == {
        "owner": "unassigned",
        "scope": "organization",
        "visibility": "selected",
        "value": "eu-central-1",
        "repositories": [REPO],
    }
    assert policy["variables"]["DOCS_URL"]["visibility"] == "all"

    world.env["VAULT_TOKEN"] = root
    assert world.run("validate", "--policy", str(out)).code == 0
    plan = world.run("plan", "--json", "--policy", str(out))
    assert plan.code == 0, plan.err
    changes = plan.json()["changes"]
    assert {(c["action"], c["kind"], c["reason"]) for c in changes} == {
        ("update", "secret", "changed-outside")
    }
    cells = {(c["repository"], c["environment"], c["name"], c["store"]) for c in changes}
    assert cells == {
        *((REPO, e, n, "actions") for e in ("staging", "production") for n in ENVIRONMENT_SECRETS),
        (REPO, None, "SENTRY_AUTH_TOKEN", "actions"),
        (OTHER_REPO, None, "SENTRY_AUTH_TOKEN", "actions"),
        (REPO, None, "CODECOV_TOKEN", "actions"),
        *((ORG, None, name, store) for store, name, _, _ in ORG_SECRETS),
        (REPO, None, DEPENDABOT_SECRET, "dependabot"),
        (OTHER_REPO, None, DEPENDABOT_SECRET, "dependabot"),
    }
    assert world.run("apply", "--yes", "--policy", str(out)).code == 0
    box = world.sandbox
    assert box.secret_value(REPO, "production", "STRIPE_KEY") == "canary-prd-stripe"
    assert box.organization_secret_value(ORG, "DEPLOY_KEY") == "canary-deploy"
    assert box.organization_access(ORG, "DEPLOY_KEY") == ("selected", sorted([REPO, OTHER_REPO]))
    assert box.organization_access(ORG, "NPM_TOKEN") == ("all", [])
    assert box.organization_dependabot_secret_value(ORG, "BOT_GH_PAT") == "canary-bot"
    assert box.organization_access(ORG, "BOT_GH_PAT", store="dependabot") == (
        "selected",
        [OTHER_REPO],
    )
    assert box.dependabot_secret_value(OTHER_REPO, DEPENDABOT_SECRET) == "canary-registry"
    assert box.organization_access(ORG, "ORG_REGION", kind="variable") == ("selected", [REPO])
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
    _org_secret_outside(world, "actions", "ORG_SENTRY_DSN", "private", value="canary-org")
    _org_secret_outside(world, "dependabot", "BOT_NOWHERE", "selected", value="canary-org")
    sandbox.write_secret_outside(REPO, None, "PLAIN_AND_BOT", GITHUB_CANARY)
    _dependabot_secret_outside(world, REPO, "PLAIN_AND_BOT")
    world.vault.write_values("ci/plain", {"and_bot": SecretValue("canary-c")})
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
    org_dsn = left_out[("secret", "ORG_SENTRY_DSN", None)]
    assert (org_dsn["scope"], org_dsn["store"], org_dsn["repository"]) == (
        "organization",
        "actions",
        ORG,
    )
    assert "no Vault key named like ORG_SENTRY_DSN" in org_dsn["reason"]
    nowhere = left_out[("secret", "BOT_NOWHERE", None)]
    assert nowhere["store"] == "dependabot"
    assert "visibility selected with no repository selected" in nowhere["reason"]
    both = left_out[("secret", "PLAIN_AND_BOT", None)]
    assert (both["scope"], both["store"]) == ("repository", "dependabot")
    assert "also held as a repository secret" in both["reason"]
    assert (
        "not imported: secret LEGACY_TOKEN in occ-labs/operator-console environment production"
        in result.err
    )
    text = out.read_text()
    assert "# - secret LEGACY_TOKEN in occ-labs/operator-console environment production" in text
    assert "# - secret ORG_SENTRY_DSN in organization occ-labs: no Vault key" in text
    assert "# - dependabot secret PLAIN_AND_BOT in occ-labs/operator-console (repository)" in text
    assert "not imported: dependabot secret BOT_NOWHERE in organization occ-labs" in result.err
    policy = YAML(typ="safe").load(text)
    assert set(policy["github"]["repositories"]) == {REPO, OTHER_REPO}  # GET /orgs/{org}/repos
    assert "organization" not in policy["github"]  # no organization entry was imported
    assert policy["secrets"]["PLAIN_AND_BOT"]["vault"] == "ci/plain#and_bot"
    assert "store" not in policy["secrets"]["PLAIN_AND_BOT"]
    assert policy["variables"]["API_HOST"] == {
        "owner": "unassigned",
        "value": "api.example",
        "environments": ["production"],
        "repositories": [REPO],
    }
    for value in (*_values(), "canary-org", "canary-a", "canary-b", "canary-c"):
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


# -- the organization's own items and Dependabot secrets --------------------------------------


def test_one_list_call_per_organization_and_store_and_no_get_per_secret(world: World) -> None:
    _adoptable(world)
    _adoptable_organization(world)
    before = world.sandbox.request_counts()
    result = world.run("import", "--organization", ORG, "--mount", world.vault.mount)
    assert result.code == 0, result.err
    counts = world.sandbox.request_counts() - before
    assert counts[("GET", "actions/list-org-secrets")] == 1
    assert counts[("GET", "actions/list-org-variables")] == 1
    assert counts[("GET", "dependabot/list-org-secrets")] == 1
    assert counts[("GET", "dependabot/list-repo-secrets")] == 2  # one per repository
    # the selected ones only: DEPLOY_KEY, ORG_REGION, BOT_GH_PAT
    assert counts[("GET", "actions/list-selected-repos-for-org-secret")] == 1
    assert counts[("GET", "actions/list-selected-repos-for-org-variable")] == 1
    assert counts[("GET", "dependabot/list-selected-repos-for-org-secret")] == 1
    gets = {operation for (verb, operation) in counts if verb == "GET"}
    one_by_one = {op for op in gets if op.split("/")[1].startswith(("get-org-", "get-repo-"))}
    assert not one_by_one, one_by_one  # no GET per secret or variable
    assert {verb for verb, _ in counts} == {"GET"}  # import writes nothing to GitHub


@pytest.mark.parametrize(
    ("operation", "kind", "store", "still_imported"),
    [
        ("actions/list-org-secrets", "secret", "actions", ("ORG_REGION", "BOT_GH_PAT")),
        ("actions/list-org-variables", "variable", "actions", ("NPM_TOKEN", "BOT_GH_PAT")),
        ("dependabot/list-org-secrets", "secret", "dependabot", ("NPM_TOKEN", "ORG_REGION")),
    ],
)
def test_an_organization_list_github_refuses_is_listed_as_not_imported(
    world: World, operation: str, kind: str, store: str, still_imported: tuple[str, ...]
) -> None:
    _adoptable(world)
    _adoptable_organization(world)
    world.sandbox.inject(Fault(method="GET", operation=operation, status=403))
    result = world.run("import", "--organization", ORG, "--mount", world.vault.mount, "--json")
    assert result.code == 0, result.err
    refused = [n for n in result.json()["not_imported"] if n["name"] == "*"]
    assert len(refused) == 1
    assert (refused[0]["kind"], refused[0]["scope"], refused[0]["store"]) == (
        kind,
        "organization",
        store,
    )
    assert "HTTP 403" in refused[0]["reason"]
    policy = result.json()["policy"]
    imported = {**policy["secrets"], **policy["variables"]}
    assert set(still_imported) <= set(imported)


def _held(
    kind: str,
    name: str,
    where: str,
    store: str = "actions",
    visibility: str | None = None,
    selected: tuple[str, ...] = (),
    value: str | None = None,
) -> Holding:
    """`where`: an environment name, "repo" (REPO's level) or "org" (the organization's)."""
    if where == "org":
        return Holding(kind, name, ORG, None, value, store, True, visibility, selected)
    environment = None if where == "repo" else where
    return Holding(kind, name, REPO, environment, value, store)


CATALOG = {"ci/npm": {"token", "ci_npm_token"}}


@pytest.mark.parametrize(
    ("holdings", "taken", "left_out"),
    [
        (  # an environment secret wins over the organization's (it overrides it in jobs)
            [_held("secret", "NPM_TOKEN", "production"), _held("secret", "NPM_TOKEN", "org")],
            ("environment", "actions"),
            [("organization", "actions", "also held as an environment secret")],
        ),
        (  # Actions before Dependabot at the repository level
            [
                _held("secret", "NPM_TOKEN", "repo", "dependabot"),
                _held("secret", "NPM_TOKEN", "repo"),
            ],
            ("repository", "actions"),
            [("repository", "dependabot", "also held as a repository secret")],
        ),
        (  # a Dependabot repository secret wins over the Dependabot organization one
            [
                _held("secret", "NPM_TOKEN", "org", "dependabot", "all"),
                _held("secret", "NPM_TOKEN", "repo", "dependabot"),
            ],
            ("repository", "dependabot"),
            [("organization", "dependabot", "also held as a Dependabot repository secret")],
        ),
        (  # the organization's Actions secret before its Dependabot one
            [
                _held("secret", "NPM_TOKEN", "org", "dependabot", "private"),
                _held("secret", "NPM_TOKEN", "org", "actions", "private"),
            ],
            ("organization", "actions"),
            [("organization", "dependabot", "also held as an organization secret")],
        ),
        (  # variables: the repository's wins over the organization's
            [
                _held("variable", "REGION", "org", visibility="all", value="eu"),
                _held("variable", "REGION", "repo", value="us"),
            ],
            ("repository", "actions"),
            [("organization", "actions", "also held as a repository variable")],
        ),
    ],
)
def test_a_name_held_at_several_levels_or_stores_takes_the_narrowest(
    holdings: list[Holding], taken: tuple[str, str], left_out: list[tuple[str, str, str]]
) -> None:
    draft = build_draft("secret", [REPO], holdings, _frozen(CATALOG))
    (entry,) = draft.secrets + draft.variables
    assert (entry.scope, entry.store) == taken
    assert [(n.scope, n.store) for n in draft.not_imported] == [s[:2] for s in left_out]
    for item, (_, _, reason) in zip(draft.not_imported, left_out, strict=True):
        assert reason in item.reason
    assert (draft.organization is not None) == (taken[0] == "organization")


@pytest.mark.parametrize(
    ("holding", "expected"),
    [
        (
            _held("secret", "NPM_TOKEN", "org", visibility="all"),
            {"scope": "organization", "visibility": "all", "vault": "ci/npm#token"},
        ),
        (
            _held("secret", "NPM_TOKEN", "org", "dependabot", "private"),
            {
                "scope": "organization",
                "store": "dependabot",
                "visibility": "private",
                "vault": "ci/npm#token",
            },
        ),
        (
            _held("secret", "NPM_TOKEN", "org", visibility="selected", selected=(OTHER_REPO,)),
            {
                "scope": "organization",
                "visibility": "selected",
                "vault": "ci/npm#token",
                "repositories": [OTHER_REPO],
            },
        ),
        (
            _held("secret", "NPM_TOKEN", "repo", "dependabot"),
            {"scope": "repository", "store": "dependabot", "vault": "ci/npm#token"},
        ),
        (
            _held("variable", "REGION", "org", visibility="private", value="eu-central-1"),
            {"scope": "organization", "visibility": "private", "value": "eu-central-1"},
        ),
    ],
)
def test_organization_and_dependabot_entries_as_the_policy_spells_them(
    holding: Holding, expected: dict[str, object]
) -> None:
    holdings = [holding, _held("secret", "CI_NPM_TOKEN", "production")]  # an environment too
    draft = build_draft("secret", [REPO], holdings, _frozen(CATALOG))
    assert draft.not_imported == ()
    data = draft.policy_data()
    section = data["secrets"] if holding.kind == "secret" else data["variables"]
    assert section[holding.name] == {"owner": "unassigned", **expected}
    organization = data["github"].get("organization")
    assert organization == (ORG if holding.organization else None)
    if organization is not None:
        assert list(data["github"]) == ["organization", "repositories"]


@pytest.mark.parametrize(
    ("holding", "reason"),
    [
        (
            _held("secret", "NOBODY_SEES_IT", "org", visibility="selected"),
            "visibility selected with no repository selected",
        ),
        (_held("secret", "API_KEY", "org", visibility="all"), "no Vault key named like API_KEY"),
        (  # the organization's secret takes no per-environment path
            _held("secret", "X_TOKEN", "org", visibility="all"),
            "no one Vault layout fits",
        ),
        (_held("secret", "API_KEY", "repo", "dependabot"), "no Vault key named like API_KEY"),
        (
            _held("variable", "NPM_TOKEN", "org", visibility="all", value="x"),
            "a secret of the same name",
        ),
    ],
)
def test_organization_and_dependabot_items_that_do_not_fit_are_left_out(
    holding: Holding, reason: str
) -> None:
    holdings = [holding, _held("secret", "NPM_TOKEN", "production")]
    catalog = {**CATALOG, "apps/production/x": {"token"}}
    draft = build_draft("secret", [REPO], holdings, _frozen(catalog))
    (item,) = [n for n in draft.not_imported if (n.kind, n.name) == (holding.kind, holding.name)]
    assert reason in item.reason
    assert (item.scope, item.store) == (holding.scope, holding.store)
    assert draft.organization is None
