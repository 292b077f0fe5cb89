"""`supabase-api-key`: rotate a Supabase secret API key (`sb_secret_…`) via the Management API.

Supabase allows several secret keys per project, so the old one keeps working while consumers move:

- create: `POST /v1/projects/{ref}/api-keys?reveal=true` `{"type": "secret", "name": …}`; the new
  key's id goes in the handle, its value in Vault.
- test: the supabase client with the new key must list auth users (`auth.admin.list_users(page=1,
  per_page=1)`, which only a secret key may do); retried a few times while the key propagates.
  The request carries a non-browser User-Agent: Supabase answers 401 to secret keys from browsers.
- revoke (after grace): list the keys (`?reveal=true`), find the previous value among them in
  process, and `DELETE /v1/projects/{ref}/api-keys/{id}`. A previous value that is no longer
  listed was already deleted (a resumed run). A legacy `service_role` JWT cannot be deleted alone
  (it shares the JWT secret with every legacy key): revoke fails and says what to do.
- discard: deletes the key `create` made.
- A key's name ends with the rotation's id (`<prefix>_<UTC timestamp>_<12 hex>`): a `create`
  killed after the POST leaves a key nobody knows, and the resumed `create` deletes the keys
  named for its own rotation before it makes another.

Options: `project_ref` or `project_ref_env`; `api_url` or `api_url_env` (default
https://api.supabase.com); `access_token_env` (required: the variable holding the `sbp_` personal
access token, which never lives in the policy); `key_name_prefix` (default `envmatrix`; names are
`<prefix>_<UTC timestamp>`, lowercase letters, digits and underscores, which the dashboard accepts);
`key` (the Vault key holding the secret key; default: the group's only key other than `url_key`);
`url_key` (default `url`: the project URL, read from the same Vault path) or `project_url`;
`test_attempts` (default 3), `test_delay` (seconds, doubling; default 2), `timeout` (default 30).

Error messages name the method, path and HTTP status; response bodies never reach them.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from envmatrix import failpoints
from envmatrix.adapters.supabase import check_supabase
from envmatrix.errors import CheckFailed, RotationTestFailed, RuntimeFailure, UsageError
from envmatrix.rotation.strategies.base import BaseStrategy, Created, RotationContext
from envmatrix.rotation.strategies.group_values import check_group, values_for_group
from envmatrix.secret import SecretValue

DEFAULT_API_URL = "https://api.supabase.com"
_SECRET_PREFIX = "sb_secret_"
_USER_AGENT = "envmatrix-rotation"  # anything but a browser's: secret keys are refused there


class ManagementApi:
    """The project API-keys endpoints of the Supabase Management API."""

    def __init__(self, api_url: str, project_ref: str, token: SecretValue, timeout: float) -> None:
        self.project_ref = project_ref
        self._base = f"{api_url.rstrip('/')}/v1/projects/{project_ref}/api-keys"
        self._token = token
        self._timeout = timeout

    def create_secret_key(self, name: str) -> tuple[str, SecretValue]:
        """A new secret key: (id, value)."""
        body = {"type": "secret", "name": name, "secret_jwt_template": {"role": "service_role"}}
        key = self._send("POST", "", json=body, params={"reveal": "true"})
        value = key.get("api_key") if isinstance(key, dict) else None
        if not isinstance(value, str) or not value.startswith(_SECRET_PREFIX):
            raise RuntimeFailure(
                f"supabase-api-key: POST {self._path('')} returned no revealed secret key"
            )
        return str(key["id"]), SecretValue(value)

    def find_key_id(self, value: SecretValue) -> str | None:
        """The id of the key whose revealed value is `value`, if the project still has it."""
        for key in self._send("GET", "", params={"reveal": "true"}):
            api_key = key.get("api_key") or ""
            if hmac.compare_digest(str(api_key).encode(), value.reveal().encode()):
                return str(key["id"])
        return None

    def key_ids_named(self, suffix: str) -> list[str]:
        """Ids of the project's keys whose name ends with `suffix` (values stay masked)."""
        keys = self._send("GET", "") or []
        return [str(k["id"]) for k in keys if str(k.get("name", "")).endswith(suffix)]

    def delete_key(self, key_id: str) -> None:
        """Delete a key; an id that is already gone is not an error."""
        self._send("DELETE", f"/{key_id}", missing_ok=True)

    def _send(self, method: str, suffix: str, missing_ok: bool = False, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self._token.reveal()}", "User-Agent": _USER_AGENT}
        where = f"{method} {self._path(suffix)}"
        try:
            with httpx.Client(timeout=self._timeout) as http:
                response = http.request(method, self._base + suffix, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise RuntimeFailure(
                f"supabase-api-key: {where} failed: {type(exc).__name__}"
            ) from None
        if missing_ok and response.status_code == 404:
            return None
        if response.is_error:
            raise RuntimeFailure(f"supabase-api-key: {where} failed: {_status(response)}")
        try:
            return response.json()
        except ValueError:
            raise RuntimeFailure(f"supabase-api-key: {where} answered with non-JSON") from None

    def _path(self, suffix: str) -> str:
        return f"/v1/projects/{self.project_ref}/api-keys{suffix}"


def _status(response: httpx.Response) -> str:
    text = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    if response.status_code in (401, 403):
        text += " (check the access token and its secrets:write scope)"
    return text


class SupabaseApiKeyStrategy(BaseStrategy):
    """Rotates a Supabase secret API key: create, verify with the client, delete the old one."""

    name = "supabase-api-key"

    def __init__(self, options: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        token_env = options.get("access_token_env")
        if not token_env:
            raise UsageError("supabase-api-key rotation: options.access_token_env is required")
        token = environ.get(str(token_env), "")
        if not token:
            raise UsageError(
                f"supabase-api-key rotation: environment variable {token_env} "
                "(Management API access token) is not set"
            )
        ref = _from_option_or_env(options, environ, "project_ref")
        api_url = _from_option_or_env(options, environ, "api_url", DEFAULT_API_URL)
        timeout = float(options.get("timeout", 30))
        self.api = ManagementApi(api_url, ref, SecretValue(token), timeout)
        self.prefix = str(options.get("key_name_prefix", "envmatrix"))
        self.url_key = str(options.get("url_key", "url"))
        self.key_option = options.get("key")
        self.project_url = options.get("project_url")
        self.attempts = max(1, int(options.get("test_attempts", 3)))
        self.delay = float(options.get("test_delay", 2.0))
        self.timeout = timeout

    def create(self, ctx: RotationContext) -> Created:
        """Create a new secret key; its id goes in the handle."""
        check_group(self.name, ctx, [self._key(ctx)])
        tag = _rotation_tag(ctx)
        if tag:  # keys an interrupted create of this same rotation left behind
            for leftover in self.api.key_ids_named(tag):
                self.api.delete_key(leftover)
        name = f"{self.prefix}_{datetime.now(UTC):%Y%m%d_%H%M%S}{tag}"
        key_id, value = self.api.create_secret_key(name)
        failpoints.hit("rotation.create", self.name)
        values = values_for_group(self.name, ctx, {self._key(ctx): value})
        return Created(values=values, handle={"key_id": key_id, "key_name": name})

    def test(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        """The supabase client must list auth users with the new key."""
        url = self._project_url(ctx)
        failure = "no attempt made"
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.delay * 2 ** (attempt - 1))
            failure = self._list_users(url, pending[self._key(ctx)])
            if not failure:
                return
        raise RotationTestFailed(
            f"supabase-api-key: new key {ctx.handle.get('key_name', '')} was refused by the "
            f"project's auth API ({self._url_source(ctx)}) after {self.attempts} attempt(s): "
            f"{failure}"
        )

    def revoke(self, ctx: RotationContext, previous: Mapping[str, SecretValue]) -> None:
        """Delete the previous key, found by its value among the project's keys."""
        old = previous.get(self._key(ctx))
        current = ctx.current.get(self._key(ctx))
        if not old or (current is not None and old == current):
            return  # never delete the key in use
        key_id = self.api.find_key_id(old)
        if key_id is None:
            if old.reveal().startswith(_SECRET_PREFIX):
                return  # already deleted: a resumed revoke
            raise RuntimeFailure(
                f"supabase-api-key: the previous value at {ctx.path}#{self._key(ctx)} is not a "
                f"secret API key of project {self.api.project_ref} (a legacy service_role JWT?); "
                "legacy keys cannot be revoked one by one: disable them in the dashboard "
                "(or PUT /v1/projects/{ref}/api-keys/legacy?enabled=false) once nothing uses them"
            )
        if key_id != ctx.handle.get("key_id"):
            self.api.delete_key(key_id)

    def discard(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        """Delete the key `create` made."""
        key_id = ctx.handle.get("key_id")
        if key_id:
            self.api.delete_key(key_id)

    def _list_users(self, url: str, key: SecretValue) -> str:
        """'' when the key may list users; otherwise why not (status, never a body)."""
        try:
            check_supabase(SecretValue(url), key, self.timeout)
        except CheckFailed as failure:
            return str(failure)
        return ""

    def _key(self, ctx: RotationContext) -> str:
        if self.key_option:
            return str(self.key_option)
        candidates = sorted({k for k in ctx.keys.values() if k != self.url_key})
        if len(candidates) != 1:
            raise UsageError(
                f"supabase-api-key rotation: cannot tell which key of {ctx.path} holds the API "
                f"key ({', '.join(candidates) or 'none'}); set options.key"
            )
        return candidates[0]

    def _url_source(self, ctx: RotationContext) -> str:
        """Where the project URL came from; the URL itself is a Vault value, so never shown."""
        return "options.project_url" if self.project_url else f"{ctx.path}#{self.url_key}"

    def _project_url(self, ctx: RotationContext) -> str:
        if self.project_url:
            return str(self.project_url)
        url = ctx.current.get(self.url_key)
        if not url:
            raise UsageError(
                f"supabase-api-key rotation: no project URL at {ctx.path}#{self.url_key}; "
                "set options.project_url or options.url_key"
            )
        return url.reveal()


def _rotation_tag(ctx: RotationContext) -> str:
    """`_<12 hex of the rotation id>`, or "" when the engine gave none."""
    rotation_id = "".join(
        c for c in ctx.handle.get("rotation_id", "").lower() if c in "0123456789abcdef"
    )
    return f"_{rotation_id[:12]}" if rotation_id else ""


def _from_option_or_env(
    options: Mapping[str, Any], environ: Mapping[str, str], name: str, default: str | None = None
) -> str:
    """`options.<name>`, else the variable named by `options.<name>_env`, else the default."""
    if options.get(name):
        return str(options[name])
    variable = options.get(f"{name}_env")
    if variable:
        value = environ.get(str(variable))
        if not value:
            raise UsageError(f"supabase-api-key rotation: environment variable {variable} is empty")
        return value
    if default is None:
        raise UsageError(
            f"supabase-api-key rotation: options.{name} or options.{name}_env is required"
        )
    return default


def build(options: Mapping[str, Any], settings: object) -> SupabaseApiKeyStrategy:
    """The registry's factory: admin credentials come from the process environment."""
    return SupabaseApiKeyStrategy(options, os.environ)
