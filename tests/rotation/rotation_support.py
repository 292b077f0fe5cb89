"""Shared setup for the rotation engine and `rotate` CLI tests: a policy on the test's own Vault
mount, Vault seeded and synced to the GitHub sandbox, and readers of every GitHub copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from envmatrix.adapters.github import GitHubAdapter
from envmatrix.adapters.vault import VaultAdapter
from envmatrix.connect import Connections
from envmatrix.errors import RuntimeFailure
from envmatrix.policy import Policy, load_policy
from envmatrix.sandbox import GitHubSandbox
from envmatrix.secret import SecretValue
from envmatrix.workflow import apply_run, make_plan

REPOS = ["occ-labs/operator-console", "occ-labs/storefront-sync"]
ENVS = ["staging", "production"]
ROOT = Path(__file__).resolve().parents[2]
ECHO_ROTATOR = ROOT / "examples" / "rotators" / "echo_rotator.py"


def write_policy(
    directory: Path, mount: str, rotation: dict[str, Any], environments: list[str] = ENVS
) -> Path:
    """API_TOKEN rotates (with API_CLIENT_ID beside it at the same path); OTHER never does."""
    policy = {
        "version": 1,
        "vault": {"mount": mount},
        "github": {"repositories": REPOS},
        "environments": {e: {"github": e} for e in ENVS},
        "owners": {"ops": {"contact": "ops@example.test"}},
        "secrets": {
            "API_TOKEN": {
                "owner": "ops",
                "vault": "apps/{environment}/api#token",
                "environments": environments,
                "rotation": rotation,
            },
            "API_CLIENT_ID": {
                "owner": "ops",
                "vault": "apps/{environment}/api#client_id",
                "environments": environments,
            },
            "OTHER": {
                "owner": "ops",
                "vault": "apps/{environment}/other#value",
                "environments": environments,
            },
        },
    }
    path = directory / "envmatrix.yaml"
    path.write_text(json.dumps(policy, indent=2))  # JSON is YAML
    return path


def echo_rotation(directory: Path, **extra: Any) -> dict[str, Any]:
    """A `command` rotation with the example rotator; its provider state in `directory`."""
    options = {
        "command": [sys.executable, str(ECHO_ROTATOR)],
        "state_file": str(directory / "provider.json"),
        **extra.pop("options", {}),
    }
    return {"max_age": "30d", "strategy": "command", "options": options, **extra}


def seed(
    policy: Policy, vault: VaultAdapter, sandbox: GitHubSandbox, token: str = ""
) -> dict[str, str]:
    """Initial values in Vault, synced to GitHub. Returns {environment: initial API_TOKEN}."""
    tokens = {}
    for env in policy.secrets["API_TOKEN"].environments:
        tokens[env] = token or f"initial-{env}-token"
        vault.write_values(
            f"apps/{env}/api",
            {"token": SecretValue(tokens[env]), "client_id": SecretValue(f"client-{env}")},
        )
        vault.write_values(f"apps/{env}/other", {"value": SecretValue(f"other-{env}")})
    return tokens


def connections(vault: VaultAdapter, sandbox: GitHubSandbox) -> Connections:
    return Connections(vault, GitHubAdapter(sandbox.url, "sandbox-token"))


def sync_all(policy_path: Path, vault: VaultAdapter, sandbox: GitHubSandbox) -> None:
    conns = connections(vault, sandbox)
    report = apply_run(make_plan(str(policy_path), conns), conns)
    assert report.ok


def plan_writes(policy_path: Path, vault: VaultAdapter, sandbox: GitHubSandbox) -> list[str]:
    """The plan's writes as `repo/env/name`: empty when GitHub matches Vault."""
    run = make_plan(str(policy_path), connections(vault, sandbox))
    return [f"{c.repository}/{c.environment}/{c.name}" for c in run.plan.writes]


def copies(sandbox: GitHubSandbox, env: str, name: str = "API_TOKEN") -> list[str | None]:
    """What every repository's GitHub environment holds for a secret (decrypted)."""
    return [sandbox.secret_value(repo, env, name) for repo in REPOS]


def provider_valid(directory: Path) -> set[str]:
    """Tokens the example rotator's provider accepts."""
    path = directory / "provider.json"
    return set(json.loads(path.read_text())["valid"].values()) if path.exists() else set()


def trust_initial(directory: Path, tokens: dict[str, str]) -> None:
    """Make the example provider accept the seeded tokens, as if it had issued them."""
    state = {"valid": {f"seed-{env}": t for env, t in tokens.items()}, "log": []}
    (directory / "provider.json").write_text(json.dumps(state))


def run_cli(
    args: list[str],
    vault_env: dict[str, str],
    sandbox: GitHubSandbox,
    *,
    failpoint: str | None = None,
    stdin: str = "",
) -> subprocess.CompletedProcess[str]:
    """`envmatrix ARGS` in a subprocess against the test Vault and the sandbox."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "GITHUB_"))}
    env.update(vault_env, GITHUB_API_URL=sandbox.url, GITHUB_TOKEN="sandbox-token", NO_COLOR="1")
    if failpoint:
        env["ENVMATRIX_FAILPOINTS"] = failpoint
    return subprocess.run(
        [sys.executable, "-m", "envmatrix", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load(path: Path) -> Policy:
    return load_policy(path)


def failure_texts(
    step: Any, expected: tuple[type[Exception], ...] = (RuntimeFailure,)
) -> list[str]:
    """Everything a failed strategy step shows (message, repr, args), for canary checks; the
    error must not chain a library exception, which could carry a request or response."""
    with pytest.raises(expected) as failure:
        step()
    error = failure.value
    assert error.__cause__ is None
    return [str(error), repr(error), repr(error.args)]


REPOSITORY_PATH = "ci/shared"  # the Vault path of the repository-scope secrets below


def write_repository_policy(
    directory: Path, mount: str, rotation: dict[str, Any], peer: list[str] | None = None
) -> Path:
    """CI_TOKEN (scope: repository) rotates, with CI_USER beside it at ci/shared; OTHER is an
    environment secret elsewhere. `peer`: also PEER_KEY, an environment secret in those
    environments that reads the same path (the policy allows it), carried along unchanged."""
    repository = {"owner": "ops", "scope": "repository", "repositories": REPOS}
    secrets: dict[str, Any] = {
        "CI_TOKEN": {**repository, "vault": f"{REPOSITORY_PATH}#token", "rotation": rotation},
        "CI_USER": {**repository, "vault": f"{REPOSITORY_PATH}#user"},
        "OTHER": {
            "owner": "ops",
            "vault": "apps/{environment}/other#value",
            "environments": ["production"],
        },
    }
    if peer:
        secrets["PEER_KEY"] = {
            "owner": "ops",
            "vault": f"{REPOSITORY_PATH}#peer",
            "environments": peer,
            "shared": True,  # one value for every environment, deliberately
        }
    policy = {
        "version": 1,
        "vault": {"mount": mount},
        "github": {"repositories": REPOS},
        "environments": {e: {"github": e} for e in ENVS},
        "owners": {"ops": {"contact": "ops@example.test"}},
        "secrets": secrets,
    }
    path = directory / "envmatrix.yaml"
    path.write_text(json.dumps(policy, indent=2))
    return path


def seed_repository(vault: VaultAdapter, token: str = "initial-ci-token") -> str:
    """Initial values for write_repository_policy's secrets; returns CI_TOKEN's."""
    vault.write_values(
        REPOSITORY_PATH,
        {"token": SecretValue(token), "user": SecretValue("ci-user"), "peer": SecretValue("peer")},
    )
    vault.write_values("apps/production/other", {"value": SecretValue("other-production")})
    return token


def repository_copies(sandbox: GitHubSandbox, name: str = "CI_TOKEN") -> list[str | None]:
    """What every repository's Actions repository secret `name` holds (decrypted)."""
    return [sandbox.repository_secret_value(repo, name) for repo in REPOS]
