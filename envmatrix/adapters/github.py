"""GitHub through PyGithub: the only module of envmatrix that imports `github`.

Economy: lists use per_page=100 (variables: GitHub caps them at 30) and follow `Link`; the
public key of an environment is fetched once per run and reused for every secret, unlike
PyGithub's `create_secret`, which fetches it on every call.

Faults: PyGithub's own retry is off; `_call` retries 5xx, 429 (with or without Retry-After),
rate-limit 403s, connection resets and timeouts with jittered exponential backoff, and waits for
an exhausted primary limit until its reset when that wait is within `max_wait` (else it stops with
GitHubRateLimited). A connection that cannot be made at all (refused, unknown host, no
route) is not retried: it fails at once, naming the endpoint and the variable that chose it.
Messages name the endpoint and status; never a request body.

Login (see envmatrix/adapters/github_settings.py for the variables): a token, or a GitHub App.
As an App, every request is sent with an installation token of the installation for the owner in
its path (`/repos/{owner}/...`, `/orgs/{org}/...`): the installation is looked up once per owner
(GET /repos/{owner}/{repo}/installation or /orgs/{org}/installation, unless
GITHUB_APP_INSTALLATION_ID fixes it), PyGithub's `AppInstallationAuth` mints its token and renews
it before it expires, and a token GitHub refuses with 401 (revoked, or expired early) is replaced
once before the request fails.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote, urlparse

import requests
from github import Auth, Github, GithubException, GithubIntegration
from github.Environment import Environment
from github.OrganizationSecret import OrganizationSecret
from github.PaginatedList import PaginatedList
from github.PublicKey import encrypt
from github.Requester import Requester
from github.Secret import Secret
from github.Variable import Variable
from jwt import PyJWTError
from urllib3.exceptions import NameResolutionError, NewConnectionError

from envmatrix import debuglog
from envmatrix.adapters.accounting import RequestStats
from envmatrix.adapters.github_budget import RequestBudget, paced_requests
from envmatrix.adapters.github_cache import (
    GitHubCache,
    app_identity,
    conditional_reads,
    token_identity,
)
from envmatrix.adapters.github_settings import AppLogin, TokenLogin, github_settings
from envmatrix.errors import GitHubError, GitHubRateLimited, UsageError
from envmatrix.ports import (
    BranchPattern,
    DeploymentBranchPolicy,
    ObservedProtection,
    ObservedSecret,
    ObservedVariable,
    ProtectionSettings,
    ReviewerRef,
    WriteReceipt,
)
from envmatrix.redact import host_for_display, url_for_display
from envmatrix.secret import SecretValue
from envmatrix.settings import (
    github_concurrency,
    github_points_per_minute,
    github_write_concurrency,
    number_setting,
)

T = TypeVar("T")
DEFAULT_API_URL = "https://api.github.com"
_log = logging.getLogger(__name__)
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
        login: str | TokenLogin | AppLogin,
        *,
        retry: RetryPolicy | None = None,
        write_interval: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        url_source: str = "GITHUB_API_URL",
        concurrency: int = 1,
        cache: GitHubCache | None = None,
        write_concurrency: int = 1,
        points_per_minute: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`login`: a token (str or TokenLogin) or a GitHub App (AppLogin). Raises UsageError
        for an App private key PyGithub cannot sign with. Nothing is sent until the first call.
        `cache`: where GET answers are kept for conditional requests (None: none are).
        `points_per_minute`: GitHub's secondary-limit budget per endpoint, every request paced
        under it with `clock` and `sleep` (0: none; see envmatrix/adapters/github_budget.py)."""
        self.api_url = api_url.rstrip("/")
        self.shown_url = url_for_display(self.api_url)  # what messages name: no credentials
        self._url_source = url_source
        self._retry = retry or RetryPolicy()
        self._login = TokenLogin(login, "GITHUB_TOKEN") if isinstance(login, str) else login
        self._options: dict[str, Any] = {
            "base_url": self.api_url,
            "per_page": 100,
            "retry": None,
            "timeout": max(1, round(self._retry.timeout)),  # PyGithub insists on whole seconds
            "seconds_between_requests": None,
            "seconds_between_writes": None,
            "lazy": True,
        }
        self._app: _AppInstallations | None = None
        self._github: Github | None = None
        if isinstance(self._login, AppLogin):
            self._app = _AppInstallations(self._login, self._options)
            self._requester = self._app.integration.requester
        else:
            self._github = Github(auth=Auth.Token(self._login.token), **self._options)
            self._requester = self._github.requester
        self.requests = RequestStats()  # what this adapter sent (`--json`'s `requests`)
        _count_requests(self._requester, self.requests)
        self._budget = RequestBudget(points_per_minute, clock=clock, sleep=sleep)
        paced_requests(self._requester, self._budget, self.requests)
        self._cache = cache
        if isinstance(self._login, TokenLogin):
            self._conditional(self._requester, token_identity(self.api_url, self._login.token))
        # reads the caller may send at once (observe's pool); an App's per-owner requesters
        # are not made per thread, so an App login reads one at a time
        self.concurrency = concurrency if self._app is None else 1
        # writes apply may send at once (its pool of targets); the interval spaces them all
        self.write_concurrency = write_concurrency if self._app is None else 1
        self._write_interval = write_interval
        self._pace_lock = threading.Lock()  # one pacing decision at a time, across writers
        self._paused_until = 0.0  # monotonic: a rate limit's wait holds every thread until then
        self._sleep = sleep
        self._keys: dict[str, _PublicKey] = {}
        self._user_ids: dict[str, int | None] = {}  # looked up once per run (reviewers)
        self._team_ids: dict[str, int | None] = {}
        self._repository_ids: dict[str, int | None] = {}  # selected repositories, by name
        self._last_write = 0.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> GitHubAdapter:
        """Configured as gh and GitHub Actions are (see envmatrix/adapters/github_settings.py):
        GITHUB_API_URL, else GH_HOST; a GitHub App (GITHUB_APP_*), else GH_TOKEN/GITHUB_TOKEN
        (GH_ENTERPRISE_TOKEN/GITHUB_ENTERPRISE_TOKEN first for an Enterprise Server).
        Warnings (two tokens that differ) go to the `envmatrix.adapters.github` logger.
        Raises UsageError for a missing or invalid setting."""
        settings = github_settings(environ)
        for warning in settings.warnings:
            _log.warning(warning)
        debuglog.show_paths_for(settings.api_url)
        host = (urlparse(settings.api_url).hostname or "").lower()
        dotcom_writes = host == "api.github.com" or host.endswith(".ghe.com")
        interval = 1.0 if dotcom_writes else 0.0
        interval = number_setting(
            environ, "ENVMATRIX_GITHUB_WRITE_INTERVAL", interval, minimum=0, maximum=60
        )
        return cls(
            settings.api_url,
            settings.login,
            retry=RetryPolicy.from_environment(environ),
            write_interval=interval,
            url_source=settings.url_source,
            concurrency=github_concurrency(environ, host == "api.github.com"),
            cache=GitHubCache.from_environment(environ),
            write_concurrency=github_write_concurrency(environ, dotcom_writes),
            points_per_minute=github_points_per_minute(environ, dotcom_writes),
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
        return self._list_store_secrets(repository, "actions")

    def _list_store_secrets(self, repository: str, store: str) -> list[ObservedSecret]:
        """A repository's secrets of `store` ("actions" or "dependabot")."""
        url = f"/repos/{repository}/{_store(store)}/secrets"
        return [_observed_secret(s) for s in self._list(Secret, url, "secrets")]

    def list_repository_variables(self, repository: str) -> list[ObservedVariable]:
        url = f"/repos/{repository}/actions/variables"
        return [_observed_variable(v) for v in self._list(Variable, url, "variables")]

    def list_organization_secrets(self, organization: str) -> list[ObservedSecret]:
        return self._list_org_store_secrets(organization, "actions")

    def _list_org_store_secrets(self, organization: str, store: str) -> list[ObservedSecret]:
        """An organization's secrets of `store` ("actions" or "dependabot"), with visibility."""
        url = f"/orgs/{quote(organization, safe='')}/{_store(store)}/secrets"
        items = self._list(OrganizationSecret, url, "secrets")
        return [replace(_observed_secret(s), visibility=s.visibility) for s in items]

    # -- organization secrets and variables, Dependabot secrets -------------------------------

    def list_organization_variables(self, organization: str) -> list[ObservedVariable]:
        url = f"/orgs/{quote(organization, safe='')}/actions/variables"
        return [_observed_org_variable(v) for v in self._list_json(url, "variables", per_page=30)]

    def list_dependabot_secrets(self, repository: str) -> list[ObservedSecret]:
        return self._list_store_secrets(repository, "dependabot")

    def list_dependabot_organization_secrets(self, organization: str) -> list[ObservedSecret]:
        return self._list_org_store_secrets(organization, "dependabot")

    def list_selected_repositories(self, organization: str, kind: str, name: str) -> list[str]:
        if kind not in ("actions/secrets", "dependabot/secrets", "actions/variables"):
            raise ValueError(f"unknown kind {kind!r}")
        url = f"/orgs/{quote(organization, safe='')}/{kind}/{quote(name, safe='')}/repositories"
        return [str(r["full_name"]) for r in self._list_json(url, "repositories")]

    def repository_id(self, repository: str) -> int | None:
        key = repository.lower()
        if key not in self._repository_ids:
            self._repository_ids[key] = self._lookup(f"/repos/{repository}")
        return self._repository_ids[key]

    def put_organization_secret(
        self,
        organization: str,
        name: str,
        value: SecretValue,
        visibility: str,
        repository_ids: Sequence[int] = (),
        store: str = "actions",
    ) -> WriteReceipt:
        scope = f"/orgs/{quote(organization, safe='')}/{_store(store)}"
        access: dict[str, Any] = {"visibility": visibility}
        if visibility == "selected":
            access["selected_repository_ids"] = list(repository_ids)
        url = f"{scope}/secrets/{quote(name, safe='')}"
        return self._put_secret(scope, url, value, access)

    def delete_organization_secret(
        self, organization: str, name: str, store: str = "actions"
    ) -> WriteReceipt:
        url = f"/orgs/{quote(organization, safe='')}/{_store(store)}/secrets/{quote(name, safe='')}"
        return self._write("DELETE", url, None, absent_ok=True)

    def put_dependabot_secret(self, repository: str, name: str, value: SecretValue) -> WriteReceipt:
        scope = f"/repos/{repository}/dependabot"
        return self._put_secret(scope, f"{scope}/secrets/{quote(name, safe='')}", value)

    def delete_dependabot_secret(self, repository: str, name: str) -> WriteReceipt:
        url = f"/repos/{repository}/dependabot/secrets/{quote(name, safe='')}"
        return self._write("DELETE", url, None, absent_ok=True)

    def set_organization_variable(
        self,
        organization: str,
        name: str,
        value: str,
        visibility: str,
        repository_ids: Sequence[int],
        exists: bool,
    ) -> WriteReceipt:
        base = f"/orgs/{quote(organization, safe='')}/actions/variables"
        body: dict[str, Any] = {"name": name, "value": value, "visibility": visibility}
        if visibility == "selected":
            body["selected_repository_ids"] = list(repository_ids)
        return self._create_or_update_variable(base, name, body, exists)

    def delete_organization_variable(self, organization: str, name: str) -> WriteReceipt:
        url = f"/orgs/{quote(organization, safe='')}/actions/variables/{quote(name, safe='')}"
        return self._write("DELETE", url, None, absent_ok=True)

    def list_organization_repositories(self, organization: str) -> list[str]:
        # GET /orgs/{org}/repos answers a JSON array (no wrapping object)
        url = f"/orgs/{quote(organization, safe='')}/repos"
        return [str(r["full_name"]) for r in self._list_json(url, None)]

    def _list(self, cls: type[T], url: str, item: str) -> list[T]:
        def fetch(requester: Requester) -> list[T]:
            pages: PaginatedList[Any] = PaginatedList(cls, requester, url, None, list_item=item)
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
        return self._create_or_update_variable(base, name, body, exists)

    def _create_or_update_variable(
        self, base: str, name: str, body: dict[str, Any], exists: bool
    ) -> WriteReceipt:
        """PATCH `base`/`name` when the variable `exists`, else POST `base` (a 409 there: it
        exists after all, an earlier attempt landed; then PATCH)."""
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

    # -- environment protection ----------------------------------------------------------------

    def list_environment_protections(self, repository: str) -> list[ObservedProtection]:
        # raw JSON, not PyGithub's Environment: a list item without deployment_branch_policy
        # (GitHub's "all branches") would make PyGithub fetch the environment again to complete it
        url = f"/repos/{repository}/environments"
        return [_observed_protection(e) for e in self._list_json(url, "environments")]

    def list_deployment_branch_policies(
        self, repository: str, environment: str
    ) -> list[DeploymentBranchPolicy]:
        # PyGithub has no call for deployment branch policies
        url = f"{_env_url(repository, environment)}/deployment-branch-policies"
        return [_branch_policy(p) for p in self._list_json(url, "branch_policies")]

    def lookup_user(self, login: str) -> int | None:
        if login.lower() not in self._user_ids:
            url = f"/users/{quote(login, safe='')}"
            self._user_ids[login.lower()] = self._lookup(url)
        return self._user_ids[login.lower()]

    def lookup_team(self, organization: str, slug: str) -> int | None:
        key = f"{organization}/{slug}".lower()
        if key not in self._team_ids:
            url = f"/orgs/{quote(organization, safe='')}/teams/{quote(slug, safe='')}"
            self._team_ids[key] = self._lookup(url)
        return self._team_ids[key]

    def _lookup(self, url: str) -> int | None:
        """The `id` of the user or team at `url` (GET /users/{username},
        GET /orgs/{org}/teams/{team_slug}); None when GitHub has none."""

        def fetch(requester: Requester) -> int:
            return int(requester.requestJsonAndCheck("GET", url)[1]["id"])

        try:
            return self._call("GET", url, fetch)
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise

    def put_environment_protection(
        self, repository: str, environment: str, settings: ProtectionSettings
    ) -> WriteReceipt:
        url = _env_url(repository, environment)
        branches = {
            "all": None,
            "protected": {"protected_branches": True, "custom_branch_policies": False},
            "custom": {"protected_branches": False, "custom_branch_policies": True},
        }[settings.deployment_branches]
        body = {
            "wait_timer": settings.wait_timer,
            "prevent_self_review": settings.prevent_self_review,
            "reviewers": [{"type": r.type, "id": r.id} for r in settings.reviewers],
            "deployment_branch_policy": branches,
        }
        self._pace_writes()

        def send(requester: Requester) -> datetime:
            _, data = requester.requestJsonAndCheck("PUT", url, input=body)
            return datetime.fromisoformat(str(data["updated_at"]).replace("Z", "+00:00"))

        return WriteReceipt(self._call("PUT", url, send))

    def create_deployment_branch_policy(
        self, repository: str, environment: str, pattern: BranchPattern
    ) -> WriteReceipt:
        # 303 (the pattern exists already) is a success for requestJsonAndCheck: converged
        url = f"{_env_url(repository, environment)}/deployment-branch-policies"
        return self._write("POST", url, {"name": pattern.name, "type": pattern.type})

    def delete_deployment_branch_policy(
        self, repository: str, environment: str, policy_id: int
    ) -> WriteReceipt:
        url = f"{_env_url(repository, environment)}/deployment-branch-policies/{policy_id}"
        return self._write("DELETE", url, None, absent_ok=True)

    def _list_json(self, url: str, item: str | None, per_page: int = 100) -> list[dict[str, Any]]:
        """Every item of a paginated list answer (per_page, following Link rel=next);
        `item`: the answer's key holding the list, None when the answer is the list itself."""
        found: list[dict[str, Any]] = []
        page: str | None = url
        parameters: dict[str, Any] | None = {"per_page": per_page}
        while page is not None:

            def fetch(
                requester: Requester, page: str = page, query: Any = parameters
            ) -> tuple[Any, Any]:
                return requester.requestJsonAndCheck("GET", page, query)

            headers, data = self._call("GET", page, fetch)
            found += [dict(entry) for entry in (data if item is None else data[item])]
            page, parameters = _next_page(headers), None
        return found

    def close(self) -> None:
        """Close the HTTP sessions (and those of other threads)."""
        if self._app is not None:
            self._app.close()
        if self._github is not None:
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
                paced_requests(requesters[thread], self._budget, self.requests)
                if isinstance(self._login, TokenLogin):
                    identity = token_identity(self.api_url, self._login.token)
                    self._conditional(requesters[thread], identity)
            mine: Requester = requesters[thread]
            return mine

    @_requester.setter
    def _requester(self, requester: Requester) -> None:
        self.__dict__["_base_requester"] = (threading.get_ident(), requester)
        self.__dict__["_thread_lock"] = threading.Lock()

    def identity(self) -> str:
        """`github-app:ID installation:N@host` (the installations used so far, `owner=N` each
        when there are several), `github-actions:ACTOR run:ID` in Actions, else
        `github-token@host`."""
        host = host_for_display(self.api_url)
        if self._app is not None:
            return f"{self._app.identity()}@{host}"
        actor = os.environ.get("GITHUB_ACTOR")
        run = os.environ.get("GITHUB_RUN_ID")
        if actor and run:
            return f"github-actions:{actor} run:{run}"
        return f"github-token@{host}"

    def _put_secret(
        self, scope: str, url: str, value: SecretValue, access: dict[str, Any] | None = None
    ) -> WriteReceipt:
        """`access`: what else the body carries (an organization secret's visibility)."""
        size = len(value.reveal().encode())
        if size > MAX_SECRET_BYTES:  # GitHub would answer a bare 422; say why, send nothing
            raise GitHubError(
                f"PUT {self.shown_url}{url}: the value is larger than 48 KB ({size} bytes; GitHub"
                f" takes at most {MAX_SECRET_BYTES}); not sent"
            )
        key = self._public_key(scope)
        body = {"encrypted_value": encrypt(key.key, value.reveal()), "key_id": key.key_id}
        body.update(access or {})
        try:
            return self._write("PUT", url, body)
        except GitHubError as exc:
            if exc.status != 422:
                raise
            # the key may have been rotated since we fetched it: refetch once
            self._keys.pop(scope, None)
            key = self._public_key(scope)
            body = {"encrypted_value": encrypt(key.key, value.reveal()), "key_id": key.key_id}
            body.update(access or {})
            return self._write("PUT", url, body)

    def prefetch_public_keys(self, targets: Sequence[tuple[str, str | None]]) -> None:
        """Fetch the public keys of (repository, environment or None: the repository level)
        not fetched yet, `concurrency` at a time, before apply's writes need them. A key that
        cannot be fetched is left for the write, which fetches it again and fails with its own
        error."""
        scopes = list(
            dict.fromkeys(
                f"/repos/{repo}/actions" if env is None else _env_url(repo, env)
                for repo, env in targets
            )
        )
        missing = [scope for scope in scopes if scope not in self._keys]

        def fetch(scope: str) -> None:
            try:
                self._public_key(scope)
            except GitHubError:
                pass

        if self.concurrency <= 1 or len(missing) < 2:
            for scope in missing:
                fetch(scope)
            return
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(missing))) as pool:
            list(pool.map(fetch, missing))

    def _public_key(self, scope: str) -> _PublicKey:
        if scope not in self._keys:
            url = f"{scope}/secrets/public-key"
            _, data = self._call(
                "GET", url, lambda requester: requester.requestJsonAndCheck("GET", url)
            )
            self._keys[scope] = _PublicKey(str(data["key_id"]), str(data["key"]))
        return self._keys[scope]

    def _write(
        self, verb: str, url: str, body: dict[str, Any] | None, absent_ok: bool = False
    ) -> WriteReceipt:
        self._pace_writes()

        def send(requester: Requester) -> tuple[dict[str, Any], Any]:
            return requester.requestJsonAndCheck(verb, url, input=body)

        try:
            headers, _ = self._call(verb, url, send)
        except GitHubError as exc:
            if absent_ok and exc.status == 404:
                return WriteReceipt(datetime.now(UTC))
            raise
        return WriteReceipt(_server_time(headers))

    def _pace_writes(self) -> None:
        """GitHub asks integrations to leave >= 1 s between content-creating requests: each
        write (of any thread) starts at least the write interval after the one before."""
        with self._pace_lock:
            now = time.monotonic()
            start = max(now, self._last_write + self._write_interval)
            self._last_write = start
        if start > now:
            self._sleep(start - now)

    def _hold_for_rate_limit(self) -> None:
        """Wait out a rate limit another thread was told of (Retry-After, secondary limit):
        no thread sends anything until it has passed."""
        wait = self._paused_until - time.monotonic()
        if wait > 0:
            self._sleep(wait)

    def _pause_everyone(self, seconds: float) -> None:
        with self._pace_lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    # -- retries -------------------------------------------------------------------------------

    def _call(self, verb: str, url: str, fn: Callable[[Requester], T]) -> T:
        """`fn(requester)` with retries, sent with the login for `url`'s owner; as an App, a
        401 gets one more round with a fresh installation token."""
        try:
            return self._attempts(verb, url, fn)
        except GitHubError as exc:
            if exc.status != 401 or self._app is None or not self._app.forget_token(url):
                raise
            return self._attempts(verb, url, fn)

    def _attempts(
        self,
        verb: str,
        url: str,
        fn: Callable[[Requester], T],
        requester: Requester | None = None,
    ) -> T:
        endpoint = f"{verb} {self.shown_url}{url}"
        for attempt in range(1, self._retry.attempts + 1):
            sender = requester or self._requester_for(url)
            self._hold_for_rate_limit()
            self._wait_for_primary_limit(endpoint, sender)
            try:
                return self._translate(endpoint, partial(fn, sender))
            except _Retry as retry:
                if attempt == self._retry.attempts:
                    why = f"{retry.why}; gave up after {attempt} attempts"
                    raise GitHubError(f"{endpoint}: {why}") from None
                pause = self._pause(endpoint, attempt, retry)
                if retry.wait is not None:  # the server's wait: every thread holds off
                    self._pause_everyone(pause)
                self._sleep(pause)
        raise AssertionError("unreachable")

    def _pause(self, endpoint: str, attempt: int, retry: _Retry) -> float:
        """Exponential backoff with full jitter; a server-given wait is never cut short."""
        if retry.wait is None:
            return self._retry.backoff * 2.0 ** (attempt - 1) * random.uniform(0.5, 1.5)
        return self._bounded(endpoint, retry.wait * random.uniform(1.0, 1.2), retry.why)

    def _requester_for(self, url: str) -> Requester:
        """The token login's requester, or the installation's for the owner `url` names."""
        if self._app is None:
            return self._requester
        requester = self._app.requester_for(url, self._attempts)
        if not getattr(requester, "_envmatrix_counted", False):
            _count_requests(requester, self.requests)
            paced_requests(requester, self._budget, self.requests)
            requester._envmatrix_counted = True  # type: ignore[attr-defined]
            installation = self._app.installation_of(requester)
            if installation is not None and isinstance(self._login, AppLogin):
                identity = app_identity(self.api_url, self._login.app_id, installation)
                self._conditional(requester, identity)
        return requester

    def _conditional(self, requester: Requester, identity: str) -> None:
        """Send `requester`'s GETs with the ETag of the answer cached for `identity`, if any
        (see envmatrix/adapters/github_cache.py); wrapped after the counting: a 304 counts."""
        scope = self._cache.scope(identity) if self._cache is not None else None
        if scope is not None:
            conditional_reads(requester, scope, urlparse(self.api_url).path)

    def _translate(self, endpoint: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except GithubException as exc:
            raise self._classify(endpoint, exc.status, exc.headers or {}, exc.data) from None
        except requests.ConnectionError as exc:
            if _cannot_connect(exc):  # refused, unknown host, no route: retrying won't help
                raise GitHubError(
                    f"{endpoint}: cannot connect to {host_for_display(self.api_url)}"
                    f" ({_connect_reason(exc)}; check {self._url_source})"
                ) from None
            raise _Retry(None, f"connection failed ({type(exc).__name__})") from None
        except requests.Timeout as exc:
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
            return GitHubError(f"{endpoint}: 401 {message} (check {self._login_hint()})", status)
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

    def _login_hint(self) -> str:
        if isinstance(self._login, AppLogin):
            return "GITHUB_APP_ID, its private key and the App's installation"
        return self._login.source

    def _wait_for_primary_limit(self, endpoint: str, requester: Requester) -> None:
        """Wait for the reset when the login's primary limit is spent. A token login's threads
        each have their own Requester (see `_requester`) but share one limit: the last answer
        any of them saw counts, so a thread that has sent nothing yet waits too."""
        for seen in self._same_limit(requester):
            remaining, _ = seen.rate_limiting
            if remaining != 0:
                continue
            wait = seen.rate_limiting_resettime - time.time() + 1
            if wait > 0:
                self._sleep(self._bounded(endpoint, wait, "primary rate limit exhausted"))
                return

    def _same_limit(self, requester: Requester) -> list[Requester]:
        """The requesters spending the same primary limit as `requester` (a token login's: all
        of its threads'; an App installation's: its own)."""
        if self._app is not None:
            return [requester]
        with self.__dict__["_thread_lock"]:
            threads = list(self.__dict__.get("_thread_requesters", {}).values())
        return [requester, self.__dict__["_base_requester"][1], *threads]


Attempts = Callable[[str, str, Callable[[Requester], Any], Requester | None], Any]


class _AppInstallations:
    """A GitHub App's installations, found per owner, each with its own PyGithub client whose
    `AppInstallationAuth` mints the installation token and renews it before it expires."""

    def __init__(self, login: AppLogin, options: dict[str, Any]) -> None:
        self._login = login
        self._options = options
        self._auth = Auth.AppAuth(login.app_id, login.private_key)
        try:
            self._auth.create_jwt()  # PyGithub signs with the key: refuse a key it cannot use
        except (ValueError, TypeError, PyJWTError):
            raise UsageError(
                "the GitHub App private key (GITHUB_APP_PRIVATE_KEY or _FILE) cannot sign a JWT:"
                " it must be the App's RSA private key in PEM format"
            ) from None
        self.integration = GithubIntegration(auth=self._auth, **options)
        self._owners: dict[str, tuple[str, int]] = {}  # owner (lower) -> (owner, installation)
        self._clients: dict[int, Github] = {}

    def requester_for(self, url: str, attempts: Attempts) -> Requester:
        """The requester of the installation for `url`'s owner (looked up and minted once)."""
        owner = _owner_of(url)
        installation = self._login.installation_id
        if installation is None and owner is not None:
            installation = self._installation(owner, attempts)
        if installation is None:  # no owner in the path (/rate_limit): any installation will do
            clients = list(self._clients.values())
            return clients[0].requester if clients else self.integration.requester
        client = self._clients.get(installation) or self._client(installation, attempts)
        return client.requester

    def installation_of(self, requester: Requester) -> int | None:
        """The installation whose client owns `requester` (None: the App's own, JWT-signed)."""
        for installation, client in self._clients.items():
            if client.requester is requester:
                return installation
        return None

    def forget_token(self, url: str) -> bool:
        """Drop the installation token used for `url` (GitHub refused it); False if none was."""
        owner = _owner_of(url)
        installation = self._login.installation_id
        if installation is None and owner is not None:
            installation = self._owners.get(owner[0].lower(), ("", None))[1]
        client = self._clients.pop(installation, None) if installation is not None else None
        if client is None:
            return False
        client.close()
        return True

    def identity(self) -> str:
        """`github-app:ID`, then `installation:N` or `installations:owner=N,...`."""
        app = f"github-app:{self._login.app_id}"
        if self._login.installation_id is not None:
            return f"{app} installation:{self._login.installation_id}"
        found = sorted(self._owners.values())
        if len(found) == 1:
            return f"{app} installation:{found[0][1]}"
        if found:
            return f"{app} installations:" + ",".join(f"{o}={i}" for o, i in found)
        return app

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self.integration.close()

    def _installation(self, owner: tuple[str, str | None], attempts: Attempts) -> int:
        org = owner[0]
        if org.lower() not in self._owners:
            try:
                found = self._look_up(owner, attempts)
            except GitHubError as exc:
                if exc.status != 404:
                    raise
                raise GitHubError(
                    f"{exc}: GitHub App {self._login.app_id} is not installed on {org} (install"
                    " it there, or set GITHUB_APP_INSTALLATION_ID)",
                    404,
                ) from None
            self._owners[org.lower()] = (org, found)
        return self._owners[org.lower()][1]

    def _look_up(self, owner: tuple[str, str | None], attempts: Attempts) -> int:
        """GET /repos/{owner}/{repo}/installation, or /orgs/{org}/installation, as the App."""
        org, repo = owner
        integration = self.integration
        if repo is not None:
            url = f"/repos/{org}/{repo}/installation"
            found = attempts(
                "GET",
                url,
                lambda _: integration.get_repo_installation(org, repo).id,
                integration.requester,
            )
        else:
            found = attempts(
                "GET",
                f"/orgs/{org}/installation",
                lambda _: integration.get_org_installation(org).id,
                integration.requester,
            )
        return int(found)

    def _client(self, installation: int, attempts: Attempts) -> Github:
        auth = self._auth.get_installation_auth(installation)
        client = Github(auth=auth, **self._options)
        try:  # mint now, so a refusal names the token endpoint, not the request that needed it
            url = f"/app/installations/{installation}/access_tokens"
            attempts("POST", url, lambda _: auth.token, self.integration.requester)
        except BaseException:
            client.close()
            raise
        self._clients[installation] = client
        return client


def _owner_of(url: str) -> tuple[str, str | None] | None:
    """(owner, repository or None) named by an API path, or None (`/rate_limit`)."""
    parts = url.split("?", 1)[0].split("/")
    if len(parts) >= 4 and parts[1] == "repos" and parts[2] and parts[3]:
        return parts[2], parts[3]
    if len(parts) >= 3 and parts[1] == "orgs" and parts[2]:
        return parts[2], None
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and everything it wraps (args, urllib3's `reason`, cause and context)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = (*current.args, getattr(current, "reason", None))
        todo += [e for e in (*linked, current.__cause__, current.__context__) if _is_exc(e)]


def _is_exc(value: object) -> bool:
    return isinstance(value, BaseException)


def _cannot_connect(exc: BaseException) -> bool:
    """A connection that was never made (refused, unknown host, no route), unlike a reset."""
    return any(isinstance(e, NewConnectionError) for e in _causes(exc))


def _connect_reason(exc: BaseException) -> str:
    for cause in _causes(exc):
        if isinstance(cause, NameResolutionError | socket.gaierror):
            return "unknown host"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
    return "no connection"


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


def _store(store: str) -> str:
    if store not in ("actions", "dependabot"):
        raise ValueError(f"unknown store {store!r}")
    return store


def _observed_org_variable(item: Mapping[str, Any]) -> ObservedVariable:
    """An `organization-actions-variable` list item."""
    when = datetime.fromisoformat(str(item["updated_at"]).replace("Z", "+00:00"))
    return ObservedVariable(
        str(item["name"]).upper(), str(item["value"]), _aware(when), str(item["visibility"])
    )


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


_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


def _next_page(headers: Mapping[str, Any]) -> str | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    found = _NEXT_LINK.search(str(lowered.get("link", "")))
    return found[1] if found else None


def _observed_protection(environment: Mapping[str, Any]) -> ObservedProtection:
    """An environment list item -> its protection (rules absent: none set)."""
    rules = {rule["type"]: rule for rule in environment.get("protection_rules") or ()}
    reviewing = rules.get("required_reviewers", {})
    reviewers = tuple(sorted(_reviewer(r) for r in reviewing.get("reviewers") or ()))
    policy = environment.get("deployment_branch_policy")
    branches = (
        "all" if not policy else "protected" if policy.get("protected_branches") else "custom"
    )
    settings = ProtectionSettings(
        wait_timer=int(rules.get("wait_timer", {}).get("wait_timer") or 0),
        prevent_self_review=bool(reviewing.get("prevent_self_review", False)),
        reviewers=reviewers,
        deployment_branches=branches,
    )
    return ObservedProtection(str(environment["name"]), settings)


def _reviewer(entry: Mapping[str, Any]) -> ReviewerRef:
    kind, who = str(entry["type"]), entry["reviewer"]
    if kind == "Team":
        # html_url is https://github.com/orgs/{org}/teams/{slug}: the org is not a field
        org = str(who.get("html_url", "")).rstrip("/").split("/")[-3:-2]
        name = f"{org[0]}/{who.get('slug', '')}" if org else str(who.get("slug", ""))
        return ReviewerRef("Team", int(who["id"]), name)
    return ReviewerRef(kind, int(who["id"]), str(who.get("login", "")))


def _branch_policy(entry: Mapping[str, Any]) -> DeploymentBranchPolicy:
    pattern = BranchPattern(str(entry.get("type") or "branch"), str(entry["name"]))
    return DeploymentBranchPolicy(int(entry["id"]), pattern)
