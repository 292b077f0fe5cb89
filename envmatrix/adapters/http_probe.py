"""The HTTP seam of the live probes: one small httpx client with the rules every probe keeps.

- Requests go only where the caller says (the preset's public host or the policy's `base_url:`);
  redirects are never followed: a redirect could carry a credential header to another host.
- Bodies are read up to `MAX_BODY` bytes; a probe needs a status and a few JSON fields.
- Every failure of the transport becomes a one-line `CheckFailed` built from our own words, the
  caller's label of the service and the exception's class name: httpx messages hold the URL, and
  a URL may hold a value (a Supabase project URL is itself a Vault value).
- Nothing a provider sends back is ever put into a message: a provider may echo the credential
  (Chatwoot's profile holds the access token). Callers build messages from `ProbeResponse.status`
  and fields they choose.

`ProbeHttp` is a context manager; use one per probe run so connections are closed at its end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from envmatrix.errors import CheckFailed

PROBE_TIMEOUT = 10.0  # seconds, per request
MAX_BODY = 1_000_000  # bytes a probe reads of one response
USER_AGENT = "envmatrix-probe"  # not browser-like: Supabase refuses secret keys from browsers


@dataclass(frozen=True)
class ProbeResponse:
    """What a probe keeps of a response: the status, a few headers, a bounded body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json_object(self) -> dict[str, Any] | None:
        """The body as a JSON object, or None when it is not one."""
        try:
            data = json.loads(self.body)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


class ProbeHttp:
    """An httpx client for probes (see the module docstring). Each call's `service` is the label
    messages use (`Shopify at occ-labs.myshopify.com`); it shows a host only when the caller
    knows the host is not a value."""

    def __init__(self, timeout: float = PROBE_TIMEOUT) -> None:
        self._client = httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )

    def request(
        self,
        service: str,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
    ) -> ProbeResponse:
        """Send one request and read its response (bounded); CheckFailed when it cannot be sent,
        or when the answer is a redirect. The body is `form` (urlencoded), `json_body` or raw
        `content`, at most one of them."""
        sent = _Body(form, json_body, content)
        with self.stream(service, method, url, headers, sent) as (response, chunks):
            return ProbeResponse(response.status, response.headers, _bounded(chunks))

    def stream(
        self,
        service: str,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: _Body | None = None,
    ) -> _Streamed:
        """Like `request`, but hands out the body in chunks (an MCP server may answer with a
        Server-Sent Events stream that stays open after the message a probe waits for)."""
        return _Streamed(self._client, service, method, url, headers, body or _Body())

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ProbeHttp:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True)
class _Body:
    """A request body: a form, a JSON document or raw bytes."""

    form: Mapping[str, str] | None = None
    json: Any = None
    content: bytes | None = None

    def arguments(self) -> dict[str, Any]:
        if self.form is not None:
            return {"data": dict(self.form)}
        if self.json is not None:
            return {"json": self.json}
        return {"content": self.content} if self.content is not None else {}


def json_body(document: Any) -> _Body:
    """A JSON request body for `ProbeHttp.stream`."""
    return _Body(json=document)


class _Streamed:
    """The context manager behind `ProbeHttp.stream`: yields (response, body chunks)."""

    def __init__(
        self,
        client: httpx.Client,
        service: str,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        body: _Body,
    ) -> None:
        self._client, self._service, self._url = client, service, url
        self._args: dict[str, Any] = {"headers": dict(headers or {}), **body.arguments()}
        self._method = method
        self._context: Any = None

    def __enter__(self) -> tuple[ProbeResponse, Iterator[bytes]]:
        try:
            self._context = self._client.stream(self._method, self._url, **self._args)
            response = self._context.__enter__()
        except httpx.HTTPError as exc:
            raise _unreachable(self._service, exc) from None
        if response.is_redirect:
            status = response.status_code
            self._context.__exit__(None, None, None)
            raise CheckFailed(
                f"{self._service} answered with a redirect (HTTP {status});"
                " probes follow none: set base_url: to the final address"
            )
        shown = ProbeResponse(response.status_code, dict(response.headers))
        return shown, self._chunks(response)

    def _chunks(self, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes()
        except httpx.HTTPError as exc:
            raise _unreachable(self._service, exc) from None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._context is not None:
            try:
                self._context.__exit__(None, None, None)
            except httpx.HTTPError:
                pass  # closing a half-read stream: nothing to report


def _bounded(chunks: Iterator[bytes]) -> bytes:
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > MAX_BODY:
            raise CheckFailed(f"the answer is larger than {MAX_BODY} bytes; not a probe's answer")
    return bytes(body)


def _unreachable(service: str, exc: Exception) -> CheckFailed:
    # no host and no URL: the caller's `service` label says where, when that may be shown
    if isinstance(exc, httpx.TimeoutException):
        return CheckFailed(f"{service} did not answer in time ({type(exc).__name__})")
    return CheckFailed(f"{service} unreachable ({type(exc).__name__})")
