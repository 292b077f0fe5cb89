"""GitHub through PyGithub: the only module of envmatrix that imports `github`.

Economy: lists use per_page=100 (variables: GitHub caps them at 30) and follow `Link`; the
public key of an environment is fetched once per run and reused for every secret, unlike
PyGithub's `create_secret`, which fetches it on every call.

Faults: PyGithub's own retry is off; `_call` retries 5xx, 429 (with or without Retry-After),
rate-limit 403s, connection resets and timeouts with jittered exponential backoff, and waits for
an exhausted primary limit until its reset when that wait is within `max_wait` (else it stops with
GitHubRateLimited). Messages name the endpoint and status; never a request body.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlparse

import requests
from github import Auth, Github, GithubException
from github.Environment import Environment
from github.OrganizationSecret import OrganizationSecret
from github.PaginatedList import PaginatedList
from github.PublicKey import encrypt
from github.Requester import Requester
from github.Secret import Secret
from github.Variable import Variable

from envmatrix.adapters.accounting import RequestStats
from envmatrix.errors import GitHubError, GitHubRateLimited, UsageError
from envmatrix.ports import ObservedSecret, ObservedVariable, WriteReceipt
from envmatrix.redact import host_for_display, url_for_display
from envmatrix.secret import SecretValue
from envmatrix.settings import github_concurrency, number_setting, text_setting

T = TypeVar("T")
DEFAULT_API_URL = "https://api.github.com"
MAX_SECRET_BYTES = 48 * 1024  # GitHub's limit for one secret value (UTF-8 bytes)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts, backoff base (s), longest acceptable wait (s)."""

    attempts: int = 5
    backoff: float = 1.0
    secondary_backoff: float = 60.0
    max_wait: float = 900.0
    timeout: float = 15.0  # whole seconds per request; a slower answer is retried

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> RetryPolicy:
        def number(name: str, default: float, low: float, high: float) -> float:
            return number_setting(environ, name, default, minimum=low, maximum=high)

        return cls(
            attempts=int(
                number_setting(
                    environ,
                    "ENVMATRIX_GITHUB_ATTEMPTS",
                    cls.attempts,
                    minimum=1,
                    maximum=100,
                    integer=True,
                )
            ),
            backoff=number("ENVMATRIX_GITHUB_BACKOFF", cls.backoff, 0, 3600),
            secondary_backoff=number(
                "ENVMATRIX_GITHUB_SECONDARY_BACKOFF", cls.secondary_backoff, 0, 3600
            ),
            max_wait=number("ENVMATRIX_GITHUB_MAX_WAIT", cls.max_wait, 0, 86400),
            timeout=number("ENVMATRIX_GITHUB_TIMEOUT", cls.timeout, 1, 3600),
        )


@dataclass(frozen=True)
class _PublicKey:
    key_id: str
    key: str


class _Retry(Exception):
    """Internal: try again, after the server's wait (`wait`) or our own backoff (None)."""

    def __init__(self, wait: float | None, why: str) -> None:
        super().__init__(why)
        self.wait, self.why = wait, why


class GitHubAdapter:
    """GitHubPort over PyGithub, with retries, rate-limit handling and one key fetch per scope."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        retry: RetryPolicy | None = None,
        write_interval: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        concurrency: int = 1,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.shown_url = url_for_display(self.api_url)  # what messages name: no credentials
        self._retry = retry or RetryPolicy()
        self._github = Github(
            auth=Auth.Token(token),
            base_url=self.api_url,
            per_page=100,
            retry=None,
            timeout=max(1, round(self._retry.timeout)),  # PyGithub insists on whole seconds
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
        )
        self._requester = self._github.requester
        self.requests = RequestStats()  # what this adapter sent (`--json`'s `requests`)
        _count_requests(self._requester, self.requests)
        self.concurrency = concurrency  # reads the caller may send at once (observe's pool)
        self._write_interval = write_interval
        self._sleep = sleep
        self._keys: dict[str, _PublicKey] = {}
        self._last_write = 0.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> GitHubAdapter:
        """GITHUB_TOKEN or GH_TOKEN (as the gh CLI), GITHUB_API_URL (as GitHub Actions)."""
        source = "GITHUB_TOKEN" if environ.get("GITHUB_TOKEN") else "GH_TOKEN"
        token = text_setting(environ, source)
        if not token:
            raise UsageError("GITHUB_TOKEN (or GH_TOKEN) is not set")
        url = environ.get("GITHUB_API_URL") or DEFAULT_API_URL
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UsageError(f"GITHUB_API_URL={url_for_display(url)!r} is not an http(s) URL")
        interval = 1.0 if parsed.netloc == "api.github.com" else 0.0
        interval = number_setting(
            environ, "ENVMATRIX_GITHUB_WRITE_INTERVAL", interval, minimum=0, maximum=60
        )
        return cls(
            url,
            token,
            retry=RetryPolicy.from_environment(environ),
            write_interval=interval,
            concurrency=github_concurrency(environ, parsed.netloc == "api.github.com"),
        )

    # -- reads ---------------------------------------------------------------------------------

    def list_environments(self, repository: str) -> list[str]:
        url = f"/repos/{repository}/environments"
        items = self._list(Environment, url, "environments")
        return [e.name for e in items]

    def list_environment_secrets(self, repository: str, environment: str) -> list[ObservedSecret]:
        url = f"{_env_url(repository, environment)}/secrets"
        return [_observed_secret(s) for s in self._list(Secret, url, "secrets")]

    def list_environment_variables(
        self, repository: str, environment: str
    ) -> list[ObservedVariable]:
        url = f"{_env_url(repository, environment)}/variables"
        return [_observed_variable(v) for v in self._list(Variable, url, "variables")]

    def list_repository_secrets(self, repository: str) -> list[ObservedSecret]:
        url = f"/repos/{repository}/actions/secrets"
        return [_observed_secret(s) for s in self._list(Secret, url, "secrets")]

    def list_repository_variables(self, repository: str) -> list[ObservedVariable]:
        url = f"/repos/{repository}/actions/variables"
        return [_observed_variable(v) for v in self._list(Variable, url, "variables")]

    def list_organization_secrets(self, organization: str) -> list[ObservedSecret]:
        url = f"/orgs/{quote(organization, safe='')}/actions/secrets"
        items = self._list(OrganizationSecret, url, "secrets")
        return [replace(_observed_secret(s), visibility=s.visibility) for s in items]

    def _list(self, cls: type[T], url: str, item: str) -> list[T]:
        def fetch() -> list[T]:
            pages: PaginatedList[Any] = PaginatedList(
                cls, self._requester, url, None, list_item=item
            )
            return list(pages)

        return self._call("GET", url, fetch)

    # -- writes --------------------------------------------------------------------------------

    def create_environment(self, repository: str, environment: str) -> WriteReceipt:
        return self._write("PUT", _env_url(repository, environment), {})

    def put_environment_secret(
        self, repository: str, environment: str, name: str, value: SecretValue
    ) -> WriteReceipt:
        scope = _env_url(repository, environment)
        return self._put_secret(scope, f"{scope}/secrets/{quote(name, safe='')}", value)

    def put_repository_secret(self, repository: str, name: str, value: SecretValue) -> WriteReceipt:
        scope = f"/repos/{repository}/actions"
        return self._put_secret(scope, f"{scope}/secrets/{quote(name, safe='')}", value)

    def delete_environment_secret(
        self, repository: str, environment: str, name: str
    ) -> WriteReceipt:
        url = f"{_env_url(repository, environment)}/secrets/{quote(name, safe='')}"
        return self._write("DELETE", url, None, absent_ok=True)

    def delete_repository_secret(self, repository: str, name: str) -> WriteReceipt:
        url = f"/repos/{repository}/actions/secrets/{quote(name, safe='')}"
        return self._write("DELETE", url, None, absent_ok=True)

    def set_environment_variable(
        self, repository: str, environment: str, name: str, value: str, exists: bool
    ) -> WriteReceipt:
        base = f"{_env_url(repository, environment)}/variables"
        return self._set_variable(base, name, value, exists)

    def set_repository_variable(
        self, repository: str, name: str, value: str, exists: bool
    ) -> WriteReceipt:
        return self._set_variable(f"/repos/{repository}/actions/variables", name, value, exists)

    def delete_repository_variable(self, repository: str, name: str) -> WriteReceipt:
        url = f"/repos/{repository}/actions/variables/{quote(name, safe='')}"
        return self._write("DELETE", url, None, absent_ok=True)

    def _set_variable(self, base: str, name: str, value: str, exists: bool) -> WriteReceipt:
        body = {"name": name, "value": value}
        if exists:
            return self._write("PATCH", f"{base}/{quote(name, safe='')}", body)
        try:
            return self._write("POST", base, body)
        except GitHubError as exc:
            if exc.status != 409:  # 409: it exists after all (an earlier attempt landed)
                raise
            return self._write("PATCH", f"{base}/{quote(name, safe='')}", body)

    def delete_environment_variable(
        self, repository: str, environment: str, name: str
    ) -> WriteReceipt:
        url = f"{_env_url(repository, environment)}/variables/{quote(name, safe='')}"
        return self._write("DELETE", url, None, absent_ok=True)

    def close(self) -> None:
        """Close the HTTP session (and those of other threads)."""
        self._github.close()
        for requester in self.__dict__.get("_thread_requesters", {}).values():
            requester.close()

    # PyGithub's connection object is not thread-safe (`request()` stores the verb and URL on
    # it, `getresponse()` sends them): a thread other than the one that built the adapter gets
    # its own Requester, same configuration and authentication, counted in the same stats.
    @property
    def _requester(self) -> Requester:
        owner, base = self.__dict__["_base_requester"]
        thread = threading.get_ident()
        if thread == owner:
            return base  # type: ignore[no-any-return]
        with self.__dict__["_thread_lock"]:
            requesters = self.__dict__.setdefault("_thread_requesters", {})
            if thread not in requesters:
                requesters[thread] = base.withAuth(base.auth)  # a new Requester, always
                _count_requests(requesters[thread], self.requests)
            mine: Requester = requesters[thread]
            return mine

    @_requester.setter
    def _requester(self, requester: Requester) -> None:
        self.__dict__["_base_requester"] = (threading.get_ident(), requester)
        self.__dict__["_thread_lock"] = threading.Lock()

    def identity(self) -> str:
        actor = os.environ.get("GITHUB_ACTOR")
        run = os.environ.get("GITHUB_RUN_ID")
        if actor and run:
            return f"github-actions:{actor} run:{run}"
        return f"github-token@{host_for_display(self.api_url)}"

    def _put_secret(self, scope: str, url: str, value: SecretValue) -> WriteReceipt:
        size = len(value.reveal().encode())
        if size > MAX_SECRET_BYTES:  # GitHub would answer a bare 422; say why, send nothing
            raise GitHubError(
                f"PUT {self.shown_url}{url}: the value is larger than 48 KB ({size} bytes; GitHub"
                f" takes at most {MAX_SECRET_BYTES}); not sent"
            )
        key = self._public_key(scope)
        body = {"encrypted_value": encrypt(key.key, value.reveal()), "key_id": key.key_id}
        try:
            return self._write("PUT", url, body)
        except GitHubError as exc:
            if exc.status != 422:
                raise
            # the key may have been rotated since we fetched it: refetch once
            self._keys.pop(scope, None)
            key = self._public_key(scope)
            body = {"encrypted_value": encrypt(key.key, value.reveal()), "key_id": key.key_id}
            return self._write("PUT", url, body)

    def _public_key(self, scope: str) -> _PublicKey:
        if scope not in self._keys:
            url = f"{scope}/secrets/public-key"
            _, data = self._call(
                "GET", url, lambda: self._requester.requestJsonAndCheck("GET", url)
            )
            self._keys[scope] = _PublicKey(str(data["key_id"]), str(data["key"]))
        return self._keys[scope]

    def _write(
        self, verb: str, url: str, body: dict[str, Any] | None, absent_ok: bool = False
    ) -> WriteReceipt:
        self._pace_writes()

        def send() -> tuple[dict[str, Any], Any]:
            return self._requester.requestJsonAndCheck(verb, url, input=body)

        try:
            headers, _ = self._call(verb, url, send)
        except GitHubError as exc:
            if absent_ok and exc.status == 404:
                return WriteReceipt(datetime.now(UTC))
            raise
        return WriteReceipt(_server_time(headers))

    def _pace_writes(self) -> None:
        """GitHub asks integrations to leave >= 1 s between content-creating requests."""
        wait = self._last_write + self._write_interval - time.monotonic()
        if wait > 0:
            self._sleep(wait)
        self._last_write = time.monotonic()

    # -- retries -------------------------------------------------------------------------------

    def _call(self, verb: str, url: str, fn: Callable[[], T]) -> T:
        endpoint = f"{verb} {self.shown_url}{url}"
        for attempt in range(1, self._retry.attempts + 1):
            self._wait_for_primary_limit(endpoint)
            try:
                return self._translate(endpoint, fn)
            except _Retry as retry:
                if attempt == self._retry.attempts:
                    why = f"{retry.why}; gave up after {attempt} attempts"
                    raise GitHubError(f"{endpoint}: {why}") from None
                self._sleep(self._pause(endpoint, attempt, retry))
        raise AssertionError("unreachable")

    def _pause(self, endpoint: str, attempt: int, retry: _Retry) -> float:
        """Exponential backoff with full jitter; a server-given wait is never cut short."""
        if retry.wait is None:
            return self._retry.backoff * 2.0 ** (attempt - 1) * random.uniform(0.5, 1.5)
        return self._bounded(endpoint, retry.wait * random.uniform(1.0, 1.2), retry.why)

    def _translate(self, endpoint: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except GithubException as exc:
            raise self._classify(endpoint, exc.status, exc.headers or {}, exc.data) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retry(None, f"connection failed ({type(exc).__name__})") from None
        except ValueError:  # json decoding: an HTML page or a truncated body
            raise _Retry(None, "the response was not valid JSON") from None
        except (TypeError, KeyError, AttributeError):  # JSON, but not shaped like GitHub's
            raise GitHubError(
                f"{endpoint}: the answer is not GitHub's REST API (check GITHUB_API_URL)"
            ) from None

    def _classify(
        self, endpoint: str, status: int, headers: Mapping[str, str], data: Any
    ) -> Exception:
        headers = {k.lower(): v for k, v in headers.items()}
        message = _message(data)
        if status in (403, 429) and _is_rate_limit(status, headers, message):
            return _Retry(self._rate_limit_wait(endpoint, headers, message), f"{status} {message}")
        if status >= 500 or status == 0:
            return _Retry(None, f"{status} {message}")
        if status == 401:
            return GitHubError(f"{endpoint}: 401 {message} (check GITHUB_TOKEN)", status)
        return GitHubError(f"{endpoint}: {status} {message}", status)

    def _rate_limit_wait(
        self, endpoint: str, headers: Mapping[str, str], message: str
    ) -> float | None:
        if "retry-after" in headers and headers["retry-after"].isdigit():
            return self._bounded(endpoint, float(headers["retry-after"]), message)
        if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
            wait = float(headers["x-ratelimit-reset"]) - time.time() + 1
            return self._bounded(endpoint, max(wait, 1.0), "primary rate limit exhausted")
        return self._retry.secondary_backoff if "secondary" in message.lower() else None

    def _bounded(self, endpoint: str, wait: float, why: str) -> float:
        if wait > self._retry.max_wait:
            raise GitHubRateLimited(
                f"{endpoint}: {why}; waiting {wait:.0f}s exceeds ENVMATRIX_GITHUB_MAX_WAIT="
                f"{self._retry.max_wait:.0f}s — try again later"
            )
        return wait

    def _wait_for_primary_limit(self, endpoint: str) -> None:
        remaining, _ = self._requester.rate_limiting
        if remaining == 0:
            reset = self._requester.rate_limiting_resettime
            wait = reset - time.time() + 1
            if wait > 0:
                self._sleep(self._bounded(endpoint, wait, "primary rate limit exhausted"))


def _count_requests(requester: Any, stats: RequestStats) -> None:
    """Count every JSON request `requester` sends (each page, each retry) in `stats`.

    PyGithub's `Requester.requestJson` is the public call every JSON request passes through
    (`requestJsonAndCheck`, hence pagination and writes, calls it on the instance); it returns
    the status and headers, which `requestJsonAndCheck` drops. Wrapped on this instance only."""
    send = requester.requestJson

    def counted(verb: str, url: str, *args: Any, **kwargs: Any) -> Any:
        with stats.request(verb, url):
            status, headers, output = send(verb, url, *args, **kwargs)
        stats.answered(status, {k.lower(): v for k, v in (headers or {}).items()})
        return status, headers, output

    requester.requestJson = counted


def _env_url(repository: str, environment: str) -> str:
    return f"/repos/{repository}/environments/{quote(environment, safe='')}"


def _observed_secret(secret: Secret) -> ObservedSecret:
    return ObservedSecret(secret.name.upper(), _aware(secret.created_at), _aware(secret.updated_at))


def _observed_variable(variable: Variable) -> ObservedVariable:
    return ObservedVariable(variable.name.upper(), variable.value, _aware(variable.updated_at))


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _server_time(headers: Mapping[str, str]) -> datetime:
    """The server's clock at the write, from the Date header (falls back to ours)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        return parsedate_to_datetime(lowered["date"]).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC).replace(microsecond=0)


def _message(data: Any) -> str:
    if isinstance(data, Mapping) and isinstance(data.get("message"), str):
        return (str(data["message"]) + _first_error(data.get("errors")))[:200]
    return "unexpected response (not GitHub's JSON error shape)"


def _first_error(errors: Any) -> str:
    """`: <message>` of the first entry of a 422's `errors` (what was refused), if it has one."""
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        said = errors[0].get("message")
        return f": {said}" if isinstance(said, str) else ""
    return ""


def _is_rate_limit(status: int, headers: Mapping[str, str], message: str) -> bool:
    if status == 429 or "retry-after" in headers:
        return True
    return headers.get("x-ratelimit-remaining") == "0" or "rate limit" in message.lower()
