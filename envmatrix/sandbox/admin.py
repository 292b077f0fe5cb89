"""The sandbox's admin HTTP API under ``/_sandbox/`` (same token auth as the GitHub routes).

It mirrors :class:`~envmatrix.sandbox.GitHubSandbox`'s Python helpers so that a test can drive
a sandbox running in another process (``python -m envmatrix.sandbox``). Admin requests are not
counted, not faulted and not rate limited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from envmatrix.sandbox.faults import Fault
from envmatrix.sandbox.http_types import ApiError, Request, Response, error_response

if TYPE_CHECKING:
    from envmatrix.sandbox.server import GitHubSandbox

AdminHandler = Callable[["AdminApi", Request], Response]


def _str_field(data: dict[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ApiError(422, f"'{key}' is required and must be a string")
    return value


def _required(data: dict[str, Any], key: str) -> str:
    value = _str_field(data, key)
    assert value is not None  # _str_field raised otherwise
    return value


class AdminApi:
    """Handlers for ``/_sandbox/...``; lookups of unknown things answer 404."""

    def __init__(self, sandbox: GitHubSandbox) -> None:
        self.sandbox = sandbox

    def handle(self, req: Request) -> Response:
        """Dispatch one admin request."""
        handler = _ROUTES.get((req.method, req.path.rstrip("/")))
        if handler is None:
            return error_response(404, "Not Found")
        try:
            return handler(self, req)
        except ApiError as exc:
            return exc.response()
        except KeyError as exc:
            return error_response(404, str(exc.args[0]) if exc.args else "Not Found")
        except (ValueError, TypeError) as exc:
            return error_response(422, str(exc))

    def get_secret(self, req: Request) -> Response:
        q = req.query
        name = _required(q, "name")
        if q.get("org"):
            value = self.sandbox.organization_secret_value(q["org"], name)
        elif q.get("environment"):
            value = self.sandbox.secret_value(_required(q, "repo"), q["environment"], name)
        else:
            value = self.sandbox.repository_secret_value(_required(q, "repo"), name)
        return Response.of_json(200, {"value": value})

    def get_variable(self, req: Request) -> Response:
        q = req.query
        value = self.sandbox.variable_value(
            _required(q, "repo"), _required(q, "environment"), _required(q, "name")
        )
        return Response.of_json(200, {"value": value})

    def get_environments(self, req: Request) -> Response:
        names = self.sandbox.environment_names(_required(req.query, "repo"))
        return Response.of_json(200, {"environments": names})

    def get_requests(self, req: Request) -> Response:
        counts = [
            {"method": method, "operation": operation, "count": count}
            for (method, operation), count in sorted(self.sandbox.request_counts().items())
        ]
        log = [
            {"method": r.method, "path": r.path, "status": r.status}
            for r in self.sandbox.request_log()
        ]
        return Response.of_json(200, {"counts": counts, "log": log})

    def delete_requests(self, req: Request) -> Response:
        self.sandbox.reset_counts()
        return Response.empty()

    def post_fault(self, req: Request) -> Response:
        self.sandbox.inject(Fault.from_json(req.json_object()))
        return Response.of_json(201, {})

    def delete_faults(self, req: Request) -> Response:
        self.sandbox.clear_faults()
        return Response.empty()

    def post_repository(self, req: Request) -> Response:
        self.sandbox.add_repository(_required(req.json_object(), "full_name"))
        return Response.of_json(201, {})

    def post_environment(self, req: Request) -> Response:
        data = req.json_object()
        self.sandbox.create_environment(_required(data, "repo"), _required(data, "environment"))
        return Response.of_json(201, {})

    def post_user(self, req: Request) -> Response:
        ident = self.sandbox.add_user(_required(req.json_object(), "login"))
        return Response.of_json(201, {"id": ident})

    def post_team(self, req: Request) -> Response:
        data = req.json_object()
        ident = self.sandbox.add_team(_required(data, "org"), _required(data, "slug"))
        return Response.of_json(201, {"id": ident})

    def get_protection(self, req: Request) -> Response:
        q = req.query
        protection = self.sandbox.environment_protection(
            _required(q, "repo"), _required(q, "environment")
        )
        return Response.of_json(200, protection)

    def post_outside_write(self, req: Request) -> Response:
        data = req.json_object()
        value = data.get("value")
        if not isinstance(value, str):
            raise ApiError(422, "'value' is required and must be a string")
        self.sandbox.write_secret_outside(
            _required(data, "repo"),
            _str_field(data, "environment", optional=True),
            _required(data, "name"),
            value,
        )
        return Response.empty()

    def post_rate_limit(self, req: Request) -> Response:
        data = req.json_object()
        remaining, reset_in, limit = (
            data.get("remaining"),
            data.get("reset_in", 3600),
            data.get("limit"),
        )
        if not isinstance(remaining, int) or not isinstance(reset_in, int):
            raise ApiError(422, "'remaining' and 'reset_in' must be integers")
        if limit is not None and not isinstance(limit, int):
            raise ApiError(422, "'limit' must be an integer")
        self.sandbox.set_rate_limit(remaining=remaining, reset_in=reset_in, limit=limit)
        return Response.empty()

    def post_app(self, req: Request) -> Response:
        data = req.json_object()
        app_id, accounts, ttl = data.get("app_id"), data.get("accounts"), data.get("token_ttl")
        if not isinstance(app_id, int) or isinstance(app_id, bool) or app_id < 1:
            raise ApiError(422, "'app_id' must be a positive integer")
        if accounts is not None and (
            not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts)
        ):
            raise ApiError(422, "'accounts' must be a list of account logins")
        if ttl is not None:
            if not isinstance(ttl, int) or isinstance(ttl, bool):
                raise ApiError(422, "'token_ttl' must be whole seconds")
            self.sandbox.set_installation_token_ttl(ttl)
        found = self.sandbox.register_app(
            app_id,
            _required(data, "public_key"),
            accounts,
            _str_field(data, "slug", optional=True),
        )
        return Response.of_json(201, {"installations": found})

    def post_expire_tokens(self, req: Request) -> Response:
        expired = self.sandbox.expire_installation_tokens()
        return Response.of_json(200, {"expired": expired})

    def post_clock(self, req: Request) -> Response:
        advance = req.json_object().get("advance")
        if not isinstance(advance, int | float) or isinstance(advance, bool):
            raise ApiError(422, "'advance' must be a number of seconds")
        self.sandbox.advance_clock(float(advance))
        return Response.empty()


_ROUTES: dict[tuple[str, str], AdminHandler] = {
    ("GET", "/_sandbox/secret"): AdminApi.get_secret,
    ("GET", "/_sandbox/variable"): AdminApi.get_variable,
    ("GET", "/_sandbox/environments"): AdminApi.get_environments,
    ("GET", "/_sandbox/requests"): AdminApi.get_requests,
    ("DELETE", "/_sandbox/requests"): AdminApi.delete_requests,
    ("POST", "/_sandbox/faults"): AdminApi.post_fault,
    ("DELETE", "/_sandbox/faults"): AdminApi.delete_faults,
    ("POST", "/_sandbox/repositories"): AdminApi.post_repository,
    ("POST", "/_sandbox/environments"): AdminApi.post_environment,
    ("POST", "/_sandbox/outside-write"): AdminApi.post_outside_write,
    ("POST", "/_sandbox/users"): AdminApi.post_user,
    ("POST", "/_sandbox/teams"): AdminApi.post_team,
    ("GET", "/_sandbox/protection"): AdminApi.get_protection,
    ("POST", "/_sandbox/rate-limit"): AdminApi.post_rate_limit,
    ("POST", "/_sandbox/clock"): AdminApi.post_clock,
    ("POST", "/_sandbox/apps"): AdminApi.post_app,
    ("POST", "/_sandbox/installation-tokens/expire"): AdminApi.post_expire_tokens,
}
