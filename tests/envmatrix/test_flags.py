"""Flag readiness: pure cases from matrix cells, then `flags check` end to end (OpenBao +
GitHub sandbox): blocked in Vault -> exit 1 naming the owner; added and applied -> exit 0 and
the GitHub environment variable follows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from envmatrix.adapters.vault import VaultAdapter
from envmatrix.demo import seed_vault
from envmatrix.desired import DesiredState, FlagCell, Target
from envmatrix.errors import UsageError
from envmatrix.flags import apply_probes, flag_readiness, select
from envmatrix.matrix import MatrixCell, Status
from envmatrix.policy import load_policy
from envmatrix.sandbox import GitHubSandbox
from envmatrix.secret import SecretValue
from tests.envmatrix.support_gates import example_policy, run, run_json, use_services

PROD = Target("occ/app", "production", "prod")
FLAG = FlagCell(PROD, "FEATURE_X", ("URL", "KEY"), True)
DESIRED = DesiredState((PROD,), (), (FLAG,), False, "secret", {"rel": "rel@occ.example"})


def cells(url: Status, key: Status) -> list[MatrixCell]:
    return [
        MatrixCell("occ/app", "prod", "production", name, status, "rel", "supabase", "why")
        for name, status in (("URL", url), ("KEY", key))
    ]


READINESS_CASES = [
    (Status.OK, Status.OK, []),
    (Status.OK, Status.BLOCKED, ["KEY"]),
    (Status.MISSING, Status.OK, ["URL"]),
    (Status.STALE, Status.DRIFTED, ["URL", "KEY"]),
]


@pytest.mark.parametrize(("url", "key", "blocking"), READINESS_CASES)
def test_ready_only_when_every_required_secret_is_ok(
    url: Status, key: Status, blocking: list[str]
) -> None:
    (row,) = flag_readiness(DESIRED, cells(url, key))
    assert [b.secret for b in row.blockers] == blocking
    assert row.ready is (not blocking)
    assert all(b.owner == "rel" and b.contact == "rel@occ.example" for b in row.blockers)


def test_probe_runs_once_per_environment_and_only_when_otherwise_ready() -> None:
    calls: list[tuple[str, str]] = []

    def probe(kind: str, env: str) -> str | None:
        calls.append((kind, env))
        return "rejected"

    ready = flag_readiness(DESIRED, cells(Status.OK, Status.OK), {"FEATURE_X": "supabase"})
    blocked = flag_readiness(DESIRED, cells(Status.OK, Status.BLOCKED), {"FEATURE_X": "supabase"})
    (after,) = apply_probes(ready + ready, probe)[:1]
    assert not after.ready and after.blockers[0].status == "probe-failed"
    assert calls == [("supabase", "production")]
    assert apply_probes(blocked, probe)[0].blockers[0].secret == "KEY"
    assert len(calls) == 1


def test_select_rejects_unknown_flags_and_repositories() -> None:
    rows = flag_readiness(DESIRED, cells(Status.OK, Status.OK))
    with pytest.raises(UsageError, match="FEATURE_Y"):
        select(rows, "FEATURE_Y", "production", None)
    with pytest.raises(UsageError, match="other/repo"):
        select(rows, "FEATURE_X", "production", "other/repo")
    assert select(rows, "FEATURE_X", "production", "OCC/APP") == rows


# -- end to end ------------------------------------------------------------------------------

REPO = "occ-labs/operator-console"
FLAG_NAME = "FEATURE_AI_ESCALATIONS"


@pytest.fixture
def policy(
    tmp_path: Path,
    vault: VaultAdapter,
    vault_env: dict[str, str],
    sandbox: GitHubSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Path:
    """The example policy applied with SUPABASE_SERVICE_KEY missing in production's Vault."""
    path = example_policy(tmp_path, vault.mount)
    use_services(monkeypatch, sandbox, vault_env)
    seed_vault(load_policy(path), vault, leave_out=("SUPABASE_SERVICE_KEY", "production"))
    code, _, err = run(capsys, "apply", "--yes", "--policy", str(path))
    assert code == 0, err
    return path


def add_service_key(vault: VaultAdapter, value: str) -> None:
    values = vault.read_values("apps/production/supabase")
    vault.write_values("apps/production/supabase", {**values, "service_key": SecretValue(value)})


def test_flags_check_follows_the_secret_through_vault_and_apply(
    policy: Path, vault: VaultAdapter, sandbox: GitHubSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    check = ("flags", "check", FLAG_NAME, "--environment", "production", "--policy", str(policy))
    code, out, _ = run(capsys, *check)
    assert code == 1
    assert "SUPABASE_SERVICE_KEY" in out and "owner: reliability (reliability@occ.example)" in out
    assert sandbox.variable_value(REPO, "production", FLAG_NAME) == "false"

    canary = "canary-service-key-5b1f0e"
    add_service_key(vault, canary)
    code, out, _ = run(capsys, *check)
    assert code == 1 and "missing" in out  # in Vault now, not yet in GitHub
    code, plan = run_json(capsys, "plan", "--json", "--policy", str(policy))
    flips = [c for c in plan["changes"] if c["kind"] == "variable"]
    assert [(c["name"], c["environment"], c["value"]) for c in flips] == [
        (FLAG_NAME, "production", "true")
    ]

    code, out, err = run(capsys, "apply", "--yes", "--policy", str(policy))
    assert code == 0, err
    code, out, err = run(capsys, *check)
    assert code == 0, out
    assert f"{FLAG_NAME} is ready in {REPO}/production" in out
    assert sandbox.variable_value(REPO, "production", FLAG_NAME) == "true"
    assert canary not in out + err


def test_flags_listing_names_blockers_and_owners(
    policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = run_json(capsys, "flags", "--json", "--policy", str(policy))
    assert code == 0
    by_env: dict[str, Any] = {f["environment"]: f for f in data["flags"]}
    assert by_env["staging"]["ready"] is True and by_env["staging"]["blocking"] == []
    (blocker,) = by_env["production"]["blocking"]
    assert (blocker["secret"], blocker["status"], blocker["owner"]) == (
        "SUPABASE_SERVICE_KEY",
        "blocked",
        "reliability",
    )
    assert by_env["production"]["github_variable"] == "false"

    code, out, _ = run(capsys, "flags", "--policy", str(policy))
    assert code == 0 and "✗ not ready" in out and "✓ ready" in out
    assert "owner: reliability" in out


def test_flag_without_variable_is_checked_but_never_written(
    tmp_path: Path,
    vault: VaultAdapter,
    vault_env: dict[str, str],
    sandbox: GitHubSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def no_variable(document: dict[str, Any]) -> None:
        document["flags"][FLAG_NAME]["variable"] = False

    path = example_policy(tmp_path, vault.mount, no_variable)
    use_services(monkeypatch, sandbox, vault_env)
    seed_vault(load_policy(path), vault)
    assert run(capsys, "apply", "--yes", "--policy", str(path))[0] == 0
    code, _, _ = run(capsys, "flags", "check", FLAG_NAME, "-e", "production", "-p", str(path))
    assert code == 0
    assert sandbox.variable_value(REPO, "production", FLAG_NAME) is None


def test_unknown_flag_is_a_usage_error(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "flags", "check", "FEATURE_NOPE", "-e", "production", "--policy", str(policy)
    )
    assert code == 3 and "FEATURE_NOPE" in err
