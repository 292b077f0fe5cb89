"""Transport-neutral request/response values and GitHub-shaped error bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DOCS = "https://docs.github.com/rest"
JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class Request:
    """One parsed HTTP request as the handlers see it."""

    method: str
    path: str  # raw (still percent-encoded) path, without the query string
    query: dict[str, str]
    headers: Mapping[str, str]  # names lower-cased
    body: bytes
    now: datetime
    base_url: str

    def json(self) -> Any:
        """The JSON body (``None`` when empty); a 400 like GitHub's when it does not parse."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "Problems parsing JSON") from exc

    def json_object(self) -> dict[str, Any]:
        """The JSON body, which must be an object (empty body counts as ``{}``)."""
        data = self.json()
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ApiError(400, "Problems parsing JSON")
        return data


@dataclass
class Response:
    """What the HTTP layer sends back. ``body`` is raw bytes (empty for 204/304)."""

    status: int
    body: bytes = b""
    content_type: str | None = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
        """A JSON response, serialised compactly as GitHub does."""
        body = json.dumps(data, separators=(",", ":")).encode()
        return cls(status, body, JSON_TYPE, dict(headers or {}))

    @classmethod
    def empty(cls, status: int = 204) -> Response:
        """A response with no body (204 No Content)."""
        return cls(status, b"", None)


class ApiError(Exception):
    """An error answer; ``extra`` merges into the JSON body (e.g. ``errors``)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra

    def response(self) -> Response:
        return error_response(self.status, self.message, **self.extra)


def error_response(
    status: int, message: str, documentation_url: str = DOCS, **extra: Any
) -> Response:
    """GitHub's error body: ``{"message", [extra...], "documentation_url", "status"}``."""
    body: dict[str, Any] = {"message": message, **extra}
    body["documentation_url"] = documentation_url
    body["status"] = str(status)
    return Response.of_json(status, body)


def not_found() -> ApiError:
    """GitHub's 404 for anything unknown (it never says which part was unknown)."""
    return ApiError(404, "Not Found")


def validation_failed(
    resource: str, field_name: str, message: str, code: str = "invalid"
) -> ApiError:
    """GitHub's 422 "Validation Failed" with one error entry."""
    error = {"resource": resource, "code": code, "field": field_name, "message": message}
    return ApiError(422, "Validation Failed", errors=[error])
