"""load_policy: the example is valid; each mistake is one PolicyError naming file, line, key."""

from __future__ import annotations

from pathlib import Path

import pytest

from envmatrix.errors import ExitCode, PolicyError
from envmatrix.policy import (
    ReservedVaultPath,
    SecretSpec,
    load_policy,
    name_warning,
    normalised_vault_path,
)
from envmatrix.timefmt import parse_duration

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
        "unknown scope",
        "    owner: data\n",
        "    owner: data\n    scope: enterprise\n",
        "secrets.GA_MCP_SERVICE_ACCOUNT_JSON.scope",
        "'environment', 'repository' or 'organization'",
        "scope: enterprise",
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
    (
        "version given as a boolean",
        "version: 1\n",
        "version: true\n",
        "version",
        "unsupported version; this envmatrix reads version: 1",
        "version: true",
    ),
    (
        "version given as a float",
        "version: 1\n",
        "version: 1.0\n",
        "version",
        "unsupported version; this envmatrix reads version: 1",
        "version: 1.0",
    ),
    (
        "a space in a vault path",
        "vault: apps/{environment}/shopify\n",
        "vault: apps/{environment}/shop ify\n",
        "secrets.SHOPIFY_ADMIN_TOKEN.vault",
        "' ' cannot appear in it",
        "vault: apps/{environment}/shop ify",
    ),
    (
        "a repository listed twice",
        "  repositories: [occ-labs/operator-console]",
        "  repositories: [occ-labs/operator-console, occ-labs/Operator-Console]",
        "github.repositories[1]",
        "occ-labs/Operator-Console is listed twice (GitHub names ignore case)",
        "  repositories: [occ-labs/operator-console, occ-labs/Operator-Console]",
    ),
    (
        "a flag environment listed twice",
        "    requires: [SUPABASE_URL, SUPABASE_SERVICE_KEY]\n"
        "    environments: [staging, production]",
        "    requires: [SUPABASE_URL, SUPABASE_SERVICE_KEY]\n"
        "    environments: [staging, production, staging]",
        "flags.FEATURE_AI_ESCALATIONS.environments[2]",
        "staging is listed twice",
        "    environments: [staging, production, staging]",
    ),
    (
        "a flag requirement listed twice",
        "    requires: [SUPABASE_URL, SUPABASE_SERVICE_KEY]",
        "    requires: [SUPABASE_URL, SUPABASE_SERVICE_KEY, SUPABASE_URL]",
        "flags.FEATURE_AI_ESCALATIONS.requires[2]",
        "SUPABASE_URL is listed twice",
        "    requires: [SUPABASE_URL, SUPABASE_SERVICE_KEY, SUPABASE_URL]",
    ),
    (
        "one repository spelt two ways",
        "    vault: apps/{environment}/shopify\n",
        "    vault: apps/{environment}/shopify\n    repositories: [OCC-labs/operator-console]\n",
        "secrets.SHOPIFY_ADMIN_TOKEN.repositories[0]",
        "OCC-labs/operator-console is occ-labs/operator-console (github.repositories) spelt"
        " another way; GitHub names ignore case",
        "    repositories: [OCC-labs/operator-console]",
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
    ("an integer too long to read", b"version: 1" + b"0" * 5000 + b"\n", None, "cannot be read"),
    (
        "nesting deeper than a policy goes",
        b"version: 1\ndescription: " + b"[" * 5000 + b"]" * 5000 + b"\n",
        None,
        "nested too deeply",
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


REPOSITORY_ROTATION = (
    "    owner: data\n    scope: repository\n    vault: ci/ga-mcp#json\n"
    "    rotation:\n      max_age: 90d\n      strategy: generate"
)


def test_repository_scope_secret_may_rotate(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(TEXT.replace(GA_BLOCK, REPOSITORY_ROTATION))
    spec = load_policy(path).secrets["GA_MCP_SERVICE_ACCOUNT_JSON"]
    assert spec.repository_level and spec.rotation is not None
    assert spec.rotation.strategy == "generate" and spec.rotation.max_age == "90d"


def test_secrets_sharing_a_repository_path_must_declare_one_rotation(tmp_path: Path) -> None:
    # an environment secret may read the repository secret's path; both then rotate together
    sharing = (
        "  CI_PEER:\n    owner: data\n    vault: ci/ga-mcp#peer\n"
        "    environments: [production]\n    rotation:\n      max_age: 9d\n"
        "      strategy: manual\n"
    )
    text = TEXT.replace(GA_BLOCK, REPOSITORY_ROTATION).replace(
        "\nflags:", f"\n{sharing}\nflags:", 1
    )
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.key_path.endswith(".rotation")
    assert "shares Vault path ci/ga-mcp" in caught.value.message
    path.write_text(
        text.replace(
            "max_age: 9d\n      strategy: manual", "max_age: 90d\n      strategy: generate"
        )
    )
    assert load_policy(path).secrets["CI_PEER"].rotation is not None


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


# -- fuzz (hypothesis): whatever the file holds, load_policy answers a policy or a PolicyError ---

import json  # noqa: E402

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

WORDS = (
    "version",
    "vault",
    "mount",
    "github",
    "repositories",
    "prune",
    "environments",
    "owners",
    "contact",
    "secrets",
    "flags",
    "requires",
    "owner",
    "service",
    "scope",
    "rotation",
    "schedule",
    "max_age",
    "strategy",
    "timezone",
    "grace",
    "options",
    "staging",
    "production",
    "SUPABASE_URL",
    "occ-labs/operator-console",
    "apps/{environment}/x#k",
    "0 9 1 * *",
    "90d",
)
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.sampled_from(WORDS) | st.text()
)
TREES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=30,
)


def _mutated_example(draw: st.DrawFn) -> bytes:
    """The example policy with a few lines dropped, doubled or garbled."""
    lines = TEXT.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["drop", "double", "garble", "indent"]))
        if how == "drop":
            del lines[i]
        elif how == "double":
            lines.insert(i, lines[i])
        elif how == "garble":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.text(max_size=3)) + lines[i][at:]
        else:
            lines[i] = "  " + lines[i]
    return "".join(lines).encode("utf-8", "surrogatepass")


@st.composite
def policy_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "text", "json", "example"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "text":
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    if kind == "json":  # JSON is YAML: random trees shaped a little like a policy
        tree = draw(st.dictionaries(st.sampled_from(WORDS), TREES, max_size=6))
        return json.dumps(tree).encode("utf-8", "surrogatepass")
    return _mutated_example(draw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_files())
@example(b'{"environments": {"version": {"\\n": null}}}')  # a key that is a newline
def test_any_file_is_a_policy_or_a_policy_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "policy.yaml"
    path.write_bytes(data)
    try:
        load_policy(path)
    except PolicyError as error:
        assert "\n" not in str(error)
        assert str(error).startswith(str(path))


def test_vault_paths_and_keys_may_be_unicode(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    unicode = TEXT.replace(
        "vault: apps/{environment}/shopify\n", "vault: apps/{environment}/zürich#schlüssel\n", 1
    )
    path.write_text(unicode, encoding="utf-8")
    spec = load_policy(path).secrets["SHOPIFY_ADMIN_TOKEN"]
    assert (spec.vault_path("staging"), spec.vault_key("X")) == ("apps/staging/zürich", "schlüssel")


# -- envmatrix's own Vault space: checked on resolved, normalised paths -------------------------

RESERVED_TEMPLATE = """version: 1
github: {{repositories: [acme/web]}}
environments:
  {env}: {{github: staging}}
owners: {{ops: {{contact: ops@example.test}}}}
secrets:
  LOCK_TOKEN:
    owner: ops
    vault: "{vault}"
    environments: [{env}]
"""

# (logical environment, vault reference, the resolved path the error names)
RESERVED = [
    ("envmatrix", "{environment}/locks/apply#id", "envmatrix/locks/apply"),
    ("envmatrix", "{environment}#id", "envmatrix"),
    ("envmatrix", "{environment}/state/acme/web/dev#secrets", "envmatrix/state/acme/web/dev"),
]


@pytest.mark.parametrize(("env", "vault", "resolved"), RESERVED)
def test_a_path_resolving_into_envmatrix_space_is_refused_at_its_line(
    tmp_path: Path, env: str, vault: str, resolved: str
) -> None:
    text = RESERVED_TEMPLATE.format(env=env, vault=vault)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.key_path == "secrets.LOCK_TOKEN.vault"
    assert caught.value.line == line_of(text, "    vault:")
    assert f"resolves to {resolved} in environment {env}" in caught.value.message


@pytest.mark.parametrize(
    "vault", ["./envmatrix/locks/apply", "envmatrix/./locks", "apps/../envmatrix/x", "envmatrix"]
)
def test_a_written_path_into_envmatrix_space_is_refused(tmp_path: Path, vault: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(RESERVED_TEMPLATE.format(env="dev", vault=vault))
    with pytest.raises(PolicyError, match="'.' or '..' segments|envmatrix's own"):
        load_policy(path)


def test_paths_vault_keeps_apart_from_envmatrix_space_are_allowed(tmp_path: Path) -> None:
    # KV paths are case-sensitive in OpenBao: Envmatrix/x is not envmatrix/x
    for env, vault in (
        ("dev", "Envmatrix/x"),
        ("envmatrix2", "{environment}/x"),
        ("dev", "apps/envmatrix/x"),
    ):
        path = tmp_path / "policy.yaml"
        path.write_text(RESERVED_TEMPLATE.format(env=env, vault=vault))
        load_policy(path)


@pytest.mark.parametrize(
    ("path", "normalised"),
    [
        ("./envmatrix//locks/", "envmatrix/locks"),
        ("a/../envmatrix/x", "envmatrix/x"),
        ("../../envmatrix", "envmatrix"),
        ("Envmatrix/x", "Envmatrix/x"),
        ("a/./b", "a/b"),
    ],
)
def test_normalised_vault_path_is_what_openbao_acts_on(path: str, normalised: str) -> None:
    assert normalised_vault_path(path) == normalised


def test_resolving_a_path_checks_again(tmp_path: Path) -> None:
    """A SecretSpec built without validation still cannot resolve into envmatrix/."""
    spec = SecretSpec.model_construct(vault="{environment}/locks/apply#id", owner="ops")
    with pytest.raises(ReservedVaultPath) as caught:
        spec.vault_path("envmatrix")
    assert caught.value.exit_code is ExitCode.INVALID
    assert spec.vault_path("dev") == "dev/locks/apply"


# -- strategy options: each strategy's model, checked at load with file:line --------------------

OPTION_MISTAKES = [
    (
        "postgres",
        "{dsn_env: PG, mdoe: alternating, roles: [a, b]}",
        "options.mdoe",
        "unknown key 'mdoe'",
    ),
    ("postgres", "{dsn_env: PG, mode: alternate, roles: [a, b]}", "options.mode", "'single'"),
    ("postgres", "{dsn_env: PG}", "options", "mode single takes role"),
    (
        "postgres",
        "{dsn_env: PG, mode: alternating, roles: [a, a]}",
        "options",
        "two different roles",
    ),
    ("postgres", "{role: app}", "options.dsn_env", "required key is missing"),
    ("aws-iam", "{user: ci, on_revoke: disable}", "options.on_revoke", "'delete'"),
    ("aws-iam", "{usr: ci}", "options.usr", "unknown key"),
    (
        "supabase-api-key",
        "{access_token_env: PAT}",
        "options",
        "one of project_ref or project_ref_env",
    ),
    ("generate", "{length: 8}", "options.length", "greater than or equal to 16"),
    ("generate", "{lenght: 64}", "options.lenght", "unknown key"),
    ("manual", "{reminder: yes}", "options.reminder", "unknown key"),
    ("command", "{timeout: 30}", "options.command", "required key is missing"),
    ("command", "{command: [], timeout: 30}", "options.command", "at least 1"),
]


@pytest.mark.parametrize(("strategy", "options", "key", "message"), OPTION_MISTAKES)
def test_strategy_options_are_checked_at_load(
    tmp_path: Path, strategy: str, options: str, key: str, message: str
) -> None:
    text = TEXT.replace(
        "      max_age: 180d\n      strategy: manual",
        f"      max_age: 180d\n      strategy: {strategy}\n      options: {options}",
    )
    assert text != TEXT
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.key_path == f"secrets.ZOHO_CLIENT_SECRET.rotation.{key}"
    assert message in caught.value.message
    assert caught.value.line == line_of(text, f"      options: {options}")


def test_each_strategy_accepts_its_documented_options(tmp_path: Path) -> None:
    good = {
        "postgres": "{dsn_env: PG, mode: alternating, roles: [app_a, app_b], uri_key: uri,"
        " terminate_sessions: true, connect_timeout: 5, port: 6543}",
        "aws-iam": "{user: ci, on_revoke: deactivate, test_attempts: 3, region: eu-west-1}",
        "supabase-api-key": "{project_ref: abc, access_token_env: PAT, key: service_key}",
        "generate": "{length: 64, alphabet: hex}",
        "command": "{command: [rotators/x.py], timeout: 60, base_url_env: X_URL}",
    }
    for strategy, options in good.items():
        path = tmp_path / "policy.yaml"
        path.write_text(
            TEXT.replace(
                "      max_age: 180d\n      strategy: manual",
                f"      max_age: 180d\n      strategy: {strategy}\n      options: {options}",
            )
        )
        assert load_policy(path).secrets["ZOHO_CLIENT_SECRET"].rotation is not None


# -- issue 10 items 2 and 6: name: and shared: ---------------------------------------------------

NAMED = TEXT.replace("name: operator-console", "name: {name}")


@pytest.mark.parametrize("name", ["payments", "team-a", "Search_2", "a", "v1.2", "x" * 64])
def test_a_policy_name_is_its_identity(tmp_path: Path, name: str) -> None:
    path = tmp_path / "whatever.yaml"
    path.write_text(NAMED.replace("{name}", name))
    policy = load_policy(path)
    assert policy.identity == name and not policy.name_from_file and name_warning(policy) is None


@pytest.mark.parametrize(
    "name", ["../other", "a/b", ".hidden", "-dash", "with space", "'x '", "x" * 65, "'ünï'", "''"]
)
def test_a_policy_name_must_be_a_safe_path_segment(tmp_path: Path, name: str) -> None:
    path = tmp_path / "p.yaml"
    text = NAMED.replace("{name}", name)
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    line = line_of(text, "\nname:") + 1
    assert caught.value.key_path == "name" and caught.value.line == line
    assert "safe path segment" in caught.value.message
    assert str(caught.value).startswith(f"{path}:{line}: name:")


@pytest.mark.parametrize(
    ("file", "identity"),
    [
        ("payments.yaml", "payments"),
        ("envmatrix.yml", "envmatrix"),
        ("team a policy.yaml", "team-a-policy"),
        ("..weird..yaml", "weird"),
        ("___.yaml", "policy"),
    ],
)
def test_an_unnamed_policy_is_named_after_its_file_and_warned(
    tmp_path: Path, file: str, identity: str
) -> None:
    path = tmp_path / file
    path.write_text(TEXT.replace("name: operator-console", ""))
    policy = load_policy(path)
    assert policy.identity == identity and policy.name_from_file
    warning = name_warning(policy)
    assert warning is not None and repr(identity) in warning and "set name:" in warning


SHARED_BASE = """\
version: 1
name: shared-test
github: {repositories: [occ-labs/operator-console]}
environments:
  dev: {github: dev}
  staging: {github: staging}
  production: {github: production}
owners:
  ops: {contact: ops@occ.example}
secrets:
  API_KEY:
    owner: ops
"""


@pytest.mark.parametrize(
    ("secret", "key"),
    [
        ("    vault: apps/common#api_key\n    environments: [staging, production]\n", "vault"),
        ("    vault: apps/common\n    environments: [dev, staging, production]\n", "vault"),
        ("    vault: apps/prod-like/api\n    environments: [production, staging]\n", "vault"),
        ("    vault: apps/common\n    environments: [dev, staging]\n    shared: false\n", "vault"),
        (
            "    vault: apps/{environment}/api\n    environments: [dev, staging]\n"
            "    shared: true\n",
            "shared",
        ),
    ],
)
def test_one_vault_value_for_several_environments_must_say_shared(
    tmp_path: Path, secret: str, key: str
) -> None:
    path = tmp_path / "p.yaml"
    text = SHARED_BASE + secret
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    error = caught.value
    assert error.exit_code is ExitCode.INVALID and error.key_path == f"secrets.API_KEY.{key}"
    assert error.line == line_of(text, f"    {key}:") and "API_KEY" in error.message
    assert ("{environment}" in error.message) and (
        "shared: true" in error.message or key == "shared"
    )


@pytest.mark.parametrize(
    "secret",
    [
        "    vault: apps/common#api_key\n    environments: [staging, production]\n"
        "    shared: true\n",
        "    vault: apps/common\n    environments: [production]\n",  # one environment
        "    vault: apps/{environment}/api\n    environments: [dev, staging, production]\n",
        "    vault: ci/api\n    scope: repository\n",  # one value for the repository
        "    vault: ci/api\n    scope: repository\n    shared: true\n",
    ],
)
def test_shared_or_per_environment_vault_paths_are_valid(tmp_path: Path, secret: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(SHARED_BASE + secret)
    assert load_policy(path).secrets["API_KEY"].owner == "ops"
