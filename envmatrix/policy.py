"""The policy file: pydantic models and `load_policy`, which turns every problem into a PolicyError.

A policy names owners, GitHub environments, secrets (where each lives in Vault, which environments
and repositories need it, how it rotates) and feature flags gated on secrets. The format is
version 1 of the contract (README: Policy file). Validation is strict: unknown keys, duplicate
keys, bad cron expressions and dangling references are errors that name the file, the line and
the key path.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from envmatrix.errors import PolicyError, ReservedVaultPath, UnsafeInput
from envmatrix.ports import SECRETS_PER_SCOPE, VARIABLES_PER_SCOPE
from envmatrix.safeio import load_yaml, read_regular_file
from envmatrix.strategy_registry import STRATEGIES
from envmatrix.timefmt import parse_duration

MAX_POLICY_BYTES = 1_000_000
MAX_POLICY_NODES = 200_000  # YAML nodes with aliases expanded: a policy has a few thousand
SECRET_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
LOGICAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# \w is Unicode-aware: Vault paths and keys may be `apps/zürich#schlüssel`
VAULT_REF = re.compile(r"^(?P<path>[\w.{}/-]+?)(?:#(?P<key>[\w.-]+))?$")
VAULT_REF_CHAR = re.compile(r"[\w.{}/#-]")
RESERVED_VAULT_PREFIX = "envmatrix/"
# a policy's name keys its sync-state records and calendar UIDs: one safe path segment
POLICY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
GITHUB_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
TEAM_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_WAIT_TIMER = 43200  # minutes (30 days): GitHub's limit
MAX_REVIEWERS = 6  # GitHub's limit per environment
# pydantic names the branch of a tagged union in an error's loc; the key path leaves it out
_UNION_TAGS = frozenset({"branch-keyword", "branch-patterns"})


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


def _check_strategy(name: str) -> str:
    if name not in STRATEGIES:
        hint = _suggestion(name, STRATEGIES)
        raise ValueError(f"unknown strategy {name!r}; one of {', '.join(STRATEGIES)}{hint}")
    return name


def _check_cron(expr: str) -> str:
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {expr!r} has {len(fields)} fields; envmatrix takes 5 (m h dom mon dow)"
        )
    if not croniter.is_valid(expr, strict=True):
        raise ValueError(f"cron {expr!r} is not a valid 5-field expression")
    return expr


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r} (use an IANA name like Europe/Berlin)"
        ) from None
    return name


def _check_secret_name(name: str) -> str:
    if not SECRET_NAME.match(name):
        raise ValueError(f"secret name {name!r} must match [A-Z_][A-Z0-9_]* (GitHub secret names)")
    if name.startswith("GITHUB_"):
        raise ValueError(f"secret name {name!r} must not start with GITHUB_ (GitHub reserves it)")
    return name


def _check_repository(name: str) -> str:
    if not REPOSITORY.match(name):
        raise ValueError(f"repository {name!r} must be owner/name")
    if {".", ".."} & set(name.split("/")):
        raise ValueError(f"repository {name!r}: '.' and '..' are not GitHub names")
    return name


def _check_github_environment(name: str) -> str:
    """GitHub environment names go into API paths: '.' and '..' would walk up the path."""
    if name.strip() in (".", ".."):
        raise ValueError(f"GitHub environment {name!r}: '.' and '..' are not environment names")
    if not name.isprintable() or name != name.strip():
        raise ValueError(
            f"GitHub environment {name!r} must be printable text without surrounding spaces"
        )
    return name


def _check_logical_name(name: str) -> str:
    if not LOGICAL_NAME.match(name):
        raise ValueError(f"name {name!r} must be letters, digits, '_', '.', '-'")
    return name


def _check_policy_name(name: str) -> str:
    if not POLICY_NAME.match(name):
        raise ValueError(
            f"policy name {name!r} must be one safe path segment: letters, digits, '_', '.', '-',"
            " starting with a letter or digit, at most 64 characters"
        )
    return name


def _check_vault_ref(ref: str) -> str:
    bad = next((c for c in ref if not VAULT_REF_CHAR.fullmatch(c)), None)
    if bad is not None:
        raise ValueError(
            f"vault reference {ref!r}: {bad!r} cannot appear in it (letters, digits, '_', '.',"
            " '-', '/', {environment} and one '#')"
        )
    match = VAULT_REF.match(ref)
    path = match["path"] if match else ""
    if not match or path.startswith("/") or path.endswith("/") or "//" in path:
        raise ValueError(f"vault reference {ref!r} must be PATH[#KEY] relative to the mount")
    if {".", ".."} & set(path.split("/")):
        raise ValueError(f"vault reference {ref!r} must not contain '.' or '..' segments")
    if path.replace("{environment}", "").count("{") or "}" in path.replace("{environment}", ""):
        raise ValueError(f"vault reference {ref!r}: the only placeholder is {{environment}}")
    if is_reserved_vault_path(path):
        raise ValueError(f"vault reference {ref!r}: {RESERVED_VAULT_PREFIX} is envmatrix's own")
    return ref


def normalised_vault_path(path: str) -> str:
    """The path Vault acts on: OpenBao's HTTP server answers a path with empty, '.' or '..'
    segments with a redirect to the cleaned path (which clients follow), so `./envmatrix//x`
    and `a/../envmatrix/x` both reach `envmatrix/x`. Case is kept: KV paths are case-sensitive
    (`Envmatrix/x` is another path)."""
    parts: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if parts:
                parts.pop()
        elif segment not in ("", "."):
            parts.append(segment)
    return "/".join(parts)


def is_reserved_vault_path(path: str) -> bool:
    """Whether a resolved Vault path lies in envmatrix's own space (locks, sync state, journals)."""
    normalised = normalised_vault_path(path)
    return normalised == RESERVED_VAULT_PREFIX.rstrip("/") or normalised.startswith(
        RESERVED_VAULT_PREFIX
    )


def _schema(pattern: str | None = None, **schema: Any) -> WithJsonSchema:
    """What a JSON Schema validator (an editor) can check of a string the validator above checks
    in full (`envmatrix schema`). Patterns are ECMA-262 as JSON Schema says: no `(?P<name>`."""
    return WithJsonSchema({"type": "string", **({"pattern": pattern} if pattern else {}), **schema})


SecretName = Annotated[
    str,
    AfterValidator(_check_secret_name),
    _schema(r"^(?!GITHUB_)[A-Z_][A-Z0-9_]*$", description="A GitHub secret or variable name."),
]
RepositoryName = Annotated[
    str,
    AfterValidator(_check_repository),
    _schema(r"^(?!\.\.?/)[A-Za-z0-9_.-]+/(?!\.\.?$)[A-Za-z0-9_.-]+$", description="owner/name"),
]
LogicalName = Annotated[
    str, AfterValidator(_check_logical_name), _schema(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    _schema(r"^[1-9][0-9]*[smhdw]$", description="A duration: 45s, 30m, 12h, 90d, 2w."),
]


PROBE_PRESETS = ("supabase", "zoho", "shopify", "chatwoot", "ga-mcp")
# the inputs a preset takes from other secrets of the same environment (`uses:`), and which of
# them it cannot do without
PROBE_USES = {
    "supabase": ("url",),
    "zoho": ("client_id", "client_secret"),
    "shopify": (),
    "chatwoot": (),
    "ga-mcp": (),
}
PROBE_USES_REQUIRED = {"zoho": ("client_id", "client_secret")}
# keys only one preset takes
PROBE_PRESET_KEYS = {"shop_domain": "shopify", "api_version": "shopify", "token_url": "ga-mcp"}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
SHOPIFY_API_VERSION = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


def _check_probe_url(text: str) -> str:
    """An address a probe may send a credential to: https, or http to this machine only (local
    stand-ins); no user:password@ and no #fragment."""
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
    except ValueError:
        raise ValueError(f"{text!r} is not a URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"{text!r} must be an https:// URL")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise ValueError(
            f"{text!r}: a probe sends a credential, so only https (http only to 127.0.0.1,"
            " localhost or ::1)"
        )
    if "@" in parts.netloc or parts.fragment:
        raise ValueError(f"{text!r} must not carry user:password@ or a #fragment")
    return text.rstrip("/")


def _check_header(text: str) -> str:
    """`Name` (the value is the header's value) or `Name: template` with `{value}` in it."""
    name, colon, template = text.partition(":")
    if not HEADER_NAME.match(name.strip()) or (colon and "{value}" not in template):
        raise ValueError(
            f"header {text!r} must be a header name (X-Api-Key) or 'Name: text with {{value}}'"
            " (Authorization: Bearer {value})"
        )
    return text


ProbeUrl = Annotated[
    str, AfterValidator(_check_probe_url), _schema(description="An https URL (http to loopback).")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TransitSettings(_Strict):
    """The Vault transit key `verify --fingerprint` HMACs values with (non-exportable)."""

    mount: Annotated[str, AfterValidator(_check_logical_name)] = "transit"
    key: Annotated[str, AfterValidator(_check_logical_name)] = "envmatrix"


class VaultSettings(_Strict):
    """Where the secrets live: a KV version 2 mount; `transit`: the HMAC key, when used."""

    mount: LogicalName = "secret"
    transit: TransitSettings | None = None


def _check_organization(login: str) -> str:
    if not GITHUB_LOGIN.match(login) or "--" in login or login.endswith("-"):
        raise ValueError(f"organization {login!r} is not a GitHub login (letters, digits, '-')")
    return login


class GitHubSettings(_Strict):
    """Default target repositories and pruning; `organization`: the organization that
    `scope: organization` secrets and variables are written to."""

    repositories: tuple[RepositoryName, ...] = ()
    prune: bool = False
    organization: (
        Annotated[
            str,
            AfterValidator(_check_organization),
            _schema(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$", description="A GitHub organization."),
        ]
        | None
    ) = None


Visibility = Literal["all", "private", "selected"]
DEFAULT_VISIBILITY = "private"  # as `gh secret set --org` and `gh variable set --org`


def _check_login(login: str) -> str:
    if not GITHUB_LOGIN.match(login) or "--" in login or login.endswith("-"):
        raise ValueError(f"user {login!r} is not a GitHub login (letters, digits, single '-')")
    return login


def _check_team(team: str) -> str:
    org, _, slug = team.partition("/")
    if not GITHUB_LOGIN.match(org) or not TEAM_SLUG.match(slug):
        raise ValueError(f"team {team!r} must be organization/team-slug (e.g. occ-labs/release)")
    return team


def _check_branch_pattern(pattern: str) -> str:
    if not pattern or not pattern.isprintable() or pattern != pattern.strip():
        raise ValueError(f"pattern {pattern!r} must be printable text without surrounding spaces")
    if len(pattern) > 255:
        raise ValueError("a deployment branch pattern has at most 255 characters")
    return pattern


class ReviewerSpec(_Strict):
    """A required reviewer: `{user: LOGIN}` or `{team: ORG/SLUG}`."""

    user: Annotated[str, AfterValidator(_check_login)] | None = None
    team: Annotated[str, AfterValidator(_check_team)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ReviewerSpec:
        if (self.user is None) == (self.team is None):
            raise ValueError("a reviewer is {user: LOGIN} or {team: ORG/SLUG}")
        return self

    @property
    def key(self) -> tuple[str, str]:
        """("user", login) or ("team", "org/slug"), lower-case: GitHub names ignore case."""
        return ("user", self.user.lower()) if self.user else ("team", (self.team or "").lower())


class BranchPatternSpec(_Strict):
    """A custom deployment pattern: `main` or `{branch: "release/*"}` (branches), or
    `{tag: "v*"}` (tags)."""

    branch: Annotated[str, AfterValidator(_check_branch_pattern)] | None = None
    tag: Annotated[str, AfterValidator(_check_branch_pattern)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _text_is_a_branch(cls, data: object) -> object:
        return {"branch": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_of(self) -> BranchPatternSpec:
        if (self.branch is None) == (self.tag is None):
            raise ValueError('a pattern is a branch pattern ("release/*") or {tag: PATTERN}')
        return self

    @property
    def type(self) -> str:
        return "branch" if self.branch is not None else "tag"

    @property
    def name(self) -> str:
        return self.branch if self.branch is not None else (self.tag or "")


def _branches_kind(value: object) -> str:
    return "branch-patterns" if isinstance(value, list | tuple) else "branch-keyword"


DeploymentBranches = Annotated[
    Annotated[Literal["protected", "all"], Tag("branch-keyword")]
    | Annotated[tuple[BranchPatternSpec, ...], Tag("branch-patterns")],
    Discriminator(_branches_kind),
]


class ProtectionSpec(_Strict):
    """An environment's protection: each key given is the whole wanted state of that setting
    (reviewers added by hand are removed); a key left out is left as GitHub has it.

    `wait_timer` is in minutes (0..43200); `deployment_branches` is `protected` (branches with
    branch protection), `all` (no restriction) or a list of branch patterns and `{tag: PATTERN}`.
    """

    reviewers: tuple[ReviewerSpec, ...] | None = Field(default=None, max_length=MAX_REVIEWERS)
    wait_timer: Annotated[int, Field(ge=0, le=MAX_WAIT_TIMER)] | None = None
    prevent_self_review: bool | None = None
    deployment_branches: DeploymentBranches | None = None

    @field_validator(
        "reviewers", "wait_timer", "prevent_self_review", "deployment_branches", mode="before"
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError(
                "null is not a setting: leave the key out to leave GitHub's as it is"
                " (reviewers: [] removes every reviewer)"
            )
        return value


class EnvironmentSpec(_Strict):
    """A logical environment, the GitHub environment it maps to, and its protection (left
    alone when absent)."""

    github: Annotated[
        str, Field(min_length=1, max_length=255), AfterValidator(_check_github_environment)
    ]
    protection: ProtectionSpec | None = None


class OwnerSpec(_Strict):
    """A team that owns secrets; `contact` is where to reach it."""

    contact: Annotated[str, Field(min_length=1)]


class RotationSpec(_Strict):
    """When and how a secret rotates."""

    schedule: (
        Annotated[
            str,
            AfterValidator(_check_cron),
            _schema(r"^\s*\S+(\s+\S+){4}\s*$", description="5-field cron: m h dom mon dow."),
        ]
        | None
    ) = None
    max_age: Duration | None = None
    timezone: Annotated[
        str,
        AfterValidator(_check_timezone),
        _schema(description="An IANA time zone (Europe/Berlin) for schedule."),
    ] = "UTC"
    strategy: Annotated[str, AfterValidator(_check_strategy), _schema(enum=list(STRATEGIES))] = (
        "manual"
    )
    grace: Duration | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_trigger(self) -> RotationSpec:
        if (self.schedule is None) == (self.max_age is None):
            raise ValueError("rotation takes exactly one of schedule or max_age")
        return self


class ProbeSpec(_Strict):
    """A live check of a secret: a preset (`supabase`, `zoho`, `shopify`, `chatwoot`, `ga-mcp`)
    or a custom GET (`url:`, `header:`, `expect:`). Probes send the value only to the preset's
    public host or to the `base_url:`/`url:` given here (README: Probes)."""

    preset: Literal["supabase", "zoho", "shopify", "chatwoot", "ga-mcp"] | None = None
    base_url: ProbeUrl | None = None
    uses: dict[str, SecretName] = Field(default_factory=dict)
    shop_domain: str | None = None
    api_version: str | None = None
    token_url: ProbeUrl | None = None
    url: ProbeUrl | None = None
    header: Annotated[str, AfterValidator(_check_header)] | None = None
    expect: int | tuple[int, ...] | None = None

    @model_validator(mode="after")
    def _keys_of_the_kind(self) -> ProbeSpec:
        if self.preset is None:
            self._custom_keys()
        else:
            self._preset_keys(self.preset)
        return self

    def _custom_keys(self) -> None:
        given = [k for k in ("base_url", "uses", *PROBE_PRESET_KEYS) if k in self.model_fields_set]
        if given:
            raise ValueError(f"{given[0]} belongs to a preset; a custom probe takes url, header")
        if self.url is None or self.header is None:
            raise ValueError(
                "a probe takes preset: (one of " + ", ".join(PROBE_PRESETS) + ") or url: and"
                " header:"
            )
        for status in self.expected_statuses:
            if not 100 <= status <= 599:
                raise ValueError(f"expect: {status} is not an HTTP status")

    def _preset_keys(self, preset: str) -> None:
        for key in ("url", "header", "expect"):
            if key in self.model_fields_set:
                raise ValueError(f"{key} is for a custom probe; preset {preset} does not take it")
        for key, owner in PROBE_PRESET_KEYS.items():
            if key in self.model_fields_set and owner != preset:
                raise ValueError(f"{key} is for preset {owner}, not {preset}")
        unknown = sorted(set(self.uses) - set(PROBE_USES[preset]))
        if unknown:
            takes = ", ".join(PROBE_USES[preset]) or "nothing"
            raise ValueError(f"uses: preset {preset} takes {takes}, not {unknown[0]}")
        missing = [k for k in PROBE_USES_REQUIRED.get(preset, ()) if k not in self.uses]
        if missing:
            raise ValueError(f"preset {preset} needs uses: {{{missing[0]}: SECRET_NAME}}")
        if preset == "shopify":
            self._shopify_keys()
        if preset == "supabase" and self.base_url is not None and "url" in self.uses:
            raise ValueError("preset supabase takes the project URL from base_url or uses.url")

    def _shopify_keys(self) -> None:
        if self.shop_domain is None or not SHOP_DOMAIN.match(self.shop_domain):
            raise ValueError("preset shopify needs shop_domain: <shop>.myshopify.com")
        if self.api_version is not None and not SHOPIFY_API_VERSION.match(self.api_version):
            raise ValueError(
                f"api_version {self.api_version!r} is not a Shopify API version (2025-10)"
            )

    @property
    def kind(self) -> str:
        """The preset's name, or `url` for a custom probe."""
        return self.preset or "url"

    @property
    def expected_statuses(self) -> tuple[int, ...]:
        if self.expect is None:
            return (200,)
        return self.expect if isinstance(self.expect, tuple) else (self.expect,)

    def input_secrets(self) -> dict[str, str]:
        """The secrets a preset reads besides the probed one: `uses:`, and for supabase the
        project URL from SUPABASE_URL unless base_url or uses.url says otherwise."""
        inputs = dict(self.uses)
        if self.preset == "supabase" and self.base_url is None:
            inputs.setdefault("url", "SUPABASE_URL")
        return inputs


class SecretSpec(_Strict):
    """One GitHub secret, its Vault source and its targets.

    `scope: environment` (the default) writes it to the GitHub environments listed under
    `environments`; `scope: repository` writes it once per target repository as an Actions
    repository secret, which every job of the repository sees, so it takes no `environments`
    and its Vault path has no `{environment}`. `scope: organization` writes it once, to
    `github.organization`, with `visibility` (default private) and, for selected, the
    `repositories` that see it. `store: dependabot` writes a Dependabot secret instead of an
    Actions one (repository or organization scope: Dependabot has no environment secrets).
    """

    service: str | None = None
    owner: str
    scope: Literal["environment", "repository", "organization"] = "environment"
    store: Literal["actions", "dependabot"] = "actions"
    visibility: Visibility | None = None  # scope: organization only (see _check_scope)
    vault: Annotated[
        str,
        AfterValidator(_check_vault_ref),
        _schema(
            r"^[^/#\s][^#\s]*(#[^#\s]+)?$",
            description="PATH[#KEY] in the KV v2 mount; PATH may use {environment}.",
        ),
    ]
    # required for environment scope, forbidden for repository scope (see _check_scope)
    environments: tuple[str, ...] = Field(default=(), min_length=1)
    repositories: tuple[RepositoryName, ...] | None = None
    rotation: RotationSpec | None = None
    description: str | None = None
    # one Vault value deliberately sent to every environment (see _check_environment_placeholder)
    shared: bool = False
    probe: ProbeSpec | None = None  # a live check of the value (README: Probes)

    @property
    def repository_level(self) -> bool:
        """Whether this is an Actions repository secret rather than an environment secret."""
        return self.scope == "repository" and self.store == "actions"

    @property
    def beyond_environments(self) -> bool:
        """An organization or Dependabot secret: none of the per-environment features (flags,
        probes, verify) see it."""
        return self.scope == "organization" or self.store == "dependabot"

    @property
    def vault_path_template(self) -> str:
        return self.vault.split("#", 1)[0]

    def vault_key(self, name: str) -> str:
        """The key inside the Vault path: after '#', else the secret's own name."""
        return self.vault.split("#", 1)[1] if "#" in self.vault else name

    def vault_path(self, environment: str) -> str:
        """The resolved path; ReservedVaultPath if it lands in envmatrix's own space (validate
        refuses such a policy; this is the check at every place a path is resolved)."""
        path = self.vault_path_template.replace("{environment}", environment)
        if is_reserved_vault_path(path):
            raise ReservedVaultPath(self.vault_path_template, path)
        return path


class FlagSpec(_Strict):
    """A feature flag that is ready only where every required secret is present and in sync."""

    requires: tuple[str, ...] = Field(min_length=1)
    environments: tuple[str, ...] = Field(min_length=1)
    repositories: tuple[RepositoryName, ...] | None = None
    variable: bool = True
    # a live check that must pass too: supabase (SUPABASE_URL + SUPABASE_SERVICE_KEY, or the
    # supabase probe a required secret declares), or a preset a required secret declares
    probe: Literal["supabase", "zoho", "shopify", "chatwoot", "ga-mcp"] | None = None
    description: str | None = None


class VariableSpec(_Strict):
    """A plain Actions variable (not secret: a URL, a region): a literal `value`, or `vault:
    PATH#KEY` read when planning and applying. Targeting as for secrets: `scope: environment`
    (the default) writes it to each listed environment, `scope: repository` once per repository,
    `scope: organization` once to `github.organization` with `visibility` (and `repositories`
    for selected).
    """

    service: str | None = None
    owner: str
    scope: Literal["environment", "repository", "organization"] = "environment"
    visibility: Visibility | None = None  # scope: organization only
    value: Annotated[str, Field(max_length=48 * 1024)] | None = None
    vault: Annotated[str, AfterValidator(_check_vault_ref)] | None = None
    environments: tuple[str, ...] = Field(default=(), min_length=1)
    repositories: tuple[RepositoryName, ...] | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> VariableSpec:
        if (self.value is None) == (self.vault is None):
            raise ValueError("a variable takes exactly one of value or vault")
        return self

    @property
    def repository_level(self) -> bool:
        """Whether this is an Actions repository variable rather than an environment one."""
        return self.scope == "repository"

    def vault_key(self, name: str) -> str:
        """The key inside the Vault path: after '#', else the variable's own name."""
        assert self.vault is not None
        return self.vault.split("#", 1)[1] if "#" in self.vault else name

    def vault_path(self, environment: str) -> str:
        """The resolved path; ReservedVaultPath if it lands in envmatrix's own space."""
        assert self.vault is not None
        template = self.vault.split("#", 1)[0]
        path = template.replace("{environment}", environment)
        if is_reserved_vault_path(path):
            raise ReservedVaultPath(template, path)
        return path


class AuditSpec(_Strict):
    """Where the audit trail goes: a SQLite file (default) or PostgreSQL (DSN from an env var)."""

    sqlite: str | None = None
    postgres: str | None = None  # name of the environment variable holding the DSN

    @model_validator(mode="after")
    def _one_sink(self) -> AuditSpec:
        if self.sqlite is not None and self.postgres is not None:
            raise ValueError("audit takes one of sqlite or postgres")
        return self


class SlackChannel(_Strict):
    """A Slack-compatible incoming webhook; its URL is a secret, so only its variable is named."""

    webhook_url_env: LogicalName


class WebhookChannel(_Strict):
    """A generic JSON webhook (POST); its URL comes from the named variable."""

    url_env: LogicalName


class NotificationChannel(_Strict):
    """One `notifications:` entry: exactly one of `slack:` or `webhook:`."""

    slack: SlackChannel | None = None
    webhook: WebhookChannel | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> NotificationChannel:
        if (self.slack is None) == (self.webhook is None):
            raise ValueError("a notification channel is one of slack: or webhook:")
        return self

    @property
    def url_env(self) -> str:
        return self.slack.webhook_url_env if self.slack is not None else self.webhook.url_env  # type: ignore[union-attr]

    @property
    def kind(self) -> str:
        return "slack" if self.slack is not None else "webhook"


class Policy(_Strict):
    """A whole policy file."""

    version: Literal[1]
    # the policy's identity (sync-state ownership, calendar UIDs); load_policy fills in the
    # file's stem when it is absent (see `name_from_file`)
    name: Annotated[str, AfterValidator(_check_policy_name)] | None = None
    vault: VaultSettings = VaultSettings()
    github: GitHubSettings = GitHubSettings()
    environments: dict[LogicalName, EnvironmentSpec] = Field(min_length=1)
    owners: dict[LogicalName, OwnerSpec] = Field(default_factory=dict)
    secrets: dict[SecretName, SecretSpec] = Field(default_factory=dict)
    flags: dict[SecretName, FlagSpec] = Field(default_factory=dict)
    variables: dict[SecretName, VariableSpec] = Field(default_factory=dict)
    audit: AuditSpec | None = None
    notifications: tuple[NotificationChannel, ...] = ()

    @field_validator("version", mode="before")
    @classmethod
    def _integer_version(cls, value: object) -> object:
        # Literal[1] lets `true` and `1.0` through (both == 1); the format says `version: 1`
        if type(value) is not int:
            raise ValueError("unsupported version; this envmatrix reads version: 1")
        return value

    @field_validator("environments")
    @classmethod
    def _distinct_github_names(cls, envs: dict[str, EnvironmentSpec]) -> dict[str, EnvironmentSpec]:
        seen: dict[str, str] = {}
        for name, spec in envs.items():
            if spec.github.lower() in seen:
                raise ValueError(
                    f"{name} and {seen[spec.github.lower()]} map to the same GitHub environment"
                )
            seen[spec.github.lower()] = name
        return envs

    _name_from_file: bool = PrivateAttr(default=False)

    @property
    def name_from_file(self) -> bool:
        """Whether `name` is the file's stem because the policy has no `name:` of its own."""
        return self._name_from_file

    @property
    def identity(self) -> str:
        """The name this policy's sync-state records and calendar UIDs carry ("" when a policy
        was built without load_policy and has no name)."""
        return self.name or ""

    def repositories_for(self, secret: SecretSpec | FlagSpec | VariableSpec) -> tuple[str, ...]:
        """A secret's or flag's target repositories: its own, else github.repositories (for
        `scope: organization`: the selected repositories, none for all or private)."""
        if getattr(secret, "scope", None) == "organization":
            return secret.repositories or ()
        return secret.repositories if secret.repositories is not None else self.github.repositories

    def github_environment(self, logical: str) -> str:
        return self.environments[logical].github


class _Reference(Exception):
    """A cross-reference problem found after the models validated."""

    def __init__(self, loc: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.loc, self.message = tuple(loc), message


def _check_references(policy: Policy) -> Iterator[_Reference]:
    """Everything that needs more than one part of the policy to check: every problem."""
    yield from _check_repository_spellings(policy)
    yield from _check_organization_scopes(policy)
    for name, secret in policy.secrets.items():
        yield from _check_secret_references(policy, name, secret)
    for name, flag in policy.flags.items():
        yield from _check_flag_references(policy, name, flag)
    yield from _check_rotation_groups(policy)
    for name, variable in policy.variables.items():
        yield from _raised(_check_variable_references, policy, name, variable)
    yield from _check_strategy_options(policy)
    yield from _check_github_limits(policy)
    for name, environment in policy.environments.items():
        if environment.protection is not None:
            yield from _check_protection(
                ("environments", name, "protection"), environment.protection
            )


def _check_protection(loc: tuple[str, ...], protection: ProtectionSpec) -> Iterator[_Reference]:
    """Each reviewer and pattern once; prevent_self_review only with someone to review."""
    reviewers = protection.reviewers or ()
    yield from _check_listed_once((*loc, "reviewers"), [":".join(r.key) for r in reviewers])
    patterns = protection.deployment_branches
    if isinstance(patterns, tuple):
        if not patterns:
            yield _Reference(
                (*loc, "deployment_branches"),
                "an empty pattern list lets no branch deploy; give patterns, protected or all",
            )
        yield from _check_listed_once(
            (*loc, "deployment_branches"), [f"{p.type} {p.name}" for p in patterns]
        )
    if protection.prevent_self_review and protection.reviewers == ():
        yield _Reference(
            (*loc, "prevent_self_review"),
            "prevent_self_review needs reviewers: with reviewers: [] nobody reviews",
        )


def _check_strategy_options(policy: Policy) -> Iterator[_Reference]:
    """Each rotation's options against its strategy's model (envmatrix/strategy_registry.py)."""
    from envmatrix.strategy_registry import check_options

    for name, secret in policy.secrets.items():
        if secret.rotation is None:
            continue
        try:
            check_options(secret.rotation.strategy, secret.rotation.options)
        except ValidationError as exc:
            # unknown keys first: a misspelt option explains the "missing" one
            errors = sorted(
                exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden"
            )
            known = list(STRATEGIES[secret.rotation.strategy].options.model_fields)
            for error in errors:
                loc = ("secrets", name, "rotation", "options", *_model_loc(error["loc"]))
                yield _Reference(loc, _error_message(error, loc, known))


def _raised(check: Callable[..., None], *args: Any) -> Iterator[_Reference]:
    """A check that raises its first problem, as a generator of that problem."""
    try:
        check(*args)
    except _Reference as ref:
        yield ref


def _check_github_limits(policy: Policy) -> Iterator[_Reference]:
    """A policy that alone asks for more than GitHub holds in one place can never apply (what
    GitHub already holds there is counted by plan, which reads it)."""
    places = Counter(_limit_places(policy))
    for (section, repo, env), count in sorted(places.items()):
        limits = SECRETS_PER_SCOPE if section == "secrets" else VARIABLES_PER_SCOPE
        limit = limits["environment" if env else "repository"]
        if count > limit:
            where = f"environment {env} of {repo}" if env else f"repository {repo}"
            noun = "secrets" if section == "secrets" else "flag variables"
            yield _Reference(
                (section,),
                f"{count} {noun} for {where}; GitHub holds at most {limit} per"
                f" {'environment' if env else 'repository'}",
            )


def _limit_places(policy: Policy) -> Iterator[tuple[str, str, str]]:
    """(section, repository, GitHub environment or "") once per secret or flag variable placed
    there; undeclared environments are a problem of their own, reported apart."""
    declared = policy.environments
    for secret in policy.secrets.values():
        if secret.beyond_environments:  # another store or the organization: counted apart
            continue
        for repo in policy.repositories_for(secret):
            for env in secret.environments or ("",):
                if not env or env in declared:
                    yield "secrets", repo.lower(), policy.github_environment(env) if env else ""
    for flag in policy.flags.values():
        for repo in policy.repositories_for(flag):
            for env in flag.environments if flag.variable else ():
                if env in declared:
                    yield "flags", repo.lower(), policy.github_environment(env)


def _check_listed_once(
    loc: Sequence[str | int], items: Sequence[str], note: str = ""
) -> Iterator[_Reference]:
    """A list entry given twice would plan (and write) the same thing twice."""
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.lower() in seen:
            yield _Reference((*loc, i), f"{item} is listed twice{note}")
        seen.add(item.lower())


def _check_repository_spellings(policy: Policy) -> Iterator[_Reference]:
    """GitHub repository names ignore case: one repository spelt two ways would be two targets
    (each reporting the other's secrets as orphans), so every list and spelling must agree."""
    lists: list[tuple[tuple[str | int, ...], tuple[str, ...]]] = [
        (("github", "repositories"), policy.github.repositories)
    ]
    sections: tuple[tuple[str, Mapping[str, SecretSpec | FlagSpec | VariableSpec]], ...] = (
        ("secrets", policy.secrets),
        ("flags", policy.flags),
        ("variables", policy.variables),
    )
    for kind, specs in sections:
        lists += [
            ((kind, name, "repositories"), spec.repositories)
            for name, spec in specs.items()
            if spec.repositories is not None
        ]
    first: dict[str, tuple[str, tuple[str | int, ...]]] = {}
    for loc, repositories in lists:
        yield from _check_listed_once(loc, repositories, " (GitHub names ignore case)")
        for i, repository in enumerate(repositories):
            spelling, where = first.setdefault(repository.lower(), (repository, loc))
            if spelling != repository:
                yield _Reference(
                    (*loc, i),
                    f"{repository} is {spelling} ({_dotted(where)}) spelt another way;"
                    " GitHub names ignore case: spell it one way",
                )


def _check_rotation_groups(policy: Policy) -> Iterator[_Reference]:
    """Secrets sharing a resolved Vault path rotate together, so they declare one rotation."""
    first: dict[str, tuple[str, RotationSpec]] = {}
    for name, secret in policy.secrets.items():
        rotation = secret.rotation
        if rotation is None:
            continue
        # a scope: repository secret has no environments and one path (no {environment})
        for env in secret.environments or ("",):
            path = secret.vault_path(env)
            other, spec = first.setdefault(path, (name, rotation))
            if spec != rotation:
                yield _Reference(
                    ("secrets", name, "rotation"),
                    f"{name} shares Vault path {path} with {other}, which rotates differently;"
                    " secrets that share a path rotate together: give them the same rotation:"
                    " or separate paths",
                )
                break  # one problem per secret, not one per environment


def _check_secret_references(policy: Policy, name: str, secret: SecretSpec) -> Iterator[_Reference]:
    loc = ("secrets", name)
    if secret.owner not in policy.owners:
        yield _Reference(
            (*loc, "owner"),
            f"owner {secret.owner!r} is not declared under owners"
            + _suggestion(secret.owner, policy.owners),
        )
    yield from _check_scope(name, secret)
    yield from _check_resolved_paths(name, secret)
    yield from _undeclared_environments(policy, (*loc, "environments"), secret.environments)
    yield from _raised(_check_environment_placeholder, name, secret)
    if len(set(secret.environments)) != len(secret.environments):
        yield _Reference((*loc, "environments"), "an environment is listed twice")
    if not policy.repositories_for(secret) and secret.scope != "organization":
        yield _Reference(
            (*loc, "repositories"), "no repositories: set github.repositories or repositories here"
        )
    if secret.probe is not None:
        yield from _raised(_check_probe_inputs, policy, name, secret, secret.probe)


def _check_probe_inputs(policy: Policy, name: str, secret: SecretSpec, probe: ProbeSpec) -> None:
    """Each secret a probe uses is declared wherever the probed secret is (same environment)."""
    for role, used in probe.input_secrets().items():
        loc = (
            ("secrets", name, "probe", "uses", role)
            if role in probe.uses
            else ("secrets", name, "probe")
        )
        spec = policy.secrets.get(used)
        if spec is None:
            raise _Reference(
                loc,
                f"preset {probe.preset} reads {role} from {used}, which is not"
                " declared under secrets (name it in uses:, or set base_url:)",
            )
        missing = [e for e in secret.environments if e not in spec.environments]
        if missing or spec.repository_level != secret.repository_level:
            where = ", ".join(missing) or "the same scope"
            raise _Reference(
                loc,
                f"{used} ({role}) is not declared for {where}; a probe reads"
                " its inputs from the probed secret's environment",
            )


def _undeclared_environments(
    policy: Policy, loc: tuple[str, ...], environments: Sequence[str]
) -> Iterator[_Reference]:
    for i, env in enumerate(environments):
        if env not in policy.environments:
            yield _Reference(
                (*loc, i),
                f"environment {env!r} is not declared under environments"
                + _suggestion(env, policy.environments),
            )


def _suggestion(name: str, known: Iterable[str]) -> str:
    """`; did you mean X?` for the closest of `known`, else ``."""
    from envmatrix.pipeline.desired import did_you_mean  # it imports this module

    return did_you_mean(name, known)


def _check_resolved_paths(name: str, secret: SecretSpec) -> Iterator[_Reference]:
    """Every path the secret resolves to (one per environment) stays out of envmatrix/."""
    for env in secret.environments or ("",):
        try:
            secret.vault_path(env)
        except ReservedVaultPath as exc:
            where = f" in environment {env}" if env else ""
            yield _Reference(
                ("secrets", name, "vault"),
                f"vault reference {secret.vault!r} resolves to {exc.path}{where}:"
                f" {RESERVED_VAULT_PREFIX} is envmatrix's own",
            )
            return


def _check_scope(name: str, secret: SecretSpec) -> Iterator[_Reference]:
    """Environment secrets list their environments; repository secrets have none to list."""
    loc = ("secrets", name)
    given = "environments" in secret.model_fields_set
    if secret.store == "dependabot" and secret.scope == "environment":
        yield _Reference(
            (*loc, "store"),
            "Dependabot has no environment secrets: a store: dependabot secret takes"
            " scope: repository or scope: organization",
        )
        return
    if secret.scope == "organization" or secret.store == "dependabot":
        yield from _check_wide_scope("secrets", name, secret, given)
        return
    if secret.visibility is not None:
        yield _Reference(
            (*loc, "visibility"), "visibility is for scope: organization only (who sees it)"
        )
    if not secret.repository_level:
        if not given:
            yield _Reference((*loc, "environments"), "required key is missing")
        return
    if given:
        yield _Reference(
            (*loc, "environments"),
            "a scope: repository secret is seen by every environment; remove environments:",
        )
    if "{environment}" in secret.vault:
        yield _Reference(
            (*loc, "vault"),
            "a scope: repository secret has one value for every environment;"
            " its vault path cannot use {environment}",
        )


def _check_wide_scope(
    section: str, name: str, spec: SecretSpec | VariableSpec, given: bool
) -> Iterator[_Reference]:
    """A scope: repository Dependabot secret, or a scope: organization secret or variable: one
    value, no environments; organization ones have a visibility and, for selected, the
    repositories of the organization that see them."""
    loc = (section, name)
    noun = "secret" if section == "secrets" else "variable"
    if given:
        yield _Reference(
            (*loc, "environments"),
            f"a scope: {spec.scope} {noun} is seen by every environment; remove environments:",
        )
    if spec.vault is not None and "{environment}" in spec.vault:
        yield _Reference(
            (*loc, "vault"),
            f"a scope: {spec.scope} {noun} has one value for every environment;"
            " its vault path cannot use {environment}",
        )
    if spec.scope != "organization":
        if spec.visibility is not None:
            yield _Reference(
                (*loc, "visibility"), "visibility is for scope: organization only (who sees it)"
            )
        return
    yield from _check_selected(loc, spec)


def _check_selected(loc: tuple[str, str], spec: SecretSpec | VariableSpec) -> Iterator[_Reference]:
    visibility = spec.visibility or DEFAULT_VISIBILITY
    if visibility == "selected" and not spec.repositories:
        yield _Reference(
            (*loc, "repositories"),
            "visibility: selected needs repositories: (the repositories that see it)",
        )
    if visibility != "selected" and spec.repositories is not None:
        yield _Reference(
            (*loc, "repositories"),
            f"repositories: names the selected repositories; with visibility: {visibility}"
            " every repository of the organization that it allows sees it: remove repositories:"
            " or say visibility: selected",
        )


def _check_organization_scopes(policy: Policy) -> Iterator[_Reference]:
    """scope: organization needs github.organization; selected repositories belong to it."""
    org = policy.github.organization
    sections: tuple[tuple[str, Mapping[str, SecretSpec | VariableSpec]], ...] = (
        ("secrets", policy.secrets),
        ("variables", policy.variables),
    )
    for section, specs in sections:
        for name, spec in specs.items():
            if spec.scope != "organization":
                continue
            if org is None:
                yield _Reference(
                    (section, name, "scope"),
                    "scope: organization needs github.organization (the organization that"
                    " holds it)",
                )
                continue
            for i, repository in enumerate(spec.repositories or ()):
                if repository.split("/", 1)[0].lower() != org.lower():
                    yield _Reference(
                        (section, name, "repositories", i),
                        f"{repository} is not a repository of {org} (github.organization);"
                        " an organization secret or variable reaches only its own repositories",
                    )


def _check_environment_placeholder(name: str, secret: SecretSpec) -> None:
    """A secret for several environments reads one Vault value per environment unless it says
    `shared: true`: without {environment} in its path, production would get staging's value."""
    loc = ("secrets", name)
    per_environment = "{environment}" in secret.vault_path_template
    if secret.shared and per_environment:
        raise _Reference(
            (*loc, "shared"),
            f"{name} says shared: true but its vault path uses {{environment}}, so each"
            " environment gets its own value; remove shared: or the placeholder",
        )
    if len(secret.environments) > 1 and not per_environment and not secret.shared:
        raise _Reference(
            (*loc, "vault"),
            f"{name} is declared for {', '.join(secret.environments)} but its vault path"
            f" {secret.vault_path_template} has no {{environment}}: every environment would get"
            " the same value; put {environment} in the path, or say shared: true if that is meant",
        )


def _check_flag_references(policy: Policy, name: str, flag: FlagSpec) -> Iterator[_Reference]:
    loc = ("flags", name)
    if name in policy.secrets:
        yield _Reference(loc, f"flag {name} has the name of a secret")
    yield from _check_listed_once((*loc, "environments"), flag.environments)
    yield from _check_listed_once((*loc, "requires"), flag.requires)
    yield from _undeclared_environments(policy, (*loc, "environments"), flag.environments)
    for i, required in enumerate(flag.requires):
        yield from _check_requirement(policy, loc, i, flag, required)
    if not policy.repositories_for(flag):
        yield _Reference((*loc, "repositories"), "no repositories for this flag")
    yield from _raised(_check_flag_probe, policy, name, flag)


def _check_requirement(
    policy: Policy, loc: tuple[str, str], i: int, flag: FlagSpec, required: str
) -> Iterator[_Reference]:
    """One secret a flag requires: declared, an environment secret, in the flag's environments."""
    secret = policy.secrets.get(required)
    if secret is None:
        yield _Reference(
            (*loc, "requires", i),
            f"{required!r} is not declared under secrets" + _suggestion(required, policy.secrets),
        )
        return
    if secret.repository_level or secret.beyond_environments:
        what = "Dependabot" if secret.store == "dependabot" else f"scope: {secret.scope}"
        yield _Reference(
            (*loc, "requires", i),
            f"{required} is a {what} secret; a flag can require only environment"
            " secrets (flags are set per environment)",
        )
    extra = [e for e in flag.environments if e not in secret.environments]
    if extra and not (secret.repository_level or secret.beyond_environments):
        yield _Reference(
            (*loc, "environments"),
            f"{required} is not required in {', '.join(extra)}; a flag's environments must be"
            f" a subset of its secrets' environments",
        )


def _check_variable_references(policy: Policy, name: str, variable: VariableSpec) -> None:
    loc = ("variables", name)
    if variable.owner not in policy.owners:
        raise _Reference((*loc, "owner"), f"owner {variable.owner!r} is not declared under owners")
    if name in policy.flags:
        raise _Reference(loc, f"variable {name} has the name of a flag (flags are variables too)")
    given = "environments" in variable.model_fields_set
    if variable.scope == "organization":
        for ref in _check_wide_scope("variables", name, variable, given):
            raise ref
        _check_variable_places(policy, name, variable)
        return
    if variable.visibility is not None:
        raise _Reference(
            (*loc, "visibility"), "visibility is for scope: organization only (who sees it)"
        )
    if not variable.repository_level and not given:
        raise _Reference((*loc, "environments"), "required key is missing")
    if variable.repository_level and given:
        raise _Reference(
            (*loc, "environments"),
            "a scope: repository variable is seen by every environment; remove environments:",
        )
    if (
        variable.vault is not None
        and variable.repository_level
        and "{environment}" in variable.vault
    ):
        raise _Reference(
            (*loc, "vault"),
            "a scope: repository variable has one value; its vault path cannot use {environment}",
        )
    _check_variable_places(policy, name, variable)
    if not policy.repositories_for(variable):
        raise _Reference(
            (*loc, "repositories"), "no repositories: set github.repositories or repositories here"
        )


def _check_variable_places(policy: Policy, name: str, variable: VariableSpec) -> None:
    loc = ("variables", name)
    for ref in _check_listed_once((*loc, "environments"), variable.environments):
        raise ref
    for i, env in enumerate(variable.environments):
        if env not in policy.environments:
            raise _Reference(
                (*loc, "environments", i), f"environment {env!r} is not declared under environments"
            )
    for env in variable.environments or ("",):
        if variable.vault is None:
            break
        try:
            variable.vault_path(env)
        except ReservedVaultPath as exc:
            raise _Reference(
                (*loc, "vault"),
                f"vault reference {variable.vault!r} resolves to {exc.path}:"
                f" {RESERVED_VAULT_PREFIX} is envmatrix's own",
            ) from None


def _check_flag_probe(policy: Policy, name: str, flag: FlagSpec) -> None:
    """A flag's probe other than the classic supabase one is a probe a required secret declares."""
    loc = ("flags", name)
    if flag.probe is not None and flag.probe != "supabase":
        declared = [r for r in flag.requires if _preset_of(policy, r) == flag.probe]
        if not declared:
            raise _Reference(
                (*loc, "probe"),
                f"probe {flag.probe}: none of the secrets this flag requires declares"
                f" probe: {{preset: {flag.probe}}}",
            )


def _preset_of(policy: Policy, name: str) -> str | None:
    probe = policy.secrets[name].probe
    return probe.preset if probe is not None else None


def load_policy(path: str | Path) -> Policy:
    """Read, parse and validate a policy file. Raises the first problem as a PolicyError (an
    unknown key before what it explains), saying how many more `envmatrix validate` lists."""
    check = check_policy(path)
    if check.policy is None or check.problems:
        raise check.first_problem()
    return check.policy


@dataclass(frozen=True)
class PolicyCheck:
    """Every problem of one policy file (`envmatrix validate`).

    `problems` are in file order (by line; problems of the whole file first); `policy` is the
    validated policy when there are none. A file that cannot be read or parsed has one problem.
    """

    file: str
    policy: Policy | None
    problems: tuple[PolicyError, ...]
    ranked: tuple[PolicyError, ...] = ()  # the same problems, the most telling first

    @property
    def valid(self) -> bool:
        return self.policy is not None and not self.problems

    def first_problem(self) -> PolicyError:
        """The problem to report alone, with `(N more: run envmatrix validate)` when more."""
        first = (self.ranked or self.problems)[0]
        more = len(self.problems) - 1
        if not more:
            return first
        return PolicyError(
            first.file,
            first.line,
            first.key_path,
            f"{first.message} ({more} more: run envmatrix validate)",
        )

    def to_json(self) -> dict[str, Any]:
        """`{"valid": bool, "problems": [{"file", "line", "key", "message"}]}`; line may be null."""
        return {
            "valid": self.valid,
            "problems": [
                {"file": p.file, "line": p.line, "key": p.key_path, "message": p.message}
                for p in self.problems
            ],
        }


def check_policy(path: str | Path) -> PolicyCheck:
    """Read, parse and validate a policy file, collecting every problem instead of stopping at
    the first: each model error, and each cross-reference problem (of the secrets and flags that
    are valid themselves). Never raises for a bad file: a problem is a PolicyError in the result."""
    file = str(path)
    try:
        tree = _parse_yaml(file, _read_text(file))
        policy, ranked = _validated(file, tree)
    except PolicyError as exc:
        return PolicyCheck(file, None, (exc,), (exc,))
    except RecursionError:  # ruamel and pydantic recurse per level: a policy is a few levels deep
        deep = PolicyError(file, None, "", "nested too deeply to be a policy")
        return PolicyCheck(file, None, (deep,), (deep,))
    ordered = [p for _, p in sorted(ranked, key=lambda rp: rp[0])]
    by_line = sorted(ordered, key=lambda p: p.line or 0)
    valid = None if ordered or policy is None else _named(policy, file)
    return PolicyCheck(file, valid, tuple(by_line), tuple(ordered))


_UNKNOWN_KEY, _MODEL, _REFERENCE = 0, 1, 2  # which problem load_policy reports alone


def _validated(
    file: str, tree: CommentedMap
) -> tuple[Policy | None, list[tuple[int, PolicyError]]]:
    data = _plain(tree)
    problems: list[tuple[int, PolicyError]] = []
    references: Iterable[_Reference] = ()
    try:
        policy: Policy | None = Policy.model_validate(data)
    except ValidationError as exc:
        problems += _model_problems(file, tree, exc)
        policy, references = _salvaged(data, exc)
    if policy is not None:
        problems += [
            (_REFERENCE, PolicyError(file, _line_of(tree, ref.loc), _dotted(ref.loc), ref.message))
            for ref in (*references, *_check_references(policy))
        ]
    return policy, problems


def _model_problems(
    file: str, tree: CommentedMap, exc: ValidationError
) -> list[tuple[int, PolicyError]]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = _model_loc(error["loc"])
        rank = _UNKNOWN_KEY if error["type"] == "extra_forbidden" else _MODEL
        known = _fields_at(loc[:-1]) if rank == _UNKNOWN_KEY else []
        message = _error_message(error, loc, known)
        problems.append((rank, PolicyError(file, _line_of(tree, loc), _dotted(loc), message)))
    return problems


def _salvaged(data: Any, exc: ValidationError) -> tuple[Policy | None, list[_Reference]]:
    """What is left to check references on: the policy without the secrets and flags that failed
    validation (and the flags requiring those), unknown keys under github: and a bad vault: or
    audit:, plus the names the left-out secrets and flags refer to. (None, []) when a problem
    lies elsewhere: in environments:, owners: or an unknown top-level key (`ownres:`), a
    reference check would blame names that are only misspelt."""
    bad: dict[str, set[str]] = {"secrets": set(), "flags": set()}
    data = dict(data)
    for error in exc.errors(include_url=False):
        loc = _model_loc(error["loc"])
        if len(loc) >= 2 and loc[0] in bad and isinstance(loc[1], str):
            bad[str(loc[0])].add(loc[1])
        elif loc and loc[0] in ("vault", "audit"):  # neither takes part in a reference
            data.pop(loc[0], None)
        elif error["type"] == "extra_forbidden" and len(loc) == 2 and loc[0] == "github":
            data["github"] = {k: v for k, v in data["github"].items() if k != loc[1]}
        else:
            return None, []
    secrets = {k: v for k, v in data.get("secrets", {}).items() if k not in bad["secrets"]}
    left_out = {k: v for k, v in data.get("flags", {}).items() if k in bad["flags"]}
    for name, flag in data.get("flags", {}).items():
        if set(_strings(flag, "requires")) & bad["secrets"]:
            left_out[name] = flag
    flags = {k: v for k, v in data.get("flags", {}).items() if k not in left_out}
    try:
        policy = Policy.model_validate({**data, "secrets": secrets, "flags": flags})
    except ValidationError:
        return None, []
    left_secrets = {k: v for k, v in data.get("secrets", {}).items() if k in bad["secrets"]}
    return policy, list(_left_out_references(policy, left_secrets, left_out))


def _left_out_references(
    policy: Policy, secrets: Mapping[str, Any], flags: Mapping[str, Any]
) -> Iterator[_Reference]:
    """The names the secrets and flags left out of the salvaged policy refer to, as written."""
    for name, secret in secrets.items():
        owner = secret.get("owner") if isinstance(secret, Mapping) else None
        if isinstance(owner, str) and owner not in policy.owners:
            yield _Reference(
                ("secrets", name, "owner"),
                f"owner {owner!r} is not declared under owners" + _suggestion(owner, policy.owners),
            )
        listed = tuple(_strings(secret, "environments"))
        yield from _undeclared_environments(policy, ("secrets", name, "environments"), listed)
    for name, flag in flags.items():
        listed = tuple(_strings(flag, "environments"))
        yield from _undeclared_environments(policy, ("flags", name, "environments"), listed)
        for i, required in enumerate(_strings(flag, "requires")):
            if required not in policy.secrets and required not in secrets:
                yield _Reference(
                    ("flags", name, "requires", i),
                    f"{required!r} is not declared under secrets"
                    + _suggestion(required, [*policy.secrets, *secrets]),
                )


def _strings(entry: Any, key: str) -> list[str]:
    """`entry[key]` when it is a list of strings as written (else [])."""
    value = entry.get(key) if isinstance(entry, Mapping) else None
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return []


def _fields_at(loc: Sequence[str | int]) -> list[str]:
    """The keys the model accepts at `loc` (for did-you-mean on an unknown key), else []."""
    candidates: list[Any] = [Policy]
    for part in loc:
        candidates = [step for c in candidates for step in _children(c, part)]
    models = [option for c in candidates for option in _alternatives(c) if _is_model(option)]
    return [name for model in models for name in model.model_fields]


def _children(annotation: Any, part: str | int) -> list[Any]:
    """What `annotation` holds at `part`: a model's field, a dict's value, a tuple's item."""
    found: list[Any] = []
    for option in _alternatives(annotation):
        origin, args = get_origin(option), get_args(option)
        if _is_model(option) and isinstance(part, str) and part in option.model_fields:
            found.append(option.model_fields[part].annotation)
        elif origin is dict and isinstance(part, str) and len(args) == 2:
            found.append(args[1])
        elif origin is tuple and isinstance(part, int) and args:
            found.append(args[0])
    return found


def _alternatives(annotation: Any) -> list[Any]:
    """`X | None` -> [X, None]; `Annotated[X, ...]` -> [X]."""
    if get_origin(annotation) is Annotated:
        return _alternatives(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return [a for arg in get_args(annotation) for a in _alternatives(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _named(policy: Policy, file: str) -> Policy:
    """The policy with its `name:`, else the file's stem made into a safe path segment."""
    if policy.name is not None:
        return policy
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(file).stem).strip("-_.")[:64] or "policy"
    named = policy.model_copy(update={"name": stem})
    named._name_from_file = True
    return named


def name_warning(policy: Policy) -> str | None:
    """The warning for a policy named after its file (None when it has `name:`)."""
    if not policy.name_from_file:
        return None
    return (
        f"the policy has no name:, so it is named {policy.identity!r} after its file; two"
        " unnamed policies with the same file name that target one environment would manage"
        " (and prune) each other's secrets: set name:"
    )


def _read_text(file: str) -> str:
    try:
        data = read_regular_file(file, MAX_POLICY_BYTES)
    except FileNotFoundError:
        raise PolicyError(
            file, None, "", "no such policy file (set --policy or ENVMATRIX_POLICY)"
        ) from None
    except OSError as exc:
        raise PolicyError(file, None, "", f"cannot read: {exc.strerror}") from None
    except UnsafeInput as exc:
        raise PolicyError(file, None, "", f"cannot read: {exc}; not a policy") from None
    if b"\x00" in data:
        raise PolicyError(file, None, "", "binary data (NUL bytes); a policy is YAML text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PolicyError(file, line, "", "not UTF-8 text") from None


def _parse_yaml(file: str, text: str) -> CommentedMap:
    try:
        tree = load_yaml(text, max_nodes=MAX_POLICY_NODES, typ="rt", allow_duplicate_keys=False)
    except UnsafeInput as exc:
        raise PolicyError(file, None, "", f"refused: {exc}") from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = (exc.problem or exc.context or "invalid YAML").strip().splitlines()[0]
        # ruamel quotes both values of a duplicate key; keep the key only
        problem = problem.split(" with value ", 1)[0]
        raise PolicyError(file, line, "", f"invalid YAML: {problem}") from None
    except YAMLError as exc:
        raise PolicyError(file, None, "", f"invalid YAML: {str(exc).splitlines()[0]}") from None
    except ValueError:  # int() refuses over sys.get_int_max_str_digits() digits; bad dates
        raise PolicyError(file, None, "", "invalid YAML: a number or date cannot be read") from None
    if tree is None:
        raise PolicyError(file, 1, "", "the policy is empty; it needs at least version: 1")
    if not isinstance(tree, CommentedMap):
        raise PolicyError(file, 1, "", "the policy must be a mapping (version:, secrets:, ...)")
    return tree


def _plain(node: Any) -> Any:
    """ruamel's commented containers -> plain dicts/tuples, for pydantic's strict mode."""
    if isinstance(node, Mapping):
        return {_plain_key(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return tuple(_plain(v) for v in node)
    if isinstance(node, str):
        return str(node)
    return node


def _plain_key(key: Any) -> Any:
    return str(key) if isinstance(key, str) else key


def _model_loc(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """Drop pydantic's synthetic loc parts ('[key]', union branch names)."""
    return tuple(
        p
        for p in loc
        if p != "[key]" and not str(p).startswith("function-") and p not in _UNION_TAGS
    )


def _error_message(
    error: Mapping[str, Any], loc: Sequence[str | int], known: Iterable[str] = ()
) -> str:
    """One line for one pydantic error; an unknown key names the closest of `known`."""
    kind = error["type"]
    if kind == "extra_forbidden":
        if not loc:
            return "unknown key"
        return f"unknown key {loc[-1]!r}" + _suggestion(str(loc[-1]), known)
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error" and loc and loc[-1] == "version":
        return "unsupported version; this envmatrix reads version: 1"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _dotted(loc: Sequence[str | int]) -> str:
    # a key holding a newline or other control character is shown quoted: messages are one line
    parts = (p if isinstance(p, int) or p.isprintable() else repr(p) for p in loc)
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in parts).replace(".[", "[")


def _line_of(tree: Any, loc: Sequence[str | int]) -> int | None:
    """The 1-based line of the deepest node of `loc` that exists in the YAML tree."""
    node, line = tree, 1
    for part in loc:
        position = _child_position(node, part)
        if position is None:
            break
        line = position + 1
        node = node[part]
    return line


def _child_position(node: Any, part: str | int) -> int | None:
    if isinstance(node, CommentedMap) and part in node:
        return int(node.lc.key(part)[0])
    if isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
        return int(node.lc.item(part)[0])
    return None
