"""Local stand-ins for Google's OAuth token endpoint and a remote Google Analytics MCP server.

- **Token endpoint** (`POST /token`; developers.google.com/identity/protocols/oauth2/
  service-account, "Preparing to make an authorized API call", RFC 7523): form fields
  `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and `assertion`, a JWT signed RS256 by
  a service-account key whose header `kid` is the key's id, with claims `iss` (the account's
  email), `scope`, `aud` (always `https://oauth2.googleapis.com/token`, as Google documents,
  wherever the endpoint runs), `iat` and `exp` (at most one hour later).
  The signature is checked against the public half of a key the stand-in created; a bad
  signature, an unknown or deleted key, a wrong audience or an expired assertion is 400
  `{"error": "invalid_grant", ...}`; another grant type 400 `unsupported_grant_type`. Success:
  `{"access_token", "expires_in": 3599, "token_type": "Bearer"}`.
- **MCP server** (`/mcp`; modelcontextprotocol.io/specification/2025-06-18, "Transports:
  Streamable HTTP", "Lifecycle", "Authorization"): POST only with `Accept` listing both
  `application/json` and `text/event-stream` (else 406) and a bearer access token the token
  endpoint issued for the Analytics scope (else 401 with `WWW-Authenticate`). `initialize`
  answers with a new `Mcp-Session-Id`; every later request must carry it (400 without, 404 for an
  unknown one) and a supported `MCP-Protocol-Version` (400 otherwise); the
  `notifications/initialized` notification is answered 202 with no body; `tools/list` before it
  is a JSON-RPC error. Answers come as one JSON document or as a Server-Sent Events stream
  (`respond_with`), the stream also carrying a notification before the response. DELETE ends a
  session.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.standins.http import Received, Reply, StandIn

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# "When making an access token request this value is always https://oauth2.googleapis.com/token"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
ANALYTICS_SCOPE = "https://www.googleapis.com/auth/analytics.readonly"
VERSIONS = ("2025-06-18", "2025-03-26")
TOOLS = [
    {"name": "run_report", "description": "Runs a GA4 report.", "inputSchema": {"type": "object"}},
    {"name": "get_account_summaries", "inputSchema": {"type": "object"}},
]


class GoogleAnalyticsMcp(StandIn):
    """The token endpoint (`token_url`) and the MCP server (`mcp_url`) on one local port."""

    def __init__(self, respond_with: str = "sse") -> None:
        super().__init__()
        self.respond_with = respond_with  # "sse" or "json"
        self.public_keys: dict[str, tuple[str, Any]] = {}  # key id -> (email, public key)
        self.access_tokens: dict[str, str] = {}  # token -> scope
        self.sessions: dict[str, bool] = {}  # session id -> initialized

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"

    def create_key(self, email: str = "ga-mcp@occ-labs.iam.gserviceaccount.com") -> str:
        """A new service-account JSON key (as IAM's keys.create hands out, decoded)."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        self.public_keys[key_id] = (email, private.public_key())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        document = {
            "type": "service_account",
            "project_id": "occ-labs",
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": "1" + "0" * 20,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
            "universe_domain": "googleapis.com",
        }
        return json.dumps(document)

    def delete_key(self, key: str) -> None:
        self.public_keys.pop(json.loads(key)["private_key_id"], None)

    def handle(self, request: Received) -> Reply:
        if request.path == "/token":
            return self._token(request)
        if request.path == "/mcp":
            return self._mcp(request)
        return Reply(404, {"error": "not found"})

    # -- the token endpoint -------------------------------------------------------------------

    def _token(self, request: Received) -> Reply:
        if request.method != "POST":
            return Reply(405, {"error": "method not allowed"})
        form = request.form()
        if form.get("grant_type") != JWT_BEARER:
            return Reply(400, {"error": "unsupported_grant_type", "error_description": "Invalid"})
        claims = self._verified_claims(form.get("assertion", ""))
        if claims is None:
            return Reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT"})
        if not claims.get("scope"):
            return Reply(400, {"error": "invalid_scope", "error_description": "Empty scope"})
        token = f"ya29.standin-{secrets.token_urlsafe(24)}"
        self.access_tokens[token] = str(claims["scope"])
        return Reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _verified_claims(self, assertion: str) -> dict[str, Any] | None:
        try:
            key_id = jwt.get_unverified_header(assertion).get("kid")
        except jwt.PyJWTError:
            return None
        if key_id not in self.public_keys:
            return None
        email, public = self.public_keys[key_id]
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                public,
                algorithms=["RS256"],
                audience=GOOGLE_TOKEN_AUDIENCE,
                issuer=email,
                options={"require": ["iss", "aud", "iat", "exp"]},
            )
        except jwt.PyJWTError:
            return None
        if claims["exp"] - claims["iat"] > 3600 or claims["iat"] > time.time() + 60:
            return None
        return claims

    # -- the MCP server -----------------------------------------------------------------------

    def _mcp(self, request: Received) -> Reply:
        if request.method == "DELETE":
            return self._end(request)
        if request.method != "POST":
            return Reply(405, {"error": "method not allowed"})
        accept = request.headers.get("accept", "")
        if "application/json" not in accept or "text/event-stream" not in accept:
            return Reply(406, {"error": "Accept must list application/json and text/event-stream"})
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or ANALYTICS_SCOPE not in self.access_tokens.get(token, ""):
            challenge = 'Bearer error="invalid_token", scope="' + ANALYTICS_SCOPE + '"'
            return Reply(401, {"error": "invalid_token"}, {"WWW-Authenticate": challenge})
        message = request.json()
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return Reply(400, _error(None, -32700, "Parse error"))
        if message.get("method") == "initialize":
            return self._initialize(message)
        return self._in_session(request, message)

    def _initialize(self, message: dict[str, Any]) -> Reply:
        asked = (message.get("params") or {}).get("protocolVersion")
        version = asked if asked in VERSIONS else VERSIONS[0]
        session = secrets.token_hex(16)
        self.sessions[session] = False
        result = {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "google-analytics-mcp-standin", "version": "1.0.0"},
        }
        reply = self._response({"jsonrpc": "2.0", "id": message.get("id"), "result": result})
        reply.headers["Mcp-Session-Id"] = session
        return reply

    def _in_session(self, request: Received, message: dict[str, Any]) -> Reply:
        session = request.headers.get("mcp-session-id")
        if session is None:
            return Reply(400, _error(message.get("id"), -32600, "Mcp-Session-Id required"))
        if session not in self.sessions:
            return Reply(404, _error(message.get("id"), -32001, "Session not found"))
        if request.headers.get("mcp-protocol-version") not in VERSIONS:
            return Reply(400, _error(message.get("id"), -32600, "Bad MCP-Protocol-Version"))
        if message.get("method") == "notifications/initialized" and "id" not in message:
            self.sessions[session] = True
            return Reply(202)
        if message.get("method") == "tools/list":
            if not self.sessions[session]:
                return self._response(_error(message.get("id"), -32002, "Not initialized"))
            return self._response(
                {"jsonrpc": "2.0", "id": message.get("id"), "result": {"tools": TOOLS}}
            )
        return self._response(_error(message.get("id"), -32601, "Method not found"))

    def _end(self, request: Received) -> Reply:
        session = request.headers.get("mcp-session-id")
        if session is None or self.sessions.pop(session, None) is None:
            return Reply(404, {"error": "Session not found"})
        return Reply(200)

    def _response(self, message: dict[str, Any]) -> Reply:
        if self.respond_with == "json":
            return Reply(200, message)
        progress = {
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "info"},
        }
        events = "".join(
            f"event: message\nid: {i}\ndata: {json.dumps(m)}\n\n"
            for i, m in enumerate((progress, message))
        )
        return Reply(200, events.encode(), {"Content-Type": "text/event-stream"})


def _error(request_id: Any, code: int, text: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": text}}
