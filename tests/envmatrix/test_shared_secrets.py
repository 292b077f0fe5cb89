"""One Vault value for several environments (issue 10 item 6), through the CLI on OpenBao and the
GitHub sandbox: refused (exit 3, file:line, the secret named) unless the secret says shared: true,
and then every environment gets that one value."""

from __future__ import annotations

from pathlib import Path

import pytest

from envmatrix.secret import SecretValue
from tests.world import REPO, World

POLICY = """\
version: 1
name: shared-values
vault: {{mount: {mount}}}
github: {{repositories: [{repo}]}}
environments:
  staging: {{github: staging}}
  production: {{github: production}}
owners:
  ops: {{contact: ops@occ.example}}
secrets:
  SENTRY_DSN:
    owner: ops
    vault: {vault}
    environments: [{environments}]
{extra}"""


@pytest.mark.parametrize(
    ("ref", "environments"),
    [
        ("ci/sentry#dsn", "staging, production"),
        ("ci/sentry", "production, staging"),
        ("apps/staging/sentry#dsn", "staging, production"),  # staging's path, sent to production
    ],
)
@pytest.mark.parametrize("command", [("validate",), ("plan",), ("apply", "--yes")])
def test_a_missing_environment_placeholder_is_a_policy_error(
    world: World, tmp_path: Path, ref: str, environments: str, command: tuple[str, ...]
) -> None:
    path = tmp_path / "policy.yaml"
    text = POLICY.format(
        mount=world.vault.mount, repo=REPO, vault=ref, environments=environments, extra=""
    )
    path.write_text(text)
    result = world.run(*command, "--policy", str(path))
    line = text[: text.index("    vault: ")].count("\n") + 1
    assert result.code == 3
    # validate lists every problem on stdout; the other commands print none of it there
    assert result.out == ("" if command[0] != "validate" else result.out)
    problem = f"{path}:{line}: secrets.SENTRY_DSN.vault: SENTRY_DSN "
    assert result.err.startswith(f"error: {problem}")
    if command[0] == "validate":
        assert result.out.startswith(problem) and result.out.count("\n") == 1
    assert "shared: true" in result.err and result.err.count("\n") == 1
    assert world.sandbox.secret_value(REPO, "production", "SENTRY_DSN") is None


@pytest.mark.parametrize("ref", ["ci/sentry#dsn", "ci/sentry#SENTRY_DSN"])
def test_a_shared_secret_sends_its_one_value_to_every_environment(
    world: World, tmp_path: Path, ref: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        POLICY.format(
            mount=world.vault.mount,
            repo=REPO,
            vault=ref,
            environments="staging, production",
            extra="    shared: true\n",
        )
    )
    world.vault.write_values("ci/sentry", {ref.split("#")[1]: SecretValue("https://k@sentry/1")})
    result = world.run("apply", "--yes", "--policy", str(path))
    assert result.code == 0, result.err
    for env in ("staging", "production"):
        assert world.sandbox.secret_value(REPO, env, "SENTRY_DSN") == "https://k@sentry/1"
