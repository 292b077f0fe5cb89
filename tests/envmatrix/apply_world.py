"""Shared setup for the lock, audit-store and concurrent-apply tests: a policy on the test's own
Vault mount, canary values planted in Vault, and the environment a CLI run needs."""

from __future__ import annotations

import uuid
from pathlib import Path

from envmatrix.ports import VaultPort
from envmatrix.sandbox import GitHubSandbox
from envmatrix.secret import SecretValue

REPOSITORY = "occ-labs/operator-console"
ENVIRONMENTS = ("staging", "production")

POLICY = """\
version: 1
name: console
vault: {{mount: {mount}}}
github: {{repositories: [{repository}]}}
environments:
  staging: {{github: staging}}
  production: {{github: production}}
owners:
  reliability: {{contact: reliability@occ.example}}
secrets:
  SUPABASE_URL:
    owner: reliability
    vault: "apps/{{environment}}/supabase#url"
    environments: [staging, production]
  SUPABASE_SERVICE_KEY:
    owner: reliability
    vault: "apps/{{environment}}/supabase#service_key"
    environments: [staging, production]
flags:
  FEATURE_AI_ESCALATIONS:
    requires: [SUPABASE_URL, SUPABASE_SERVICE_KEY]
    environments: [staging, production]
{audit}"""


def write_policy(directory: Path, mount: str, audit: str = "") -> Path:
    """A policy with 2 secrets x 2 environments and one flag; `audit` is an `audit:` block."""
    path = directory / "envmatrix.yaml"
    path.write_text(POLICY.format(mount=mount, repository=REPOSITORY, audit=audit))
    return path


def plant_canaries(vault: VaultPort) -> list[str]:
    """Write unique, greppable values for every secret of the policy; returns them."""
    canaries = []
    for env in ENVIRONMENTS:
        values = {key: f"CANARY-{key}-{env}-{uuid.uuid4().hex}" for key in ("url", "service_key")}
        vault.write_values(f"apps/{env}/supabase", {k: SecretValue(v) for k, v in values.items()})
        canaries += values.values()
    return canaries


def cli_env(vault_env: dict[str, str], sandbox: GitHubSandbox) -> dict[str, str]:
    """VAULT_* and GITHUB_* for a CLI run against the test Vault and the sandbox."""
    return {**vault_env, "GITHUB_API_URL": sandbox.url, "GITHUB_TOKEN": "sandbox-token"}
