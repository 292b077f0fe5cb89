"""Tests of the GitHub sandbox, plus a tiny raw-HTTP client they share (real sockets only)."""

from __future__ import annotations

import base64
import http.client
import json
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

from nacl.public import PublicKey, SealedBox

TOKEN = "sandbox-token"
REPO = "occ-labs/operator-console"
OTHER_REPO = "occ-labs/storefront-sync"
ORG = "occ-labs"


@dataclass
class Reply:
    """A raw HTTP answer."""

    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = TOKEN,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> Reply:
    """One request on a fresh connection; ``body`` is JSON-encoded unless it is bytes."""
    split = urlsplit(base_url)
    conn = http.client.HTTPConnection(split.hostname or "", split.port, timeout=timeout)
    sent_headers = {"Accept": "application/vnd.github+json", **(headers or {})}
    if token is not None:
        sent_headers.setdefault("Authorization", f"token {token}")
    payload: bytes | None = None
    if body is not None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent_headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=payload, headers=sent_headers)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def seal(public_key_b64: str, value: str | bytes) -> str:
    """Encrypt like GitHub clients do: base64(SealedBox(public key).encrypt(value))."""
    data = value.encode() if isinstance(value, str) else value
    box = SealedBox(PublicKey(base64.b64decode(public_key_b64)))
    return base64.b64encode(box.encrypt(data)).decode("ascii")


def put_secret_body(base_url: str, key_path: str, value: str | bytes) -> dict[str, str]:
    """Fetch the public key at ``key_path`` and build a PUT secret body for ``value``."""
    key = call(base_url, "GET", key_path).json()
    return {"encrypted_value": seal(key["key"], value), "key_id": key["key_id"]}
