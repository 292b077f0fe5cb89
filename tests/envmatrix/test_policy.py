"""load_policy: the example is valid; each mistake is one PolicyError naming file, line, key."""

from __future__ import annotations

from pathlib import Path

import pytest

from envmatrix.errors import ExitCode, PolicyError
from envmatrix.policy import load_policy, parse_duration

EXAMPLE = Path(__file__).resolve().parents[2] / "policies" / "example.yaml"
TEXT = EXAMPLE.read_text()


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_example_policy_is_valid() -> None:
    policy = load_policy(EXAMPLE)
    assert set(policy.secrets) == {
        "SUPABASE_URL",
        "SUPABASE_SERVICE_KEY",
        "ZOHO_CLIENT_ID",
        "ZOHO_CLIENT_SECRET",
        "ZOHO_REFRESH_TOKEN",
        "SHOPIFY_ADMIN_TOKEN",
        "CHATWOOT_API_TOKEN",
        "GA_MCP_SERVICE_ACCOUNT_JSON",
    }
    assert {s.owner for s in policy.secrets.values()} == {
        "reliability",
        "integrations",
        "support",
        "data",
    }
    assert policy.flags["FEATURE_AI_ESCALATIONS"].requires == (
        "SUPABASE_URL",
        "SUPABASE_SERVICE_KEY",
    )
    assert (
        policy.secrets["SHOPIFY_ADMIN_TOKEN"].vault_key("SHOPIFY_ADMIN_TOKEN")
        == "SHOPIFY_ADMIN_TOKEN"
    )
    assert policy.secrets["SUPABASE_URL"].vault_path("production") == "apps/production/supabase"


GA_BLOCK = (
    "    owner: data\n    vault: apps/{environment}/ga-mcp#service_account_json\n"
    "    environments: [staging, production]\n    rotation:\n      max_age: 90d\n"
    "      strategy: manual"
)

# (name, old text, new text, expected key path, expected message part, line anchor in new text)
MISTAKES = [
    (
        "typo in a top-level key",
        "environments:\n  staging:",
        "environmnets:\n  staging:",
        "environmnets",
        "unknown key 'environmnets'",
        "environmnets:",
    ),
    (
        "unknown key in a secret",
        "    service: zoho\n    owner: integrations\n    vault: apps/{environment}/zoho#client_id",
        "    service: zoho\n    owners: integrations\n    vault: apps/{environment}/zoho#client_id",
        "secrets.ZOHO_CLIENT_ID.owners",
        "unknown key 'owners'",
        "owners: integrations",
    ),
    (
        "undeclared owner",
        "owner: support",
        "owner: suport",
        "secrets.CHATWOOT_API_TOKEN.owner",
        "owner 'suport' is not declared",
        "owner: suport",
    ),
    (
        "undeclared environment",
        "    vault: apps/{environment}/shopify\n    environments: [staging, production]",
        "    vault: apps/{environment}/shopify\n    environments: [staging, prod]",
        "secrets.SHOPIFY_ADMIN_TOKEN.environments[1]",
        "environment 'prod' is not declared",
        "environments: [staging, prod]",
    ),
    (
        "6-field cron",
        '"0 9 15 * *"',
        '"0 9 15 * * 3"',
        "secrets.CHATWOOT_API_TOKEN.rotation.schedule",
        "has 6 fields",
        '"0 9 15 * * 3"',
    ),
    (
        "impossible cron",
        '"0 9 15 * *"',
        '"0 9 31 2 *"',
        "secrets.CHATWOOT_API_TOKEN.rotation.schedule",
        "not a valid 5-field",
        '"0 9 31 2 *"',
    ),
    (
        "garbage cron",
        '"0 9 15 * *"',
        '"every day"',
        "secrets.CHATWOOT_API_TOKEN.rotation.schedule",
        "has 2 fields",
        '"every day"',
    ),
    (
        "unknown strategy",
        "strategy: supabase-api-key",
        "strategy: supabase-key",
        "secrets.SUPABASE_SERVICE_KEY.rotation.strategy",
        "unknown strategy 'supabase-key'",
        "strategy: supabase-key",
    ),
    (
        "bad duration",
        "max_age: 180d",
        "max_age: 180days",
        "secrets.ZOHO_CLIENT_SECRET.rotation.max_age",
        "not a duration",
        "max_age: 180days",
    ),
    (
        "unknown timezone",
        "timezone: Europe/Berlin",
        "timezone: Mars/Olympus",
        "secrets.ZOHO_REFRESH_TOKEN.rotation.timezone",
        "unknown timezone",
        "timezone: Mars/Olympus",
    ),
    (
        "schedule and max_age",
        '      schedule: "0 9 15 * *"',
        '      schedule: "0 9 15 * *"\n      max_age: 3d',
        "secrets.CHATWOOT_API_TOKEN.rotation",
        "exactly one of schedule or max_age",
        '    rotation:\n      schedule: "0 9 15',
    ),
    (
        "lower-case secret name",
        "  SHOPIFY_ADMIN_TOKEN:",
        "  shopify_admin_token:",
        "secrets.shopify_admin_token",
        "must match [A-Z_][A-Z0-9_]*",
        "shopify_admin_token:",
    ),
    (
        "GITHUB_ prefix",
        "  SHOPIFY_ADMIN_TOKEN:",
        "  GITHUB_SHOPIFY_TOKEN:",
        "secrets.GITHUB_SHOPIFY_TOKEN",
        "must not start with GITHUB_",
        "GITHUB_SHOPIFY_TOKEN:",
    ),
    (
        "flag requires an undeclared secret",
        "requires: [SUPABASE_URL, SUPABASE_SERVICE_KEY]",
        "requires: [SUPABASE_URL, SUPABASE_KEY]",
        "flags.FEATURE_AI_ESCALATIONS.requires[1]",
        "'SUPABASE_KEY' is not declared under secrets",
        "requires: [SUPABASE_URL, SUPABASE_KEY]",
    ),
    (
        "wrong type for prune",
        "prune: false",
        'prune: "yes"',
        "github.prune",
        "valid boolean",
        "prune:",
    ),
    (
        "unsupported version",
        "version: 1",
        "version: 2",
        "version",
        "unsupported version",
        "version: 2",
    ),
    (
        "absolute vault path",
        "vault: apps/{environment}/shopify",
        "vault: /apps/{environment}/shopify",
        "secrets.SHOPIFY_ADMIN_TOKEN.vault",
        "relative to the mount",
        "vault: /apps",
    ),
    (
        "unknown placeholder",
        "vault: apps/{environment}/shopify",
        "vault: apps/{env}/shopify",
        "secrets.SHOPIFY_ADMIN_TOKEN.vault",
        "only placeholder is {environment}",
        "vault: apps/{env}",
    ),
    (
        "repository not owner/name",
        "repositories: [occ-labs/operator-console]",
        "repositories: [operator-console]",
        "github.repositories[0]",
        "must be owner/name",
        "repositories: [operator-console]",
    ),
    (
        "environments not a list",
        "    vault: apps/{environment}/shopify\n    environments: [staging, production]",
        "    vault: apps/{environment}/shopify\n    environments: production",
        "secrets.SHOPIFY_ADMIN_TOKEN.environments",
        "valid tuple",
        "environments: production",
    ),
    (
        "missing vault reference",
        "    vault: apps/{environment}/chatwoot#api_token\n",
        "",
        "secrets.CHATWOOT_API_TOKEN.vault",
        "required key is missing",
        "  CHATWOOT_API_TOKEN:",
    ),
    (
        "environment secret without environments",
        "#api_token\n    environments: [staging, production]\n",
        "#api_token\n",
        "secrets.CHATWOOT_API_TOKEN.environments",
        "required key is missing",
        "  CHATWOOT_API_TOKEN:",
    ),
    (
        "repository secret lists environments",
        GA_BLOCK,
        "    owner: data\n    scope: repository\n    vault: ci/ga-mcp#json\n"
        "    environments: [production]",
        "secrets.GA_MCP_SERVICE_ACCOUNT_JSON.environments",
        "remove environments:",
        "environments: [production]",
    ),
    (
        "repository secret with {environment} in its vault path",
        GA_BLOCK,
        "    owner: data\n    scope: repository\n    vault: apps/{environment}/ga-mcp#json",
        "secrets.GA_MCP_SERVICE_ACCOUNT_JSON.vault",
        "cannot use {environment}",
        "vault: apps/{environment}/ga-mcp#json",
    ),
    (
        "repository secret with a rotation",
        GA_BLOCK,
        "    owner: data\n    scope: repository\n    vault: ci/ga-mcp#json\n"
        "    rotation:\n      max_age: 90d\n      strategy: manual",
        "secrets.GA_MCP_SERVICE_ACCOUNT_JSON.rotation",
        "not supported for scope: repository",
        "    rotation:\n      max_age: 90d\n      strategy: manual\n\nflags:",
    ),
    (
        "unknown scope",
        "    owner: data\n",
        "    owner: data\n    scope: organization\n",
        "secrets.GA_MCP_SERVICE_ACCOUNT_JSON.scope",
        "'environment' or 'repository'",
        "scope: organization",
    ),
    (
        "flag requires a repository secret",
        "    vault: apps/{environment}/supabase#url\n    environments: [staging, production]",
        "    scope: repository\n    vault: ci/supabase#url",
        "flags.FEATURE_AI_ESCALATIONS.requires[0]",
        "SUPABASE_URL is a scope: repository secret; a flag can require only environment secrets",
        "requires: [SUPABASE_URL",
    ),
    (
        "reserved vault prefix",
        "vault: apps/{environment}/shopify",
        "vault: envmatrix/state/x",
        "secrets.SHOPIFY_ADMIN_TOKEN.vault",
        "envmatrix's own",
        "vault: envmatrix/state/x",
    ),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "key_path", "message", "anchor"), MISTAKES, ids=[m[0] for m in MISTAKES]
)
def test_mistake_names_file_line_and_key(
    tmp_path: Path, name: str, old: str, new: str, key_path: str, message: str, anchor: str
) -> None:
    assert old in TEXT, f"test case {name!r} no longer matches the example policy"
    text = TEXT.replace(old, new, 1)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    error = caught.value
    assert error.exit_code is ExitCode.INVALID
    assert error.key_path == key_path
    assert message in error.message
    assert error.line == line_of(text, anchor)
    assert str(error).startswith(f"{path}:{error.line}: {key_path}:")
    assert "\n" not in str(error)


RAW_MISTAKES = [
    ("empty file", b"", 1, "empty"),
    ("only a comment", b"# nothing\n", 1, "empty"),
    ("not a mapping", b"- a\n- b\n", 1, "must be a mapping"),
    ("binary junk", b"\x00\x01\x02version: 1", None, "binary data"),
    ("not UTF-8", b"version: 1\nsecrets: \xff\xfe\n", 2, "not UTF-8"),
    ("unclosed bracket", b"version: 1\nenvironments: [\n", 3, "invalid YAML"),
    (
        "bad indentation",
        b"version: 1\nenvironments:\n  staging: {github: staging}\n    prod: x\n",
        4,
        "invalid YAML",
    ),
    (
        "tab indentation",
        b"version: 1\nenvironments:\n\tstaging: {github: staging}\n",
        3,
        "invalid YAML",
    ),
]


@pytest.mark.parametrize(
    ("name", "data", "line", "message"), RAW_MISTAKES, ids=[m[0] for m in RAW_MISTAKES]
)
def test_unreadable_policy(
    tmp_path: Path, name: str, data: bytes, line: int | None, message: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(data)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert message in str(caught.value)
    assert caught.value.line == line


def test_duplicate_key_names_the_key_and_its_second_line(tmp_path: Path) -> None:
    text = TEXT.replace("  ZOHO_CLIENT_ID:", "  SUPABASE_URL:", 1)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert 'duplicate key "SUPABASE_URL"' in str(caught.value)
    assert caught.value.line == line_of(text, "  SUPABASE_URL:\n    service: zoho")
    assert "supabase" not in str(caught.value).split("SUPABASE_URL")[-1]  # no values echoed


def test_flag_environment_outside_its_secrets(tmp_path: Path) -> None:
    text = TEXT.replace(
        "    vault: apps/{environment}/supabase#url\n    environments: [staging, production]",
        "    vault: apps/{environment}/supabase#url\n    environments: [staging]",
    )
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.key_path == "flags.FEATURE_AI_ESCALATIONS.environments"
    assert "SUPABASE_URL is not required in production" in caught.value.message


def test_repository_scope_secret_is_valid_and_environment_scope_is_the_default(
    tmp_path: Path,
) -> None:
    text = TEXT.replace(GA_BLOCK, "    owner: data\n    scope: repository\n    vault: ci/ga-mcp")
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    policy = load_policy(path)
    spec = policy.secrets["GA_MCP_SERVICE_ACCOUNT_JSON"]
    assert spec.repository_level and spec.environments == ()
    assert spec.vault_path("production") == spec.vault_path("staging") == "ci/ga-mcp"
    assert not load_policy(EXAMPLE).secrets["SUPABASE_URL"].repository_level
    assert load_policy(EXAMPLE).secrets["SUPABASE_URL"].scope == "environment"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such policy file"):
        load_policy(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 90 * 86400), ("12h", 43200), ("30m", 1800), ("45s", 45), ("2w", 14 * 86400)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["0d", "90", "d", "1.5h", "-3d", "3 d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
