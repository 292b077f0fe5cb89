"""The one seam over PostgreSQL (psycopg 3): the audit store and the `postgres` rotation strategy
both connect through it, and it is the only module that imports psycopg.

One scrubbing rule for every failure: **libpq's message text is never copied when it could quote
the DSN.** libpq quotes the fragment of a connection string it cannot parse — the password, when
that holds a `%`, a space or a quote — and its connection errors name hosts and options it was
given. So:

- a DSN that does not parse → `UsageError("<source> is not a valid connection string (<kind>)")`,
  the kind a fixed phrase chosen from libpq's message, never a piece of it; a URI with an `@`
  after its host part (an unencoded `/` in the password) is refused the same way, because libpq
  would read part of the password as the port or the database;
- a connection that fails → `PostgresError` naming the failure kind and only the DSN's host,
  port, user and database (each shown only when it looks like one): "connection refused at
  db:5432", "authentication failed for user app", "database audit does not exist", ...;
- a statement that fails → `PostgresError` with the server's SQLSTATE and primary message (the
  server never sees the DSN), every known secret (the DSN, its password, passwords being set)
  masked, on one line.

`PostgresDsn` parses and holds a connection string and never shows it; `connect()` yields a
`PostgresSession` whose statements fail only with `PostgresError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from envmatrix.errors import PostgresError, UsageError
from envmatrix.secret import MASK, SecretValue

_MAX_DETAIL = 300
_HOST = re.compile(r"^[A-Za-z0-9._\-:\[\],/]+$")  # names, IPv4/IPv6, socket folders, lists
_PORT = re.compile(r"^[0-9]{1,5}(,[0-9]{1,5})*$")
_NAME = re.compile(r"^[A-Za-z0-9_.\-$]{1,63}$")

# libpq's parse errors, by what they start with → the phrase shown instead
_PARSE_KINDS = (
    ("invalid percent-encoded token", "a '%' that is not percent-encoding; encode it as %25"),
    ('missing "=" after', "a word without '=': quote values that hold spaces"),
    ("unterminated quoted string", "an unterminated quoted value"),
    ("invalid connection option", "an unknown option name"),
    ("invalid URI query parameter", "an unknown URI query parameter"),
    ("invalid integer value", "an option that must be a number is not"),
)

# connection failures: SQLSTATE, or words of libpq's message (matched, never shown) → kind
_CONNECT_STATES = {
    "28P01": "authentication failed for user {user}",
    "28000": "the server refused user {user} (no such role, or no pg_hba.conf entry for it)",
    "3D000": "database {dbname} does not exist",
    "53300": "too many connections at {endpoint}",
    "57P03": "the server at {endpoint} is starting up or shutting down",
}
_CONNECT_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (  # every word must be in the message
    (("password authentication failed",), "authentication failed for user {user}"),
    (("no password supplied",), "the server wants a password for user {user}; the DSN has none"),
    (('database "', "does not exist"), "database {dbname} does not exist"),
    (('role "', "does not exist"), "the server refused user {user} (no such role)"),
    (("no pg_hba.conf entry",), "the server refused user {user} (no pg_hba.conf entry for it)"),
    (("too many", "clients"), "too many connections at {endpoint}"),
    (("starting up",), "the server at {endpoint} is starting up or shutting down"),
    (("shutting down",), "the server at {endpoint} is starting up or shutting down"),
    (("connection refused",), "connection refused at {endpoint}"),
    (("could not translate host name",), "cannot resolve the host of {endpoint}"),
    (("name or service not known",), "cannot resolve the host of {endpoint}"),
    (("timeout expired",), "no connection to {endpoint} within {timeout} s"),
    (("no such file or directory",), "no server socket at {endpoint}"),
    (("ssl",), "SSL negotiation with {endpoint} failed"),
    (("invalid integer value",), "the DSN has an option that must be a number and is not"),
    (("invalid port",), "the DSN's port is not a number"),
)


class PostgresDsn:
    """A libpq connection string (key=value or URI), parsed once; never shown.

    `source` names it in messages (e.g. `$AUDIT_DSN`). Raises `UsageError` when it does not
    parse, naming the kind of mistake and not a fragment of the text.
    """

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self._text = text
        self._params = _parse(text, source)

    def __repr__(self) -> str:
        return f"PostgresDsn({self.source})"

    def conninfo(self) -> str:
        """The connection string itself, for the driver only."""
        return self._text

    def get(self, key: str) -> str | None:
        """A parameter other than the password (host, port, dbname, user, ...), or None."""
        if key == "password":
            raise KeyError("the password is not handed out")
        value = self._params.get(key)
        return None if value is None else str(value)

    def secrets(self) -> list[str]:
        """Texts to mask in anything shown: the string and its password."""
        return [t for t in (self._text, str(self._params.get("password") or "")) if t]

    def with_login(self, user: str, password: SecretValue, **params: str) -> PostgresDsn:
        """The same server as another user (and `params` over this DSN's: host, port, dbname)."""
        text = make_conninfo(self._text, **params, user=user, password=password.reveal())
        return PostgresDsn(text, f"{self.source} as {user}")

    def endpoint(self) -> str:
        """`host:port` for messages; parts that do not look like a host or port are left out."""
        host, port = self.get("host"), self.get("port")
        shown_host = (
            host
            if host and _HOST.match(host)
            else ("the default host" if not host else "the DSN's host")
        )
        return f"{shown_host}:{port}" if port and _PORT.match(port) else shown_host

    def shown(self, key: str, fallback: str) -> str:
        value = self.get(key)
        return value if value and _NAME.match(value) else fallback


class PostgresSession:
    """An open connection; statements raise `PostgresError` (scrubbed) and nothing else."""

    def __init__(
        self, connection: psycopg.Connection[Any], dsn: PostgresDsn, extra_secrets: Iterable[str]
    ) -> None:
        self._conn = connection
        self._dsn = dsn
        self._secrets = [*extra_secrets, *dsn.secrets()]

    def execute(self, statement: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (with `%s` parameters); its rows, or [] when it returns none."""
        return self._run(lambda: self._conn.execute(statement, params))

    def set_password(self, role: str, password: SecretValue, login: bool = True) -> None:
        """`ALTER ROLE … WITH [NO]LOGIN PASSWORD` with a SCRAM-SHA-256 verifier made here, so
        the plain text reaches neither the server's statement log nor pg_stat_activity."""
        self._secrets.append(password.reveal())

        def alter() -> psycopg.Cursor[Any]:
            verifier = self._conn.pgconn.encrypt_password(password.reveal().encode(), role.encode())
            return self._conn.execute(
                sql.SQL("ALTER ROLE {} WITH {} PASSWORD {}").format(
                    sql.Identifier(role),
                    sql.SQL("LOGIN" if login else "NOLOGIN"),
                    sql.Literal(verifier.decode()),
                )
            )

        self._run(alter)

    def disable_login(self, role: str, terminate: bool) -> None:
        """`ALTER ROLE … NOLOGIN`; with `terminate`, end the role's open sessions too."""
        self._run(
            lambda: self._conn.execute(
                sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role))
            )
        )
        if terminate:
            self.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity where usename = %s", (role,)
            )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction; a failure to commit or roll back is a `PostgresError` too."""
        try:
            with self._conn.transaction():
                yield
        except psycopg.Error as exc:
            raise PostgresError(statement_failure(exc, self._secrets)) from None

    def close(self) -> None:
        self._conn.close()

    def _run(self, call: Any) -> list[tuple[Any, ...]]:
        try:
            cursor = call()
            return list(cursor.fetchall()) if cursor.description is not None else []
        except psycopg.Error as exc:
            raise PostgresError(statement_failure(exc, self._secrets)) from None


def open_session(
    dsn: PostgresDsn,
    *,
    timeout: int = 10,
    autocommit: bool = True,
    extra_secrets: Iterable[str] = (),
) -> PostgresSession:
    """Connect; the caller closes the session. Raises `PostgresError` naming the failure kind."""
    try:
        connection = psycopg.connect(dsn.conninfo(), autocommit=autocommit, connect_timeout=timeout)
    except psycopg.Error as exc:
        raise PostgresError(connect_failure(exc, dsn, timeout)) from None
    return PostgresSession(connection, dsn, extra_secrets)


@contextmanager
def connect(
    dsn: PostgresDsn,
    *,
    timeout: int = 10,
    autocommit: bool = True,
    extra_secrets: Iterable[str] = (),
) -> Iterator[PostgresSession]:
    """`open_session` as a context manager: closed on the way out."""
    session = open_session(dsn, timeout=timeout, autocommit=autocommit, extra_secrets=extra_secrets)
    try:
        yield session
    finally:
        session.close()


def connect_failure(exc: BaseException, dsn: PostgresDsn, timeout: int) -> str:
    """The kind of a failed connection, from its SQLSTATE or message words; no message text."""
    fields = {
        "user": dsn.shown("user", "(the DSN's user)"),
        "dbname": dsn.shown("dbname", "(the DSN's database)"),
        "endpoint": dsn.endpoint(),
        "timeout": str(timeout),
    }
    state = getattr(exc, "sqlstate", None)
    if state in _CONNECT_STATES:
        return _CONNECT_STATES[state].format(**fields)
    words = str(exc).lower()
    for markers, kind in _CONNECT_WORDS:
        if all(marker in words for marker in markers):
            return kind.format(**fields)
    detail = f", SQLSTATE {state}" if state and _NAME.match(state) else ""
    return "cannot connect to {endpoint} ({kind}{detail})".format(
        kind=type(exc).__name__, detail=detail, **fields
    )


def statement_failure(exc: BaseException, secret_texts: Iterable[str]) -> str:
    """A failed statement: SQLSTATE and the server's primary message, secrets masked, one line.

    The server never sees the DSN, and statements carry verifiers, not passwords; the mask is a
    second line of defence for values passed as parameters.
    """
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    state = getattr(exc, "sqlstate", None)
    if not primary:  # a client-side failure (connection lost, ...): the class says enough
        return type(exc).__name__ + (f" (SQLSTATE {state})" if state else "")
    text = " ".join(str(primary).split())
    for secret in sorted((s for s in secret_texts if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = f"{text} (SQLSTATE {state})" if state else text
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "…"


def _parse(text: str, source: str) -> dict[str, Any]:
    if _uri_with_late_at(text):
        raise UsageError(
            f"{source} is not a valid connection string (an '@' after the host part: "
            "percent-encode '/', '@', '?' and '#' in the user name and password)"
        )
    try:
        return dict(conninfo_to_dict(text))
    except psycopg.ProgrammingError as exc:
        said = str(exc)
        kind = next(
            (k for start, k in _PARSE_KINDS if said.startswith(start)), "libpq cannot parse it"
        )
        raise UsageError(f"{source} is not a valid connection string ({kind})") from None


def _uri_with_late_at(text: str) -> bool:
    scheme, separator, rest = text.strip().partition("://")
    if not separator or scheme.lower() not in ("postgresql", "postgres"):
        return False
    _authority, slash, tail = rest.partition("/")
    return bool(slash) and "@" in tail
