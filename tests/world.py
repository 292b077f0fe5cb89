"""A test world: real OpenBao mount, GitHub sandbox, a policy file, and the CLI wired to them."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envmatrix import cli
from envmatrix.adapters.vault import VaultAdapter
from envmatrix.demo.run import github_value, seed_vault
from envmatrix.pipeline.desired import desired_state
from envmatrix.policy import Policy, load_policy
from envmatrix.sandbox import GitHubSandbox
from envmatrix.secret import SecretValue

REPO = "occ-labs/operator-console"
EXAMPLE = Path(__file__).resolve().parents[1] / "policies" / "example.yaml"
OTHER_REPO = "occ-labs/storefront-sync"
# scope: repository secrets for tests (policies/example.yaml has none): SENTRY_AUTH_TOKEN in both
# sandbox repositories, CODECOV_TOKEN in github.repositories (operator-console) only
REPOSITORY_SECRETS = f"""  SENTRY_AUTH_TOKEN:
    service: sentry
    owner: reliability
    scope: repository
    vault: ci/sentry#auth_token
    repositories: [{REPO}, {OTHER_REPO}]
  CODECOV_TOKEN:
    service: codecov
    owner: data
    scope: repository
    vault: ci/codecov
"""


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class World:
    """Everything an end-to-end test needs, and the CLI pointed at it."""

    vault: VaultAdapter
    sandbox: GitHubSandbox
    policy_path: Path
    env: dict[str, str]
    monkeypatch: pytest.MonkeyPatch

    @property
    def policy(self) -> Policy:
        return load_policy(self.policy_path)

    def run(self, *args: str) -> Result:
        """Run the CLI in-process with the world's environment; capture what a user sees."""
        for name, value in self.env.items():
            self.monkeypatch.setenv(name, value)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
        return Result(code, out.getvalue(), err.getvalue())

    def seed(self, leave_out: tuple[str, str] | None = None) -> None:
        seed_vault(self.policy, self.vault, leave_out=leave_out)

    def write_policy(self, text: str) -> None:
        self.policy_path.write_text(text)

    def add_repository_secrets(self) -> None:
        """Add REPOSITORY_SECRETS (scope: repository) to the policy, before `flags:`."""
        head, flags = self.policy_path.read_text().split("\nflags:\n")
        self.write_policy(f"{head}\n{REPOSITORY_SECRETS}\nflags:\n{flags}")

    def vault_value(self, name: str, environment: str) -> str | None:
        spec = self.policy.secrets[name]
        try:
            values = self.vault.read_values(spec.vault_path(environment))
        except Exception:
            return None
        value = values.get(spec.vault_key(name))
        return value.reveal() if value is not None else None

    def set_vault_value(self, name: str, environment: str, value: str) -> None:
        spec = self.policy.secrets[name]
        path = spec.vault_path(environment)
        try:
            current = self.vault.read_values(path)
        except Exception:
            current = {}
        self.vault.write_values(path, {**current, spec.vault_key(name): SecretValue(value)})

    def mismatches(self) -> list[str]:
        """Cells whose GitHub copy is not Vault's value (blocked cells excluded)."""
        wrong = []
        for cell in desired_state(self.policy).secrets:
            expected = self.vault_value(cell.name, cell.target.logical_environment)
            actual = github_value(self.sandbox, cell.target, cell.name)
            if expected is not None and expected != actual:
                where = cell.target.github_environment or "(repository)"
                wrong.append(f"{cell.target.repository}/{where}/{cell.name}")
        return wrong


def example_policy_text(mount: str, **replacements: str) -> str:
    text = EXAMPLE.read_text().replace("mount: secret", f"mount: {mount}")
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


@pytest.fixture
def world(
    tmp_path: Path,
    vault: VaultAdapter,
    vault_mount: str,
    vault_env: dict[str, str],
    sandbox: GitHubSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    policy_path = tmp_path / "envmatrix.yaml"
    policy_path.write_text(example_policy_text(vault_mount))
    env = {
        **vault_env,
        "GITHUB_API_URL": sandbox.url,
        "GITHUB_TOKEN": "sandbox-token",
        "ENVMATRIX_POLICY": str(policy_path),
        "ENVMATRIX_GITHUB_BACKOFF": "0.01",
        "ENVMATRIX_AUDIT_DB": str(tmp_path / "audit.sqlite"),
    }
    monkeypatch.chdir(tmp_path)
    yield World(vault, sandbox, policy_path, env, monkeypatch)
