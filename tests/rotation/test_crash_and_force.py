"""No lost credential after a kill -9 inside a provider step, `rotate --due` finishing what a
dead runner left, `plan` naming it, and `rotate --force` per strategy — `envmatrix` subprocesses
against OpenBao, the GitHub sandbox, PostgreSQL, moto and the Supabase stand-in."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import boto3
import pytest

from envmatrix.adapters.github import GitHubAdapter
from envmatrix.rotation.engine import RotationEngine
from envmatrix.rotation.groups import groups_for
from envmatrix.rotation.journal import journal_path, pending_path
from envmatrix.secret import SecretValue
from tests.rotation.rotation_support import (
    copies,
    echo_rotation,
    load,
    provider_valid,
    run_cli,
    seed,
    sync_all,
    trust_initial,
    write_policy,
)
from tests.rotation.test_strategy_postgres import _make_role, can_login
from tests.rotation.test_strategy_postgres import pg as pg  # noqa: F401  (the fixture)
from tests.standins.supabase import SupabaseSandbox

PATH = "apps/production/api"
USER = "crash-deployer"


def rotate(path: Path, vault_env: Any, sandbox: Any, *extra: str, **kw: Any) -> Any:
    args = ["rotate", *extra, "--policy", str(path), "--yes"]
    if "--due" not in extra:
        args.insert(1, "API_TOKEN")
    return run_cli(args, vault_env, sandbox, **kw)


def vault_now(vault: Any) -> dict[str, str]:
    return {k: v.reveal() for k, v in vault.read_values(PATH).items()}


def world(
    tmp_path: Path, vault: Any, sandbox: Any, rotation: dict[str, Any], **values: str
) -> Path:
    """The policy; Vault's API_TOKEN path holds `values` (token and client_id), synced. With
    values, API_CLIENT_ID (the role / key id) rotates with API_TOKEN (the password / secret)."""
    path = write_policy(tmp_path, vault.mount, rotation, ["production"])
    if values:
        document = json.loads(path.read_text())
        document["secrets"]["API_CLIENT_ID"]["rotation"] = rotation
        path.write_text(json.dumps(document))
    seed(load(path), vault, sandbox)
    if values:
        vault.write_values(PATH, {k: SecretValue(v) for k, v in values.items()})
    sync_all(path, vault, sandbox)
    return path


# -- postgres: the password reaches the role only after Vault holds it -------------------------


def postgres_rotation(mode: str, roles: list[str], grace: str | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "dsn_env": "PG_ADMIN_DSN", "mode": mode, "password_key": "token",
        "username_key": "client_id",
    }  # fmt: skip
    options.update({"role": roles[0]} if mode == "single" else {"roles": roles})
    return {"max_age": "30d", "strategy": "postgres", "options": options} | (
        {"grace": grace} if grace else {}
    )


def known_passwords_work(vault: Any, pg: Any) -> bool:
    """Some password Vault holds (current, or pending for the resume) logs in as its role."""
    candidates = [vault_now(vault)]
    pending = vault.read_document(pending_path(PATH))
    if pending is not None:
        candidates.append({k: v.reveal() for k, v in vault.read_values(pending_path(PATH)).items()})
    return any(can_login(pg, c["client_id"], c["token"]) for c in candidates)


@pytest.mark.parametrize("mode", ["single", "alternating"])
@pytest.mark.parametrize(
    "failpoint", ["rotation.create={}", "rotation.after=created", "rotation.set={}"]
)
def test_postgres_killed_in_any_step_loses_no_password_and_due_finishes(
    tmp_path, vault, vault_env, sandbox, pg, monkeypatch, mode, failpoint
) -> None:
    monkeypatch.setenv("PG_ADMIN_DSN", pg.dsn())
    role_a = _make_role(pg, "app_a", "first-password")
    role_b = _make_role(pg, "app_b", None, login=False)
    rotation = postgres_rotation(mode, [role_a, role_b])
    path = world(tmp_path, vault, sandbox, rotation, token="first-password", client_id=role_a)
    killed = rotate(path, vault_env, sandbox, failpoint=failpoint.format(f"postgres-{mode}"))
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert known_passwords_work(vault, pg)
    if "set" not in failpoint:  # nothing reached the database yet: consumers are unaffected
        assert can_login(pg, role_a, "first-password")

    plan = run_cli(["plan", "--policy", str(path), "--json"], vault_env, sandbox)
    assert plan.returncode == 0, plan.stderr
    rows = json.loads(plan.stdout)["rotations_in_progress"]
    assert sorted(r["secret"] for r in rows) == ["API_CLIENT_ID", "API_TOKEN"]  # one group
    [row] = [r for r in rows if r["secret"] == "API_TOKEN"]
    resume = "envmatrix rotate API_TOKEN --environment production --resume"
    assert row == {"secret": "API_TOKEN", "environment": "production", "step": row["step"],
                   "resume": resume}  # fmt: skip
    human = run_cli(["plan", "--policy", str(path)], vault_env, sandbox)
    assert "rotation left half-way: API_TOKEN in production" in human.stdout
    assert resume in human.stdout

    due = rotate(path, vault_env, sandbox, "--due")  # the scheduled job: the runner is gone
    assert due.returncode == 0, due.stdout + due.stderr
    assert vault.read_document(journal_path(PATH)).data["step"] == "done"
    new = vault_now(vault)
    assert can_login(pg, new["client_id"], new["token"]) and new["token"] != "first-password"
    assert not can_login(pg, role_a, "first-password")  # retired (replaced, or NOLOGIN)
    assert copies(sandbox, "production") == [new["token"]] * 2
    after = run_cli(["plan", "--policy", str(path), "--json"], vault_env, sandbox)
    assert json.loads(after.stdout)["rotations_in_progress"] == []


def test_due_leaves_a_live_runners_rotation_alone(tmp_path, vault, vault_env, sandbox) -> None:
    path = world(tmp_path, vault, sandbox, {"max_age": "30d", "strategy": "generate"})
    assert rotate(path, vault_env, sandbox, failpoint="rotation.after=staged").returncode < 0
    document = vault.read_document(journal_path(PATH))
    journal = dict(document.data, holder="someone on another-host pid 1")  # alive, elsewhere
    vault.write_document(journal_path(PATH), journal, cas=document.version)
    due = rotate(path, vault_env, sandbox, "--due")
    assert due.returncode == 1
    assert (
        "being rotated by someone on another-host pid 1" in due.stderr and "--resume" in due.stderr
    )
    assert vault.read_document(journal_path(PATH)).data["step"] == "staged"


# -- aws-iam: a key minted by a killed create is not left at the two-key limit -----------------


@pytest.fixture
def iam(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in aws_env.items():
        monkeypatch.setenv(name, value)
    client = boto3.client(
        "iam", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name=aws_env["AWS_DEFAULT_REGION"]
    )
    client.create_user(UserName=USER)
    return client


def aws_rotation(grace: str | None = None) -> dict[str, Any]:
    options = {"user": USER, "endpoint_url_env": "AWS_ENDPOINT_URL", "id_key": "client_id",
               "secret_key": "token", "test_delay": 0}  # fmt: skip
    return {"max_age": "30d", "strategy": "aws-iam", "options": options} | (
        {"grace": grace} if grace else {}
    )


def key_ids(iam: Any) -> set[str]:
    return {k["AccessKeyId"] for k in iam.list_access_keys(UserName=USER)["AccessKeyMetadata"]}


def first_key(iam: Any) -> dict[str, str]:
    key = iam.create_access_key(UserName=USER)["AccessKey"]
    return {"client_id": key["AccessKeyId"], "token": key["SecretAccessKey"]}


@pytest.mark.parametrize("resume", [["--due"], ["--resume"]])
def test_aws_killed_after_create_access_key_resumes_without_an_unknown_key(
    tmp_path, vault, vault_env, sandbox, iam, resume
) -> None:
    old = first_key(iam)
    path = world(tmp_path, vault, sandbox, aws_rotation(), **old)
    killed = rotate(path, vault_env, sandbox, failpoint="rotation.create=aws-iam")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(key_ids(iam)) == 2  # the limit: the old key and one nobody knows
    finished = rotate(path, vault_env, sandbox, *resume)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    new = vault_now(vault)
    assert key_ids(iam) == {new["client_id"]} != {old["client_id"]}
    assert copies(sandbox, "production") == [new["token"]] * 2


# -- rotate --force: the leaked current and the previous credential are both retired -----------


def test_force_inside_grace_is_refused_without_force(tmp_path, vault, vault_env, sandbox) -> None:
    rotation = {"max_age": "30d", "strategy": "generate", "grace": "7d"}
    path = world(tmp_path, vault, sandbox, rotation)
    assert rotate(path, vault_env, sandbox).returncode == 0
    plain = rotate(path, vault_env, sandbox)
    assert plain.returncode == 1 and "grace period" in plain.stderr
    for bad in (["--force", "--due"], ["--force", "--resume"], ["--force", "--rollback"]):
        assert run_cli(["rotate", "API_TOKEN", *bad, "--policy", str(path), "--yes"], vault_env,
                       sandbox).returncode == 3  # fmt: skip


@pytest.mark.parametrize("grace", [None, "7d"])
def test_force_command_revokes_the_leaked_and_the_previous_token(
    tmp_path, vault, vault_env, sandbox, grace
) -> None:
    rotation = echo_rotation(tmp_path, **({"grace": grace} if grace else {}))
    path = world(tmp_path, vault, sandbox, rotation)
    trust_initial(tmp_path, {"production": vault_now(vault)["token"]})
    assert rotate(path, vault_env, sandbox).returncode == 0
    leaked = vault_now(vault)["token"]
    assert len(provider_valid(tmp_path)) == (2 if grace else 1)  # previous still in grace
    forced = rotate(path, vault_env, sandbox, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    new = vault_now(vault)["token"]
    assert new != leaked and provider_valid(tmp_path) == {new}
    assert copies(sandbox, "production") == [new, new]
    journal = vault.read_document(journal_path(PATH)).data
    assert journal["step"] == "done" and journal["forced"] is True


def test_force_aws_deletes_the_leaked_key_first_and_the_previous_after(
    tmp_path, vault, vault_env, sandbox, iam
) -> None:
    previous = first_key(iam)
    path = world(tmp_path, vault, sandbox, aws_rotation("7d"), **previous)
    assert rotate(path, vault_env, sandbox).returncode == 0
    leaked = vault_now(vault)["client_id"]
    assert key_ids(iam) == {previous["client_id"], leaked}  # the two-key limit, in grace
    killed = rotate(path, vault_env, sandbox, "--force", failpoint="rotation.emergency=aws-iam")
    assert killed.returncode == -signal.SIGKILL
    assert key_ids(iam) == {previous["client_id"]}  # the leaked key went first
    forced = rotate(path, vault_env, sandbox, "--resume")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    new = vault_now(vault)
    assert key_ids(iam) == {new["client_id"]} and new["client_id"] not in (
        leaked,
        previous["client_id"],
    )
    assert copies(sandbox, "production") == [new["token"]] * 2


@pytest.mark.parametrize("mode", ["single", "alternating"])
def test_force_postgres_changes_every_password_that_leaked(
    tmp_path, vault, vault_env, sandbox, pg, monkeypatch, mode
) -> None:
    monkeypatch.setenv("PG_ADMIN_DSN", pg.dsn())
    role_a = _make_role(pg, "app_a", "first-password")
    role_b = _make_role(pg, "app_b", None, login=False)
    rotation = postgres_rotation(mode, [role_a, role_b], grace="7d")
    path = world(tmp_path, vault, sandbox, rotation, token="first-password", client_id=role_a)
    assert rotate(path, vault_env, sandbox).returncode == 0
    leaked = vault_now(vault)
    forced = rotate(path, vault_env, sandbox, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    new = vault_now(vault)
    assert can_login(pg, new["client_id"], new["token"])
    assert not can_login(pg, leaked["client_id"], leaked["token"])
    assert not can_login(pg, role_a, "first-password")
    if mode == "alternating":  # the leaked role is locked and its password replaced
        with psycopg_admin(pg) as conn:
            row = conn.execute(
                "select rolcanlogin from pg_roles where rolname = %s", (leaked["client_id"],)
            ).fetchone()
        assert row == (False,)
    assert copies(sandbox, "production") == [new["token"]] * 2


def psycopg_admin(pg: Any) -> Any:
    import psycopg

    return psycopg.connect(pg.dsn(), autocommit=True)


def test_force_supabase_deletes_the_leaked_and_the_previous_key(
    tmp_path, vault, sandbox, monkeypatch
) -> None:
    pat = "sbp_force_test"
    with SupabaseSandbox(access_token=pat, project_ref="demo") as sb:
        monkeypatch.setenv("SB_TEST_PAT", pat)
        options = {"project_ref": "demo", "api_url": sb.url, "access_token_env": "SB_TEST_PAT",
                   "project_url": sb.url, "key": "token", "test_delay": 0}  # fmt: skip
        rotation = {"max_age": "30d", "strategy": "supabase-api-key", "options": options,
                    "grace": "7d"}  # fmt: skip
        previous = sb.add_secret_key("seeded")
        path = world(tmp_path, vault, sandbox, rotation, token=previous, client_id="c")
        policy = load(path)
        engine = RotationEngine(policy, vault, GitHubAdapter(sandbox.url, "sandbox-token"))
        [group] = groups_for(policy, "API_TOKEN")
        assert engine.rotate(group).result == "in-grace"
        leaked = vault_now(vault)["token"]
        assert sb.is_valid(previous) and sb.is_valid(leaked)
        assert engine.rotate(group).result == "failed"  # in grace: refused without force
        outcome = engine.rotate(group, force=True)
        assert outcome.result == "done", outcome.message
        new = vault_now(vault)["token"]
        assert sb.is_valid(new) and not sb.is_valid(leaked) and not sb.is_valid(previous)
        assert copies(sandbox, "production") == [new, new]


def test_force_generate_replaces_the_leaked_value_everywhere(
    tmp_path, vault, vault_env, sandbox
) -> None:
    rotation = {"max_age": "30d", "strategy": "generate", "grace": "7d"}
    path = world(tmp_path, vault, sandbox, rotation)
    assert rotate(path, vault_env, sandbox).returncode == 0
    leaked = vault_now(vault)["token"]
    forced = rotate(path, vault_env, sandbox, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    new = vault_now(vault)["token"]
    assert new != leaked and copies(sandbox, "production") == [new, new]
    assert "forced (emergency)" in forced.stdout
