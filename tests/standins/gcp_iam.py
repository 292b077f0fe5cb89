"""A local stand-in for Google Cloud IAM service-account keys and Google's OAuth token endpoint.

Follows the IAM REST reference (v1, projects.serviceAccounts.keys) and the OAuth 2.0 service
account flow:

- `POST /v1/projects/-/serviceAccounts/{email}/keys` (body: optional `privateKeyType`,
  `keyAlgorithm`) answers 200 with a ServiceAccountKey: `name`
  (`projects/{project}/serviceAccounts/{email}/keys/{keyId}`), `privateKeyType`
  (`TYPE_GOOGLE_CREDENTIALS_FILE`), `privateKeyData` (base64 of the JSON key file), `keyAlgorithm`
  (`KEY_ALG_RSA_2048`), `validAfterTime`, `validBeforeTime`, `keyOrigin`, `keyType`
  (`USER_MANAGED`). At 10 user-managed keys: 400 FAILED_PRECONDITION.
- `GET .../keys[?keyTypes=USER_MANAGED|SYSTEM_MANAGED]` answers `{"keys": [...]}` without key
  material; every account also has one SYSTEM_MANAGED key (listed unless filtered out).
- `DELETE .../keys/{keyId}` answers 200 `{}`; an unknown key 404 NOT_FOUND.
- Every IAM call needs `Authorization: Bearer <token>` from the token endpoint (401
  UNAUTHENTICATED otherwise) for an account granted admin over the target (403 otherwise);
  an unknown account is 404.
- `POST /token` (form: `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`, `assertion`)
  verifies the RS256 JWT's signature against the public key of the key named by its `kid`
  header, and `iss` = that key's account, `aud` = this token URI, `exp` in the future; a deleted
  key is refused. Answers `{"access_token", "expires_in", "token_type": "Bearer"}` or 400
  `{"error": "invalid_grant", ...}`.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

_KEYS = re.compile(r"^/v1/projects/-/serviceAccounts/(?P<email>[^/]+)/keys(?:/(?P<id>[^/]+))?$")
MAX_KEYS = 10
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Key:
    key_id: str
    email: str
    public_pem: bytes
    created: datetime
    key_type: str = "USER_MANAGED"

    def to_json(self, project: str) -> dict[str, Any]:
        return {
            "name": f"projects/{project}/serviceAccounts/{self.email}/keys/{self.key_id}",
            "validAfterTime": _time(self.created),
            "validBeforeTime": _time(self.created + timedelta(days=3650)),
            "keyAlgorithm": "KEY_ALG_RSA_2048",
            "keyOrigin": "GOOGLE_PROVIDED",
            "keyType": self.key_type,
        }


@dataclass
class _State:
    project: str
    keys: dict[str, _Key] = field(default_factory=dict)  # key id -> key
    accounts: set[str] = field(default_factory=set)
    admins: dict[str, set[str]] = field(default_factory=dict)  # admin email -> accounts it manages
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> account email
    lock: threading.Lock = field(default_factory=threading.Lock)
    refused_tokens: int = 0


class GcpIamStandIn:
    """IAM keys API and token endpoint on one local HTTP server."""

    def __init__(self, project: str = "occ-demo") -> None:
        self.state = _State(project)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.stand_in = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def __enter__(self) -> GcpIamStandIn:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- test helpers (no HTTP) ----------------------------------------------------------------
    def add_account(self, email: str, manages: tuple[str, ...] = ()) -> None:
        """An account (with one system-managed key); `manages`: accounts it may manage keys of."""
        with self.state.lock:
            self.state.accounts.add(email)
            self.state.admins[email] = set(manages)
            system = _Key(secrets.token_hex(20), email, b"", datetime.now(UTC), "SYSTEM_MANAGED")
            self.state.keys[system.key_id] = system

    def new_key_file(self, email: str) -> str:
        """Create a user-managed key for `email` directly; its JSON key file."""
        with self.state.lock:
            return json.dumps(self._create(email))

    def user_keys(self, email: str) -> list[str]:
        with self.state.lock:
            return [
                k.key_id
                for k in self.state.keys.values()
                if k.email == email and k.key_type == "USER_MANAGED"
            ]

    # -- behaviour -----------------------------------------------------------------------------
    def _create(self, email: str) -> dict[str, Any]:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.state.keys[key_id] = _Key(key_id, email, public, datetime.now(UTC))
        return {
            "type": "service_account",
            "project_id": self.state.project,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": "1" + secrets.token_hex(10),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        }

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != JWT_BEARER:
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "Invalid grant_type",
            }
        assertion = form.get("assertion", "")
        try:
            kid = jwt.get_unverified_header(assertion).get("kid", "")
        except jwt.PyJWTError:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT"}
        with self.state.lock:
            key = self.state.keys.get(kid)
            if key is None or key.key_type != "USER_MANAGED":
                self.state.refused_tokens += 1
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Invalid JWT Signature.",
                }
            try:
                claims = jwt.decode(
                    assertion,
                    key.public_pem,
                    algorithms=["RS256"],
                    audience=self.token_uri,
                    options={"require": ["iss", "aud", "exp", "iat"]},
                )
            except jwt.PyJWTError:
                self.state.refused_tokens += 1
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Invalid JWT Signature.",
                }
            if claims.get("iss") != key.email:
                return 400, {"error": "invalid_grant", "error_description": "Invalid issuer"}
            token = "ya29.standin-" + secrets.token_urlsafe(24)
            self.state.tokens[token] = key.email
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def keys_api(
        self, method: str, email: str, key_id: str | None, query: dict[str, list[str]], bearer: str
    ) -> tuple[int, dict[str, Any]]:
        with self.state.lock:
            caller = self.state.tokens.get(bearer)
            if caller is None:
                return _error(
                    401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
                )
            if email not in self.state.accounts:
                return _error(404, "NOT_FOUND", f"Service account {email} does not exist.")
            if email not in self.state.admins.get(caller, set()):
                return _error(
                    403, "PERMISSION_DENIED", "Permission 'iam.serviceAccountKeys' denied"
                )
            owned = [k for k in self.state.keys.values() if k.email == email]
            if method == "GET" and key_id is None:
                wanted = set(query.get("keyTypes", [])) or {"USER_MANAGED", "SYSTEM_MANAGED"}
                keys = [k.to_json(self.state.project) for k in owned if k.key_type in wanted]
                return 200, {"keys": keys}
            if method == "POST" and key_id is None:
                if sum(k.key_type == "USER_MANAGED" for k in owned) >= MAX_KEYS:
                    return _error(400, "FAILED_PRECONDITION", "Precondition check failed.")
                key_file = self._create(email)
                body = self.state.keys[key_file["private_key_id"]].to_json(self.state.project)
                data = base64.b64encode(json.dumps(key_file).encode()).decode()
                return 200, {
                    **body,
                    "privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE",
                    "privateKeyData": data,
                }
            if method == "DELETE" and key_id is not None:
                key = self.state.keys.get(key_id)
                if key is None or key.email != email:
                    return _error(404, "NOT_FOUND", f"Service account key {key_id} does not exist.")
                del self.state.keys[key_id]
                return 200, {}
        return _error(404, "NOT_FOUND", "Not found")


def _error(code: int, status: str, message: str) -> tuple[int, dict[str, Any]]:
    return code, {"error": {"code": code, "message": message, "status": status}}


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's signature
        return None

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        stand_in: GcpIamStandIn = self.server.stand_in  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if split.path == "/token" and method == "POST":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            status, answer = stand_in.token(form)
        elif (match := _KEYS.match(split.path)) is not None:
            auth = self.headers.get("Authorization", "")
            bearer = auth[7:] if auth.startswith("Bearer ") else ""
            email, key_id = unquote(match["email"]), match["id"]
            status, answer = stand_in.keys_api(method, email, key_id, parse_qs(split.query), bearer)
        else:
            status, answer = _error(404, "NOT_FOUND", "Not found")
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
