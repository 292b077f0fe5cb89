"""Workflow scan: the test workflow folder against the example policy, and pure cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from envmatrix.policy import Policy, load_policy
from envmatrix.views.scan import ANY_ENVIRONMENT, JobReferences, compare, references, scan_workflows
from tests.envmatrix.support_gates import EXAMPLE, run, run_json

WORKFLOWS = Path(__file__).resolve().parents[1] / "data" / "workflows"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(EXAMPLE)


def test_finds_the_undeclared_and_the_unused_secret(policy: Policy) -> None:
    report = scan_workflows(policy, WORKFLOWS)
    assert [(f.kind, f.secret, f.environment, f.workflow, f.job) for f in report.undeclared] == [
        ("undeclared", "SENTRY_DSN", "production", "deploy.yml", "deploy-production")
    ]
    assert [(f.secret, f.environment, f.owner) for f in report.unused] == [
        ("GA_MCP_SERVICE_ACCOUNT_JSON", "production", "data")
    ]


def test_jobs_environments_are_mapped_back_to_the_policy(policy: Policy) -> None:
    report = scan_workflows(policy, WORKFLOWS)
    jobs = {j.job: j for j in report.jobs}
    assert jobs["deploy-staging"].environment == "staging"  # {name: staging}
    # ${{ matrix.env }} over [staging, production]: one run per matrix value
    gate = sorted((j.environment, j.environment_expression) for j in report.jobs if j.job == "gate")
    assert gate == [("production", "${{ matrix.env }}"), ("staging", "${{ matrix.env }}")]
    assert report.environment_unknown == ()
    assert jobs["lint"].environment is None and jobs["lint"].secrets == ()  # GITHUB_TOKEN only
    # references in `if:` and secrets['NAME'] count too
    assert {"SUPABASE_URL", "ZOHO_REFRESH_TOKEN"} <= set(jobs["deploy-production"].secrets)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("${{ secrets.A_B }}", {"A_B"}),
        ("${{secrets.lower}}", {"LOWER"}),
        ("${{ secrets['Q1'] }} and ${{ secrets[\"Q2\"] }}", {"Q1", "Q2"}),
        ("${{ secrets.GITHUB_TOKEN }}", set()),
        ("mysecrets.X is not a reference", set()),
        ("if: secrets.FOO != ''", {"FOO"}),
    ],
)
def test_references(text: str, names: set[str]) -> None:
    assert references(text) == names


def job(name: str, github_env: str | None, env: str | None, *secrets: str) -> JobReferences:
    return JobReferences("w.yml", name, github_env, env, tuple(secrets))


def test_a_job_without_environment_cannot_see_environment_secrets(policy: Policy) -> None:
    report = compare(policy, [job("build", None, None, "SUPABASE_URL", "NPM_TOKEN")])
    assert [(f.kind, f.secret) for f in report.undeclared] == [("no-environment", "SUPABASE_URL")]


def test_a_dynamic_environment_is_checked_against_every_environment(policy: Policy) -> None:
    report = compare(policy, [job("j", "${{ matrix.env }}", ANY_ENVIRONMENT, "SUPABASE_URL", "X")])
    assert [(f.kind, f.secret) for f in report.undeclared] == [("undeclared", "X")]
    assert not any(f.secret == "SUPABASE_URL" for f in report.unused)


def test_unmanaged_environments_are_skipped_with_a_note(policy: Policy) -> None:
    report = compare(policy, [job("docs", "docs", None, "DOCS_TOKEN")])
    assert report.undeclared == ()
    assert report.skipped == ("w.yml: job docs: environment docs is not in the policy",)


def test_scan_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "scan", "--workflows", str(WORKFLOWS), "--policy", str(EXAMPLE))
    assert code == 1
    assert "undeclared: deploy.yml job deploy-production references SENTRY_DSN" in out
    assert "unused: GA_MCP_SERVICE_ACCOUNT_JSON is declared for production" in out
    code, data = run_json(
        capsys, "scan", "--json", "--workflows", str(WORKFLOWS), "--policy", str(EXAMPLE)
    )
    assert code == 1 and [f["secret"] for f in data["undeclared"]] == ["SENTRY_DSN"]

    clean = tmp_path / "wf"
    clean.mkdir()
    (clean / "ci.yml").write_text("jobs:\n  t:\n    runs-on: x\n    steps: [{run: make}]\n")
    code, _, _ = run(capsys, "scan", "--workflows", str(clean), "--policy", str(EXAMPLE))
    assert code == 0  # unused secrets are reported, not failed on


def test_missing_folder_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "scan", "--workflows", "/nonexistent", "--policy", str(EXAMPLE))
    assert code == 3 and "not a directory" in err


def test_a_repository_secret_is_declared_for_every_job(tmp_path: Path) -> None:
    from tests.world import REPOSITORY_SECRETS

    head, flags = EXAMPLE.read_text().split("\nflags:\n")
    path = tmp_path / "policy.yaml"
    path.write_text(f"{head}\n{REPOSITORY_SECRETS}\nflags:\n{flags}")
    policy = load_policy(path)
    report = compare(
        policy,
        [
            job("build", None, None, "SENTRY_AUTH_TOKEN", "SUPABASE_URL"),
            job("deploy", "production", "production", "SENTRY_AUTH_TOKEN", "UNKNOWN"),
            job("any", "${{ matrix.env }}", ANY_ENVIRONMENT, "SENTRY_AUTH_TOKEN"),
        ],
    )
    assert [(f.kind, f.secret) for f in report.undeclared] == [
        ("no-environment", "SUPABASE_URL"),
        ("undeclared", "UNKNOWN"),
    ]
    unused = [(f.secret, f.environment) for f in report.unused]
    assert ("CODECOV_TOKEN", None) in unused  # no job references it at all
    assert not any(secret == "SENTRY_AUTH_TOKEN" for secret, _ in unused)
    # only for the repositories it targets: storefront-sync has SENTRY_AUTH_TOKEN, not CODECOV
    other = compare(policy, [job("b", None, None, "CODECOV_TOKEN")], "occ-labs/storefront-sync")
    assert [(f.kind, f.secret) for f in other.undeclared] == []
    assert [(f.secret, f.environment) for f in other.unused] == [("SENTRY_AUTH_TOKEN", None)]
