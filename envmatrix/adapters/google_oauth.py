"""Google service-account keys -> OAuth access tokens: the only module that imports google-auth.

`mint_access_token(key_json, token_url, scopes, http)` signs a JWT with the key's private key
and exchanges it at the token endpoint (the JWT-bearer grant of RFC 7523, as Google documents it
in "Using OAuth 2.0 for Server to Server Applications"), through google-auth's
`service_account.Credentials` and a transport of our own over `ProbeHttp` (httpx). So the
private key never leaves this process: the token endpoint gets a signed assertion, and the
caller sends only the minted access token on.

The token endpoint is the policy's (`token_url:`, default Google's), never the key file's own
`token_uri`: a key is a Vault value, and probes go only to addresses the policy names.
google-auth's exception text carries the token endpoint's answer; it is never shown: messages are
built from the HTTP status and Google's documented error codes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from envmatrix.adapters.http_probe import ProbeHttp
from envmatrix.errors import CheckFailed, missing_extra
from envmatrix.secret import SecretValue

GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
ANALYTICS_READONLY = "https://www.googleapis.com/auth/analytics.readonly"
_KEY_FIELDS = ("type", "client_email", "private_key", "private_key_id")
_GRANT_ERRORS = {
    "invalid_grant": "refused the signed assertion (invalid_grant): the key was deleted or"
    " disabled, or the machine's clock is off",
    "invalid_client": "does not know the service account (invalid_client): it was deleted",
    "unauthorized_client": "refused the service account (unauthorized_client)",
    "invalid_scope": "refused the requested scope (invalid_scope)",
}


def mint_access_token(
    key_json: SecretValue,
    http: ProbeHttp,
    token_url: str = GOOGLE_TOKEN_URL,
    scopes: Sequence[str] = (ANALYTICS_READONLY,),
    label: str = "Google's token endpoint",
) -> SecretValue:
    """An access token for the service account whose JSON key is `key_json`; CheckFailed when
    the key cannot be read or the token endpoint refuses it; MissingExtra without google-auth."""
    info = _key_info(key_json)
    try:
        from google.auth import exceptions
        from google.oauth2 import service_account
    except ModuleNotFoundError as exc:
        raise missing_extra(exc) or exc from None
    try:
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            {**info, "token_uri": token_url}, scopes=list(scopes)
        )
    except (ValueError, TypeError, KeyError):  # the text may quote the key
        raise CheckFailed("the service-account key's private_key cannot be read") from None
    transport = _transport(http, token_url, label)
    try:
        credentials.refresh(transport)
    except exceptions.GoogleAuthError:
        raise CheckFailed(_refusal(label, transport.last)) from None
    return SecretValue(str(credentials.token))


def _key_info(key_json: SecretValue) -> dict[str, Any]:
    try:
        info = json.loads(key_json.reveal())
    except ValueError:
        raise CheckFailed("the service-account key is not JSON") from None
    if not isinstance(info, dict):
        raise CheckFailed("the service-account key is not a JSON object")
    missing = [f for f in _KEY_FIELDS if not isinstance(info.get(f), str) or not info[f]]
    if missing:
        raise CheckFailed(f"the service-account key lacks {', '.join(missing)}")
    if info["type"] != "service_account":
        raise CheckFailed("the JSON key is not a service-account key (type)")
    return info


def _refusal(label: str, last: tuple[int, Any] | None) -> str:
    if last is None:
        return f"{label} was not asked: the assertion could not be signed with the key"
    status, answer = last
    error = answer.get("error") if isinstance(answer, Mapping) else None
    if isinstance(error, str) and error in _GRANT_ERRORS:
        return f"{label} {_GRANT_ERRORS[error]}"
    return f"{label} refused the service-account key (HTTP {status})"


def _transport(http: ProbeHttp, token_url: str, label: str) -> Any:
    """A google-auth transport (`google.auth.transport.Request`) over `http` that goes only to
    `token_url` and remembers the last answer's status and JSON for messages."""
    from google.auth import transport

    class _Response(transport.Response):
        def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
            self._status, self._headers, self._data = status, headers, data

        @property
        def status(self) -> int:
            return self._status

        @property
        def headers(self) -> Mapping[str, str]:
            return self._headers

        @property
        def data(self) -> bytes:
            return self._data

    class _Request(transport.Request):
        last: tuple[int, Any] | None = None

        def __call__(
            self,
            url: str,
            method: str = "GET",
            body: bytes | None = None,
            headers: Mapping[str, str] | None = None,
            timeout: float | None = None,
            **kwargs: Any,
        ) -> _Response:
            if url != token_url:  # google-auth asks nothing else of a service account key
                raise CheckFailed(f"{label}: google-auth asked for another address; refused")
            answer = http.request(label, method, url, headers, content=body)
            self.last = (answer.status, answer.json_object())
            return _Response(answer.status, answer.headers, answer.body)

    return _Request()
