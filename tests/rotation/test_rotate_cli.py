"""`envmatrix rotate` end to end: subprocesses against OpenBao and the GitHub sandbox, including
SIGKILL after every step, a second runner, rollback, manual input and the canary over outputs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import hvac
import pytest

from envmatrix.rotation.journal import journal_path
from envmatrix.sandbox import Fault
from envmatrix.secret import SecretValue
from tests.rotation.rotation_support import (
    ROOT,
    copies,
    echo_rotation,
    load,
    plan_writes,
    provider_valid,
    run_cli,
    seed,
    sync_all,
    trust_initial,
    write_policy,
)

STEPS = ["started", "created", "staged", "tested", "promoted", "synced", "revoked", "done"]
GENERATE = {"max_age": "30d", "strategy": "generate"}


@pytest.fixture
def world(tmp_path: Path, vault: Any, sandbox: Any) -> Any:
    def make(rotation: dict[str, Any], environments: list[str] | None = None) -> Any:
        path = write_policy(tmp_path, vault.mount, rotation, environments or ["production"])
        policy = load(path)
        tokens = seed(policy, vault, sandbox)
        trust_initial(tmp_path, tokens)
        sync_all(path, vault, sandbox)
        return path, tokens

    return make


def rotate(path: Path, vault_env: Any, sandbox: Any, *extra: str, **kw: Any) -> Any:
    return run_cli(["rotate", "API_TOKEN", "--policy", str(path), *extra], vault_env, sandbox, **kw)


def current(vault: Any) -> str:
    return vault.read_values("apps/production/api")["token"].reveal()


def test_rotate_generate_prints_each_step_and_converges(world, vault, vault_env, sandbox) -> None:
    path, tokens = world(GENERATE, ["staging", "production"])
    done = rotate(path, vault_env, sandbox, "--yes")
    assert done.returncode == 0, done.stderr
    for step in STEPS[1:]:
        if step in ("tested", "revoked"):  # generate has no provider: skipped, never ✓
            assert f"– apps/production/api {step}: skipped: generate has no provider" in done.stdout
            assert f"✓ apps/production/api {step}:" not in done.stdout
        else:
            assert f"✓ apps/production/api {step}:" in done.stdout
    assert "Rotation: 2 done, 0 in-grace" in done.stdout
    assert copies(sandbox, "production") == [current(vault)] * 2 != [tokens["production"]] * 2
    plan = run_cli(["plan", "--policy", str(path), "--detailed-exitcode"], vault_env, sandbox)
    assert plan.returncode == 0, plan.stdout + plan.stderr


@pytest.mark.parametrize("strategy", ["generate", "command"])
@pytest.mark.parametrize("step", STEPS)
def test_killed_after_each_step_resume_finishes(
    world,
    vault,
    vault_env,
    sandbox,
    tmp_path,
    step,
    strategy,
) -> None:
    path, tokens = world(GENERATE if strategy == "generate" else echo_rotation(tmp_path))
    old = tokens["production"]
    killed = rotate(path, vault_env, sandbox, "--yes", failpoint=f"rotation.after={step}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    held = copies(sandbox, "production")
    assert set(held) <= {old, current(vault)}
    if strategy == "command":  # every copy GitHub holds is a credential the provider accepts
        assert set(held) <= provider_valid(tmp_path)
    resumed = rotate(path, vault_env, sandbox, "--yes", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    new = current(vault)
    assert new != old and copies(sandbox, "production") == [new, new]
    assert plan_writes(path, vault, sandbox) == []
    assert vault.read_document(journal_path("apps/production/api")).data["step"] == "done"
    if strategy == "command":  # old revoked; a credential lost in the crash was discarded
        assert provider_valid(tmp_path) == {new}


def test_killed_between_the_vault_promotion_and_its_journal_entry_resumes(
    world, vault, vault_env, sandbox, tmp_path
) -> None:
    path, tokens = world(echo_rotation(tmp_path))
    old = tokens["production"]
    killed = rotate(path, vault_env, sandbox, "--yes", failpoint="rotation.promote=vault-written")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    promoted = current(vault)
    assert promoted != old  # Vault moved; the journal still says tested
    assert vault.read_document(journal_path("apps/production/api")).data["step"] == "tested"
    assert set(copies(sandbox, "production")) <= {old} | provider_valid(tmp_path)
    resumed = rotate(path, vault_env, sandbox, "--yes", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert current(vault) == promoted  # adopted, not promoted twice
    assert copies(sandbox, "production") == [promoted, promoted]
    assert provider_valid(tmp_path) == {promoted}
    assert plan_writes(path, vault, sandbox) == []


def test_killed_between_the_rollback_write_and_its_journal_entry_resumes(
    world, vault, vault_env, sandbox, tmp_path
) -> None:
    path, tokens = world(echo_rotation(tmp_path, grace="7d"))
    assert rotate(path, vault_env, sandbox, "--yes").returncode == 0
    killed = rotate(
        path, vault_env, sandbox, "--yes", "--rollback", failpoint="rotation.rollback=vault-written"
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert current(vault) == tokens["production"]
    resumed = rotate(path, vault_env, sandbox, "--yes", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert vault.read_document(journal_path("apps/production/api")).data["step"] == "rolled-back"
    assert copies(sandbox, "production") == [tokens["production"]] * 2
    assert plan_writes(path, vault, sandbox) == []


def test_a_second_runner_exits_1_naming_the_holder(world, vault, vault_env, sandbox) -> None:
    path, _ = world(GENERATE)
    rotate(path, vault_env, sandbox, "--yes", failpoint="rotation.after=staged")
    second = rotate(path, vault_env, sandbox, "--yes")
    assert second.returncode == 1
    journal = vault.read_document(journal_path("apps/production/api")).data
    assert f"being rotated by {journal['holder']} since {journal['started_at']}" in second.stderr
    assert "--resume" in second.stderr


def test_rollback_within_grace_restores_the_previous_value(
    world,
    vault,
    vault_env,
    sandbox,
    tmp_path,
) -> None:
    path, tokens = world(echo_rotation(tmp_path, grace="7d"))
    first = rotate(path, vault_env, sandbox, "--yes")
    assert first.returncode == 0 and "stays valid until" in first.stdout
    back = rotate(path, vault_env, sandbox, "--yes", "--rollback", "--json")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["rotations"][0]["result"] == "rolled-back"
    assert current(vault) == tokens["production"]
    assert copies(sandbox, "production") == [tokens["production"]] * 2
    again = rotate(path, vault_env, sandbox, "--yes", "--rollback")
    assert again.returncode == 1 and "no rotation within its grace period" in again.stderr


def test_manual_reads_stdin_or_a_file_and_refuses_empty(
    world,
    vault,
    vault_env,
    sandbox,
    tmp_path,
) -> None:
    path, _ = world({"max_age": "90d", "strategy": "manual"})
    piped = rotate(path, vault_env, sandbox, "--yes", stdin="from-stdin-value\n")
    assert piped.returncode == 0, piped.stderr
    assert copies(sandbox, "production") == ["from-stdin-value"] * 2
    value_file = tmp_path / "value.txt"
    value_file.write_text("from-file-value\n")
    filed = rotate(path, vault_env, sandbox, "--yes", "--from-file", str(value_file))
    assert filed.returncode == 0 and current(vault) == "from-file-value"
    empty = rotate(path, vault_env, sandbox, "--yes", stdin="\n")
    assert empty.returncode == 1 and "not a secret; refused" in empty.stderr
    assert current(vault) == "from-file-value"


def test_due_rotates_never_rotated_paths_and_asks_owners_of_manual_ones(
    tmp_path,
    vault,
    vault_env,
    sandbox,
) -> None:
    path = write_policy(tmp_path, vault.mount, GENERATE, ["production"])
    vault.write_values("apps/production/other", {"value": SecretValue("x")})
    due = run_cli(["rotate", "--due", "--yes", "--policy", str(path)], vault_env, sandbox)
    assert due.returncode == 0, due.stdout + due.stderr
    assert len(current(vault)) == 32 and copies(sandbox, "production") == [current(vault)] * 2
    again = run_cli(["rotate", "--due", "--yes", "--policy", str(path)], vault_env, sandbox)
    assert again.returncode == 0 and "0 done" in again.stdout  # not due any more
    manual = write_policy(
        tmp_path, vault.mount, {"max_age": "1d", "strategy": "manual"}, ["staging"]
    )
    owner = run_cli(["rotate", "--due", "--yes", "--policy", str(manual)], vault_env, sandbox)
    assert owner.returncode == 1 and "owner: ops (ops@example.test)" in owner.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["API_TOKEN", "--due"],
        ["API_TOKEN", "--resume", "--rollback"],
        ["NOPE"],
        ["OTHER"],
        ["API_TOKEN", "--environment", "nowhere"],
    ],
)
def test_bad_command_lines_exit_3(tmp_path, vault, vault_env, sandbox, args) -> None:
    path = write_policy(tmp_path, vault.mount, GENERATE)
    result = run_cli(["rotate", *args, "--yes", "--policy", str(path)], vault_env, sandbox)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.startswith("error: ")


def test_without_yes_and_without_a_terminal_it_refuses(world, vault, vault_env, sandbox) -> None:
    path, tokens = world(GENERATE)
    result = rotate(path, vault_env, sandbox)
    assert result.returncode == 3 and "--yes" in result.stderr
    assert current(vault) == tokens["production"]


def _journal_versions(vault_admin: hvac.Client, mount: str) -> list[str]:
    meta = vault_admin.secrets.kv.v2.read_secret_metadata(
        journal_path("apps/production/api"), mount_point=mount
    )
    return [
        json.dumps(
            vault_admin.secrets.kv.v2.read_secret_version(
                journal_path("apps/production/api"),
                version=int(v),
                mount_point=mount,
                raise_on_deleted_version=True,
            )["data"]
        )
        for v in meta["data"]["versions"]
    ]


@pytest.mark.parametrize("case", ["generate", "manual", "command", "command-failing"])
def test_no_value_in_any_output_journal_or_audit_record(
    world,
    vault,
    vault_admin,
    vault_env,
    sandbox,
    tmp_path,
    case,
) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    rotation = {
        "generate": GENERATE,
        "manual": {"max_age": "9d", "strategy": "manual"},
        "command": echo_rotation(tmp_path, grace="1d"),
        "command-failing": echo_rotation(tmp_path, options={"fail_step": "test"}),
    }[case]
    path, _ = world(rotation)
    vault.write_values(
        "apps/production/api",
        {"token": SecretValue(canary), "client_id": SecretValue(canary + "-id")},
    )
    trust_initial(tmp_path, {"production": canary})
    sync_all(path, vault, sandbox)
    runs = [
        rotate(path, vault_env, sandbox, "--yes", *flags, stdin=canary + "-new\n")
        for flags in ([], ["--json"], ["--rollback"], ["--resume"])
    ]
    new_values = {
        vault.read_values("apps/production/api", v)["token"].reveal()
        for v in range(1, vault.read_entry("apps/production/api").version + 1)
    }
    secrets = {canary, canary + "-new", *new_values}
    texts = [r.stdout + r.stderr for r in runs] + _journal_versions(vault_admin, vault.mount)
    texts += [_audit_dump(tmp_path)]
    assert "rotation.start" in texts[-1] and "rotation.create" in texts[-1]
    assert runs[0].returncode == (1 if case == "command-failing" else 0)
    for text in texts:
        for secret in secrets:
            assert secret not in text


def _audit_dump(directory: Path) -> str:
    dumps = []
    for db in directory.rglob("*.sqlite"):
        with sqlite3.connect(db) as conn:
            dumps.append("\n".join(conn.iterdump()))
    assert dumps, "the rotation wrote no audit store"
    return "\n".join(dumps)


def test_secrets_sharing_a_path_must_declare_one_rotation(tmp_path) -> None:
    from envmatrix.cli import main

    path = write_policy(tmp_path, "secret", GENERATE)
    policy = json.loads(path.read_text())
    policy["secrets"]["API_CLIENT_ID"]["rotation"] = {"max_age": "9d", "strategy": "manual"}
    path.write_text(json.dumps(policy, indent=2))
    assert main(["validate", "--policy", str(path)]) == 3
    policy["secrets"]["API_CLIENT_ID"]["rotation"] = GENERATE  # the same spec is fine
    path.write_text(json.dumps(policy, indent=2))
    assert main(["validate", "--policy", str(path)]) == 0


@pytest.mark.parametrize(
    "signum, code, name", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_a_signal_mid_sync_stops_after_the_write_in_flight_and_resume_finishes(
    world, vault, vault_env, sandbox, signum, code, name
) -> None:
    path, tokens = world(GENERATE)
    sandbox.inject(Fault(method="PUT", path=r"/secrets/API_TOKEN$", delay=1.0))
    puts_before = sum(n for (m, op), n in sandbox.request_counts().items() if m == "PUT")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "GITHUB_"))}
    env.update(vault_env, GITHUB_API_URL=sandbox.url, GITHUB_TOKEN="sandbox-token", NO_COLOR="1")
    running = subprocess.Popen(
        [sys.executable, "-m", "envmatrix", "rotate", "API_TOKEN", "--policy", str(path), "--yes"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while sum(n for (m, op), n in sandbox.request_counts().items() if m == "PUT") == puts_before:
        assert time.monotonic() < deadline and running.poll() is None
        time.sleep(0.02)
    running.send_signal(signum)  # the first of the two GitHub copies is being written
    out, err = running.communicate(timeout=120)

    assert running.returncode == code, (out, err)
    assert "✓ apps/production/api promoted:" in out and "synced:" not in out
    assert f"interrupted ({name}) after the write in flight" in err
    assert "rotate API_TOKEN" in err and "--resume" in err  # how to finish it
    assert err.strip().splitlines()[-1].startswith("error: rotate interrupted after 1 rotation")
    assert sorted(copies(sandbox, "production"), key=str) == sorted(
        [current(vault), tokens["production"]], key=str
    )  # one copy landed, the other not tried
    journal = vault.read_document(journal_path("apps/production/api")).data
    assert journal["step"] == "promoted"
    lock = vault.read_document("envmatrix/locks/apply")
    assert lock is not None and "id" not in lock.data  # released

    sandbox.clear_faults()
    resumed = rotate(path, vault_env, sandbox, "--yes", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert copies(sandbox, "production") == [current(vault)] * 2
