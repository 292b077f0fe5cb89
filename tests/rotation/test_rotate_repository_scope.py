"""Rotation of `scope: repository` secrets (Actions repository secrets, one Vault path for every
environment): the groups, the engine's grace handling, and `envmatrix rotate` / `rotation
status|due|calendar` end to end against OpenBao and the GitHub sandbox, SIGKILL included."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from envmatrix.adapters.github import GitHubAdapter
from envmatrix.errors import UsageError
from rotation.engine import RotationEngine, rotate_due
from rotation.groups import groups_for, rotating_paths
from rotation.journal import journal_path, pending_path
from rotation.schedule import overdue_cells, rotation_statuses
from rotation.strategies import StrategySettings
from tests.rotation.rotation_support import (
    REPOS,
    REPOSITORY_PATH,
    echo_rotation,
    load,
    plan_writes,
    provider_valid,
    repository_copies,
    run_cli,
    seed_repository,
    sync_all,
    trust_initial,
    write_repository_policy,
)

STEPS = ["started", "created", "staged", "tested", "promoted", "synced", "revoked", "done"]
GENERATE = {"max_age": "30d", "strategy": "generate"}


@pytest.fixture
def world(tmp_path: Path, vault: Any, sandbox: Any) -> Any:
    def make(rotation: dict[str, Any], peer: list[str] | None = None) -> Any:
        path = write_repository_policy(tmp_path, vault.mount, rotation, peer)
        old = seed_repository(vault)
        trust_initial(tmp_path, {"ci": old})
        sync_all(path, vault, sandbox)
        assert repository_copies(sandbox) == [old, old]
        return path, old

    return make


def rotate(path: Path, vault_env: Any, sandbox: Any, *extra: str, **kw: Any) -> Any:
    return run_cli(["rotate", "CI_TOKEN", "--policy", str(path), *extra], vault_env, sandbox, **kw)


def current(vault: Any) -> str:
    return vault.read_values(REPOSITORY_PATH)["token"].reveal()


def journal_step(vault: Any) -> str:
    return str(vault.read_document(journal_path(REPOSITORY_PATH)).data["step"])


# -- groups ---------------------------------------------------------------------------------------


def test_a_repository_secret_is_one_group_without_environments(tmp_path) -> None:
    policy = load(write_repository_policy(tmp_path, "secret", GENERATE))
    [group] = groups_for(policy, "CI_TOKEN")
    assert (group.path, group.environments, group.environment) == (REPOSITORY_PATH, (), None)
    assert group.repository_level and group.secrets == ("CI_TOKEN", "CI_USER")
    assert dict(group.keys) == {"CI_TOKEN": "token"}
    # like the plan: a repository secret is in a selection only when it covers every environment
    assert rotating_paths(policy) == [REPOSITORY_PATH]
    assert rotating_paths(policy, ["staging", "production"]) == [REPOSITORY_PATH]
    assert rotating_paths(policy, ["production"]) == []
    with pytest.raises(UsageError, match="rotate it without --environment"):
        groups_for(policy, "CI_TOKEN", ["production"])


def test_environment_secrets_reading_the_same_path_join_the_group(tmp_path) -> None:
    policy = load(write_repository_policy(tmp_path, "secret", GENERATE, ["staging", "production"]))
    [group] = groups_for(policy, "CI_TOKEN")
    assert group.environments == ("staging", "production") and group.repository_level
    assert group.secrets == ("CI_TOKEN", "CI_USER", "PEER_KEY")
    assert rotating_paths(policy, ["production"]) == []  # PEER_KEY does not rotate


def test_statuses_put_it_at_the_repository_level(tmp_path) -> None:
    policy = load(write_repository_policy(tmp_path, "secret", GENERATE))
    at = datetime(2027, 1, 1, tzinfo=UTC)
    [status] = rotation_statuses(policy, ["staging", "production"], {}, at)
    assert (status.secret, status.environment, status.path) == (
        "CI_TOKEN",
        "(repository)",
        REPOSITORY_PATH,
    )
    assert status.repository_level and status.state == "never-rotated"
    # the plan's matrix marks repository-level cells, whose logical environment is ""
    assert overdue_cells([status]) == {("CI_TOKEN", "")}
    assert rotation_statuses(policy, ["production"], {}, at) == ()


# -- the engine: grace, then revoke on rotate --due -----------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def test_grace_keeps_the_previous_credential_until_rotate_due(
    world, vault, sandbox, tmp_path
) -> None:
    path, old = world(echo_rotation(tmp_path, grace="1d"))
    policy, clock = load(path), Clock()
    engine = RotationEngine(
        policy,
        vault,
        GitHubAdapter(sandbox.url, "sandbox-token"),
        settings=StrategySettings(tmp_path),
        clock=clock,
    )
    [group] = groups_for(policy, "CI_TOKEN")
    outcome = engine.rotate(group)
    assert outcome.result == "in-grace", outcome.message
    new = current(vault)
    assert repository_copies(sandbox) == [new, new]
    assert provider_valid(tmp_path) == {old, new}
    clock.now += timedelta(days=1, seconds=1)
    # --due for one environment leaves the repository secret alone, as the plan does
    assert rotate_due(engine, ("production",), due=lambda *a: []) == []
    assert provider_valid(tmp_path) == {old, new}
    [finished] = rotate_due(engine, (), due=lambda *a: [])
    assert finished.result == "done", finished.message
    assert provider_valid(tmp_path) == {new}
    assert journal_step(vault) == "done"


# -- envmatrix rotate -----------------------------------------------------------------------------


def test_rotate_generate_writes_every_repository_copy(world, vault, vault_env, sandbox) -> None:
    path, old = world(GENERATE)
    before = vault.read_entry(REPOSITORY_PATH).version
    done = rotate(path, vault_env, sandbox, "--yes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    [row] = json.loads(done.stdout)["rotations"]
    assert (row["result"], row["environments"], row["repository_level"]) == ("done", [], True)
    assert (row["previous_version"], row["new_version"]) == (before, before + 1)
    new = current(vault)
    assert new != old and len(new) == 32
    assert repository_copies(sandbox) == [new, new]
    assert repository_copies(sandbox, "CI_USER") == ["ci-user", "ci-user"]
    assert vault.read_values(REPOSITORY_PATH, before)["token"].reveal() == old
    assert vault.read_document(pending_path(REPOSITORY_PATH)) is None
    assert vault.read_document(journal_path(REPOSITORY_PATH)).data["environment"] is None
    assert plan_writes(path, vault, sandbox) == []
    plan = run_cli(["plan", "--policy", str(path), "--detailed-exitcode"], vault_env, sandbox)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    again = rotate(path, vault_env, sandbox, "--yes")
    assert again.returncode == 0, again.stderr
    assert f"✓ {REPOSITORY_PATH} synced:" in again.stdout and "Rotation: 1 done" in again.stdout
    assert repository_copies(sandbox) == [current(vault)] * 2 != [new, new]


def test_environment_copies_sharing_the_path_are_resynced(world, vault, vault_env, sandbox) -> None:
    path, old = world(GENERATE, ["staging", "production"])
    done = rotate(path, vault_env, sandbox, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert repository_copies(sandbox) == [current(vault)] * 2 != [old, old]
    for env in ("staging", "production"):
        assert [sandbox.secret_value(r, env, "PEER_KEY") for r in REPOS] == ["peer", "peer"]
    assert plan_writes(path, vault, sandbox) == []  # every copy records the new Vault version


@pytest.mark.parametrize("step", STEPS)
def test_killed_after_each_step_resume_finishes(world, vault, vault_env, sandbox, step) -> None:
    path, old = world(GENERATE)
    killed = rotate(path, vault_env, sandbox, "--yes", failpoint=f"rotation.after={step}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert set(repository_copies(sandbox)) <= {old, current(vault)}
    resumed = rotate(path, vault_env, sandbox, "--yes", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    new = current(vault)
    assert new != old and repository_copies(sandbox) == [new, new]
    assert plan_writes(path, vault, sandbox) == []
    assert journal_step(vault) == "done"


def test_a_second_runner_is_told_how_to_resume(world, vault, vault_env, sandbox) -> None:
    path, _ = world(GENERATE)
    rotate(path, vault_env, sandbox, "--yes", failpoint="rotation.after=staged")
    second = rotate(path, vault_env, sandbox, "--yes")
    assert second.returncode == 1
    assert "being rotated by" in second.stderr
    assert "envmatrix rotate CI_TOKEN --resume" in second.stderr


def test_rollback_within_grace_restores_the_previous_value(
    world, vault, vault_env, sandbox
) -> None:
    path, old = world({**GENERATE, "grace": "7d"})
    first = rotate(path, vault_env, sandbox, "--yes")
    assert first.returncode == 0 and "stays valid until" in first.stdout, first.stderr
    assert repository_copies(sandbox) == [current(vault)] * 2 != [old, old]
    back = rotate(path, vault_env, sandbox, "--yes", "--rollback", "--json")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["rotations"][0]["result"] == "rolled-back"
    assert current(vault) == old and repository_copies(sandbox) == [old, old]
    assert plan_writes(path, vault, sandbox) == []
    again = rotate(path, vault_env, sandbox, "--yes", "--rollback")
    assert again.returncode == 1 and "no rotation within its grace period" in again.stderr


@pytest.mark.parametrize("mode", [[], ["--resume"], ["--rollback"]])
def test_environment_option_is_a_usage_error(world, vault, vault_env, sandbox, mode) -> None:
    path, old = world(GENERATE)
    version = vault.read_entry(REPOSITORY_PATH).version
    result = rotate(path, vault_env, sandbox, "--yes", "--environment", "production", *mode)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.startswith("error: CI_TOKEN is a scope: repository secret")
    assert "without --environment" in result.stderr
    assert vault.read_entry(REPOSITORY_PATH).version == version
    assert repository_copies(sandbox) == [old, old]


def test_rotate_due_rotates_a_never_rotated_repository_secret(
    tmp_path, vault, vault_env, sandbox
) -> None:
    path = write_repository_policy(tmp_path, vault.mount, GENERATE)
    command = ["rotate", "--due", "--yes", "--policy", str(path)]
    one = run_cli([*command, "--environment", "production"], vault_env, sandbox)
    assert one.returncode == 0 and "0 done" in one.stdout, one.stdout + one.stderr
    assert vault.read_entry(REPOSITORY_PATH).version is None  # not in one environment
    due = run_cli(command, vault_env, sandbox)
    assert due.returncode == 0, due.stdout + due.stderr
    assert len(current(vault)) == 32 and repository_copies(sandbox) == [current(vault)] * 2
    again = run_cli(command, vault_env, sandbox)
    assert again.returncode == 0 and "0 done" in again.stdout  # not due any more


# -- rotation status / due / calendar ----------------------------------------------------------


def test_status_due_and_calendar_list_it(world, vault, vault_env, sandbox) -> None:
    path, _ = world(GENERATE)

    def cli(*args: str) -> Any:
        return run_cli([*args, "--policy", str(path)], vault_env, sandbox)

    status = cli("rotation", "status", "--json")
    assert status.returncode == 0, status.stderr
    [row] = json.loads(status.stdout)["rotations"]
    assert (row["secret"], row["environment"], row["path"]) == ("CI_TOKEN", None, REPOSITORY_PATH)
    assert (row["state"], row["repositories"], row["group"]) == ("ok", REPOS, ["CI_TOKEN"])
    assert row["vault_version"] == vault.read_entry(REPOSITORY_PATH).version
    assert "(repository)" in cli("rotation", "status").stdout
    assert (
        json.loads(cli("rotation", "status", "-e", "production", "--json").stdout)["rotations"]
        == []
    )
    due = cli("rotation", "due", "--at", "2100-01-01", "--json")
    assert due.returncode == 1
    assert [(r["secret"], r["environment"]) for r in json.loads(due.stdout)["rotations"]] == [
        ("CI_TOKEN", None)
    ]
    assert (
        "CI_TOKEN (repository secret, owner: ops)"
        in cli("rotation", "due", "--at", "2100-01-01").stderr
    )
    calendar = cli("rotation", "calendar", "--days", "40", "--json")
    [event] = json.loads(calendar.stdout)["rotations"]
    assert event["environment"] is None and event["uid"].startswith("CI_TOKEN-repository-")
