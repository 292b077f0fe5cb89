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
