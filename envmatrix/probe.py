"""Probes: does a credential really work, beyond being present and in sync?

`supabase`: reads SUPABASE_URL and SUPABASE_SERVICE_KEY for an environment from Vault (where the
policy says they live) and makes the cheapest admin call that needs a secret key,
`auth.admin.list_users(page=1, per_page=1)`. This is the only module that imports `supabase`.
supabase-py may put the URL or key into exception text, so every failure is re-raised as a
one-line `CheckFailed` built from our own words and an HTTP status, never the library's text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from envmatrix.errors import CheckFailed, UsageError, VaultNotFound
from envmatrix.policy import Policy
from envmatrix.ports import VaultPort
from envmatrix.secret import SecretValue

if TYPE_CHECKING:
    from envmatrix.adapters.vault import VaultAdapter

SUPABASE_URL = "SUPABASE_URL"
SUPABASE_KEY = "SUPABASE_SERVICE_KEY"
PROBES = ("supabase",)
PROBE_TIMEOUT = 10.0  # seconds
_HTTP_URL = re.compile(r"^https?://[^\s/]+")


@dataclass(frozen=True)
class ProbeResult:
    """How a probe went in one environment; `detail` never holds a value."""

    probe: str
    environment: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "environment": self.environment,
            "ok": self.ok,
            "detail": self.detail,
        }


def run_probe(kind: str, policy: Policy, vault: VaultPort, environment: str) -> ProbeResult:
    """Run one probe in a logical environment; a failed check is a result, not an exception."""
    if kind not in PROBES:
        raise UsageError(f"unknown probe {kind!r}; known: {', '.join(PROBES)}")
    try:
        url, key = supabase_credentials(policy, vault, environment)
        check_supabase(url, key)
    except CheckFailed as failure:
        return ProbeResult(kind, environment, False, str(failure))
    return ProbeResult(kind, environment, True, "the service key was accepted (admin list_users)")


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
    if not value:
        raise CheckFailed(f"{name} missing in Vault at {vault.mount}/{path}#{key} — {owner}")
    return value


def check_supabase(url: SecretValue, key: SecretValue, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise CheckFailed unless the Supabase project at `url` accepts `key` as a secret key.

    The one place envmatrix calls the supabase client (the probe and the supabase-api-key
    rotation's test step both come here)."""
    if not _HTTP_URL.match(url.reveal()):
        raise CheckFailed(f"{SUPABASE_URL} is not an http(s) URL")
    try:
        _list_one_user(url, key, timeout)
    except CheckFailed:
        raise
    except Exception as exc:  # library text may carry the URL or key: keep only what we know
        raise CheckFailed(_failure_line(exc)) from None


def _list_one_user(url: SecretValue, key: SecretValue, timeout: float) -> None:
    import httpx
    from supabase import create_client
    from supabase.lib.client_options import SyncClientOptions

    # our own HTTP client, so its connections are closed when the probe ends
    # a non-browser User-Agent: Supabase refuses secret keys from browser-like clients
    headers = {"User-Agent": "envmatrix"}
    with httpx.Client(timeout=timeout, headers=headers) as http:
        options = SyncClientOptions(
            httpx_client=http, auto_refresh_token=False, persist_session=False
        )
        client = create_client(url.reveal(), key.reveal(), options)
        client.auth.admin.list_users(page=1, per_page=1)


def _failure_line(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return f"Supabase rejected {SUPABASE_KEY} (HTTP {status}): wrong, revoked or not secret"
    if isinstance(status, int) and status:
        return f"Supabase admin call failed (HTTP {status})"
    return f"Supabase admin call failed ({type(exc).__name__}): unreachable or not Supabase"


def probe_runner(policy: Policy, vault: VaultPort) -> Callable[[str, str], str | None]:
    """A runner for `flags.apply_probes`: None when the probe passed, else why it failed."""

    def run(kind: str, environment: str) -> str | None:
        result = run_probe(kind, policy, vault, environment)
        return None if result.ok else result.detail

    return run


def vault_from_environment(policy: Policy, environ: Mapping[str, str]) -> VaultAdapter:
    """The policy's Vault mount, reached as the Vault CLI would (VAULT_ADDR, VAULT_TOKEN, ...)."""
    from envmatrix.adapters.vault import VaultAdapter

    return VaultAdapter.from_environment(policy.vault.mount, environ)
