"""`envmatrix demo` (what `make demo` runs) does the whole job on its own servers."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from envmatrix.demo.golive import CI_SECRETS, ci_secrets_policy_text, go_live_policy_text
from envmatrix.demo.run import EXAMPLE_POLICY, run_demo
from envmatrix.pipeline.desired import desired_state
from envmatrix.policy import load_policy


def test_demo_runs_the_main_job_end_to_end() -> None:
    buffer = io.StringIO()
    assert run_demo(Console(file=buffer, width=200, no_color=True)) == 0
    text = buffer.getvalue()
    for expected in (
        "blocked secret      SUPABASE_SERVICE_KEY",  # missing in Vault: owner named
        "owner: reliability (reliability@occ.example)",
        "flag-not-ready: unset -> false",  # the flag waits in production
        "Checked every GitHub copy against Vault: 0 mismatches.",
        "flag-ready: false -> true",  # the owner adds the secret: the flag flips
        "changed-outside: GitHub copy updated",  # a hand edit is noticed
        "No changes. GitHub matches the policy and Vault.",
        "Demo finished: every step did what it should.",
        "protection-differs",  # the go-live: production protected by apply
        "create  variable    SUPABASE_REGION",
        "8. final plan",
        "SUPABASE_REGION (variable)",  # the matrix shows the variable, never its value
    ):
        assert expected in text, expected
    assert "demo-" not in text and ".supabase.example" not in text  # generated values never shown
    before_ci, rest = text.split("7. plan: an organization secret")
    ci_step, rest = rest.split("8. final plan")
    final_plan, rest = rest.split("9. the environment matrix")
    matrix, rest = rest.split("10. the matrix as committed evidence")
    evidence, imported = rest.split("11. adopting an existing org")

    # CI's secrets: planned under their own places, applied, held by the sandbox, in the matrix
    for expected in (
        "occ-labs · (organization)\n  + create  secret      ORG_SENTRY_DSN",
        "occ-labs/operator-console · (repository, Dependabot)\n  + create  secret      NPM_TOKEN",
        "✓ create secret occ-labs/(organization) ORG_SENTRY_DSN",
        "✓ create secret occ-labs/operator-console/(repository, Dependabot) NPM_TOKEN",
        "organization secret ORG_SENTRY_DSN in occ-labs: visibility selected"
        " (occ-labs/operator-console)",
        "Dependabot secret NPM_TOKEN in occ-labs/operator-console: present",
    ):
        assert expected in ci_step, expected
    assert "ORG_SENTRY_DSN" not in before_ci.split("CI's secrets:")[0]
    assert "No changes. GitHub matches the policy and Vault." in final_plan
    rows = {line.split()[0]: line.split() for line in matrix.splitlines() if line.strip()}
    # the organization's own grid, with the secret's visibility
    assert " ".join(rows["ORG_SENTRY_DSN"]).endswith("✓ ok · visibility selected, 1 repository")
    assert rows["NPM_TOKEN"][-2:] == ["✓", "ok"]  # the repository level
    assert "eu-central-1" not in matrix

    # matrix --check: passes on the fresh file, fails with a short diff after the hand edit
    first, second = evidence.split("Someone changes SUPABASE_REGION")
    assert "secrets-matrix.md matches the matrix now.  (exit 0)" in first
    assert "--- secrets-matrix.md (committed)\n+++ matrix now\n@@" in second
    minus = [line for line in second.splitlines() if line.startswith("-| ")]
    plus = [line for line in second.splitlines() if line.startswith("+| ")]
    assert len(minus) == len(plus) == 1 and "SUPABASE_REGION" in minus[0]
    assert "! drifted" in plus[0] and "! drifted" not in minus[0]
    assert "no longer matches the matrix" in second and "(exit 1)" in second
    assert "us-east-1" not in text  # the hand-set value is not printed either

    # import of the demo org: a policy that validates, its first lines, what it left out
    lines = imported.splitlines()
    assert "  version: 1" in lines and "  secrets:" in lines
    assert "vault: apps/{environment}/chatwoot#api_token" in imported  # matched in Vault
    assert "  variables:" not in lines and "eu-central-1" not in imported
    assert "$ envmatrix validate imported.yaml: valid (" in imported
    left_out = [line for line in lines if line.startswith("  - ")]
    assert any("ZOHO_REFRESH_TOKEN" in line and "no Vault key" in line for line in left_out)
    assert any("ORG_SENTRY_DSN" in line and "organization" in line for line in left_out)
    assert any("SUPABASE_REGION" in line and "differs" in line for line in left_out)


@pytest.mark.parametrize(
    "broken",
    [
        lambda text: text.replace("\ngithub:\n", "\ngithub:\n  organization: other\n"),
        lambda text: text.replace("\nflags:\n", "\n"),
        lambda text: text.replace("\ngithub:\n", "\n"),
    ],
)
def test_the_ci_secrets_step_refuses_a_policy_it_was_not_written_for(
    broken: Callable[[str], str],
) -> None:
    go_live = go_live_policy_text(EXAMPLE_POLICY.read_text())
    with pytest.raises(ValueError, match="CI-secrets step"):
        ci_secrets_policy_text(broken(go_live))


def test_the_ci_secrets_policy_adds_the_organization_and_both_secrets(tmp_path: Path) -> None:
    path = tmp_path / "example.yaml"
    path.write_text(ci_secrets_policy_text(go_live_policy_text(EXAMPLE_POLICY.read_text())))
    policy = load_policy(path)
    cells = {c.name: c for c in desired_state(policy).secrets if c.name in CI_SECRETS}
    organization, dependabot = cells["ORG_SENTRY_DSN"], cells["NPM_TOKEN"]
    assert organization.target.organization and organization.target.repository == "occ-labs"
    assert (organization.visibility, organization.selected) == (
        "selected",
        ("occ-labs/operator-console",),
    )
    assert dependabot.target.store == "dependabot" and dependabot.target.is_repository_level
    assert policy.variables and policy.environments["production"].protection is not None
