"""In GitHub Actions, `verify` and `flags check` check the repository the workflow runs in
(`$GITHUB_REPOSITORY`) unless `--repository` says otherwise: a multi-repository policy no longer
fails one repository's deploy for another repository's secrets. Against OpenBao and the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.world import OTHER_REPO, REPO, World, example_policy_text

BOTH = {f"repositories: [{REPO}]": f"repositories: [{REPO}, {OTHER_REPO}]"}
FLAG = "FEATURE_AI_ESCALATIONS"


@pytest.fixture
def synced_in_one(world: World, vault_mount: str, tmp_path: Path) -> World:
    """Every secret targets both repositories; only REPO was applied (OTHER_REPO has nothing)."""
    world.write_policy(example_policy_text(vault_mount, **BOTH))
    world.seed()
    assert world.run("apply", "--yes", "--repository", REPO).code == 0
    return world


def in_actions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, repository: str | None) -> Path:
    """A job step's environment; the runner's GITHUB_OUTPUT file."""
    output = tmp_path / "github_output"
    output.write_text("")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    if repository is None:
        monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    else:
        monkeypatch.setenv("GITHUB_REPOSITORY", repository)
    return output


@pytest.mark.parametrize(
    ("running", "code"),
    [(REPO, 0), (REPO.upper(), 0), (OTHER_REPO, 1), (None, 1)],
)
def test_verify_defaults_to_the_repository_the_workflow_runs_in(
    synced_in_one: World,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    running: str | None,
    code: int,
) -> None:
    in_actions(monkeypatch, tmp_path, running)
    done = synced_in_one.run("verify", "-e", "production", "--source", "github")
    assert done.code == code, done.out + done.err
    if code:  # the other repository's copies are missing, never this one's
        assert "SUPABASE_URL" in done.out and OTHER_REPO in done.out


@pytest.mark.parametrize(
    ("running", "code", "ready"),
    [(REPO, 0, "true"), (OTHER_REPO.upper(), 1, "false"), (None, 1, "false")],
)
def test_flags_check_defaults_to_the_repository_the_workflow_runs_in(
    synced_in_one: World,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    running: str | None,
    code: int,
    ready: str,
) -> None:
    output = in_actions(monkeypatch, tmp_path, running)
    done = synced_in_one.run("flags", "check", FLAG, "-e", "production", "--no-probe")
    assert done.code == code, done.out + done.err
    assert f"ready={ready}\n" in output.read_text()


@pytest.mark.parametrize("command", [("verify",), ("flags", "check", FLAG, "--no-probe")])
@pytest.mark.parametrize("running", ["occ-labs/elsewhere", "someone/operator-console"])
def test_a_repository_the_policy_does_not_target_is_a_usage_error(
    synced_in_one: World,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: tuple[str, ...],
    running: str,
) -> None:
    in_actions(monkeypatch, tmp_path, running)
    synced_in_one.sandbox.reset_counts()
    done = synced_in_one.run(*command, "-e", "production", *_source(command))
    assert done.code == 3, done.out + done.err
    assert done.err.count("\n") == 1
    assert f"runs in {running} (GITHUB_REPOSITORY)" in done.err
    assert f"({REPO}, {OTHER_REPO})" in done.err and "--repository" in done.err
    assert sum(synced_in_one.sandbox.request_counts().values()) == 0  # refused before reading


def _source(command: tuple[str, ...]) -> tuple[str, ...]:
    return ("--source", "github") if command[0] == "verify" else ()


def test_an_explicit_repository_wins_over_github_repository(
    synced_in_one: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    in_actions(monkeypatch, tmp_path, "occ-labs/elsewhere")
    done = synced_in_one.run(
        "verify", "-e", "production", "--source", "github", "--repository", REPO
    )
    assert done.code == 0, done.out + done.err
    other = synced_in_one.run("flags", "check", FLAG, "-e", "production", "-r", OTHER_REPO)
    assert other.code == 1, other.out + other.err


def test_outside_actions_github_repository_is_ignored(
    synced_in_one: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)  # set, but not in a job: every repository
    done = synced_in_one.run("verify", "-e", "production", "--source", "github")
    assert done.code == 1 and OTHER_REPO in done.out, done.out + done.err
