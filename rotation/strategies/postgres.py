"""`postgres`: rotate a PostgreSQL role's password (e.g. the Supabase database password).

Two modes (policy `rotation.options.mode`):

- `single` (default): one role. `set` gives it the new password. PostgreSQL keeps one password
  per role, so **the old password stops working the moment `set` runs**: consumers still using
  it fail until they pick up the new value, and `grace` buys nothing. `revoke` does nothing;
  `discard` puts the previous password back (it is still in Vault).
- `alternating`: two roles with the same privileges (`roles: [app_a, app_b]`). Each rotation gives
  the role *not* in use (by Vault's current `username`) a new password and LOGIN; the role in use
  keeps working through the grace period, and `revoke` sets it NOLOGIN (optionally terminating its
  sessions). Zero downtime, at the price of owning two roles. In a forced (emergency) rotation
  `revoke` also replaces the leaked role's password.

`create` only chooses the password; nothing reaches the database before the engine has staged
it in Vault (envmatrix/pending), so a crash at any point leaves the role with a password Vault
holds (the current one, or the pending one that `rotate --resume` / `--due` finishes with).

Options: `dsn_env` (required: the name of an environment variable holding an admin DSN allowed to
ALTER ROLE; the DSN never lives in the policy), `mode`, `role` (single), `roles` (alternating),
`username_key`/`password_key` (Vault keys, default `username`/`password`), `uri_key` (optional: also
write a `postgresql://` URI built from `host`/`port`/`dbname`, which default to the admin DSN's),
`terminate_sessions` (alternating revoke; default false), `connect_timeout` (seconds, default 10).

The new password is hashed client-side (SCRAM-SHA-256, as psql's `\\password` does), so the
plain text reaches neither the server's statement log nor `pg_stat_activity`. Every connection
goes through `envmatrix.adapters.postgres`, whose one scrubbing rule makes errors one line that
names the failure kind (never libpq's text, which may quote the DSN) with every secret masked.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from envmatrix import failpoints
from envmatrix.adapters.postgres import PostgresDsn, PostgresSession, connect
from envmatrix.errors import PostgresError, RotationTestFailed, RuntimeFailure, UsageError
from envmatrix.rotation.strategies.base import BaseStrategy, Created, RotationContext
from envmatrix.rotation.strategies.group_values import values_for_group
from envmatrix.secret import SecretValue

_MODES = ("single", "alternating")
_PASSWORD_BYTES = 32  # token_urlsafe(32): 43 URL-safe characters, ~256 bits


class PostgresStrategy(BaseStrategy):
    """Rotates a role's password; `alternating` mode switches between two roles."""

    name = "postgres"

    def __init__(self, options: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        self.dsn_env = _required_str(options, "dsn_env")
        self.mode = str(options.get("mode", "single"))
        if self.mode not in _MODES:
            raise UsageError(f"postgres rotation: mode must be one of {', '.join(_MODES)}")
        self.roles = _roles(options, self.mode)
        self.username_key = str(options.get("username_key", "username"))
        self.password_key = str(options.get("password_key", "password"))
        self.uri_key = options.get("uri_key")
        self.terminate_sessions = bool(options.get("terminate_sessions", False))
        self.timeout = int(options.get("connect_timeout", 10))
        self._options = options
        self._admin = _AdminDsn(self.dsn_env, environ.get(self.dsn_env, ""))

    def create(self, ctx: RotationContext) -> Created:
        """Choose the target role's new password; `set` gives it to the role once it is staged."""
        role = self._target_role(ctx)
        password = SecretValue(secrets.token_urlsafe(_PASSWORD_BYTES))
        values = values_for_group(self.name, ctx, self._changed(ctx, role, password))
        failpoints.hit("rotation.create", f"postgres-{self.mode}")
        # The role is named by its slot in options.roles: a handle must not repeat a Vault value.
        handle = {"mode": self.mode, "slot": f"roles[{self.roles.index(role)}]"}
        return Created(values=values, handle=handle)

    def set(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        """Give the role the staged password (and LOGIN); safe to repeat on resume."""
        self._set_password(self._pending_role(ctx, pending), pending[self.password_key])
        failpoints.hit("rotation.set", f"postgres-{self.mode}")

    def emergency(self, ctx: RotationContext) -> Mapping[str, str]:
        """Forced rotation: have `revoke` replace the leaked role's password as well."""
        return {"replace_old_password": "yes"}

    def test(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        """Log in as the role with the new password and run `select 1`."""
        role = self._pending_role(ctx, pending)
        password = pending[self.password_key]
        login = self._admin.dsn().with_login(role, password, **self._endpoint())
        try:
            with connect(login, timeout=self.timeout, extra_secrets=self._admin.secrets()) as db:
                db.execute("select 1")
        except PostgresError as exc:
            detail = str(exc)
            raise RotationTestFailed(
                f"postgres: role {role} could not log in with the new password: {detail}"
            ) from None

    def revoke(self, ctx: RotationContext, previous: Mapping[str, SecretValue]) -> None:
        """Alternating: the previous role loses LOGIN. Single: nothing (already replaced)."""
        if self.mode == "single":
            return
        old = previous.get(self.username_key)
        old_role = old.reveal() if old is not None else ""
        if old_role not in self.roles or old_role == self._current_role(ctx):
            return  # never lock out the role in use, nor a role we do not manage
        self._disable_login(old_role, terminate=self.terminate_sessions)
        if ctx.handle.get("replace_old_password") == "yes":  # leaked: no one may log in with it
            unknown = SecretValue(secrets.token_urlsafe(_PASSWORD_BYTES))
            self._set_password(old_role, unknown, login=False)

    def discard(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        """Undo `create`: NOLOGIN on the unused role, or restore the old password (single).

        The engine may call this with no values at all (the process that created them died);
        the handle's slot then names the role. In single mode the old password can only be put
        back when Vault's previous values are given; otherwise the next `create` replaces it.
        """
        role = self._pending_role(ctx, pending)
        current_role = self._current_role(ctx)
        if self.mode == "alternating":
            if role != current_role:
                self._disable_login(role, terminate=True)
            return
        old_password = ctx.current.get(self.password_key)
        if old_password and current_role in (None, role):
            self._set_password(role, old_password)

    # -- steps' building blocks ------------------------------------------------------------

    def _target_role(self, ctx: RotationContext) -> str:
        if self.mode == "single":
            return self.roles[0]
        current = self._current_role(ctx)
        if current and current not in self.roles:
            raise RuntimeFailure(
                f"postgres: Vault {ctx.path}#{self.username_key} names a role that is not one of "
                f"options.roles ({', '.join(self.roles)}); fix Vault or the policy"
            )
        return self.roles[1] if current == self.roles[0] else self.roles[0]

    def _current_role(self, ctx: RotationContext) -> str | None:
        value = ctx.current.get(self.username_key)
        return value.reveal() if value else None

    def _pending_role(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> str:
        """The rotated role: from the new values, else the handle's slot, else the single role."""
        value = pending.get(self.username_key)
        if value:
            return value.reveal()
        slot = ctx.handle.get("slot", "roles[0]")
        index = int(slot.removeprefix("roles[").removesuffix("]") or 0)
        return self.roles[index] if index < len(self.roles) else self.roles[0]

    def _changed(self, ctx: RotationContext, role: str, password: SecretValue) -> dict[str, Any]:
        """The keys this rotation changes; the username only where it changes or is synced."""
        changed = {self.password_key: password}
        if self.mode == "alternating" or self.username_key in ctx.keys.values():
            changed[self.username_key] = SecretValue(role)
        if self.uri_key:
            changed[str(self.uri_key)] = SecretValue(self._uri(role, password))
        return changed

    def _endpoint(self) -> dict[str, str]:
        """Where consumers connect: options host/port/dbname over the admin DSN's."""
        dsn = self._admin.dsn()
        defaults = {"host": "localhost", "port": "5432", "dbname": "postgres"}
        return {
            key: str(self._options.get(key) or dsn.get(key) or default)
            for key, default in defaults.items()
        }

    def _uri(self, role: str, password: SecretValue) -> str:
        endpoint = self._endpoint()
        host, port, dbname = endpoint["host"], endpoint["port"], endpoint["dbname"]
        userinfo = f"{quote(role, safe='')}:{quote(password.reveal(), safe='')}"
        return f"postgresql://{userinfo}@{host}:{port}/{quote(str(dbname), safe='')}"

    def _set_password(self, role: str, password: SecretValue, login: bool = True) -> None:
        with self._admin_connection(f"set the password of role {role}", [password.reveal()]) as c:
            c.set_password(role, password, login=login)

    def _disable_login(self, role: str, terminate: bool) -> None:
        with self._admin_connection(f"disable login of role {role}", []) as conn:
            conn.disable_login(role, terminate)

    @contextmanager
    def _admin_connection(self, action: str, extra: Iterable[str]) -> Iterator[PostgresSession]:
        """An autocommit admin session; its failures become one line naming `action`."""
        try:
            with connect(self._admin.dsn(), timeout=self.timeout, extra_secrets=extra) as session:
                yield session
        except PostgresError as exc:
            raise RuntimeFailure(f"postgres: could not {action}: {exc}") from None


class _AdminDsn:
    """The admin DSN from the environment, parsed once; never shown."""

    def __init__(self, variable: str, dsn: str) -> None:
        self.variable = variable
        # a DSN that does not parse: a UsageError naming the kind of mistake, no fragment of it
        source = f"postgres rotation: the DSN in ${variable}"
        self._dsn = PostgresDsn(dsn, source) if dsn else None

    def dsn(self) -> PostgresDsn:
        if self._dsn is None:
            raise UsageError(
                f"postgres rotation: environment variable {self.variable} (admin DSN) is not set"
            )
        return self._dsn

    def secrets(self) -> list[str]:
        return self._dsn.secrets() if self._dsn is not None else []


def _required_str(options: Mapping[str, Any], key: str) -> str:
    value = options.get(key)
    if not isinstance(value, str) or not value:
        raise UsageError(f"postgres rotation: options.{key} is required")
    return value


def _roles(options: Mapping[str, Any], mode: str) -> tuple[str, ...]:
    if mode == "single":
        return (_required_str(options, "role"),)
    roles = options.get("roles")
    if not isinstance(roles, list | tuple) or len(roles) != 2 or len(set(roles)) != 2:
        raise UsageError(
            "postgres rotation: alternating mode needs options.roles: [role_a, role_b]"
        )
    return tuple(str(r) for r in roles)


def build(options: Mapping[str, Any], settings: object) -> PostgresStrategy:
    """The registry's factory: admin credentials come from the process environment."""
    return PostgresStrategy(options, os.environ)
