"""Probes: does a credential really work, beyond being present and in sync?

Two kinds:

- **declared probes** — `probe:` on a secret: a preset (`supabase`, `zoho`, `shopify`,
  `chatwoot`, `ga-mcp`) or a custom GET (`url:`, `header:`, `expect:`). `declared_probes` lists
  them per environment; `ProbeSession.run` reads the probed value and the `uses:` inputs from
  Vault (the same environment) and makes the preset's call through the adapters
  (`envmatrix.adapters.service_probes`, `.mcp`, `.google_oauth`, `.supabase`). Each distinct
  credential is checked at most once per session (one run): Zoho lets a refresh token mint only
  10 access tokens in 10 minutes. Nothing is kept on disk.
- **the classic `supabase` probe** — reads SUPABASE_URL and SUPABASE_SERVICE_KEY for an
  environment and makes the cheapest admin call that needs a secret key (`run_probe`). A flag's
  `probe: supabase` runs it unless a secret the flag requires declares a supabase probe.

Probes send credentials to the addresses the policy names, and a pull request can change the
policy: in runs a pull request triggered (`GITHUB_EVENT_NAME` pull_request or
pull_request_target) they do not run unless asked (`pull_request_event`).

A failed probe is a result, not an exception; its detail names the secret and the owner and is
built from our own words and HTTP statuses, never from the value or the provider's answer.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from envmatrix.adapters.google_oauth import GOOGLE_TOKEN_URL, mint_access_token
from envmatrix.adapters.http_probe import ProbeHttp
from envmatrix.adapters.mcp import check_mcp
from envmatrix.adapters.service_probes import (
    CHATWOOT_URL,
    SHOPIFY_API_VERSION,
    ZOHO_ACCOUNTS_URL,
    check_chatwoot,
    check_shopify,
    check_url,
    check_zoho,
)
from envmatrix.adapters.supabase import SUPABASE_KEY, SUPABASE_URL, check_supabase
from envmatrix.errors import CheckFailed, UsageError, VaultNotFound
from envmatrix.pipeline.desired import owner_with_contact, resolve_environments
from envmatrix.policy import Policy, ProbeSpec
from envmatrix.ports import VaultPort
from envmatrix.redact import host_for_display
from envmatrix.secret import SecretValue, absence

PROBES = ("supabase",)  # the probes `probe NAME` runs by name
GA_MCP_URL = "https://analyticsdata.googleapis.com/mcp/v1"  # Google's remote GA MCP server
PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")
SUPABASE_PUBLIC_SUFFIX = ".supabase.co"


@dataclass(frozen=True)
class ProbeResult:
    """How a probe went in one environment; `detail` never holds a value."""

    probe: str
    environment: str  # logical; "" for a scope: repository secret
    ok: bool
    detail: str
    secret: str | None = None
    owner: str | None = None
    contact: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "environment": self.environment,
            "ok": self.ok,
            "detail": self.detail,
            "secret": self.secret,
            "owner": self.owner,
            "contact": self.contact,
        }


@dataclass(frozen=True)
class ProbeReport:
    """Every probe of one `probe` run; `skipped` says why none ran (a pull-request run)."""

    results: tuple[ProbeResult, ...]
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "skipped": self.skipped,
            "probes": [r.to_json() for r in self.results],
            "summary": {
                "ok": sum(r.ok for r in self.results),
                "failed": sum(not r.ok for r in self.results),
            },
        }


class ProbeFailure(str):
    """Why a probe failed (the text), with the owner to name: what a flag's probe runner
    returns, so a blocked flag names the credential's owner (and notifications the secret)."""

    owner: str | None = None
    contact: str | None = None
    result: ProbeResult | None = None  # the failed probe (secret, environment, owner)

    @classmethod
    def of(cls, result: ProbeResult) -> ProbeFailure:
        failure = cls(result.detail)
        failure.owner, failure.contact, failure.result = result.owner, result.contact, result
        return failure


class ProbesWithheld(str):
    """What a flag's probe runner returns in a pull-request-triggered run: the probe did not
    run (the flag stays off), which is not a failed probe."""


@dataclass(frozen=True)
class DeclaredProbe:
    """One secret's `probe:` in one environment."""

    secret: str
    environment: str  # logical; "" for a scope: repository secret
    spec: ProbeSpec


def pull_request_event(environ: Mapping[str, str]) -> str | None:
    """The event name when this is a run a pull request triggered, else None."""
    event = environ.get("GITHUB_EVENT_NAME", "")
    return event if event in PULL_REQUEST_EVENTS else None


def pull_request_note(event: str) -> str:
    return (
        f"probes not run: a pull-request-triggered run (GITHUB_EVENT_NAME={event}) — a pull"
        " request can change the policy and with it where probes send credentials;"
        " --allow-pull-request runs them"
    )


def declared_probes(policy: Policy, environments: Sequence[str] = ()) -> tuple[DeclaredProbe, ...]:
    """Every secret's declared probe in the selected environments (logical or GitHub names; all
    when none is given; scope: repository secrets only when none is given)."""
    selected = resolve_environments(policy, environments)
    probes = []
    for name, spec in policy.secrets.items():
        if spec.probe is None:
            continue
        if spec.repository_level:
            if not environments:
                probes.append(DeclaredProbe(name, "", spec.probe))
            continue
        probes += [DeclaredProbe(name, e, spec.probe) for e in selected if e in spec.environments]
    return tuple(probes)


class ProbeSession:
    """The probes of one run: values read from Vault once, each distinct credential checked
    once (in memory only; nothing is written anywhere)."""

    def __init__(
        self,
        policy: Policy,
        vault: VaultPort,
        candidates: Mapping[str, SecretValue] | None = None,
    ) -> None:
        self.policy, self.vault = policy, vault
        self.candidates = dict(candidates or {})  # secret name -> a value to check instead
        self._values: dict[str, dict[str, SecretValue]] = {}
        self._outcomes: dict[tuple[str, ...], tuple[bool, str]] = {}

    def run(self, probe: DeclaredProbe) -> ProbeResult:
        """Run one declared probe; a failed check is a result naming the secret and owner."""
        owner = self.policy.secrets[probe.secret].owner
        contact = self._contact(owner)
        try:
            value = self._read(probe.secret, probe.environment)
            inputs = {
                role: self._read(name, probe.environment)
                for role, name in probe.spec.input_secrets().items()
            }
            ok, detail = self._once(probe.spec, value, inputs)
        except CheckFailed as failure:
            ok, detail = False, str(failure)
        if not ok and " — owner:" not in detail:
            detail = f"{probe.secret}: {detail} — owner: {owner_with_contact(owner, contact)}"
        return ProbeResult(
            probe.spec.kind, probe.environment, ok, detail, probe.secret, owner, contact
        )

    def _once(
        self, spec: ProbeSpec, value: SecretValue, inputs: Mapping[str, SecretValue]
    ) -> tuple[bool, str]:
        """The outcome of the check, made at most once per preset, address and credential."""
        digest = hashlib.sha256()
        for part in (value, *inputs.values()):
            digest.update(part.reveal().encode() + b"\0")
        key = (spec.kind, spec.base_url or spec.url or spec.shop_domain or "", digest.hexdigest())
        if key not in self._outcomes:
            try:
                self._outcomes[key] = (True, _check(spec, value, inputs))
            except CheckFailed as failure:
                self._outcomes[key] = (False, str(failure))
        return self._outcomes[key]

    def _read(self, name: str, environment: str) -> SecretValue:
        if name in self.candidates:
            return self.candidates[name]
        spec = self.policy.secrets[name]
        path, key = spec.vault_path(environment), spec.vault_key(name)
        if path not in self._values:
            try:
                self._values[path] = dict(self.vault.read_values(path))
            except VaultNotFound:
                self._values[path] = {}
        value = self._values[path].get(key)
        if not value:
            owner = owner_with_contact(spec.owner, self._contact(spec.owner))
            raise CheckFailed(
                f"{name} missing in Vault at {self.vault.mount}/{path}#{key} — owner: {owner}"
            )
        return value

    def _contact(self, owner: str) -> str | None:
        spec = self.policy.owners.get(owner)
        return spec.contact if spec is not None else None


def _check(spec: ProbeSpec, value: SecretValue, inputs: Mapping[str, SecretValue]) -> str:
    """Make the preset's call; its description when the credential worked, else CheckFailed."""
    if spec.preset == "supabase":
        return _check_supabase(spec, value, inputs)
    with ProbeHttp() as http:
        if spec.preset == "zoho":
            accounts = spec.base_url or ZOHO_ACCOUNTS_URL
            label = f"Zoho Accounts at {host_for_display(accounts)}"
            client_id, client_secret = inputs["client_id"], inputs["client_secret"]
            return check_zoho(http, accounts, value, client_id, client_secret, label)
        if spec.preset == "shopify":
            assert spec.shop_domain is not None  # the policy model requires it
            root = spec.base_url or f"https://{spec.shop_domain}"
            version = spec.api_version or SHOPIFY_API_VERSION
            label = f"Shopify at {host_for_display(root)}"
            return check_shopify(http, root, version, value, label)
        if spec.preset == "chatwoot":
            base = spec.base_url or CHATWOOT_URL
            return check_chatwoot(http, base, value, f"Chatwoot at {host_for_display(base)}")
        if spec.preset == "ga-mcp":
            return _check_ga_mcp(http, spec, value)
        assert spec.url is not None and spec.header is not None  # a custom probe
        name, _, template = spec.header.partition(":")
        header = (name.strip(), template.strip() or "{value}")
        label = f"{host_for_display(spec.url)}"
        return check_url(http, spec.url, header, value, spec.expected_statuses, label)


def _check_supabase(spec: ProbeSpec, key: SecretValue, inputs: Mapping[str, SecretValue]) -> str:
    """The admin call, at the policy's base_url or at the project URL read from Vault, which
    must then be Supabase's public host (https://<ref>.supabase.co)."""
    if spec.base_url is not None:
        url = SecretValue(spec.base_url)
    else:
        url = inputs["url"]
        if not _is_supabase_host(url.reveal()):
            raise CheckFailed(
                "the project URL read from Vault is not https://<ref>.supabase.co; probes go only"
                " to Supabase's public host or to the base_url: the policy names"
            )
    check_supabase(url, key)
    return "the service key was accepted (admin list_users)"


def _is_supabase_host(url: str) -> bool:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and "@" not in parts.netloc
        and host.endswith(SUPABASE_PUBLIC_SUFFIX)
        and len(host) > len(SUPABASE_PUBLIC_SUFFIX)
    )


def _check_ga_mcp(http: ProbeHttp, spec: ProbeSpec, value: SecretValue) -> str:
    """A service-account JSON key is exchanged for an access token first (the key itself never
    goes to the MCP server); any other value is sent as the bearer token itself."""
    endpoint = spec.base_url or GA_MCP_URL
    text = value.reveal().lstrip()
    if text.startswith("{"):
        token_url = spec.token_url or GOOGLE_TOKEN_URL
        token_label = f"the token endpoint at {host_for_display(token_url)}"
        bearer = mint_access_token(value, http, token_url, label=token_label)
    elif "PRIVATE KEY" in text:
        raise CheckFailed("the value holds a private key; envmatrix sends no key to an MCP server")
    else:
        bearer = value
    detail = check_mcp(http, endpoint, bearer, f"the MCP server at {host_for_display(endpoint)}")
    return detail


# -- the classic supabase probe, and flags' probes ------------------------------------------


def run_probe(kind: str, policy: Policy, vault: VaultPort, environment: str) -> ProbeResult:
    """Run one probe in a logical environment; a failed check is a result, not an exception."""
    if kind not in PROBES:
        raise UsageError(f"unknown probe {kind!r}; known: {', '.join(PROBES)}")
    owner = policy.secrets[SUPABASE_KEY].owner if SUPABASE_KEY in policy.secrets else None
    contact = policy.owners[owner].contact if owner in policy.owners else None
    try:
        url, key = supabase_credentials(policy, vault, environment)
        check_supabase(url, key)
    except CheckFailed as failure:
        detail = str(failure)
        if owner is not None and " — owner:" not in detail:
            detail = f"{detail} — owner: {owner_with_contact(owner, contact)}"
        return ProbeResult(kind, environment, False, detail, SUPABASE_KEY, owner, contact)
    ok = "the service key was accepted (admin list_users)"
    return ProbeResult(kind, environment, True, ok, SUPABASE_KEY, owner, contact)


def supabase_credentials(
    policy: Policy, vault: VaultPort, environment: str
) -> tuple[SecretValue, SecretValue]:
    """SUPABASE_URL and SUPABASE_SERVICE_KEY of an environment, read from Vault."""
    return (
        _from_vault(policy, vault, SUPABASE_URL, environment),
        _from_vault(policy, vault, SUPABASE_KEY, environment),
    )


def _from_vault(policy: Policy, vault: VaultPort, name: str, environment: str) -> SecretValue:
    spec = policy.secrets.get(name)
    if spec is None or environment not in spec.environments:
        raise UsageError(f"the supabase probe needs {name} declared for {environment}")
    path, key = spec.vault_path(environment), spec.vault_key(name)
    owner = f"owner: {spec.owner}"
    try:
        value = vault.read_values(path).get(key)
    except VaultNotFound:
        value = None
    if value is None or (why := absence(value)) is not None:
        state = "missing" if value is None else f"{why}, not a secret,"
        raise CheckFailed(f"{name} {state} in Vault at {vault.mount}/{path}#{key} — {owner}")
    return value


def flag_probes(policy: Policy, kind: str, environment: str) -> tuple[DeclaredProbe, ...]:
    """The declared `kind` probes of the secrets that flags with `probe: kind` require in
    `environment`."""
    names = {
        required
        for flag in policy.flags.values()
        if flag.probe == kind and environment in flag.environments
        for required in flag.requires
    }
    return tuple(
        DeclaredProbe(name, environment, spec.probe)
        for name, spec in policy.secrets.items()
        if name in names and spec.probe is not None and spec.probe.preset == kind
    )


def probe_runner(
    policy: Policy,
    vault: VaultPort,
    environ: Mapping[str, str] = os.environ,
    allow_pull_request: bool = False,
) -> Callable[[str, str], str | None]:
    """A runner for `flags.apply_probes` and apply: None when the probe passed, else why it
    failed (a `ProbeFailure` naming the owner). In a pull-request-triggered run nothing is
    probed and the answer is a failure: a flag waiting for a probe stays off."""
    session = ProbeSession(policy, vault)

    def run(kind: str, environment: str) -> str | None:
        event = pull_request_event(environ)
        if event is not None and not allow_pull_request:
            return ProbesWithheld(pull_request_note(event))
        declared = flag_probes(policy, kind, environment)
        results = [session.run(p) for p in declared]
        if not declared:
            results = [run_probe(kind, policy, vault, environment)]
        failed = next((r for r in results if not r.ok), None)
        return None if failed is None else ProbeFailure.of(failed)

    return run


def all_probes(
    policy: Policy,
    vault: VaultPort,
    environments: Sequence[str],
    environ: Mapping[str, str] = os.environ,
    allow_pull_request: bool = False,
) -> ProbeReport:
    """`probe`: every declared probe in the selected environments, and the classic supabase
    probe where a flag asks for it and no secret declares a supabase probe."""
    event = pull_request_event(environ)
    if event is not None and not allow_pull_request:
        return ProbeReport((), pull_request_note(event))
    session = ProbeSession(policy, vault)
    results = [session.run(p) for p in declared_probes(policy, environments)]
    for environment in resolve_environments(policy, environments):
        if _classic_supabase_wanted(policy, environment):
            results.append(run_probe("supabase", policy, vault, environment))
    return ProbeReport(tuple(results))


def _classic_supabase_wanted(policy: Policy, environment: str) -> bool:
    wanted = any(
        f.probe == "supabase" and environment in f.environments for f in policy.flags.values()
    )
    return wanted and not flag_probes(policy, "supabase", environment)


# -- a manual rotation's new value, confirmed by the secret's probes -------------------------


def probes_touching(
    policy: Policy, names: Sequence[str], environment: str | None
) -> tuple[DeclaredProbe, ...]:
    """The declared probes that check one of `names` in `environment` (None: the repository
    level): probes on those secrets and probes that use them as inputs (zoho's client_secret)."""
    wanted = set(names)
    found = []
    for name, spec in policy.secrets.items():
        probe = spec.probe
        if probe is None or not ({name, *probe.input_secrets().values()} & wanted):
            continue
        if spec.repository_level:
            if environment is None:
                found.append(DeclaredProbe(name, "", probe))
        elif environment is not None and environment in spec.environments:
            found.append(DeclaredProbe(name, environment, probe))
    return tuple(found)


class RotationProbes:
    """`StrategySettings.value_probe`: a manual rotation's guide is picked by the probe preset,
    and its staged value must pass the declared probes before it is promoted and synced."""

    def __init__(self, policy: Policy, vault: VaultPort) -> None:
        self.policy, self.vault = policy, vault

    def preset(self, names: Sequence[str]) -> str | None:
        """The first preset declared on (or using) one of `names`, or None."""
        for name, spec in self.policy.secrets.items():
            probe = spec.probe
            if probe is not None and probe.preset is not None:
                if {name, *probe.input_secrets().values()} & set(names):
                    return probe.preset
        return None

    def confirm(
        self, keys: Mapping[str, str], environment: str | None, pending: Mapping[str, SecretValue]
    ) -> tuple[str, ...]:
        """Run the probes touching `keys` with the pending values; what passed, one line each.
        AwaitingOwner (naming the secret, environment and owner, never a value) if one fails."""
        from envmatrix.errors import AwaitingOwner

        candidates = {name: pending[key] for name, key in keys.items() if key in pending}
        session = ProbeSession(self.policy, self.vault, candidates)
        passed = []
        for probe in probes_touching(self.policy, tuple(keys), environment):
            result = session.run(probe)
            where = probe.environment or "(repository)"
            if not result.ok:
                raise AwaitingOwner(
                    f"the {result.probe} probe refused the new value in {where}: {result.detail};"
                    " the rotation stays open, staged in Vault (nothing promoted or synced)"
                )
            passed.append(f"probe {result.probe} {probe.secret} in {where}: {result.detail}")
        return tuple(passed)


def probe_failures(results: Sequence[ProbeResult]) -> tuple[ProbeResult, ...]:
    """The failed probes among `results` (for notifications and annotations)."""
    return tuple(r for r in results if not r.ok)
