"""rotation/strategies/postgres.py against a real PostgreSQL (the `postgres_server` fixture).

The fixture's cluster trusts every connection, which would make any password "work". A
module fixture therefore puts password (SCRAM) authentication in front of the members of one
group role; the roles these tests create join that group, everything else stays on trust.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from envmatrix.errors import RotationTestFailed, RuntimeFailure, UsageError
from envmatrix.rotation.strategies.base import RotationContext
from envmatrix.rotation.strategies.postgres import PostgresStrategy
from envmatrix.secret import SecretValue
from tests.rotation.rotation_support import failure_texts

ANY_FAILURE = (RuntimeFailure, UsageError)

PASSWORD_GROUP = "envmatrix_password_auth"
DSN_ENV = "PG_ADMIN_DSN"


def _admin(server: Any) -> psycopg.Connection:
    return psycopg.connect(server.dsn(), autocommit=True)


def can_login(server: Any, role: str, password: str) -> bool:
    """Whether `role` can open a session with `password` right now."""
    dsn = psycopg.conninfo.make_conninfo(server.dsn(user=role), password=password)
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            return conn.execute("select 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="module")
def pg(postgres_server: Any) -> Any:
    """The session cluster, with password auth required of PASSWORD_GROUP's members."""
    with _admin(postgres_server) as conn:
        conn.execute(
            "do $$ begin create role envmatrix_password_auth nologin; "
            "exception when duplicate_object then null; end $$"
        )
        hba = Path(str(conn.execute("show hba_file").fetchone()[0]))  # type: ignore[index]
        rule = f"host all +{PASSWORD_GROUP} 127.0.0.1/32 scram-sha-256\n"
        if rule not in hba.read_text():
            hba.write_text(rule + hba.read_text())  # first matching line wins
            conn.execute("select pg_reload_conf()")
    _wait_for_password_auth(postgres_server)
    return postgres_server


def _wait_for_password_auth(server: Any) -> None:
    """pg_reload_conf only signals the postmaster; wait until a wrong password is refused."""
    role = _make_role(server, "probe", "right-password")
    for _ in range(100):
        if not can_login(server, role, "wrong-password"):
            return
        time.sleep(0.05)
    raise AssertionError("password authentication did not take effect")


def _make_role(server: Any, stem: str, password: str | None, login: bool = True) -> str:
    role = f"{stem}_{uuid.uuid4().hex[:8]}"
    with _admin(server) as conn:
        conn.execute(
            sql.SQL("create role {} {} password {} in role {}").format(
                sql.Identifier(role),
                sql.SQL("login" if login else "nologin"),
                sql.Literal(password),
                sql.Identifier(PASSWORD_GROUP),
            )
        )
    return role


KEYS = {"DB_USER": "username", "DB_PASSWORD": "password"}


def ctx_for(
    current: dict[str, str], handle: dict[str, str] | None = None, keys: dict[str, str] = KEYS
) -> RotationContext:
    return RotationContext(
        path="apps/production/db",
        environment="production",
        keys=keys,
        options={},
        current={k: SecretValue(v) for k, v in current.items()},
        handle=handle or {},
    )


NEW = {"username": SecretValue("r"), "password": SecretValue("new-password")}


def strategy(pg: Any, dsn: str | None = None, **options: Any) -> PostgresStrategy:
    return PostgresStrategy({"dsn_env": DSN_ENV, **options}, {DSN_ENV: dsn or pg.dsn()})


@pytest.fixture
def single(pg: Any) -> Iterator[tuple[PostgresStrategy, str]]:
    role = _make_role(pg, "app", "old-password")
    yield strategy(pg, role=role), role


@pytest.fixture
def pair(pg: Any) -> tuple[PostgresStrategy, str, str]:
    role_a = _make_role(pg, "app_a", "old-password")
    role_b = _make_role(pg, "app_b", None, login=False)
    return strategy(pg, mode="alternating", roles=[role_a, role_b]), role_a, role_b


def test_single_new_password_logs_in_and_old_stops_at_once(
    pg: Any, single: tuple[PostgresStrategy, str]
) -> None:
    rotation, role = single
    ctx = ctx_for({"username": role, "password": "old-password"})
    created = rotation.create(ctx)
    new = created.values["password"].reveal()
    assert created.values["username"].reveal() == role
    assert new != "old-password" and len(new) >= 40
    assert can_login(pg, role, "old-password")  # create only chooses: nothing changed yet
    rotation.set(ctx, created.values)
    rotation.test(ctx, created.values)
    assert can_login(pg, role, new)
    assert not can_login(pg, role, "old-password")  # single mode: documented, no grace
    rotation.revoke(ctx, ctx.current)
    assert can_login(pg, role, new)


def test_single_uri_key_builds_a_working_uri(pg: Any) -> None:
    role = _make_role(pg, "app", "old-password")
    rotation = strategy(pg, role=role, uri_key="uri")
    keys = {**KEYS, "DATABASE_URL": "uri"}
    created = rotation.create(ctx_for({"username": role, "password": "old-password"}, keys=keys))
    rotation.set(ctx_for({}), created.values)
    with psycopg.connect(created.values["uri"].reveal()) as conn:
        assert conn.execute("select current_user").fetchone() == (role,)


def test_single_discard_restores_the_previous_password(
    pg: Any, single: tuple[PostgresStrategy, str]
) -> None:
    rotation, role = single
    ctx = ctx_for({"username": role, "password": "old-password"})
    created = rotation.create(ctx)
    rotation.set(ctx, created.values)
    rotation.discard(ctx, created.values)
    assert can_login(pg, role, "old-password")
    assert not can_login(pg, role, created.values["password"].reveal())


def test_alternating_old_role_works_until_revoke(
    pg: Any, pair: tuple[PostgresStrategy, str, str]
) -> None:
    rotation, role_a, role_b = pair
    ctx = ctx_for({"username": role_a, "password": "old-password"})
    created = rotation.create(ctx)
    new = created.values["password"].reveal()
    assert created.values["username"].reveal() == role_b
    assert created.handle == {"mode": "alternating", "slot": "roles[1]"}
    assert not can_login(pg, role_b, new)  # create only chooses: nothing changed yet
    rotation.set(ctx, created.values)
    rotation.test(ctx, created.values)
    assert can_login(pg, role_b, new)
    assert can_login(pg, role_a, "old-password")  # grace: the old role still works
    after = ctx_for({"username": role_b, "password": new}, dict(created.handle))
    rotation.revoke(after, {"username": SecretValue(role_a), "password": SecretValue("x")})
    assert not can_login(pg, role_a, "old-password")
    assert can_login(pg, role_b, new)


def test_alternating_next_rotation_goes_back_to_the_first_role(
    pg: Any, pair: tuple[PostgresStrategy, str, str]
) -> None:
    rotation, role_a, role_b = pair
    first = rotation.create(ctx_for({"username": role_a, "password": "old-password"}))
    rotation.set(ctx_for({}), first.values)
    current = {k: v.reveal() for k, v in first.values.items()}
    second = rotation.create(ctx_for(current))
    rotation.set(ctx_for(current), second.values)
    assert second.values["username"].reveal() == role_a
    assert can_login(pg, role_a, second.values["password"].reveal())
    assert can_login(pg, role_b, current["password"])


def test_alternating_revoke_terminates_sessions_when_asked(pg: Any) -> None:
    role_a = _make_role(pg, "app_a", "old-password")
    role_b = _make_role(pg, "app_b", None, login=False)
    rotation = strategy(pg, mode="alternating", roles=[role_a, role_b], terminate_sessions=True)
    ctx = ctx_for({"username": role_a, "password": "old-password"})
    created = rotation.create(ctx)
    dsn = psycopg.conninfo.make_conninfo(pg.dsn(user=role_a), password="old-password")
    with psycopg.connect(dsn, autocommit=True) as lingering:
        rotation.revoke(ctx_for({}, dict(created.handle)), ctx.current)
        with pytest.raises(psycopg.OperationalError):
            lingering.execute("select 1")


def test_alternating_revoke_never_locks_out_the_new_role(
    pg: Any, pair: tuple[PostgresStrategy, str, str]
) -> None:
    rotation, role_a, role_b = pair
    created = rotation.create(ctx_for({"username": role_a, "password": "old-password"}))
    rotation.set(ctx_for({}), created.values)
    current = {k: v.reveal() for k, v in created.values.items()}  # as the engine passes it
    rotation.revoke(ctx_for(current, dict(created.handle)), created.values)
    assert can_login(pg, role_b, created.values["password"].reveal())


def test_alternating_discard_disables_the_unused_role(
    pg: Any, pair: tuple[PostgresStrategy, str, str]
) -> None:
    rotation, role_a, role_b = pair
    ctx = ctx_for({"username": role_a, "password": "old-password"})
    created = rotation.create(ctx)
    rotation.set(ctx, created.values)
    rotation.discard(ctx, created.values)
    assert not can_login(pg, role_b, created.values["password"].reveal())
    assert can_login(pg, role_a, "old-password")


def test_alternating_discard_without_values_uses_the_handle(
    pg: Any, pair: tuple[PostgresStrategy, str, str]
) -> None:
    # the engine's path when the process that created the values died before staging them
    rotation, role_a, role_b = pair
    created = rotation.create(ctx_for({"username": role_a, "password": "old-password"}))
    rotation.set(ctx_for({}), created.values)
    rotation.discard(ctx_for({}, dict(created.handle)), {})
    assert not can_login(pg, role_b, created.values["password"].reveal())
    assert can_login(pg, role_a, "old-password")


def test_values_cover_exactly_the_group_keys(pg: Any) -> None:
    role = _make_role(pg, "app", "old-password")
    only_password = {"DB_PASSWORD": "password", "DB_HOST": "host"}
    current = {"password": "old-password", "host": "db.internal"}
    created = strategy(pg, role=role).create(ctx_for(current, keys=only_password))
    assert set(created.values) == {"password", "host"}
    assert created.values["host"].reveal() == "db.internal"
    role_a = _make_role(pg, "app_a", "old-password")
    alternating = strategy(pg, mode="alternating", roles=[role_a, role_a + "_b"])
    with pytest.raises(UsageError, match="apps/production/db#username"):
        alternating.create(ctx_for(current, keys=only_password))
    assert can_login(pg, role_a, "old-password")  # refused before touching the database


def test_alternating_refuses_a_current_role_outside_the_pair(
    pg: Any, pair: tuple[PostgresStrategy, str, str]
) -> None:
    rotation, _, _ = pair
    with pytest.raises(RuntimeFailure, match="not one of options.roles"):
        rotation.create(ctx_for({"username": "somebody_else", "password": "x"}))


def test_wrong_password_fails_the_test_step(pg: Any, single: tuple[PostgresStrategy, str]) -> None:
    rotation, role = single
    ctx = ctx_for({"username": role, "password": "old-password"})
    rotation.create(ctx)
    wrong = {"username": SecretValue(role), "password": SecretValue("wrong-canary-4471")}
    with pytest.raises(RotationTestFailed, match="could not log in") as failure:
        rotation.test(ctx, wrong)
    assert "wrong-canary-4471" not in str(failure.value) + repr(failure.value)
    assert failure.value.__cause__ is None and failure.value.__suppress_context__


def test_configuration_errors_are_usage_errors(pg: Any) -> None:
    with pytest.raises(UsageError, match="PG_ADMIN_DSN"):
        PostgresStrategy({"dsn_env": DSN_ENV, "role": "r"}, {}).set(ctx_for({}), NEW)
    with pytest.raises(UsageError, match="options.roles"):
        PostgresStrategy({"dsn_env": DSN_ENV, "mode": "alternating", "roles": ["a"]}, {})
    with pytest.raises(UsageError, match="mode"):
        PostgresStrategy({"dsn_env": DSN_ENV, "mode": "dual", "role": "a"}, {})


def test_canary_no_value_in_errors_or_handles(pg: Any) -> None:
    canary = f"canary{uuid.uuid4().hex}"
    # trust auth ignores the DSN's password, so the canary rides along unused
    dsn = f"{pg.dsn()} password={canary}"
    role_a = _make_role(pg, "app_a", canary + "-old")
    role_b = _make_role(pg, "app_b", None, login=False)
    rotation = strategy(pg, dsn, mode="alternating", roles=[role_a, role_b], uri_key="uri")
    keys = {**KEYS, "DATABASE_URL": "uri"}
    ctx = ctx_for({"username": role_a, "password": canary + "-old"}, keys=keys)
    created = rotation.create(ctx)
    secrets = [canary, *(v.reveal() for k, v in created.values.items() if k != "username")]
    texts = [repr(created.handle), repr(created), repr(created.values)]
    # the engine refuses a handle that repeats any value, the username included
    assert not {str(h) for h in created.handle.values()} & {
        v.reveal() for v in created.values.values()
    }

    broken = {"username": SecretValue(role_b), "password": SecretValue(canary + "-wrong")}
    texts += failure_texts(lambda: rotation.test(ctx, broken), ANY_FAILURE)
    unreachable = f"host=127.0.0.1 port=1 user=postgres password={canary}"
    unreachable_strategy = strategy(pg, unreachable, role=role_a)
    texts += failure_texts(lambda: unreachable_strategy.set(ctx, created.values), ANY_FAILURE)
    malformed = f"host=127.0.0.1 password={canary} {canary}"
    texts += failure_texts(lambda: strategy(pg, malformed, role=role_a), ANY_FAILURE)
    missing_role = "no_such_role_" + uuid.uuid4().hex[:6]
    missing = strategy(pg, role=missing_role)
    nobody = {**created.values, "username": SecretValue(missing_role)}
    texts += failure_texts(lambda: missing.set(ctx, nobody), ANY_FAILURE)
    for text in texts:
        for secret in secrets:
            assert secret not in text
