"""An MCP client just big enough to prove a bearer token opens an MCP server.

The handshake of the Model Context Protocol over Streamable HTTP
(modelcontextprotocol.io/specification/2025-06-18/basic/transports and .../lifecycle):

1. POST `initialize` (`Accept: application/json, text/event-stream`); the server answers with
   one JSON document or a Server-Sent Events stream carrying the response, and may hand out an
   `Mcp-Session-Id` that every later request repeats;
2. POST the `notifications/initialized` notification (answered 202 Accepted, no body), with the
   `MCP-Protocol-Version` the server chose;
3. POST `tools/list`; its result lists the server's tools;
4. DELETE the session, when there is one (a server may answer 405: it keeps sessions itself).

Messages are built from HTTP statuses, JSON-RPC error codes and counts only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from envmatrix.adapters.http_probe import ProbeHttp, ProbeResponse, json_body
from envmatrix.errors import CheckFailed
from envmatrix.secret import SecretValue

PROTOCOL_VERSION = "2025-06-18"
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SESSION_ID = re.compile(r"^[\x21-\x7e]{1,256}$")  # visible ASCII, as the transport requires
_STATUS_WORDS = {
    400: "refused the request (HTTP 400)",
    401: "refused the bearer token (HTTP 401): wrong, expired or not for this server",
    403: "refused the bearer token (HTTP 403): it lacks the scope this server needs",
    404: "has no MCP endpoint at that address, or dropped the session (HTTP 404)",
    405: "does not take POST at that address (HTTP 405): not an MCP endpoint",
    406: "refused the Accept header (HTTP 406): not a Streamable HTTP MCP server",
}


def check_mcp(http: ProbeHttp, endpoint: str, token: SecretValue, label: str) -> str:
    """Run initialize + notifications/initialized + tools/list with `token` as the bearer."""
    headers = {
        "Authorization": f"Bearer {token.reveal()}",
        "Accept": "application/json, text/event-stream",
    }
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "envmatrix-probe", "version": "1"},
        },
    }
    result, session = _call(http, label, endpoint, headers, initialize)
    version = result.get("protocolVersion")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise CheckFailed(f"{label} answered initialize without a protocol version")
    headers["MCP-Protocol-Version"] = version
    if session is not None:
        headers["Mcp-Session-Id"] = session
    try:
        _notify_initialized(http, label, endpoint, headers)
        tools = _call(
            http, label, endpoint, headers, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        )[0]
    finally:
        if session is not None:
            _end_session(http, label, endpoint, headers)
    listed = tools.get("tools")
    if not isinstance(listed, list):
        raise CheckFailed(f"{label} answered tools/list without a list of tools")
    return f"MCP handshake done (protocol {version}), {len(listed)} tools listed"


def _call(
    http: ProbeHttp, label: str, endpoint: str, headers: Mapping[str, str], request: dict[str, Any]
) -> tuple[dict[str, Any], str | None]:
    """The result of one JSON-RPC request, and the session id the answer carried."""
    method = request["method"]
    with http.stream(label, "POST", endpoint, headers, json_body(request)) as (response, chunks):
        if response.status != 200:
            raise CheckFailed(_failure(label, response, method))
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "text/event-stream":
            message = _from_events(chunks, request["id"])
        elif kind == "application/json":
            message = _from_json(chunks)
        else:
            raise CheckFailed(f"{label} answered {method} with neither JSON nor an event stream")
        session = response.headers.get("mcp-session-id")
    if session is not None and not _SESSION_ID.match(session):
        raise CheckFailed(f"{label} handed out a session id that is not visible ASCII")
    return _result(label, method, message, request["id"]), session


def _notify_initialized(
    http: ProbeHttp, label: str, endpoint: str, headers: Mapping[str, str]
) -> None:
    notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    response = http.request(label, "POST", endpoint, headers, json_body=notification)
    if response.status not in (200, 202, 204):
        raise CheckFailed(_failure(label, response, "notifications/initialized"))


def _end_session(http: ProbeHttp, label: str, endpoint: str, headers: Mapping[str, str]) -> None:
    try:
        http.request(label, "DELETE", endpoint, headers)
    except CheckFailed:
        pass  # the session ends with its idle timeout anyway: not the credential's problem


def _from_json(chunks: Iterator[bytes]) -> Any:
    return _decoded(b"".join(_bounded(chunks)))


def _from_events(chunks: Iterator[bytes], request_id: int) -> Any:
    """The first JSON-RPC response to `request_id` among the stream's events; server requests
    and notifications on the same stream are skipped (a probe answers none)."""
    for data in _event_data(_lines(_bounded(chunks))):
        message = _decoded(data)
        if (
            isinstance(message, dict)
            and message.get("id") == request_id
            and "method" not in message
        ):
            return message
    return None


def _event_data(lines: Iterator[bytes]) -> Iterator[bytes]:
    """The `data` of each Server-Sent Event (html.spec.whatwg.org, "event stream")."""
    data: list[bytes] = []
    for line in lines:
        if not line:
            if data:
                yield b"\n".join(data)
            data = []
        elif line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
    if data:
        yield b"\n".join(data)


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = re.split(rb"\r\n|\r|\n", pending)
        yield from complete
    if pending:
        yield pending


def _bounded(chunks: Iterator[bytes], limit: int = 1_000_000) -> Iterator[bytes]:
    read = 0
    for chunk in chunks:
        read += len(chunk)
        if read > limit:
            raise CheckFailed(f"the MCP server's answer is larger than {limit} bytes")
        yield chunk


def _decoded(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _result(label: str, method: str, message: Any, request_id: int) -> dict[str, Any]:
    if not isinstance(message, dict) or message.get("id") != request_id:
        raise CheckFailed(f"{label} answered {method} without a JSON-RPC response to it")
    error = message.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        shown = f" (code {code})" if isinstance(code, int) else ""
        raise CheckFailed(f"{label} answered {method} with a JSON-RPC error{shown}")
    result = message.get("result")
    if not isinstance(result, dict):
        raise CheckFailed(f"{label} answered {method} without a result")
    return result


def _failure(label: str, response: ProbeResponse, method: str) -> str:
    words = _STATUS_WORDS.get(response.status)
    if words is not None:
        return f"{label} {words}"
    return f"{label} answered {method} with HTTP {response.status}"
