"""`VaultAdapter`: the `VaultPort` for one KV v2 mount of Vault or OpenBao, over hvac.

This is the only module of envmatrix that imports hvac. Everything hvac or requests raises is
translated here into the `envmatrix.errors.VaultError` tree, with messages built from the method,
the API path and the status code only: hvac exceptions carry response bodies, and a response body
can carry secret values, so none of their text is ever copied into ours, and the translated
exception is raised outside the `except` block so it does not even chain to them.

Retries: reads, deletes and check-and-set writes are retried (bounded, jittered exponential
backoff) on transport failures and 429/5xx answers, sealed included. A plain write is retried
only when the connection was never established, since otherwise it may have landed; a retried
check-and-set write is either applied once or rejected with `VaultCasMismatch`.

Vault's lifecycle of KV v2 data: a path whose current version is deleted (`kv delete`) or
destroyed (`kv destroy`) reads as absent, and a create-only write (`cas=0`) over it is sent again
with the check-and-set index Vault expects (that deleted version's number), so envmatrix's own
documents recover from an operator's `kv delete` by themselves. `kept_versions` tells how many
versions Vault keeps (`max_versions`) so rotation can refuse what it could not undo.

Settings, as the Vault CLI reads them (see `from_environment`): `VAULT_ADDR`, `VAULT_NAMESPACE`,
`VAULT_TOKEN` else `~/.vault-token` (or an AppRole/JWT login), and the TLS variables of
`envmatrix.adapters.vault_tls`. A 403 is told apart from an invalid token by asking Vault
(`auth/token/lookup-self`) once.

Limits: OpenBao refuses request bodies with more than 1,000 JSON strings
(`max_request_json_strings`), so a single write holds at most about 500 key/value pairs.
"""

from __future__ import annotations

import base64
import enum
import json
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import hvac
import hvac.adapters
import hvac.exceptions
import requests
from urllib3.exceptions import NewConnectionError

from envmatrix.adapters import actions_oidc
from envmatrix.adapters.accounting import VaultRequests
from envmatrix.adapters.vault_tls import VaultTLS, tls_failure_reason
from envmatrix.errors import (
    UnsafeInput,
    UsageError,
    VaultCasMismatch,
    VaultError,
    VaultNotFound,
    VaultPermissionDenied,
    VaultUnavailable,
)
from envmatrix.ports import VaultDocument, VaultEntry
from envmatrix.redact import url_for_display
from envmatrix.safeio import read_regular_file
from envmatrix.secret import SecretValue
from envmatrix.settings import text_setting

_T = TypeVar("_T")

_BACKOFF_BASE = 0.2
_BACKOFF_CAP = 5.0
ACCESSOR_SHOWN = 8  # characters of a token accessor shown in identities (audit rows, locks)
KV_DEFAULT_MAX_VERSIONS = 10  # versions a KV v2 mount keeps when neither metadata nor config says
TOKEN_FILE = "~/.vault-token"  # where the Vault CLI's default token helper keeps the token
_TOKEN_FILE_LIMIT = 64 * 1024
# Vault's own words for the two check-and-set refusals (matched, then quoted from here)
CAS_REQUIRED = "check-and-set parameter required for this call"
CAS_MISMATCH = "check-and-set parameter did not match the current version"

# hvac raises one class per status; the status is what our messages report.
_STATUS_OF: dict[type[hvac.exceptions.VaultError], int] = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.PreconditionFailed: 412,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}
_TRANSIENT_ANSWERS = (
    hvac.exceptions.RateLimitExceeded,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.BadGateway,
    hvac.exceptions.VaultDown,
)


class _Retry(enum.Enum):
    """When an operation may be sent again after a failure."""

    TRANSIENT = "on any transport failure or 429/5xx"  # reads, deletes, CAS writes
    UNSENT = "only when the request never left"  # writes that may have landed


@dataclass(frozen=True)
class _Operation:
    """One HTTP call to Vault, described for retries and error messages."""

    method: str
    api_path: str  # below /v1/, e.g. "secret/data/apps/prod"
    capability: str
    retry: _Retry

    @property
    def endpoint(self) -> str:
        return f"{self.method} /v1/{self.api_path}"


# Answers that mean "these credentials do not open this door" (OpenBao answers 403 for an auth
# mount that does not exist, 400 for a bad secret id, claim, audience, issuer or expiry).
_REFUSALS = (
    hvac.exceptions.InvalidRequest,
    hvac.exceptions.Unauthorized,
    hvac.exceptions.Forbidden,
)
_ACCEPTED = (
    f"set VAULT_TOKEN (or log in with the Vault CLI, which writes {TOKEN_FILE}); or "
    "VAULT_ROLE_ID and VAULT_SECRET_ID (AppRole); or VAULT_AUTH_ROLE in "
    "GitHub Actions with `permissions: id-token: write` (JWT)"
)
# (words in Vault's refusal, what to tell the user): Vault's own text is matched, never shown.
_APPROLE_HINTS = (
    ("permission denied", "is the approle auth method enabled there? (VAULT_APPROLE_PATH)"),
    (
        "",
        "check VAULT_ROLE_ID and VAULT_SECRET_ID (the secret id may have expired or run out "
        "of uses)",
    ),
)
_JWT_HINTS = (
    ("permission denied", "is the jwt auth method enabled there? (VAULT_JWT_PATH)"),
    ("could not be found", "no such role (VAULT_AUTH_ROLE)"),
    ("bound claim", "check bound_claims (repository, environment) against this job"),
    ("audience", "check bound_audiences against the token's aud (VAULT_JWT_AUDIENCE)"),
    ("issuer", "check bound_issuer (https://token.actions.githubusercontent.com)"),
    ("expired", "the ID token expired: check the clocks of Vault and the runner"),
    (
        "",
        "check the role's bound_claims, bound_audiences and bound_issuer and the jwt auth "
        "method's keys (oidc_discovery_url)",
    ),
)


@dataclass(frozen=True)
class _LoginStep:
    """One way of logging in, named for error messages."""

    name: str
    hints: tuple[tuple[str, str], ...]

    def refused(self, status: int, said: str) -> str:
        hint = next(text for words, text in self.hints if words in said.lower())
        return f"{self.name} refused ({status}): {hint}"


def _check_addr(addr: str, source: str) -> str:
    parts = urlsplit(addr)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"{source} {url_for_display(addr)!r} is not a Vault URL: expected http(s)://host:port, "
            "e.g. https://vault.example.com:8200"
        )
    return addr.rstrip("/")


class VaultAdapter:
    """Vault KV v2 under one mount, behind `envmatrix.ports.VaultPort`."""

    def __init__(
        self,
        addr: str,
        token: str,
        mount: str = "secret",
        timeout: float = 10.0,
        retries: int = 3,
        *,
        namespace: str | None = None,
        tls: VaultTLS | None = None,
        token_source: str = "the Vault token",
    ) -> None:
        """`namespace`: a Vault Enterprise/HCP/OpenBao namespace (`X-Vault-Namespace`) every
        request, logins included, is sent to; `tls`: CA, client certificate and server name
        (default: the system trust store); `token_source` names the token in messages."""
        self.addr = _check_addr(addr, "the Vault address")
        self.namespace = namespace.strip("/") if namespace else None
        # what messages name: no credentials, and the namespace when there is one
        self.shown_addr = url_for_display(self.addr) + (
            f" (namespace {self.namespace}/)" if self.namespace else ""
        )
        self.mount = mount.strip("/")
        self.timeout = timeout
        self.retries = max(1, retries)
        self.tls = tls or VaultTLS()
        self._token_source = token_source
        self._token_valid: bool | None = None
        session = self.tls.session()
        self.requests = VaultRequests(self.mount)  # round trips (`--json`'s `vault_requests`)
        session.hooks["response"].append(self.requests.answered)
        self._client = hvac.Client(
            url=self.addr,
            token=token,
            timeout=timeout,
            namespace=self.namespace,
            session=session,
            verify=session.verify,
            cert=session.cert or (),  # () keeps hvac from reading VAULT_CLIENT_CERT itself
        )
        self._kv = self._client.secrets.kv.v2
        self._identity: str | None = None
        self._login_label = ""  # how the token was obtained, when envmatrix logged in itself
        self._sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_environment(
        cls, mount: str = "secret", environ: Mapping[str, str] = os.environ
    ) -> VaultAdapter:
        """An adapter logged in from the environment: `VAULT_ADDR` plus one way to authenticate.

        `VAULT_TOKEN` (as the Vault CLI) wins when set; otherwise AppRole (`VAULT_ROLE_ID` +
        `VAULT_SECRET_ID`, mount `VAULT_APPROLE_PATH`) or, in GitHub Actions, JWT auth with the
        job's OIDC ID token (`VAULT_AUTH_ROLE`, mount `VAULT_JWT_PATH`, `VAULT_JWT_AUDIENCE`);
        with none of these, the token file `~/.vault-token` that `vault login`/`bao login`
        writes. `VAULT_NAMESPACE` and the TLS variables (`envmatrix.adapters.vault_tls`) apply
        to every request. Raises UsageError (exit 3) naming the variable that is wrong.
        """
        addr = environ.get("VAULT_ADDR", "").strip()
        if not addr:
            raise UsageError("VAULT_ADDR is not set: export the Vault URL, e.g. https://vault:8200")
        addr = _check_addr(addr, "VAULT_ADDR")
        settings: dict[str, Any] = {
            "mount": mount,
            "namespace": text_setting(environ, "VAULT_NAMESPACE").strip("/") or None,
            "tls": VaultTLS.from_environment(environ),
        }
        token = text_setting(environ, "VAULT_TOKEN")
        if token:
            return cls(addr, token, token_source="VAULT_TOKEN", **settings)
        login = _login_from(environ)  # UsageError before any request when the setup is wrong
        if login is None:
            token, source = _token_from_file(environ)
            return cls(addr, token, token_source=source, **settings)
        adapter = cls(addr, "", token_source="the token from the login", **settings)
        try:
            login(adapter)
        except BaseException:
            adapter.close()
            raise
        return adapter

    def login_approle(self, role_id: SecretValue, secret_id: SecretValue, path: str) -> None:
        """Log in with AppRole at `auth/<path>/`; the token obtained replaces the client's."""
        path = path.strip("/")
        op = _Operation("POST", f"auth/{path}/login", "login", _Retry.UNSENT)
        step = _LoginStep(f"Vault AppRole login at {path}/", _APPROLE_HINTS)
        response = self._login(
            op,
            step,
            lambda: self._client.auth.approle.login(
                role_id=role_id.reveal(), secret_id=secret_id.reveal(), mount_point=path
            ),
        )
        role_name = (response["auth"].get("metadata") or {}).get("role_name")
        self._login_label = f"approle:{role_name or path}"

    def login_jwt(self, role: str, jwt: SecretValue, path: str) -> None:
        """Log in with a JWT (a GitHub Actions ID token) for `role` at `auth/<path>/`."""
        path = path.strip("/")
        # A JWT may be presented again until it expires, so a lost answer is safe to retry.
        op = _Operation("POST", f"auth/{path}/login", "login", _Retry.TRANSIENT)
        step = _LoginStep(f"Vault JWT login at {path}/ for role {role}", _JWT_HINTS)
        self._login(
            op,
            step,
            lambda: self._client.auth.jwt.jwt_login(role=role, jwt=jwt.reveal(), path=path),
        )
        self._login_label = f"jwt:{role}"

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.adapter.close()

    # -- VaultPort ------------------------------------------------------------------------------

    def read_entry(self, path: str) -> VaultEntry:
        """Current version, its creation time and top-level key names, in one `subkeys` read.

        The values never leave Vault. A missing path, or a deleted or destroyed current version,
        gives `VaultEntry(path, None)`.
        """
        op = self._operation("GET", "subkeys", path, "read", _Retry.TRANSIENT)
        try:
            response = self._call(op, lambda: self._get_json(op, params={"depth": 1}))
        except VaultNotFound:
            return VaultEntry(path, None)
        metadata, subkeys = response["data"]["metadata"], response["data"]["subkeys"] or {}
        return VaultEntry(
            path=path,
            version=int(metadata["version"]),
            created_time=_parse_time(metadata.get("created_time")),
            keys=frozenset(subkeys),
        )

    def list_folder(self, path: str) -> list[str]:
        """The names under a folder (`LIST /v1/<mount>/metadata/<path>`): sub-folders end in
        "/". Only metadata is listed, never a value; an absent or empty folder gives []."""
        op = self._operation("LIST", "metadata", path, "list", _Retry.TRANSIENT)

        def ask() -> list[str]:
            response = self._client.adapter.request("LIST", f"/v1/{op.api_path}")
            keys = response.get("data", {}).get("keys") if isinstance(response, dict) else None
            return [str(k) for k in keys or ()]

        try:
            return self._call(op, ask)
        except VaultNotFound:
            return []

    def read_values(self, path: str, version: int | None = None) -> dict[str, SecretValue]:
        """All key/values of a version (default: current); non-string values as JSON text.

        Raises `VaultNotFound` when the path, the version, or its data (deleted) is absent.
        """
        data = self._read_data(path, version)["data"]
        return {key: SecretValue(_as_text(value)) for key, value in data.items()}

    def write_values(
        self, path: str, values: Mapping[str, SecretValue], cas: int | None = None
    ) -> int:
        """Write a new version and return its number; `cas=0` creates only (`VaultCasMismatch`).

        "Absent" includes a path whose current version is deleted or destroyed: `cas=0` then
        writes over that version (Vault wants its number as the check-and-set index).
        """
        revealed = {key: value.reveal() for key, value in values.items()}
        return self._write_data(path, revealed, cas)

    def read_document(self, path: str) -> VaultDocument | None:
        """A non-secret JSON document stored as a KV v2 entry, or None when absent or deleted.

        Its `written_at` is the version's `created_time` and its `read_at` the `Date` of Vault's
        answer: both by Vault's clock, so a lock's age never depends on this machine's clock.
        """
        op = self._operation("GET", "data", path, "read", _Retry.TRANSIENT)
        try:
            body, read_at = self._call(op, lambda: self._get_dated(op))
        except VaultNotFound:
            return None
        metadata = body["data"]["metadata"]
        return VaultDocument(
            path,
            body["data"]["data"],
            int(metadata["version"]),
            written_at=_parse_time(metadata.get("created_time")),
            read_at=read_at,
        )

    def write_document(self, path: str, data: Mapping[str, Any], cas: int | None = None) -> int:
        """Write a JSON document (KV check-and-set when `cas` is given); returns its version.

        `cas=0` ("absent") also writes over a deleted or destroyed current version.
        """
        return self._write_data(path, dict(data), cas)

    def delete_document(self, path: str) -> None:
        """Delete a document's metadata and every version; absent is not an error."""
        op = self._operation("DELETE", "metadata", path, "delete", _Retry.TRANSIENT)
        self._call(
            op,
            lambda: self._kv.delete_metadata_and_all_versions(path=path, mount_point=self.mount),
        )

    def kept_versions(self, path: str) -> int | None:
        """How many versions of `path` Vault keeps before pruning the oldest (KV v2
        `max_versions`): the secret's metadata setting, else the mount's config, else KV's
        default of 10. None when the token may read neither (then nobody can tell)."""
        own = self._max_versions(self._operation("GET", "metadata", path, "read", _Retry.TRANSIENT))
        if own:
            return own
        config = _Operation("GET", f"{self.mount}/config", "read", _Retry.TRANSIENT)
        mount = self._max_versions(config)
        if own is None or mount is None:
            return None
        return mount or KV_DEFAULT_MAX_VERSIONS

    def transit_hmac(
        self, mount: str, key: str, values: Sequence[SecretValue], key_version: int | None = None
    ) -> list[str]:
        """Vault transit HMACs (`vault:vN:<base64>`) of `values`, in order, under the named key.

        Each value goes base64-encoded to `POST /v1/<mount>/hmac/<key>` only, in `batch_input`
        batches of at most TRANSIT_BATCH_ITEMS values and TRANSIT_BATCH_BYTES of input (under
        OpenBao's 1,000-JSON-string and request-size limits); the key never leaves Vault.
        `key_version`: the transit key version to use (default: the latest). hvac's
        `secrets.transit.generate_hmac` takes one `input` only, so batches are posted through
        hvac's adapter to the same endpoint. Raises VaultPermissionDenied (no `update` on the
        endpoint), VaultError (no transit engine at `mount`, no such key, an item refused).
        """
        results: list[str] = []
        for batch in _transit_batches(values):
            results += self._transit_batch(mount, key, batch, key_version)
        return results

    def _transit_batch(
        self, mount: str, key: str, batch: list[str], key_version: int | None
    ) -> list[str]:
        api_path = f"{mount.strip('/')}/hmac/{quote(key, safe='')}"
        op = _Operation("POST", api_path, "update", _Retry.TRANSIENT)
        body: dict[str, Any] = {"batch_input": [{"input": item} for item in batch]}
        if key_version is not None:
            body["key_version"] = key_version

        def send() -> Any:
            if len(batch) == 1 and key_version is None:
                return self._client.secrets.transit.generate_hmac(
                    name=key, hash_input=batch[0], mount_point=mount.strip("/")
                )
            return self._client.adapter.post(f"/v1/{api_path}", json=body)

        def translate(failure: Exception, op: _Operation) -> VaultError:
            said = ""
            if isinstance(failure, hvac.exceptions.VaultError):
                said = " ".join(str(error) for error in failure.errors or ())
            if isinstance(failure, hvac.exceptions.InvalidPath) or "no handler" in said:
                return VaultError(
                    f"Vault at {self.shown_addr} has no transit engine at {mount}/"
                    " (vault.transit.mount in the policy)"
                )
            if isinstance(failure, hvac.exceptions.InvalidRequest) and "not found" in said:
                return VaultError(
                    f"Vault at {self.shown_addr} has no transit key {key!r} at {mount}/"
                    " (vault.transit.key in the policy)"
                )
            return self._translate(failure, op)

        answer = self._call(op, send, translate)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise VaultError(f"Vault at {self.shown_addr} gave no JSON answer to {op.endpoint}")
        items = data.get("batch_results", [data])
        hmacs = [item.get("hmac") if isinstance(item, dict) else None for item in items]
        if len(hmacs) != len(batch) or not all(isinstance(h, str) and h for h in hmacs):
            # an item's error text is not shown: it is Vault's, about an input we never show
            raise VaultError(f"Vault at {self.shown_addr} refused an item of {op.endpoint}")
        return [str(h) for h in hmacs]

    def identity(self) -> str:
        """`token:<display_name> accessor:<first 8 characters>…` of the token, looked up once.

        After a login it starts with how: `approle:<role_name> ` or `jwt:<role> `. The accessor
        is cut short: it names the token well enough for a person, while the whole one lets its
        holder look the token up or revoke it (Vault's own audit log HMACs it for that reason).
        """
        if self._identity is None:
            op = _Operation("GET", "auth/token/lookup-self", "read", _Retry.TRANSIENT)
            data = self._call(op, self._client.auth.token.lookup_self)["data"]
            token = f"token:{data['display_name']} accessor:{accessor_hint(data['accessor'])}"
            self._identity = f"{self._login_label} {token}".strip()
        return self._identity

    # -- requests -------------------------------------------------------------------------------

    def _login(
        self, op: _Operation, step: _LoginStep, request: Callable[[], Any]
    ) -> dict[str, Any]:
        """Run a login request; a refusal becomes one line naming the step and what to check."""

        def translate(failure: Exception, op: _Operation) -> VaultError:
            if isinstance(failure, _REFUSALS):
                said = " ".join(str(error) for error in failure.errors or ())  # classify only
                return VaultError(step.refused(_STATUS_OF[type(failure)], said))
            return self._translate(failure, op)

        response = self._call(op, request, translate)
        if not isinstance(response, dict) or not response.get("auth"):
            raise VaultError(f"{step.name} gave no token (Vault at {self.shown_addr})")
        return response

    def _read_data(self, path: str, version: int | None) -> dict[str, Any]:
        op = self._operation("GET", "data", path, "read", _Retry.TRANSIENT)
        response = self._call(
            op,
            lambda: self._kv.read_secret_version(
                path=path, version=version, mount_point=self.mount, raise_on_deleted_version=True
            ),
        )
        data: dict[str, Any] = response["data"]
        return data

    def _write_data(self, path: str, secret: dict[str, Any], cas: int | None) -> int:
        # A retried CAS write cannot apply twice: the second attempt is rejected instead.
        retry = _Retry.TRANSIENT if cas is not None else _Retry.UNSENT
        op = self._operation("POST", "data", path, "create/update", retry)

        def write(index: int | None) -> int:
            response = self._call(
                op,
                lambda: self._kv.create_or_update_secret(
                    path=path, secret=secret, cas=index, mount_point=self.mount
                ),
            )
            return int(response["data"]["version"])

        lost: VaultCasMismatch | None = None
        try:
            return write(cas)
        except VaultCasMismatch as exc:
            if cas != 0:
                raise
            lost = exc
        # "create only" lost: over a deleted or destroyed current version, which reads as
        # absent, Vault expects that version's number; anything else really was written meanwhile
        removed = self._removed_current_version(path)
        if removed is None:
            raise lost
        return write(removed)

    def _removed_current_version(self, path: str) -> int | None:
        """The number of `path`'s current version when it is deleted or destroyed, else None."""
        op = self._operation("GET", "data", path, "read", _Retry.TRANSIENT)

        def ask() -> int | None:
            adapter = self._client.adapter
            response = hvac.adapters.RawAdapter.request(
                adapter, "GET", f"/v1/{op.api_path}", raise_exception=False
            )
            if response.status_code != 404:
                if not response.ok:
                    adapter._raise_for_error("GET", op.api_path, response)
                return None
            try:
                metadata = (response.json().get("data") or {}).get("metadata") or {}
            except (ValueError, AttributeError):
                return None
            removed = bool(metadata.get("deletion_time")) or bool(metadata.get("destroyed"))
            return int(metadata["version"]) if removed and metadata.get("version") else None

        return self._call(op, ask)

    def _max_versions(self, op: _Operation) -> int | None:
        """`max_versions` of a metadata or config answer; 0 when the path has no metadata,
        None when the token may not read it."""
        try:
            data = self._call(op, lambda: self._get_json(op, params={}))["data"]
        except VaultNotFound:
            return 0
        except VaultPermissionDenied:
            return None
        return int(data.get("max_versions") or 0)

    def _get_dated(self, op: _Operation) -> tuple[dict[str, Any], datetime | None]:
        """GET a JSON answer together with Vault's clock at answering (its `Date` header)."""
        adapter = self._client.adapter  # RawAdapter's request keeps the headers JSONAdapter drops
        response = hvac.adapters.RawAdapter.request(adapter, "GET", f"/v1/{op.api_path}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise VaultError(f"Vault at {self.addr} gave no JSON answer to {op.endpoint}")
        return body, _parse_http_date(response.headers.get("Date"))

    def _get_json(self, op: _Operation, params: Mapping[str, Any]) -> dict[str, Any]:
        response = self._client.adapter.request("GET", f"/v1/{op.api_path}", params=dict(params))
        if not isinstance(response, dict):  # 204 or a non-JSON 200
            raise VaultError(f"Vault at {self.shown_addr} gave no JSON answer to {op.endpoint}")
        return response

    def _operation(
        self, method: str, kind: str, path: str, capability: str, retry: _Retry
    ) -> _Operation:
        api_path = f"{self.mount}/{kind}/{quote(path.strip('/'))}"
        return _Operation(method, api_path, capability, retry)

    def _call(
        self,
        op: _Operation,
        request: Callable[[], _T],
        translate: Callable[[Exception, _Operation], VaultError] | None = None,
    ) -> _T:
        """Run `request` with bounded retries; raise our translation of its last failure."""
        for attempt in range(1, self.retries + 1):
            failure: Exception
            try:
                return request()
            except (hvac.exceptions.VaultError, requests.RequestException) as error:
                failure = error
            if attempt == self.retries or not _may_retry(op.retry, failure):
                break
            self._sleep(_backoff(attempt))
        # Raised here, not in the except block, so no hvac exception (which may carry a response
        # body) rides along as __context__ into tracebacks and error reports.
        raise (translate or self._translate)(failure, op)

    # -- error translation ----------------------------------------------------------------------

    def _token_is_valid(self, op: _Operation) -> bool:
        """Whether Vault still knows the token, asked once after a 403 (`lookup-self` is in
        every token's default policy); True when that cannot be told."""
        if self._token_valid is None:
            if op.api_path == "auth/token/lookup-self" or not self._client.token:
                return op.api_path != "auth/token/lookup-self"
            try:
                response = hvac.adapters.RawAdapter.request(
                    self._client.adapter,
                    "GET",
                    "/v1/auth/token/lookup-self",
                    raise_exception=False,
                )
            except requests.RequestException:
                return True
            self._token_valid = response.status_code != 403
        return self._token_valid

    def _translate(self, failure: Exception, op: _Operation) -> VaultError:
        if isinstance(failure, requests.exceptions.SSLError):
            host = urlsplit(self.addr).hostname or self.addr
            reason = tls_failure_reason(failure, self.tls, host)
            return VaultUnavailable(f"Vault at {self.shown_addr}: {reason}")
        if isinstance(failure, requests.RequestException):
            reason = _transport_reason(failure, self.timeout)
            return VaultUnavailable(f"Vault at {self.shown_addr} is unreachable: {reason}")
        assert isinstance(failure, hvac.exceptions.VaultError)
        return self._translate_answer(failure, op)

    def _translate_answer(self, failure: hvac.exceptions.VaultError, op: _Operation) -> VaultError:
        status = _STATUS_OF.get(type(failure))
        said = " ".join(str(error) for error in failure.errors or ())  # used to classify only
        if isinstance(failure, hvac.exceptions.VaultDown) and "sealed" in said:
            return VaultUnavailable(f"Vault at {self.shown_addr} is sealed")
        if isinstance(failure, hvac.exceptions.Forbidden):
            if not self._token_is_valid(op):
                return VaultError(
                    f"Vault at {self.shown_addr} refused {self._token_source}: the token is "
                    "invalid, expired or revoked (it cannot look itself up); get a new one "
                    f"(vault login / bao login) — {op.endpoint} answered 403"
                )
            return VaultPermissionDenied(path=op.api_path, capability=op.capability)
        plain_text = str(getattr(failure, "text", "") or "")[:200]  # a non-JSON answer, classified
        if isinstance(failure, hvac.exceptions.InvalidRequest) and "to an HTTPS server" in (
            said + plain_text
        ):
            return VaultUnavailable(
                f"Vault at {self.shown_addr}: TLS: the server speaks HTTPS but VAULT_ADDR says "
                "http://: use https:// in VAULT_ADDR (and VAULT_CACERT for its CA)"
            )
        if isinstance(failure, hvac.exceptions.InvalidRequest) and CAS_REQUIRED in said:
            return VaultError(
                f'Vault at {self.shown_addr} refused {op.endpoint}: "{CAS_REQUIRED}" (the mount '
                "or the secret's metadata has cas_required=true and this write passed no cas)"
            )
        if isinstance(failure, hvac.exceptions.InvalidRequest) and CAS_MISMATCH in said:
            return VaultCasMismatch(
                f'check-and-set write to {op.api_path} lost: Vault said "{CAS_MISMATCH}" '
                "(another writer changed it meanwhile)"
            )
        if isinstance(failure, hvac.exceptions.InvalidPath) and "no handler for route" in said:
            return VaultError(f"Vault at {self.shown_addr} has no secrets engine at {self.mount}/")
        if isinstance(failure, hvac.exceptions.InvalidPath):
            return VaultNotFound(f"{op.api_path} not found in Vault at {self.shown_addr}")
        if isinstance(failure, _TRANSIENT_ANSWERS):
            return VaultUnavailable(
                f"Vault at {self.shown_addr} answered {status} to {op.endpoint}"
            )
        return VaultError(
            f"Vault at {self.shown_addr} answered {status or 'an error'} to {op.endpoint}"
        )


TRANSIT_BATCH_ITEMS = 200  # 2 JSON strings each: far under OpenBao's 1,000 per request
TRANSIT_BATCH_BYTES = 4 * 1024 * 1024  # base64 input per request, under max_request_size


def _transit_batches(values: Sequence[SecretValue]) -> list[list[str]]:
    """`values` base64-encoded, cut into batches that stay under OpenBao's request limits."""
    batches: list[list[str]] = []
    current: list[str] = []
    size = 0
    for value in values:
        encoded = base64.b64encode(value.reveal().encode()).decode("ascii")
        if current and (
            len(current) >= TRANSIT_BATCH_ITEMS or size + len(encoded) > TRANSIT_BATCH_BYTES
        ):
            batches.append(current)
            current, size = [], 0
        current.append(encoded)
        size += len(encoded)
    if current:
        batches.append(current)
    return batches


def _login_from(environ: Mapping[str, str]) -> Callable[[VaultAdapter], None] | None:
    """How to log in when VAULT_TOKEN is not set (None: no login configured); UsageError when
    it is unclear or incomplete."""
    role_id, secret_id = _setting(environ, "VAULT_ROLE_ID"), _setting(environ, "VAULT_SECRET_ID")
    jwt_role = _setting(environ, "VAULT_AUTH_ROLE")
    if (role_id or secret_id) and jwt_role:
        raise UsageError(
            "both AppRole (VAULT_ROLE_ID/VAULT_SECRET_ID) and JWT (VAULT_AUTH_ROLE) are set: "
            "keep one; accepted: " + _ACCEPTED
        )
    if role_id or secret_id:
        return _approle_login(role_id, secret_id, _setting(environ, "VAULT_APPROLE_PATH"))
    if jwt_role:
        return _jwt_login(jwt_role, environ)
    return None


def _token_from_file(environ: Mapping[str, str]) -> tuple[str, str]:
    """The token in `~/.vault-token` (HOME from `environ`) and how messages name it."""
    home = environ.get("HOME", "").strip() or environ.get("USERPROFILE", "").strip()
    path = os.path.join(home, ".vault-token") if home else ""
    if not path:
        raise UsageError(
            f"VAULT_TOKEN is not set and no other Vault login is configured: {_ACCEPTED}"
        )
    try:
        token = read_regular_file(path, _TOKEN_FILE_LIMIT).decode("utf-8", "replace").strip()
    except FileNotFoundError:
        token = ""
    except (OSError, UnsafeInput) as exc:
        raise UsageError(f"the Vault token file {path} cannot be read ({exc})") from None
    if not token:
        raise UsageError(
            f"VAULT_TOKEN is not set and no other Vault login is configured: {_ACCEPTED}"
        )
    if not token.isprintable():
        raise UsageError(f"the Vault token file {path} holds more than one line")
    return token, f"the token in {path}"


def _approle_login(role_id: str, secret_id: str, path: str) -> Callable[[VaultAdapter], None]:
    if not (role_id and secret_id):
        missing = "VAULT_SECRET_ID" if role_id else "VAULT_ROLE_ID"
        raise UsageError(
            f"AppRole login needs VAULT_ROLE_ID and VAULT_SECRET_ID: {missing} is "
            f"not set; accepted: {_ACCEPTED}"
        )
    credentials = SecretValue(role_id), SecretValue(secret_id)
    return lambda adapter: adapter.login_approle(*credentials, path or "approle")


def _jwt_login(role: str, environ: Mapping[str, str]) -> Callable[[VaultAdapter], None]:
    if not actions_oidc.in_actions_with_id_token(environ):
        raise UsageError(
            "VAULT_AUTH_ROLE is set but this is not a GitHub Actions job allowed to request an ID "
            f"token ({actions_oidc.REQUEST_URL} and {actions_oidc.REQUEST_TOKEN} are not set): "
            "give the job `permissions: id-token: write`; accepted: " + _ACCEPTED
        )
    audience = _setting(environ, "VAULT_JWT_AUDIENCE") or None
    path = _setting(environ, "VAULT_JWT_PATH") or "jwt"

    def login(adapter: VaultAdapter) -> None:
        # Requested only now, after every check passed: an ID token lives about five minutes.
        adapter.login_jwt(role, actions_oidc.request_id_token(environ, audience), path)

    return login


def _setting(environ: Mapping[str, str], name: str) -> str:
    return text_setting(environ, name)


def _may_retry(policy: _Retry, failure: Exception) -> bool:
    if isinstance(failure, requests.exceptions.SSLError):
        return False  # a certificate does not change between attempts
    if _never_sent(failure):
        return True
    if policy is _Retry.UNSENT:
        return False
    return isinstance(failure, (requests.ConnectionError, requests.Timeout, *_TRANSIENT_ANSWERS))


def _never_sent(failure: Exception) -> bool:
    """Whether the TCP connection was never established, so Vault cannot have seen the request."""
    if isinstance(failure, requests.ConnectTimeout):
        return True
    if not isinstance(failure, requests.ConnectionError) or not failure.args:
        return False
    cause = getattr(failure.args[0], "reason", failure.args[0])
    return isinstance(cause, NewConnectionError)


def _transport_reason(failure: requests.RequestException, timeout: float) -> str:
    if isinstance(failure, requests.ConnectTimeout):
        return f"no connection within {timeout:g} s"
    if isinstance(failure, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if _never_sent(failure):
        refused = "refused" in str(failure.args[0]).lower()
        return "connection refused" if refused else "cannot connect"
    if isinstance(failure, requests.ConnectionError):
        return "connection reset or closed"
    return f"request failed ({type(failure).__name__})"


def accessor_hint(accessor: str) -> str:
    """The first `ACCESSOR_SHOWN` characters of a token accessor and `…`; never the whole."""
    return f"{accessor[:ACCESSOR_SHOWN]}…"


def _backoff(attempt: int) -> float:
    """Jittered exponential delay before retry `attempt` (1-based)."""
    return float(min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5))


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _parse_http_date(text: str | None) -> datetime | None:
    """An HTTP `Date` header (whole seconds, UTC) as an aware datetime; None when absent or bad."""
    try:
        return parsedate_to_datetime(text) if text else None
    except (TypeError, ValueError):
        return None
