"""`verify`: the CI gate, from the process environment (as in GitHub Actions) and through the
GitHub and Vault APIs; the runner's formats are checked with temp files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envmatrix.adapters.vault import VaultAdapter
from envmatrix.demo import seed_vault
from envmatrix.policy import load_policy
from envmatrix.sandbox import GitHubSandbox
from envmatrix.verify import escape_data, escape_property
from tests.envmatrix.support_gates import EXAMPLE, example_policy, run, run_json, use_services
from tests.world import World

REQUIRED = (
    "SUPABASE_URL",
    "SUPABASE_SERVICE_KEY",
    "ZOHO_CLIENT_ID",
    "ZOHO_CLIENT_SECRET",
    "ZOHO_REFRESH_TOKEN",
    "SHOPIFY_ADMIN_TOKEN",
    "CHATWOOT_API_TOKEN",
    "GA_MCP_SERVICE_ACCOUNT_JSON",
)
CANARY = "canary-verify-9c2d7e"
ANNOTATION = (
    "::error title=Missing secret SUPABASE_SERVICE_KEY::SUPABASE_SERVICE_KEY is missing or empty"
    " in production — owner: reliability (reliability@occ.example)"
)


@pytest.fixture
def actions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Path]:
    """A GitHub Actions job step: GITHUB_ACTIONS=true and the runner's two files."""
    files = {"summary": tmp_path / "step_summary.md", "output": tmp_path / "output.txt"}
    for path in files.values():
        path.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary"]))
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["output"]))
    monkeypatch.setenv("ENVMATRIX_POLICY", str(EXAMPLE))
    for i, name in enumerate(REQUIRED):
        monkeypatch.setenv(name, f"{CANARY}-{i}")
    return files


@pytest.mark.parametrize("unset", ["delete", "empty", "blank"])
def test_missing_or_empty_name_fails_with_runner_formats(
    actions: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    unset: str,
) -> None:
    if unset == "delete":
        monkeypatch.delenv("SUPABASE_SERVICE_KEY")
    else:
        monkeypatch.setenv("SUPABASE_SERVICE_KEY", "" if unset == "empty" else "  ")
    code, out, err = run(capsys, "verify", "--environment", "production")
    assert code == 1
    assert ANNOTATION in out.splitlines()
    assert actions["output"].read_text() == "earlier step\nmissing=SUPABASE_SERVICE_KEY\n"
    summary = actions["summary"].read_text()
    assert summary.startswith("earlier step\n### envmatrix verify: production (environ)")
    assert "| Secret | Status | Owner |\n|---|---|---|\n" in summary
    row = "| `SUPABASE_SERVICE_KEY` | ❌ missing | reliability (reliability@occ.example) |"
    assert row in summary
    assert "| `SUPABASE_URL` | ✅ present |" in summary
    assert CANARY not in out + err + summary


def test_all_present_exits_0_and_prints_no_value(
    actions: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "verify", "--environment", "production")
    assert code == 0
    assert "::error" not in out and "all 8 required secrets present" in out
    assert actions["output"].read_text().endswith("\nmissing=\n")
    assert CANARY not in out + err + actions["summary"].read_text()


def test_outside_actions_nothing_is_written_to_runner_files(
    actions: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS")
    monkeypatch.delenv("ZOHO_CLIENT_ID")
    code, out, _ = run(capsys, "verify", "-e", "production", "--source", "environ")
    assert code == 1 and "ZOHO_CLIENT_ID missing in the process environment" in out
    assert "owner: integrations (integrations@occ.example)" in out and "::error" not in out
    assert actions["output"].read_text() == "earlier step\n"


def test_json_and_usage_errors(
    actions: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS")
    monkeypatch.delenv("SUPABASE_URL")
    code, data = run_json(capsys, "verify", "-e", "production", "--source", "environ", "--json")
    assert code == 1 and data["ok"] is False
    assert [(m["name"], m["owner"]) for m in data["missing"]] == [("SUPABASE_URL", "reliability")]
    assert run(capsys, "verify", "-e", "qa", "--source", "environ")[0] == 3
    assert run(capsys, "verify", "-e", "production", "--source", "s3")[0] == 3
    unknown = ("-r", "occ/unknown", "--source", "environ")
    assert run(capsys, "verify", "-e", "production", *unknown)[0] == 3


def test_escaping_of_workflow_commands() -> None:
    assert escape_data("100%\r\nnext") == "100%25%0D%0Anext"
    assert escape_property("a:b,c") == "a%3Ab%2Cc"


def test_github_and_vault_sources(
    tmp_path: Path,
    vault: VaultAdapter,
    vault_env: dict[str, str],
    sandbox: GitHubSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = example_policy(tmp_path, vault.mount)
    use_services(monkeypatch, sandbox, vault_env)
    seed_vault(load_policy(policy), vault, leave_out=("ZOHO_CLIENT_ID", "production"))
    assert run(capsys, "apply", "--yes", "--policy", str(policy))[0] == 0
    code, out, _ = run(capsys, "verify", "-e", "production", "--policy", str(policy))
    assert code == 1  # default outside Actions: github
    assert (
        "ZOHO_CLIENT_ID missing in GitHub occ-labs/operator-console/production — owner:"
        " integrations (integrations@occ.example)"
    ) in out
    code, out, _ = run(capsys, "verify", "-e", "production", "--source", "vault", "-p", str(policy))
    assert code == 1 and f"missing in Vault {vault.mount}/apps/production/zoho#client_id" in out
    code, out, _ = run(capsys, "verify", "-e", "staging", "--source", "github", "-p", str(policy))
    assert code == 0 and "all 8 required secrets present" in out


def test_json_in_actions_keeps_stdout_parseable(
    actions: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUPABASE_SERVICE_KEY", "")
    code, out, err = run(capsys, "verify", "-e", "production", "--json")
    assert code == 1 and json.loads(out)["missing"][0]["name"] == "SUPABASE_SERVICE_KEY"
    assert ANNOTATION in err.splitlines()


def test_repository_secrets_are_required_in_every_environment(world: World) -> None:
    from envmatrix.adapters.github import GitHubAdapter
    from tests.world import OTHER_REPO, REPO

    world.add_repository_secrets()
    world.seed(leave_out=("CODECOV_TOKEN", ""))
    assert world.run("apply", "--yes").code == 0
    ok = world.run("verify", "-e", "staging", "--source", "github", "-r", OTHER_REPO)
    assert ok.code == 0 and "all 1 required secrets present" in ok.out
    GitHubAdapter(world.sandbox.url, "sandbox-token").delete_repository_secret(
        OTHER_REPO, "SENTRY_AUTH_TOKEN"
    )
    github = world.run("verify", "-e", "staging", "--source", "github")
    assert github.code == 1
    assert github.out.splitlines()[:2] == [
        "CODECOV_TOKEN missing in GitHub occ-labs/operator-console (repository secrets) — owner:"
        " data (data@occ.example)",
        "SENTRY_AUTH_TOKEN missing in GitHub occ-labs/storefront-sync (repository secrets) —"
        " owner: reliability (reliability@occ.example)",
    ]
    vault = world.run("verify", "-e", "production", "--source", "vault")
    assert vault.code == 1
    assert f"CODECOV_TOKEN missing in Vault {world.vault.mount}/ci/codecov#CODECOV_TOKEN" in (
        vault.out
    )
    assert "SENTRY_AUTH_TOKEN" not in vault.out
    for i, name in enumerate(REQUIRED):
        world.monkeypatch.setenv(name, f"{CANARY}-{i}")
    environ = world.run("verify", "-e", "production", "--source", "environ", "-r", REPO, "--json")
    assert environ.code == 1
    report = environ.json()
    assert [m["name"] for m in report["missing"]] == ["SENTRY_AUTH_TOKEN", "CODECOV_TOKEN"]
    assert len(report["checked"]) == 10
