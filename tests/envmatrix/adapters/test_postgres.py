"""envmatrix/adapters/postgres.py against a real PostgreSQL: every failure names its kind and
never a fragment of the DSN. Each DSN below holds a made-up password with a canary in it; the
canary must appear in no message, repr or args, for DSNs that do not parse, connections that fail
for each reason, and statements that fail.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from envmatrix.adapters.postgres import PostgresDsn, connect, open_session
from envmatrix.audit.store import PostgresAuditSink
from envmatrix.errors import PostgresError, UsageError
from envmatrix.secret import SecretValue
from tests.fixtures_services import PostgresServer
from tests.rotation.rotation_support import failure_texts
from tests.rotation.test_strategy_postgres import _make_role, pg  # noqa: F401 (fixture)
from tests.world import World

CANARY = "PgCanary7731"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nobody listens once the socket is closed


# (DSN, phrase the message names instead of libpq's text)
MALFORMED = [
    (f"postgresql://auditor:50%off-{CANARY}@db.example.test:5432/audit", "percent-encoding"),
    (f"host=db.example.test user=auditor password=correct horse {CANARY} dbname=a", "without '='"),
    (f"host=db.example.test password='{CANARY} dbname=a", "unterminated quoted value"),
    (f"host=db.example.test {CANARY}=x", "unknown option"),
    (f"postgresql://auditor@db.example.test/audit?{CANARY}=1", "unknown URI query parameter"),
    (f"postgresql://auditor:ab/{CANARY}@db.example.test/audit", "an '@' after the host part"),
    (f"postgresql://auditor:5432/{CANARY}@db.example.test/audit", "an '@' after the host part"),
]


@pytest.mark.parametrize(("dsn", "kind"), MALFORMED)
def test_a_dsn_that_does_not_parse_is_named_by_its_kind(dsn: str, kind: str) -> None:
    texts = failure_texts(lambda: PostgresDsn(dsn, "the DSN in $AUDIT_DSN"), (UsageError,))
    assert texts[0].startswith("the DSN in $AUDIT_DSN is not a valid connection string (")
    assert kind in texts[0]
    assert not any(CANARY in text for text in texts)


def test_the_audit_store_refuses_each_malformed_dsn_without_quoting_it(world: World) -> None:
    world.write_policy(world.policy_path.read_text() + "audit: {postgres: AUDIT_DSN}\n")
    for dsn, kind in MALFORMED:
        world.env["AUDIT_DSN"] = dsn
        result = world.run("audit")
        assert result.code == 3, result.err
        assert "audit.postgres: the DSN in $AUDIT_DSN is not a valid" in result.err
        assert kind in result.err and CANARY not in result.out + result.err


def test_connection_failures_name_their_kind_and_no_password(
    pg: PostgresServer,  # noqa: F811
) -> None:
    role = _make_role(pg, "seam", f"right-{CANARY}")
    base = f"host={pg.host} port={pg.port}"
    cases = [
        (
            f"host=127.0.0.1 port={_closed_port()} user=u password={CANARY}",
            "connection refused at 127.0.0.1:",
        ),
        (
            f"{base} user={role} password=wrong-{CANARY} dbname=postgres",
            f"authentication failed for user {role}",
        ),
        (
            f"postgresql://{role}:wrong-{CANARY}@{pg.host}:{pg.port}/postgres",
            f"authentication failed for user {role}",
        ),
        (
            f"{base} user=postgres password={CANARY} dbname=no_such_db_{uuid.uuid4().hex[:6]}",
            "database no_such_db_",
        ),
        (
            f"{base} user=no_such_role_{uuid.uuid4().hex[:6]} password={CANARY} dbname=postgres",
            "the server refused user no_such_role_",
        ),
        (f"{base} user={role} dbname=postgres", f"wants a password for user {role}"),
        (f"host={pg.host} port=notaport user=u password={CANARY}", "must be a number"),
    ]
    for dsn, kind in cases:
        parsed = PostgresDsn(dsn, "$PG_DSN")
        texts = failure_texts(lambda p=parsed: open_session(p, timeout=5), (PostgresError,))
        assert kind in texts[0], texts[0]
        assert not any(CANARY in text for text in texts), texts
        assert "notaport" not in texts[0]  # a port that is not one is left out, too


def test_statement_failures_show_the_server_message_and_mask_the_secrets(
    postgres_server: PostgresServer,
) -> None:
    dsn = PostgresDsn(postgres_server.dsn(), "$PG_DSN")
    with connect(dsn) as db:
        assert db.execute("select %s::int + 1", (1,)) == [(2,)]
        missing = failure_texts(lambda: db.execute("select * from no_such_table"), (PostgresError,))
        assert 'relation "no_such_table" does not exist (SQLSTATE 42P01)' in missing[0]
        unknown_role = f"nobody_{uuid.uuid4().hex[:6]}"
        texts = failure_texts(
            lambda: db.set_password(unknown_role, SecretValue(f"new-{CANARY}")), (PostgresError,)
        )
        assert unknown_role in texts[0] and "SQLSTATE 42704" in texts[0]
        assert not any(CANARY in text for text in texts)


def test_the_dsn_is_never_shown(postgres_server: PostgresServer) -> None:
    dsn = PostgresDsn(f"{postgres_server.dsn()} password={CANARY}", "$PG_DSN")
    assert CANARY not in repr(dsn) + str(dsn)
    with pytest.raises(KeyError):
        dsn.get("password")
    assert dsn.get("port") == str(postgres_server.port) and CANARY in dsn.secrets()[1]


def test_an_unreachable_audit_store_names_the_endpoint_only(tmp_path: Path) -> None:
    port = _closed_port()
    for dsn in (
        f"host=127.0.0.1 port={port} user=auditor password={CANARY} dbname=audit",
        f"postgresql://auditor:{CANARY}@127.0.0.1:{port}/audit?connect_timeout=2",
    ):
        texts = failure_texts(
            lambda d=dsn: PostgresAuditSink(d, "PostgreSQL ($AUDIT_DSN)"), (Exception,)
        )
        assert texts[0] == (
            "cannot open the audit table in PostgreSQL ($AUDIT_DSN): "
            f"connection refused at 127.0.0.1:{port}"
        )
        assert not any(CANARY in text for text in texts)
