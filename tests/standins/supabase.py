"""A local Supabase sandbox: one project's API keys, as the Management API and Auth see them.

One stdlib HTTP server plays two parts of Supabase:

- the **Management API** (`https://api.supabase.com` in real life), bearer `sbp_…` PAT required:
  `GET|POST /v1/projects/{ref}/api-keys` and `GET|DELETE /v1/projects/{ref}/api-keys/{id}`, with
  `?reveal=true` to see `api_key` in clear (masked otherwise). Key objects carry the documented
  fields: `id, name, type, api_key, prefix, description, hash, secret_jwt_template, inserted_at,
  updated_at`. POST answers 201, DELETE 200 with the deleted key.
- the **project API** (`https://<ref>.supabase.co`): `GET /auth/v1/admin/users` answers 200
  `{"users": [], "aud": "authenticated"}` only when both the `apikey` header and
  `Authorization: Bearer` carry an existing secret key, and 401 `{"message": "Invalid API key"}`
  otherwise. As on Supabase, a secret key sent with a browser-like User-Agent gets 401.

Keys are generated at run time and say `sandbox` in their text, so they are never mistaken for real
ones. Example::

    with SupabaseSandbox() as sb:
        key = sb.add_secret_key("seed")
        create_client(sb.url, key).auth.admin.list_users(page=1, per_page=1)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.standins.http import ThreadedServer

_KEYS_PATH = re.compile(r"^/v1/projects/(?P<ref>[^/]+)/api-keys(?:/(?P<id>[^/]+))?/?$")
_PREFIXES = {"secret": "sb_secret_", "publishable": "sb_publishable_"}
_INVALID_KEY = {
    "message": "Invalid API key",
    "hint": "Double check your Supabase `anon` or `service_role` API key.",
}
_BROWSER_KEY = {"message": "Forbidden use of secret API key in browser"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _ApiKey:
    """One project API key (new-style: publishable or secret)."""

    name: str
    type: str
    api_key: str
    description: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    inserted_at: str = field(default_factory=_now)

    def to_json(self, reveal: bool) -> dict[str, Any]:
        """The key object as the Management API shows it."""
        prefix = self.api_key[: len(_PREFIXES[self.type]) + 4]
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "api_key": self.api_key if reveal else prefix + "••••••••••••••••",
            "prefix": prefix,
            "description": self.description,
            "hash": hashlib.sha256(self.api_key.encode()).hexdigest(),
            "secret_jwt_template": {"role": "service_role"} if self.type == "secret" else None,
            "inserted_at": self.inserted_at,
            "updated_at": self.inserted_at,
        }


class _KeyStore:
    """The project's keys, shared by the request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, _ApiKey] = {}

    def add(self, name: str, key_type: str, description: str | None = None) -> _ApiKey:
        value = f"{_PREFIXES[key_type]}sandbox_{secrets.token_hex(12)}"
        key = _ApiKey(name=name, type=key_type, api_key=value, description=description)
        with self._lock:
            self._keys[key.id] = key
        return key

    def get(self, key_id: str) -> _ApiKey | None:
        with self._lock:
            return self._keys.get(key_id)

    def remove(self, key_id: str) -> _ApiKey | None:
        with self._lock:
            return self._keys.pop(key_id, None)

    def all(self) -> list[_ApiKey]:
        with self._lock:
            return list(self._keys.values())

    def is_secret_key(self, value: str) -> bool:
        return any(
            k.type == "secret" and hmac.compare_digest(k.api_key.encode(), value.encode())
            for k in self.all()
        )


class SupabaseSandbox(ThreadedServer):
    """A started-on-demand local server for one Supabase project's keys (see module docs)."""

    def __init__(
        self,
        access_token: str = "sbp_test_sandbox_token",
        project_ref: str = "demo",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.access_token = access_token
        self.project_ref = project_ref
        self.keys = _KeyStore()
        self._address = (host, port)

    def start(self) -> SupabaseSandbox:
        """Listen and serve in a daemon thread (`url`: the base URL of both the project API
        and the Management API)."""
        self._serve(type("_BoundHandler", (_Handler,), {"sandbox": self}), self._address)
        return self

    def __enter__(self) -> SupabaseSandbox:
        return self.start()

    def add_secret_key(self, name: str = "default") -> str:
        """Create a secret key directly (no API call) and return its value, e.g. to seed Vault."""
        return self.keys.add(name, "secret").api_key

    def is_valid(self, key: str) -> bool:
        """Whether `key` is a secret key the project currently accepts."""
        return self.keys.is_secret_key(key)

    def key_ids(self) -> list[str]:
        """The ids of the project's keys, oldest first."""
        return [k.id for k in self.keys.all()]


class _Handler(BaseHTTPRequestHandler):
    sandbox: SupabaseSandbox
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's signature
        return None  # quiet: tests and demos read their own output

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        body = self._body()
        if parts.path.rstrip("/") == "/auth/v1/admin/users" and method == "GET":
            self._reply(*self._admin_users())
            return
        match = _KEYS_PATH.match(parts.path)
        if match is None:
            self._reply(404, {"message": "Not found"})
            return
        self._reply(*self._management(method, match["ref"], match["id"], query, body))

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _admin_users(self) -> tuple[int, dict[str, Any]]:
        apikey = self.headers.get("apikey", "")
        bearer = _bearer(self.headers.get("Authorization", ""))
        store = self.sandbox.keys
        if not (store.is_secret_key(apikey) and store.is_secret_key(bearer)):
            return 401, _INVALID_KEY
        if self.headers.get("User-Agent", "").startswith("Mozilla/"):
            return 401, _BROWSER_KEY
        return 200, {"users": [], "aud": "authenticated"}

    def _management(
        self, method: str, ref: str, key_id: str | None, query: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        token = _bearer(self.headers.get("Authorization", ""))
        if not hmac.compare_digest(token.encode(), self.sandbox.access_token.encode()):
            return 401, {"message": "Unauthorized"}
        if ref != self.sandbox.project_ref:
            return 404, {"message": f"Project {ref} not found"}
        reveal = query.get("reveal", "false").lower() == "true"
        if key_id is None:
            return self._keys_collection(method, reveal, body)
        return self._key_item(method, key_id, reveal)

    def _keys_collection(self, method: str, reveal: bool, body: bytes) -> tuple[int, Any]:
        if method == "GET":
            return 200, [k.to_json(reveal) for k in self.sandbox.keys.all()]
        if method != "POST":
            return 405, {"message": f"Method {method} not allowed"}
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, {"message": "Body is not valid JSON"}
        if not isinstance(request, dict) or request.get("type") not in _PREFIXES:
            return 400, {"message": "type must be publishable or secret"}
        name = request.get("name")
        if not isinstance(name, str) or not name.strip():
            return 400, {"message": "name is required"}
        key = self.sandbox.keys.add(name, request["type"], request.get("description"))
        return 201, key.to_json(reveal)

    def _key_item(self, method: str, key_id: str, reveal: bool) -> tuple[int, Any]:
        if method not in ("GET", "DELETE"):
            return 405, {"message": f"Method {method} not allowed"}
        store = self.sandbox.keys
        key = store.get(key_id) if method == "GET" else store.remove(key_id)
        if key is None:
            return 404, {"message": f"API key {key_id} not found"}
        return 200, key.to_json(reveal)

    def _reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
