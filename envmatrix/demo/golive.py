"""The demo's go-live step: the reliability team protects production and adds a plain variable.

The demo policy (policies/example.yaml, shared with the tests) gains, for this step only:

    environments:
      production:
        github: production
        protection: {reviewers: [...], wait_timer: 30, prevent_self_review: true,
                     deployment_branches: protected}
    variables:
      SUPABASE_REGION: {owner: reliability, value: eu-central-1, environments: [...]}

plan shows `kind: environment` / `protection-differs` and the variable's create, apply converges
both, and the next plan is clean.

Then CI's secrets (`ci_secrets_policy_text`): `github.organization: occ-labs`, an organization
secret visible to selected repositories only and a Dependabot repository secret (workflows that
Dependabot triggers read only those), planned, applied and shown in the matrix.
"""

from __future__ import annotations

from pathlib import Path

from envmatrix.sandbox import GitHubSandbox

REVIEWER, TEAM = "octo-admin", ("occ-labs", "release")
PRODUCTION_LINE = "  production: {github: production}\n"
PROTECTED_PRODUCTION = f"""\
  production:
    github: production
    protection:                       # the go-live: converged by apply
      reviewers: [{{user: {REVIEWER}}}, {{team: {TEAM[0]}/{TEAM[1]}}}]
      wait_timer: 30
      prevent_self_review: true
      deployment_branches: protected
"""
VARIABLE = """
variables:
  SUPABASE_REGION:                    # a plain Actions variable: not secret, value compared
    service: supabase
    owner: reliability
    value: eu-central-1
    environments: [staging, production]
"""


def go_live_policy_text(policy_text: str) -> str:
    """The demo policy with production protected and the variable added. ValueError when the
    policy has no `production: {github: production}` line or declares variables already."""
    if PRODUCTION_LINE not in policy_text or "\nvariables:" in policy_text:
        raise ValueError("the demo's go-live step needs the example policy")
    return policy_text.replace(PRODUCTION_LINE, PROTECTED_PRODUCTION, 1) + VARIABLE


def write_go_live_policy(policy_file: Path, folder: Path, sandbox: GitHubSandbox) -> Path:
    """Write the go-live policy into `folder` and create its reviewers in the sandbox."""
    sandbox.add_user(REVIEWER)
    sandbox.add_team(*TEAM)
    path = folder / policy_file.name
    path.write_text(go_live_policy_text(policy_file.read_text()))
    return path


ORGANIZATION, SELECTED = "occ-labs", "occ-labs/operator-console"
ORGANIZATION_SECRET, DEPENDABOT_SECRET = "ORG_SENTRY_DSN", "NPM_TOKEN"
CI_SECRETS = f"""\
  {ORGANIZATION_SECRET}:                   # one organization secret, for the selected repositories
    service: sentry
    owner: reliability
    scope: organization
    visibility: selected
    repositories: [{SELECTED}]
    vault: ci/sentry#dsn
  {DEPENDABOT_SECRET}:                        # Dependabot-triggered workflows read only these
    service: npm
    owner: reliability
    scope: repository
    store: dependabot
    vault: ci/npm#token
"""


def ci_secrets_policy_text(go_live_text: str) -> str:
    """The go-live policy with `github.organization` and CI's two secrets added before `flags:`.
    ValueError when the policy has no `github:` or `flags:` section, or names an organization."""
    if "\ngithub:\n" not in go_live_text or "\nflags:\n" not in go_live_text:
        raise ValueError("the demo's CI-secrets step needs the example policy")
    if "\n  organization:" in go_live_text:
        raise ValueError("the demo's CI-secrets step adds github.organization itself")
    text = go_live_text.replace("\ngithub:\n", f"\ngithub:\n  organization: {ORGANIZATION}\n", 1)
    head, flags = text.split("\nflags:\n", 1)
    return f"{head}\n{CI_SECRETS}\nflags:\n{flags}"


def write_ci_secrets_policy(go_live: Path) -> Path:
    """Write the CI-secrets policy beside the go-live one (same file name, own folder)."""
    folder = go_live.parent / "ci-secrets"
    folder.mkdir()
    path = folder / go_live.name
    path.write_text(ci_secrets_policy_text(go_live.read_text()))
    return path


def sandbox_holdings(sandbox: GitHubSandbox) -> list[str]:
    """What the sandbox holds after the CI-secrets step, in words (names and access, no value)."""
    access = sandbox.organization_access(ORGANIZATION, ORGANIZATION_SECRET)
    org = (
        f"organization secret {ORGANIZATION_SECRET} in {ORGANIZATION}: visibility {access[0]}"
        f" ({', '.join(access[1]) or 'no repository'})"
        if access is not None
        else f"no organization secret {ORGANIZATION_SECRET} in {ORGANIZATION}"
    )
    held = sandbox.dependabot_secret_value(SELECTED, DEPENDABOT_SECRET) is not None
    dependabot = (
        f"Dependabot secret {DEPENDABOT_SECRET} in {SELECTED}: {'present' if held else 'absent'}"
    )
    return [org, dependabot]
