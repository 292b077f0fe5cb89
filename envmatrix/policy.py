"""The policy file: pydantic models and `load_policy`, which turns every problem into a PolicyError.

A policy names owners, GitHub environments, secrets (where each lives in Vault, which environments
and repositories need it, how it rotates) and feature flags gated on secrets. The format is
version 1 of the contract (README: Policy file). Validation is strict: unknown keys, duplicate
keys, bad cron expressions and dangling references are errors that name the file, the line and
the key path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from envmatrix.errors import PolicyError, ReservedVaultPath, UnsafeInput
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


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


def _check_strategy(name: str) -> str:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; one of {', '.join(STRATEGIES)}")
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


ProbeUrl = Annotated[str, AfterValidator(_check_probe_url)]
SecretName = Annotated[str, AfterValidator(_check_secret_name)]
RepositoryName = Annotated[str, AfterValidator(_check_repository)]
LogicalName = Annotated[str, AfterValidator(_check_logical_name)]
Duration = Annotated[str, AfterValidator(_check_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class VaultSettings(_Strict):
    """Where the secrets live: a KV version 2 mount."""

    mount: Annotated[str, AfterValidator(_check_logical_name)] = "secret"


class GitHubSettings(_Strict):
    """Default target repositories and pruning."""

    repositories: tuple[RepositoryName, ...] = ()
    prune: bool = False


class EnvironmentSpec(_Strict):
    """A logical environment and the GitHub environment it maps to."""

    github: Annotated[
        str, Field(min_length=1, max_length=255), AfterValidator(_check_github_environment)
    ]


class OwnerSpec(_Strict):
    """A team that owns secrets; `contact` is where to reach it."""

    contact: Annotated[str, Field(min_length=1)]


class RotationSpec(_Strict):
    """When and how a secret rotates."""

    schedule: Annotated[str, AfterValidator(_check_cron)] | None = None
    max_age: Duration | None = None
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "UTC"
    strategy: Annotated[str, AfterValidator(_check_strategy)] = "manual"
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
    and its Vault path has no `{environment}`.
    """

    service: str | None = None
    owner: str
    scope: Literal["environment", "repository"] = "environment"
    vault: Annotated[str, AfterValidator(_check_vault_ref)]
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
        return self.scope == "repository"

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


class AuditSpec(_Strict):
    """Where the audit trail goes: a SQLite file (default) or PostgreSQL (DSN from an env var)."""

    sqlite: str | None = None
    postgres: str | None = None  # name of the environment variable holding the DSN

    @model_validator(mode="after")
    def _one_sink(self) -> AuditSpec:
        if self.sqlite is not None and self.postgres is not None:
            raise ValueError("audit takes one of sqlite or postgres")
        return self


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
    audit: AuditSpec | None = None

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

    def repositories_for(self, secret: SecretSpec | FlagSpec) -> tuple[str, ...]:
        """A secret's or flag's target repositories: its own, else github.repositories."""
        return secret.repositories if secret.repositories is not None else self.github.repositories

    def github_environment(self, logical: str) -> str:
        return self.environments[logical].github


class _Reference(Exception):
    """A cross-reference problem found after the models validated."""

    def __init__(self, loc: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.loc, self.message = tuple(loc), message


def _check_references(policy: Policy) -> None:
    """Everything that needs more than one part of the policy to check."""
    _check_repository_spellings(policy)
    for name, secret in policy.secrets.items():
        _check_secret_references(policy, name, secret)
    for name, flag in policy.flags.items():
        _check_flag_references(policy, name, flag)
    _check_rotation_groups(policy)
    _check_strategy_options(policy)


def _check_strategy_options(policy: Policy) -> None:
    """Each rotation's options against its strategy's model (envmatrix/strategy_registry.py)."""
    from envmatrix.strategy_registry import check_options

    for name, secret in policy.secrets.items():
        if secret.rotation is None:
            continue
        try:
            check_options(secret.rotation.strategy, secret.rotation.options)
        except ValidationError as exc:
            # an unknown key first: a misspelt option explains the "missing" one
            errors = exc.errors(include_url=False)
            error = min(errors, key=lambda e: e["type"] != "extra_forbidden")
            loc = ("secrets", name, "rotation", "options", *_model_loc(error["loc"]))
            raise _Reference(loc, _error_message(error, loc)) from None


def _check_listed_once(loc: Sequence[str | int], items: Sequence[str], note: str = "") -> None:
    """A list entry given twice would plan (and write) the same thing twice."""
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.lower() in seen:
            raise _Reference((*loc, i), f"{item} is listed twice{note}")
        seen.add(item.lower())


def _check_repository_spellings(policy: Policy) -> None:
    """GitHub repository names ignore case: one repository spelt two ways would be two targets
    (each reporting the other's secrets as orphans), so every list and spelling must agree."""
    lists: list[tuple[tuple[str | int, ...], tuple[str, ...]]] = [
        (("github", "repositories"), policy.github.repositories)
    ]
    for kind, specs in (("secrets", policy.secrets), ("flags", policy.flags)):
        lists += [
            ((kind, name, "repositories"), spec.repositories)
            for name, spec in specs.items()
            if spec.repositories is not None
        ]
    first: dict[str, tuple[str, tuple[str | int, ...]]] = {}
    for loc, repositories in lists:
        _check_listed_once(loc, repositories, " (GitHub names ignore case)")
        for i, repository in enumerate(repositories):
            spelling, where = first.setdefault(repository.lower(), (repository, loc))
            if spelling != repository:
                raise _Reference(
                    (*loc, i),
                    f"{repository} is {spelling} ({_dotted(where)}) spelt another way;"
                    " GitHub names ignore case: spell it one way",
                )


def _check_rotation_groups(policy: Policy) -> None:
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
                raise _Reference(
                    ("secrets", name, "rotation"),
                    f"{name} shares Vault path {path} with {other}, which rotates differently;"
                    " secrets that share a path rotate together: give them the same rotation:"
                    " or separate paths",
                )


def _check_secret_references(policy: Policy, name: str, secret: SecretSpec) -> None:
    loc = ("secrets", name)
    if secret.owner not in policy.owners:
        raise _Reference((*loc, "owner"), f"owner {secret.owner!r} is not declared under owners")
    _check_scope(name, secret)
    _check_resolved_paths(name, secret)
    _check_environment_placeholder(name, secret)
    for i, env in enumerate(secret.environments):
        if env not in policy.environments:
            raise _Reference(
                (*loc, "environments", i), f"environment {env!r} is not declared under environments"
            )
    if len(set(secret.environments)) != len(secret.environments):
        raise _Reference((*loc, "environments"), "an environment is listed twice")
    if not policy.repositories_for(secret):
        raise _Reference(
            (*loc, "repositories"), "no repositories: set github.repositories or repositories here"
        )
    if secret.probe is not None:
        _check_probe_inputs(policy, name, secret, secret.probe)


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


def _check_resolved_paths(name: str, secret: SecretSpec) -> None:
    """Every path the secret resolves to (one per environment) stays out of envmatrix/."""
    for env in secret.environments or ("",):
        try:
            secret.vault_path(env)
        except ReservedVaultPath as exc:
            where = f" in environment {env}" if env else ""
            raise _Reference(
                ("secrets", name, "vault"),
                f"vault reference {secret.vault!r} resolves to {exc.path}{where}:"
                f" {RESERVED_VAULT_PREFIX} is envmatrix's own",
            ) from None


def _check_scope(name: str, secret: SecretSpec) -> None:
    """Environment secrets list their environments; repository secrets have none to list."""
    loc = ("secrets", name)
    given = "environments" in secret.model_fields_set
    if not secret.repository_level:
        if not given:
            raise _Reference((*loc, "environments"), "required key is missing")
        return
    if given:
        raise _Reference(
            (*loc, "environments"),
            "a scope: repository secret is seen by every environment; remove environments:",
        )
    if "{environment}" in secret.vault:
        raise _Reference(
            (*loc, "vault"),
            "a scope: repository secret has one value for every environment;"
            " its vault path cannot use {environment}",
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


def _check_flag_references(policy: Policy, name: str, flag: FlagSpec) -> None:
    loc = ("flags", name)
    if name in policy.secrets:
        raise _Reference(loc, f"flag {name} has the name of a secret")
    _check_listed_once((*loc, "environments"), flag.environments)
    _check_listed_once((*loc, "requires"), flag.requires)
    for i, env in enumerate(flag.environments):
        if env not in policy.environments:
            raise _Reference(
                (*loc, "environments", i), f"environment {env!r} is not declared under environments"
            )
    for i, required in enumerate(flag.requires):
        secret = policy.secrets.get(required)
        if secret is None:
            raise _Reference((*loc, "requires", i), f"{required!r} is not declared under secrets")
        if secret.repository_level:
            raise _Reference(
                (*loc, "requires", i),
                f"{required} is a scope: repository secret; a flag can require only environment"
                " secrets (flags are set per environment)",
            )
        extra = [e for e in flag.environments if e not in secret.environments]
        if extra:
            raise _Reference(
                (*loc, "environments"),
                f"{required} is not required in {', '.join(extra)}; a flag's environments must be"
                f" a subset of its secrets' environments",
            )
    if not policy.repositories_for(flag):
        raise _Reference((*loc, "repositories"), "no repositories for this flag")
    _check_flag_probe(policy, name, flag)


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
    """Read, parse and validate a policy file. Every problem becomes one PolicyError."""
    file = str(path)
    try:
        tree = _parse_yaml(file, _read_text(file))
        policy = Policy.model_validate(_plain(tree))
        _check_references(policy)
        policy = _named(policy, file)
    except ValidationError as exc:
        raise _policy_error(file, tree, exc) from None
    except _Reference as ref:
        raise PolicyError(file, _line_of(tree, ref.loc), _dotted(ref.loc), ref.message) from None
    except RecursionError:  # ruamel and pydantic recurse per level: a policy is a few levels deep
        raise PolicyError(file, None, "", "nested too deeply to be a policy") from None
    return policy


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


def _policy_error(file: str, tree: CommentedMap, exc: ValidationError) -> PolicyError:
    # unknown keys first: a typo in a key explains the "missing key" errors that follow it
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = _model_loc(first["loc"])
    message = _error_message(first, loc)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return PolicyError(file, _line_of(tree, loc), _dotted(loc), message)


def _model_loc(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """Drop pydantic's synthetic loc parts ('[key]', union branch names)."""
    return tuple(p for p in loc if p != "[key]" and not str(p).startswith("function-"))


def _error_message(error: Mapping[str, Any], loc: Sequence[str | int]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}" if loc else "unknown key"
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
