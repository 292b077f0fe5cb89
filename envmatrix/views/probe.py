"""Probes: does a credential really work, beyond being present and in sync?

`supabase`: reads SUPABASE_URL and SUPABASE_SERVICE_KEY for an environment from Vault (where the
policy says they live) and makes the cheapest admin call that needs a secret key,
`auth.admin.list_users(page=1, per_page=1)` through `envmatrix.adapters.supabase` (the only
module that imports `supabase`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from envmatrix.adapters.supabase import SUPABASE_KEY, SUPABASE_URL, check_supabase
from envmatrix.errors import CheckFailed, UsageError, VaultNotFound
from envmatrix.policy import Policy
from envmatrix.ports import VaultPort
from envmatrix.secret import SecretValue, absence

PROBES = ("supabase",)


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
    if value is None or (why := absence(value)) is not None:
        state = "missing" if value is None else f"{why}, not a secret,"
        raise CheckFailed(f"{name} {state} in Vault at {vault.mount}/{path}#{key} — {owner}")
    return value


def probe_runner(policy: Policy, vault: VaultPort) -> Callable[[str, str], str | None]:
    """A runner for `flags.apply_probes`: None when the probe passed, else why it failed."""

    def run(kind: str, environment: str) -> str | None:
        result = run_probe(kind, policy, vault, environment)
        return None if result.ok else result.detail

    return run
