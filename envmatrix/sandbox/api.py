"""The GitHub REST operations the sandbox serves: routing table and handlers.

Handlers are pure functions of (state, request) -> response; the HTTP layer around them does
authentication, faults, rate limiting and ETags. Exactly the 63 operations of
``tests/data/github-openapi/api.github.com.subset.json`` are routed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import unquote

from envmatrix.sandbox import apps, payloads
from envmatrix.sandbox.http_types import (
    ApiError,
    Request,
    Response,
    not_found,
    validation_failed,
)
from envmatrix.sandbox.state import (
    MAX_VALUE_BYTES,
    SECRET_LIMITS,
    VARIABLE_LIMITS,
    BranchPolicy,
    Environment,
    InvalidSecret,
    Organization,
    Repository,
    Reviewer,
    SandboxState,
    SecretRecord,
    SecretScope,
    VariableRecord,
    VariableScope,
    valid_name,
)

T = TypeVar("T")
JSON = dict[str, Any]
Params = dict[str, str]
Handler = Callable[["GitHubApi", Request, Params], Response]

MAX_PER_PAGE = 100
MAX_VARIABLES_PER_PAGE = 30
MAX_WAIT_TIMER = 43200
MAX_REVIEWERS = 6
VISIBILITIES = ("all", "private", "selected")


@dataclass(frozen=True)
class Route:
    """One operation: method, path regex (named groups are path parameters), operationId."""

    method: str
    pattern: re.Pattern[str]
    operation: str
    handler: Handler


def paginate(
    req: Request, items: Sequence[T], *, default: int, maximum: int
) -> tuple[list[T], dict[str, str]]:
    """Slice ``items`` by ``per_page``/``page`` and build GitHub's ``Link`` header."""
    per_page = _int_param(req.query.get("per_page"), default)
    per_page = default if per_page < 1 else min(per_page, maximum)
    page = max(1, _int_param(req.query.get("page"), 1))
    last = max(1, math.ceil(len(items) / per_page))
    chunk = list(items[(page - 1) * per_page : page * per_page])

    def link(number: int, rel: str) -> str:
        return f'<{req.base_url}{req.path}?per_page={per_page}&page={number}>; rel="{rel}"'

    links = []
    if page > 1:
        links.append(link(min(page - 1, last), "prev"))
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links.append(link(1, "first"))
    return chunk, ({"Link": ", ".join(links)} if links else {})


def _int_param(raw: str | None, default: int) -> int:
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return default


def _check_name(name: str, resource: str) -> None:
    if not valid_name(name):
        raise validation_failed(
            resource,
            "name",
            "Names can only contain alphanumeric characters or underscores, must not start "
            "with a number, and must not start with GITHUB_.",
        )


class GitHubApi:
    """Handlers for the GitHub operations, bound to one :class:`SandboxState`."""

    def __init__(self, state: SandboxState, registry: apps.AppRegistry | None = None) -> None:
        self.state = state
        self.apps = registry or apps.AppRegistry()

    # -- lookups ---------------------------------------------------------------------------
    def _repo(self, params: Params) -> Repository:
        repo = self.state.repository(f"{params['owner']}/{params['repo']}")
        if repo is None:
            raise not_found()
        return repo

    def _env(self, params: Params) -> tuple[Repository, Environment]:
        repo = self._repo(params)
        env = repo.environment(params["env"])
        if env is None:
            raise not_found()
        return repo, env

    def _org(self, params: Params) -> Organization:
        org = self.state.organization(params["org"])
        if org is None:
            raise not_found()
        return org

    # -- repositories and environments -----------------------------------------------------
    def get_repo(self, req: Request, params: Params) -> Response:
        return Response.of_json(200, payloads.full_repository(req.base_url, self._repo(params)))

    def list_org_repos(self, req: Request, params: Params) -> Response:
        """`GET /orgs/{org}/repos`: the organization's repositories by full name (a JSON array,
        paginated: per_page default 30, at most 100)."""
        org = self._org(params)
        repos = sorted(
            (r for r in self.state.repositories.values() if r.owner.lower() == org.login.lower()),
            key=lambda r: r.full_name.lower(),
        )
        chunk, headers = paginate(req, repos, default=30, maximum=MAX_PER_PAGE)
        body = [payloads.full_repository(req.base_url, r) for r in chunk]
        return Response.of_json(200, body, headers)

    def list_environments(self, req: Request, params: Params) -> Response:
        repo = self._repo(params)
        envs = repo.sorted_environments()
        chunk, headers = paginate(req, envs, default=30, maximum=MAX_PER_PAGE)
        body = {
            "total_count": len(envs),
            "environments": [self._environment_json(req, repo, e) for e in chunk],
        }
        return Response.of_json(200, body, headers)

    def get_environment(self, req: Request, params: Params) -> Response:
        repo, env = self._env(params)
        return Response.of_json(200, self._environment_json(req, repo, env))

    def put_environment(self, req: Request, params: Params) -> Response:
        repo = self._repo(params)
        name = params["env"]
        if not name.strip() or len(name) > 255:
            raise validation_failed("Environment", "name", "Name is invalid")
        settings = _environment_settings(req.json_object())
        env = self.state.create_environment(repo, name, req.now)
        for key, value in settings.items():
            setattr(env, key, value)
        if not (env.branch_policy or {}).get("custom_branch_policies"):
            env.branch_policies = []  # name patterns only exist under custom_branch_policies
        env.updated_at = req.now
        return Response.of_json(200, self._environment_json(req, repo, env))

    def _environment_json(self, req: Request, repo: Repository, env: Environment) -> JSON:
        users = {u.id: u for u in self.state.users.values()}
        orgs = self.state.organizations.values()
        teams = {t.id: t for org in orgs for t in org.teams.values()}
        return payloads.environment(req.base_url, repo, env, users, teams)

    # -- users and teams (looked up to their ids for required reviewers) --------------------
    def get_user(self, req: Request, params: Params) -> Response:
        user = self.state.users.get(params["username"].lower())
        if user is None:
            raise not_found()
        return Response.of_json(200, payloads.public_user(req.base_url, user))

    def get_team(self, req: Request, params: Params) -> Response:
        org = self._org(params)
        team = org.teams.get(params["team_slug"].lower())
        if team is None:
            raise not_found()
        return Response.of_json(200, payloads.team_full(req.base_url, team, org))

    # -- deployment branch policies ------------------------------------------------------------
    def list_branch_policies(self, req: Request, params: Params) -> Response:
        policies = self._env(params)[1].branch_policies
        chunk, headers = paginate(req, policies, default=30, maximum=MAX_PER_PAGE)
        body = {
            "total_count": len(policies),
            "branch_policies": [payloads.branch_policy(p) for p in chunk],
        }
        return Response.of_json(200, body, headers)

    def create_branch_policy(self, req: Request, params: Params) -> Response:
        repo, env = self._env(params)
        if not (env.branch_policy or {}).get("custom_branch_policies"):
            raise not_found()  # GitHub: 404 unless custom_branch_policies is true
        body = req.json_object()
        name, kind = body.get("name"), body.get("type", "branch")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise validation_failed("DeploymentBranchPolicy", "name", "name is required")
        if kind not in ("branch", "tag"):
            raise validation_failed("DeploymentBranchPolicy", "type", "must be branch or tag")
        for policy in env.branch_policies:
            if (policy.name, policy.type) == (name, kind):
                location = f"{payloads.environment_url(req.base_url, repo, env)}"
                location += f"/deployment-branch-policies/{policy.id}"
                return Response(303, b"", None, {"Location": location})
        policy = BranchPolicy(self.state.new_id(), name, kind)
        env.branch_policies.append(policy)
        return Response.of_json(200, payloads.branch_policy(policy))

    def _branch_policy_of(self, params: Params) -> tuple[Environment, BranchPolicy]:
        env = self._env(params)[1]
        wanted = _int_param(params["policy_id"], -1)
        policy = next((p for p in env.branch_policies if p.id == wanted), None)
        if policy is None:
            raise not_found()
        return env, policy

    def get_branch_policy(self, req: Request, params: Params) -> Response:
        return Response.of_json(200, payloads.branch_policy(self._branch_policy_of(params)[1]))

    def delete_branch_policy(self, req: Request, params: Params) -> Response:
        env, policy = self._branch_policy_of(params)
        env.branch_policies.remove(policy)
        return Response.empty()

    def delete_environment(self, req: Request, params: Params) -> Response:
        repo, env = self._env(params)
        del repo.environments[env.name.lower()]
        return Response.empty()

    # -- secrets (shared by environment, repository and organization scopes) -----------------
    def _list_secrets(self, req: Request, scope: SecretScope) -> Response:
        records = scope.sorted()
        chunk, headers = paginate(req, records, default=30, maximum=MAX_PER_PAGE)
        body = {"total_count": len(records), "secrets": [payloads.secret(r) for r in chunk]}
        return Response.of_json(200, body, headers)

    @staticmethod
    def _public_key(scope: SecretScope) -> Response:
        return Response.of_json(200, {"key_id": scope.key.key_id, "key": scope.key.public_b64})

    @staticmethod
    def _get_secret(scope: SecretScope, name: str) -> Response:
        record = scope.get(name)
        if record is None:
            raise not_found()
        return Response.of_json(200, payloads.secret(record))

    @staticmethod
    def _open_secret(scope: SecretScope, name: str, body: dict[str, Any]) -> bytes:
        _check_name(name, "Secret")
        encrypted, key_id = body.get("encrypted_value"), body.get("key_id")
        if not isinstance(encrypted, str) or not isinstance(key_id, str):
            raise validation_failed(
                "Secret", "encrypted_value", "encrypted_value and key_id are required", "missing"
            )
        try:
            return scope.key.open(key_id, encrypted)
        except InvalidSecret as exc:
            raise validation_failed("Secret", "encrypted_value", str(exc)) from exc

    def _put_secret(self, req: Request, scope: SecretScope, name: str, level: str) -> Response:
        value = self._open_secret(scope, name, req.json_object())
        _check_room("Secret", level, scope.get(name), len(scope.secrets), SECRET_LIMITS)
        _, created = scope.put(name, value, req.now)
        return Response.of_json(201, {}) if created else Response.empty()

    @staticmethod
    def _delete_secret(scope: SecretScope, name: str) -> Response:
        if not scope.delete(name):
            raise not_found()
        return Response.empty()

    def list_env_secrets(self, req: Request, params: Params) -> Response:
        return self._list_secrets(req, self._env(params)[1].secrets)

    def env_public_key(self, req: Request, params: Params) -> Response:
        return self._public_key(self._env(params)[1].secrets)

    def get_env_secret(self, req: Request, params: Params) -> Response:
        return self._get_secret(self._env(params)[1].secrets, params["name"])

    def put_env_secret(self, req: Request, params: Params) -> Response:
        return self._put_secret(req, self._env(params)[1].secrets, params["name"], "environment")

    def delete_env_secret(self, req: Request, params: Params) -> Response:
        return self._delete_secret(self._env(params)[1].secrets, params["name"])

    # -- secret stores of a repository or organization: "actions" or "dependabot" -----------
    @staticmethod
    def _store(owner: Repository | Organization, store: str) -> SecretScope:
        """The secret scope of `store` ("actions" or "dependabot": its own key pair)."""
        return owner.dependabot if store == "dependabot" else owner.secrets

    def list_repo_secrets(self, req: Request, params: Params, *, store: str) -> Response:
        return self._list_secrets(req, self._store(self._repo(params), store))

    def repo_public_key(self, req: Request, params: Params, *, store: str) -> Response:
        return self._public_key(self._store(self._repo(params), store))

    def get_repo_secret(self, req: Request, params: Params, *, store: str) -> Response:
        return self._get_secret(self._store(self._repo(params), store), params["name"])

    def put_repo_secret(self, req: Request, params: Params, *, store: str) -> Response:
        scope = self._store(self._repo(params), store)
        return self._put_secret(req, scope, params["name"], "repository")

    def delete_repo_secret(self, req: Request, params: Params, *, store: str) -> Response:
        return self._delete_secret(self._store(self._repo(params), store), params["name"])

    def list_org_secrets(self, req: Request, params: Params, *, store: str) -> Response:
        org = self._org(params)
        records = self._store(org, store).sorted()
        chunk, headers = paginate(req, records, default=30, maximum=MAX_PER_PAGE)
        items = [payloads.org_secret(req.base_url, org, r, store) for r in chunk]
        return Response.of_json(200, {"total_count": len(records), "secrets": items}, headers)

    def org_public_key(self, req: Request, params: Params, *, store: str) -> Response:
        return self._public_key(self._store(self._org(params), store))

    def get_org_secret(self, req: Request, params: Params, *, store: str) -> Response:
        org = self._org(params)
        record = self._store(org, store).get(params["name"])
        if record is None:
            raise not_found()
        return Response.of_json(200, payloads.org_secret(req.base_url, org, record, store))

    def put_org_secret(self, req: Request, params: Params, *, store: str) -> Response:
        org = self._org(params)
        return self._put_org_secret(req, org, self._store(org, store), params["name"])

    def _put_org_secret(
        self, req: Request, org: Organization, scope: SecretScope, name: str
    ) -> Response:
        body = req.json_object()
        visibility = body.get("visibility")
        if visibility not in VISIBILITIES:
            raise validation_failed(
                "Secret", "visibility", "visibility must be all, private or selected", "missing"
            )
        selected = self._selected_ids(org, body, "Secret")
        value = self._open_secret(scope, name, body)
        existing, held = scope.get(name), len(scope.secrets)
        _check_room("Secret", "organization", existing, held, SECRET_LIMITS)
        record, created = scope.put(name, value, req.now)
        record.visibility = visibility
        record.selected_repository_ids = selected if visibility == "selected" else []
        return Response.of_json(201, {}) if created else Response.empty()

    def delete_org_secret(self, req: Request, params: Params, *, store: str) -> Response:
        return self._delete_secret(self._store(self._org(params), store), params["name"])

    # -- selected repositories of organization secrets and variables --------------------------
    def _selected_ids(self, org: Organization, body: dict[str, Any], resource: str) -> list[int]:
        """`selected_repository_ids` of a body: ids of repositories the organization owns."""
        selected = body.get("selected_repository_ids", [])
        if not isinstance(selected, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in selected
        ):
            raise validation_failed(resource, "selected_repository_ids", "must be integers")
        for ident in selected:
            repo = self.state.repository_by_id(ident)
            if repo is None or repo.owner.lower() != org.login.lower():
                raise validation_failed(
                    resource, "selected_repository_ids", f"repository {ident} is not in {org.login}"
                )
        return list(dict.fromkeys(selected))

    def _list_selected(
        self, req: Request, record: SecretRecord | VariableRecord | None
    ) -> Response:
        if record is None:
            raise not_found()
        if record.visibility != "selected":
            raise ApiError(409, "Visibility is not set to selected")
        repos = [r for i in record.selected_repository_ids if (r := self.state.repository_by_id(i))]
        items = [payloads.minimal_repository(req.base_url, r) for r in repos]
        return Response.of_json(200, {"total_count": len(items), "repositories": items})

    def _set_selected(
        self, req: Request, org: Organization, record: SecretRecord | VariableRecord | None
    ) -> Response:
        if record is None:
            raise not_found()
        body = req.json_object()
        if "selected_repository_ids" not in body:
            raise validation_failed(
                "Secret",
                "selected_repository_ids",
                "selected_repository_ids is required",
                "missing",
            )
        selected = self._selected_ids(org, body, "Secret")
        if record.visibility != "selected":
            raise ApiError(409, "Visibility is not set to selected")
        record.selected_repository_ids = selected
        return Response.empty()

    def list_org_secret_repos(self, req: Request, params: Params, *, store: str) -> Response:
        return self._list_selected(req, self._store(self._org(params), store).get(params["name"]))

    def set_org_secret_repos(self, req: Request, params: Params, *, store: str) -> Response:
        org = self._org(params)
        return self._set_selected(req, org, self._store(org, store).get(params["name"]))

    # -- organization variables ----------------------------------------------------------------
    def list_org_variables(self, req: Request, params: Params) -> Response:
        org = self._org(params)
        records = org.variables.sorted()
        chunk, headers = paginate(req, records, default=10, maximum=MAX_VARIABLES_PER_PAGE)
        items = [payloads.org_variable(req.base_url, org, r) for r in chunk]
        return Response.of_json(200, {"total_count": len(records), "variables": items}, headers)

    def create_org_variable(self, req: Request, params: Params) -> Response:
        org = self._org(params)
        body = req.json_object()
        visibility = body.get("visibility")
        if visibility not in VISIBILITIES:
            raise validation_failed(
                "Variable", "visibility", "visibility must be all, private or selected", "missing"
            )
        selected = self._selected_ids(org, body, "Variable")
        response = self._create_variable(req, org.variables, "organization")
        record = org.variables.get(str(body["name"]))
        assert record is not None
        record.visibility = visibility
        record.selected_repository_ids = selected if visibility == "selected" else []
        return response

    def get_org_variable(self, req: Request, params: Params) -> Response:
        org = self._org(params)
        record = org.variables.get(params["name"])
        if record is None:
            raise not_found()
        return Response.of_json(200, payloads.org_variable(req.base_url, org, record))

    def update_org_variable(self, req: Request, params: Params) -> Response:
        org = self._org(params)
        body = req.json_object()
        visibility = body.get("visibility")
        if visibility is not None and visibility not in VISIBILITIES:
            raise validation_failed(
                "Variable", "visibility", "visibility must be all, private or selected"
            )
        selected = self._selected_ids(org, body, "Variable")
        response = self._update_variable(req, org.variables, params["name"])
        record = org.variables.get(str(body.get("name") or params["name"]))
        assert record is not None
        if visibility is not None:
            record.visibility = visibility
        if record.visibility != "selected":
            record.selected_repository_ids = []
        elif "selected_repository_ids" in body:
            record.selected_repository_ids = selected
        return response

    def delete_org_variable(self, req: Request, params: Params) -> Response:
        return self._delete_variable(self._org(params).variables, params["name"])

    def list_org_variable_repos(self, req: Request, params: Params) -> Response:
        return self._list_selected(req, self._org(params).variables.get(params["name"]))

    def set_org_variable_repos(self, req: Request, params: Params) -> Response:
        org = self._org(params)
        return self._set_selected(req, org, org.variables.get(params["name"]))

    # -- variables ---------------------------------------------------------------------------
    @staticmethod
    def _list_variables(req: Request, scope: VariableScope) -> Response:
        records = scope.sorted()
        chunk, headers = paginate(req, records, default=10, maximum=MAX_VARIABLES_PER_PAGE)
        body = {"total_count": len(records), "variables": [payloads.variable(r) for r in chunk]}
        return Response.of_json(200, body, headers)

    @staticmethod
    def _create_variable(req: Request, scope: VariableScope, level: str) -> Response:
        body = req.json_object()
        name, value = body.get("name"), body.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            raise validation_failed("Variable", "name", "name and value are required", "missing")
        _check_name(name, "Variable")
        _check_variable_value(value)
        if scope.get(name) is not None:
            raise ApiError(409, "Already exists - Variable already exists")
        _check_room("Variable", level, None, len(scope.variables), VARIABLE_LIMITS)
        scope.create(name, value, req.now)
        return Response.of_json(201, {})

    @staticmethod
    def _get_variable(scope: VariableScope, name: str) -> Response:
        record = scope.get(name)
        if record is None:
            raise not_found()
        return Response.of_json(200, payloads.variable(record))

    @staticmethod
    def _update_variable(req: Request, scope: VariableScope, name: str) -> Response:
        record = scope.get(name)
        if record is None:
            raise not_found()
        body = req.json_object()
        new_name, value = body.get("name"), body.get("value")
        if new_name is not None and not isinstance(new_name, str):
            raise validation_failed("Variable", "name", "name must be a string")
        if value is not None:
            if not isinstance(value, str):
                raise validation_failed("Variable", "value", "value must be a string")
            _check_variable_value(value)
        if new_name is not None and new_name.upper() != record.name:
            _check_name(new_name, "Variable")
            if scope.get(new_name) is not None:
                raise ApiError(409, "Already exists - Variable already exists")
            record = scope.rename(record.name, new_name)
        if value is not None:
            record.value = value
        record.updated_at = req.now
        return Response.empty()

    @staticmethod
    def _delete_variable(scope: VariableScope, name: str) -> Response:
        if not scope.delete(name):
            raise not_found()
        return Response.empty()

    def list_env_variables(self, req: Request, params: Params) -> Response:
        return self._list_variables(req, self._env(params)[1].variables)

    def create_env_variable(self, req: Request, params: Params) -> Response:
        return self._create_variable(req, self._env(params)[1].variables, "environment")

    def get_env_variable(self, req: Request, params: Params) -> Response:
        return self._get_variable(self._env(params)[1].variables, params["name"])

    def update_env_variable(self, req: Request, params: Params) -> Response:
        return self._update_variable(req, self._env(params)[1].variables, params["name"])

    def delete_env_variable(self, req: Request, params: Params) -> Response:
        return self._delete_variable(self._env(params)[1].variables, params["name"])

    def list_repo_variables(self, req: Request, params: Params) -> Response:
        return self._list_variables(req, self._repo(params).variables)

    def create_repo_variable(self, req: Request, params: Params) -> Response:
        return self._create_variable(req, self._repo(params).variables, "repository")

    def get_repo_variable(self, req: Request, params: Params) -> Response:
        return self._get_variable(self._repo(params).variables, params["name"])

    def update_repo_variable(self, req: Request, params: Params) -> Response:
        return self._update_variable(req, self._repo(params).variables, params["name"])

    def delete_repo_variable(self, req: Request, params: Params) -> Response:
        return self._delete_variable(self._repo(params).variables, params["name"])

    # -- rate limit --------------------------------------------------------------------------
    def get_rate_limit(self, req: Request, params: Params) -> Response:
        return Response.of_json(
            200, payloads.rate_limit_overview(self.state.rate.snapshot(req.now))
        )

    # -- dispatch ----------------------------------------------------------------------------
    def handle(self, route: Route, req: Request, params: Params) -> Response:
        """Run one operation under the state lock; ApiErrors become GitHub error bodies."""
        with self.state.lock:
            try:
                return route.handler(self, req, params)
            except ApiError as exc:
                return exc.response()


def _check_room(
    resource: str, level: str, existing: object, held: int, limits: dict[str, int]
) -> None:
    """GitHub's 422 when creating one more secret/variable would pass the level's limit."""
    if existing is None and held >= limits[level]:
        noun = "secrets" if resource == "Secret" else "variables"
        article = "a" if level == "repository" else "an"
        message = f"{resource} limit reached: {article} {level} can have at most"
        raise validation_failed(resource, "name", f"{message} {limits[level]} {noun}", "custom")


def _check_variable_value(value: str) -> None:
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise validation_failed("Variable", "value", "value exceeds 48 KB")


def _environment_settings(body: dict[str, Any]) -> dict[str, Any]:
    """Validate a create-or-update-environment body; returns Environment attributes to set."""
    settings: dict[str, Any] = {}
    if "wait_timer" in body:
        timer = body["wait_timer"]
        if (
            isinstance(timer, bool)
            or not isinstance(timer, int)
            or not 0 <= timer <= MAX_WAIT_TIMER
        ):
            raise validation_failed("Environment", "wait_timer", "must be 0..43200")
        settings["wait_timer"] = timer
    if "prevent_self_review" in body:
        if not isinstance(body["prevent_self_review"], bool):
            raise validation_failed("Environment", "prevent_self_review", "must be a boolean")
        settings["prevent_self_review"] = body["prevent_self_review"]
    if "reviewers" in body:
        settings["reviewers"] = _reviewers(body["reviewers"])
    if "deployment_branch_policy" in body:
        settings["branch_policy"] = _branch_policy(body["deployment_branch_policy"])
    return settings


def _reviewers(raw: Any) -> list[Reviewer]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_REVIEWERS:
        raise validation_failed("Environment", "reviewers", "at most 6 reviewers")
    reviewers = []
    for item in raw:
        if (
            not isinstance(item, dict)
            or item.get("type") not in ("User", "Team")
            or isinstance(item.get("id"), bool)
            or not isinstance(item.get("id"), int)
        ):
            raise validation_failed("Environment", "reviewers", "each needs type and id")
        reviewers.append(Reviewer(item["type"], item["id"]))
    return reviewers


def _branch_policy(raw: Any) -> dict[str, bool] | None:
    if raw is None:
        return None
    keys = ("protected_branches", "custom_branch_policies")
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), bool) for k in keys):
        raise validation_failed("Environment", "deployment_branch_policy", "invalid policy")
    if raw["protected_branches"] == raw["custom_branch_policies"]:
        raise validation_failed(
            "Environment",
            "deployment_branch_policy",
            "exactly one of protected_branches and custom_branch_policies must be true"
            " (null lets every branch deploy)",
        )
    return {k: raw[k] for k in keys}


_SEG = r"[^/]+"
_R = rf"/repos/(?P<owner>{_SEG})/(?P<repo>{_SEG})"
_E = rf"{_R}/environments/(?P<env>{_SEG})"
_O = rf"/orgs/(?P<org>{_SEG})"
_N = rf"(?P<name>{_SEG})"
_BP = rf"{_E}/deployment-branch-policies/(?P<policy_id>{_SEG})"

A = GitHubApi


# The handlers of a secret store, in the order of _secret_routes' shapes (a repository's
# store has no selected repositories); each takes the store as the keyword `store`.
_SecretHandlers = tuple[Callable[..., Response], ...]
_REPO_SECRET_HANDLERS: _SecretHandlers = (
    A.list_repo_secrets,
    A.repo_public_key,
    A.get_repo_secret,
    A.put_repo_secret,
    A.delete_repo_secret,
)
_ORG_SECRET_HANDLERS: _SecretHandlers = (
    A.list_org_secrets,
    A.org_public_key,
    A.get_org_secret,
    A.put_org_secret,
    A.delete_org_secret,
    A.list_org_secret_repos,
    A.set_org_secret_repos,
)


def _secret_routes(base: str, level: str, store: str) -> list[tuple[str, str, str, Handler]]:
    """The routes of one secret store ("actions" or "dependabot") of a repository (`level`
    "repo", `base` _R) or an organization ("org", _O; with its selected repositories).
    The literal ``public-key`` comes before ``{name}`` so it wins."""
    path = f"{base}/{store}/secrets"
    named = f"{path}/{_N}"
    shapes = [
        ("GET", path, f"list-{level}-secrets"),
        ("GET", f"{path}/public-key", f"get-{level}-public-key"),
        ("GET", named, f"get-{level}-secret"),
        ("PUT", named, f"create-or-update-{level}-secret"),
        ("DELETE", named, f"delete-{level}-secret"),
        ("GET", f"{named}/repositories", "list-selected-repos-for-org-secret"),
        ("PUT", f"{named}/repositories", "set-selected-repos-for-org-secret"),
    ]
    handlers = _REPO_SECRET_HANDLERS if level == "repo" else _ORG_SECRET_HANDLERS
    return [
        (method, pattern, f"{store}/{op}", partial(handler, store=store))
        for (method, pattern, op), handler in zip(shapes, handlers, strict=False)
    ]


_TABLE: list[tuple[str, str, str, Handler]] = [
    ("GET", _R, "repos/get", A.get_repo),
    ("GET", f"{_R}/environments", "repos/get-all-environments", A.list_environments),
    ("GET", _E, "repos/get-environment", A.get_environment),
    ("PUT", _E, "repos/create-or-update-environment", A.put_environment),
    ("DELETE", _E, "repos/delete-an-environment", A.delete_environment),
    ("GET", f"{_E}/secrets", "actions/list-environment-secrets", A.list_env_secrets),
    ("GET", f"{_E}/secrets/public-key", "actions/get-environment-public-key", A.env_public_key),
    ("GET", f"{_E}/secrets/{_N}", "actions/get-environment-secret", A.get_env_secret),
    ("PUT", f"{_E}/secrets/{_N}", "actions/create-or-update-environment-secret", A.put_env_secret),
    ("DELETE", f"{_E}/secrets/{_N}", "actions/delete-environment-secret", A.delete_env_secret),
    ("GET", f"{_E}/variables", "actions/list-environment-variables", A.list_env_variables),
    ("POST", f"{_E}/variables", "actions/create-environment-variable", A.create_env_variable),
    ("GET", f"{_E}/variables/{_N}", "actions/get-environment-variable", A.get_env_variable),
    ("PATCH", f"{_E}/variables/{_N}", "actions/update-environment-variable", A.update_env_variable),
    (
        "DELETE",
        f"{_E}/variables/{_N}",
        "actions/delete-environment-variable",
        A.delete_env_variable,
    ),
    *_secret_routes(_R, "repo", "actions"),
    ("GET", f"{_R}/actions/variables", "actions/list-repo-variables", A.list_repo_variables),
    ("POST", f"{_R}/actions/variables", "actions/create-repo-variable", A.create_repo_variable),
    ("GET", f"{_R}/actions/variables/{_N}", "actions/get-repo-variable", A.get_repo_variable),
    (
        "PATCH",
        f"{_R}/actions/variables/{_N}",
        "actions/update-repo-variable",
        A.update_repo_variable,
    ),
    (
        "DELETE",
        f"{_R}/actions/variables/{_N}",
        "actions/delete-repo-variable",
        A.delete_repo_variable,
    ),
    ("GET", f"{_O}/repos", "repos/list-for-org", A.list_org_repos),
    *_secret_routes(_O, "org", "actions"),
    ("GET", f"{_O}/actions/variables", "actions/list-org-variables", A.list_org_variables),
    ("POST", f"{_O}/actions/variables", "actions/create-org-variable", A.create_org_variable),
    ("GET", f"{_O}/actions/variables/{_N}", "actions/get-org-variable", A.get_org_variable),
    ("PATCH", f"{_O}/actions/variables/{_N}", "actions/update-org-variable", A.update_org_variable),
    (
        "DELETE",
        f"{_O}/actions/variables/{_N}",
        "actions/delete-org-variable",
        A.delete_org_variable,
    ),
    (
        "GET",
        f"{_O}/actions/variables/{_N}/repositories",
        "actions/list-selected-repos-for-org-variable",
        A.list_org_variable_repos,
    ),
    (
        "PUT",
        f"{_O}/actions/variables/{_N}/repositories",
        "actions/set-selected-repos-for-org-variable",
        A.set_org_variable_repos,
    ),
    *_secret_routes(_R, "repo", "dependabot"),
    *_secret_routes(_O, "org", "dependabot"),
    ("GET", "/rate_limit", "rate-limit/get", A.get_rate_limit),
    ("GET", "/app/installations", "apps/list-installations", apps.list_installations),
    (
        "POST",
        r"/app/installations/(?P<installation_id>[0-9]+)/access_tokens",
        "apps/create-installation-access-token",
        apps.create_access_token,
    ),
    ("GET", f"{_R}/installation", "apps/get-repo-installation", apps.get_repo_installation),
    ("GET", f"{_O}/installation", "apps/get-org-installation", apps.get_org_installation),
    ("GET", rf"/users/(?P<username>{_SEG})", "users/get-by-username", A.get_user),
    ("GET", rf"{_O}/teams/(?P<team_slug>{_SEG})", "teams/get-by-name", A.get_team),
    (
        "GET",
        f"{_E}/deployment-branch-policies",
        "repos/list-deployment-branch-policies",
        A.list_branch_policies,
    ),
    (
        "POST",
        f"{_E}/deployment-branch-policies",
        "repos/create-deployment-branch-policy",
        A.create_branch_policy,
    ),
    (
        "GET",
        _BP,
        "repos/get-deployment-branch-policy",
        A.get_branch_policy,
    ),
    (
        "DELETE",
        _BP,
        "repos/delete-deployment-branch-policy",
        A.delete_branch_policy,
    ),
]

ROUTES: tuple[Route, ...] = tuple(
    Route(method, re.compile(pattern + "/?"), op, handler)
    for method, pattern, op, handler in _TABLE
)
OPERATIONS: frozenset[tuple[str, str]] = frozenset((r.method, r.operation) for r in ROUTES)


def match_route(method: str, path: str) -> tuple[Route, Params] | None:
    """The route for a request and its percent-decoded path parameters, if any matches.

    Literal segments (``public-key``) are listed before ``{name}`` so they win.
    """
    for route in ROUTES:
        if route.method != method:
            continue
        found = route.pattern.fullmatch(path)
        if found is not None:
            return route, {k: unquote(v) for k, v in found.groupdict().items()}
    return None
