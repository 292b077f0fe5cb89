"""Google Cloud IAM service-account keys over the IAM REST API, and access tokens minted with a
key (the OAuth 2.0 JWT-bearer grant). The only module of envmatrix that talks to Google.

- `POST {iam_url}/v1/projects/-/serviceAccounts/{email}/keys` creates a user-managed key; the
  answer's `privateKeyData` is the base64 of the JSON key file (`type`, `private_key_id`,
  `private_key`, `client_email`, `token_uri`, ...). It is turned into a SecretValue at once.
- `GET .../keys?keyTypes=USER_MANAGED` lists the account's keys (names only are used);
  `DELETE .../keys/{keyId}` deletes one (404: already gone).
- `mint_access_token`: an RS256 JWT signed with the key's `private_key` (`iss`=`sub`=client
  email, `aud`=the key's `token_uri`, one hour) is posted to `token_uri` as
  `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`; the key itself is never sent.

The admin key (the one envmatrix acts with) is a JSON key file too: each call carries an access
token minted with it for the `cloud-platform` scope. Messages name the method, the path and the
HTTP status; bodies (which may echo a key) never reach them.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import jwt

from envmatrix.errors import CheckFailed, RuntimeFailure, UsageError
from envmatrix.secret import SecretValue

DEFAULT_IAM_URL = "https://iam.googleapis.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_LIFETIME = 3600  # seconds: Google's maximum for a JWT-bearer assertion


@dataclass(frozen=True)
class KeyFile:
    """The non-secret fields of a JSON key file (the private key stays in the SecretValue)."""

    key_id: str  # private_key_id: the key's id in IAM
    client_email: str
    token_uri: str


def key_file_fields(key_json: SecretValue) -> KeyFile:
    """The id, account and token URI of a JSON key file; UsageError when it is not one."""
    try:
        data = json.loads(key_json.reveal())
    except ValueError:
        raise UsageError("the value is not a JSON service-account key file") from None
    fields = ("private_key_id", "client_email", "token_uri", "private_key")
    if not isinstance(data, dict) or not all(isinstance(data.get(f), str) for f in fields):
        raise UsageError(
            "the value is not a service-account key file (needs private_key_id, private_key,"
            " client_email, token_uri)"
        )
    return KeyFile(data["private_key_id"], data["client_email"], data["token_uri"])


def mint_access_token(
    key_json: SecretValue, scope: str = CLOUD_PLATFORM, timeout: float = 30.0
) -> SecretValue:
    """An access token for `scope`, minted with the key (JWT-bearer grant at its token_uri).

    Raises CheckFailed when the token endpoint refuses the key (status only), UsageError when
    the value is not a key file.
    """
    fields = key_file_fields(key_json)
    private_key = json.loads(key_json.reveal())["private_key"]
    now = int(time.time())
    claims = {
        "iss": fields.client_email,
        "sub": fields.client_email,
        "aud": fields.token_uri,
        "scope": scope,
        "iat": now,
        "exp": now + _LIFETIME,
    }
    try:
        assertion = jwt.encode(
            claims, private_key, algorithm="RS256", headers={"kid": fields.key_id}
        )
    except (ValueError, TypeError, jwt.PyJWTError):
        raise UsageError("the key file's private_key is not an RSA private key") from None
    where = f"POST {fields.token_uri}"
    try:
        with httpx.Client(timeout=timeout) as http:
            response = http.post(
                fields.token_uri, data={"grant_type": JWT_BEARER, "assertion": assertion}
            )
    except httpx.HTTPError as exc:
        raise CheckFailed(f"{where} failed: {type(exc).__name__}") from None
    if response.is_error:
        raise CheckFailed(f"{where} refused the key: HTTP {response.status_code}")
    try:
        token = response.json().get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise CheckFailed(f"{where} answered without an access_token")
    return SecretValue(token)


class ServiceAccountKeys:
    """The user-managed keys of one service account, through the IAM REST API."""

    def __init__(
        self, iam_url: str, service_account: str, admin_key: SecretValue, timeout: float = 30.0
    ) -> None:
        self.service_account = service_account
        self._base = (
            f"{iam_url.rstrip('/')}/v1/projects/-/serviceAccounts/{quote(service_account)}/keys"
        )
        self._admin_key = admin_key
        self._timeout = timeout
        self._token: SecretValue | None = None

    def create(self) -> tuple[str, SecretValue]:
        """A new key: (its id, the JSON key file)."""
        answer = self._send("POST", "", json={})
        data = answer.get("privateKeyData") if isinstance(answer, dict) else None
        if not isinstance(data, str):
            raise RuntimeFailure(f"gcp-service-account-key: POST {self._path('')} gave no key data")
        try:
            key_json = SecretValue(base64.b64decode(data, validate=True).decode("utf-8"))
        except ValueError:
            raise RuntimeFailure(
                f"gcp-service-account-key: POST {self._path('')} gave key data that is not base64"
            ) from None
        return key_file_fields(key_json).key_id, key_json

    def list(self) -> list[str]:
        """The ids of the account's user-managed keys."""
        answer = self._send("GET", "", params={"keyTypes": "USER_MANAGED"})
        keys = answer.get("keys", []) if isinstance(answer, dict) else []
        return [str(k["name"]).rsplit("/", 1)[-1] for k in keys if isinstance(k, dict)]

    def delete(self, key_id: str) -> None:
        """Delete a key; one already gone is not an error."""
        self._send("DELETE", f"/{quote(key_id)}", missing_ok=True)

    def _send(self, method: str, suffix: str, missing_ok: bool = False, **kwargs: Any) -> Any:
        if self._token is None:
            try:
                self._token = mint_access_token(self._admin_key, timeout=self._timeout)
            except CheckFailed as exc:
                raise RuntimeFailure(f"gcp-service-account-key: the admin key: {exc}") from None
            except UsageError as exc:
                raise UsageError(f"gcp-service-account-key: the admin key: {exc}") from None
        where = f"{method} {self._path(suffix)}"
        headers = {"Authorization": f"Bearer {self._token.reveal()}"}
        try:
            with httpx.Client(timeout=self._timeout) as http:
                response = http.request(method, self._base + suffix, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise RuntimeFailure(
                f"gcp-service-account-key: {where} failed: {type(exc).__name__}"
            ) from None
        if missing_ok and response.status_code == 404:
            return None
        if response.is_error:
            raise RuntimeFailure(
                f"gcp-service-account-key: {where} failed: HTTP {response.status_code}"
                + (" (the account's 10 user-managed keys?)" if response.status_code == 429 else "")
            )
        try:
            return response.json() if response.content else {}
        except ValueError:
            raise RuntimeFailure(
                f"gcp-service-account-key: {where} answered with non-JSON"
            ) from None

    def _path(self, suffix: str) -> str:
        return f"/v1/projects/-/serviceAccounts/{self.service_account}/keys{suffix}"
