"""Workflow scan over a table of workflow folders (tests/data/workflows/cases/<case>/): every
way a job gets an environment and its secrets — literal, `{name, url}`, matrix (include,
exclude), workflow_dispatch/workflow_call inputs (defaults, choices), reusable workflows called
with `secrets: inherit`, an explicit mapping or nothing, nested — and what cannot be worked out
("environment unknown"). Each folder's expected.json gives the job runs and the references
GitHub would give an empty string."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envmatrix.policy import Policy, load_policy
from envmatrix.render.matrix import matrix_text
from envmatrix.views.matrix import Matrix
from envmatrix.views.scan import ScanReport, scan_workflows
from tests.envmatrix.support_gates import run_json

CASES = Path(__file__).resolve().parents[1] / "data" / "workflows" / "cases"
POLICY = CASES / "policy.yaml"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(POLICY)


def _cases() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if (p / "expected.json").is_file())


def _expected(case: str) -> dict[str, Any]:
    return json.loads((CASES / case / "expected.json").read_text())  # type: ignore[no-any-return]


def _runs(report: ScanReport) -> list[list[Any]]:
    return sorted([j.workflow, j.job, j.github_environment, j.caller] for j in report.jobs)


def _empty_strings(report: ScanReport) -> list[list[Any]]:
    return sorted(
        [f.kind, f.secret, f.workflow, f.job, f.environment, f.caller] for f in report.undeclared
    )


def test_the_table_covers_every_way() -> None:
    prefixes = {case.split("-")[0] for case in _cases()}
    assert prefixes == {"literal", "matrix", "input", "needs", "reusable"}
    assert len(_cases()) >= 20


@pytest.mark.parametrize("case", _cases())
def test_case(policy: Policy, case: str) -> None:
    expected = _expected(case)
    report = scan_workflows(policy, CASES / case)
    assert _runs(report) == sorted(expected["runs"])
    assert sorted([j.workflow, j.job] for j in report.environment_unknown) == sorted(
        expected["unknown"]
    )
    assert _empty_strings(report) == sorted(expected["empty_string"])
    if "skipped" in expected:
        assert list(report.skipped) == expected["skipped"]


@pytest.mark.parametrize("case", _cases())
def test_case_through_the_command(capsys: pytest.CaptureFixture[str], case: str) -> None:
    expected = _expected(case)
    folder = str(CASES / case)
    code, data = run_json(capsys, "scan", "--json", "--workflows", folder, "--policy", str(POLICY))
    assert code == (1 if expected["empty_string"] else 0)
    unknown = sorted([j["workflow"], j["job"]] for j in data["environment_unknown"])
    assert unknown == sorted(expected["unknown"])
    assert all(j["environment_unknown"] for j in data["environment_unknown"])
    empty = sorted(
        [e["workflow"], e["job"], e["environment"], e["caller"], s]
        for e in data["empty_string"]
        for s in e["secrets"]
    )
    assert empty == sorted(
        [w, j, env, caller, s] for _, s, w, j, env, caller in expected["empty_string"]
    )


def test_human_output_names_unknown_environments_and_callers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.envmatrix.support_gates import run

    args = ["--workflows", str(CASES / "matrix-expression"), "--policy", str(POLICY)]
    code, out, _ = run(capsys, "scan", *args)
    assert code == 1
    assert (
        "environment unknown: deploy.yml job deploy: environment ${{ matrix.env }} cannot be "
        "worked out" in out
    )
    assert "1 environment unknown" in out
    grid = matrix_text(Matrix(()), scan_workflows(load_policy(POLICY), CASES / "matrix-expression"))
    assert "workflow environment unknown: deploy.yml job deploy" in grid  # matrix --workflows
    args = ["--workflows", str(CASES / "reusable-mapping"), "--policy", str(POLICY)]
    code, out, _ = run(capsys, "scan", *args)
    assert (
        "not-passed: deploy-callee.yml job deploy (called by ci.yml job to-staging) references "
        "PROD_ONLY, which its caller neither maps" in out
    )
