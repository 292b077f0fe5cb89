"""Every successful response of all 63 operations validates against GitHub's OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from envmatrix.sandbox import GitHubSandbox
from tests.envmatrix.sandbox import ORG, REPO, TOKEN, Reply, call, seal
from tests.envmatrix.sandbox.test_apps import app_jwt
from tests.github_app import APP_ID, app_key

# GitHub's OpenAPI description, the operations envmatrix uses (vendored: see its README/LICENSE).
SPEC_DIR = Path(__file__).resolve().parents[2] / "data" / "github-openapi"
SPEC_FILE = SPEC_DIR / "api.github.com.subset.json"


@pytest.fixture(scope="module")
def spec_document() -> dict[str, Any]:
    if not SPEC_FILE.is_file():
        pytest.fail(f"OpenAPI document not found at {SPEC_FILE}")
    document: dict[str, Any] = json.loads(SPEC_FILE.read_text())
    return document


@pytest.fixture(scope="module")
def openapi(spec_document: dict[str, Any]) -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC_FILE))


class _Request:
    """Minimal openapi-core request: the document's server URL plus the path as sent."""

    def __init__(self, method: str, target: str, body: bytes | None) -> None:
        split = urlsplit(target)
        self.host_url = "https://api.github.com"
        self.path = split.path
        self.method = method.lower()
        self.body = body
        self.content_type = "application/json"
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(split.query)),
            header=Headers(),
            cookie=ImmutableMultiDict(),
        )


class _Response:
    """Minimal openapi-core response built from a raw reply."""

    def __init__(self, reply: Reply) -> None:
        self.status_code = reply.status
        self.headers = Headers(list(reply.headers.items()))
        self.data = reply.body
        self.content_type = reply.headers.get("Content-Type", "application/json").split(";")[0]


def _document_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), op["operationId"])
        for item in document["paths"].values()
        for method, op in item.items()
        if method != "parameters"
    }


class Checker:
    """Sends requests, asserts the expected status, validates the answer, records op ids."""

    def __init__(self, sandbox: GitHubSandbox, openapi: OpenAPI) -> None:
        self.sandbox = sandbox
        self.openapi = openapi
        self.seen: set[tuple[str, str]] = set()

    def send(
        self,
        method: str,
        target: str,
        body: Any = None,
        *,
        expect: int,
        headers: dict[str, str] | None = None,
        token: str | None = TOKEN,
    ) -> Reply:
        before = self.sandbox.request_counts()
        reply = call(self.sandbox.url, method, target, body, headers=headers, token=token)
        assert reply.status == expect, (method, target, reply.status, reply.body[:300])
        payload = None if body is None else json.dumps(body).encode()
        self.openapi.validate_response(_Request(method, target, payload), _Response(reply))
        self.seen.update((self.sandbox.request_counts() - before).keys())
        return reply

    def secret_body(self, key_path: str, value: str) -> dict[str, str]:
        """Encrypt ``value`` with the key served at ``key_path`` (validated like any GET)."""
        key = self.send("GET", key_path, expect=200).json()
        assert set(key) == {"key_id", "key"}
        return {"encrypted_value": seal(key["key"], value), "key_id": key["key_id"]}


@pytest.fixture
def checker(sandbox: GitHubSandbox, openapi: OpenAPI) -> Checker:
    return Checker(sandbox, openapi)


def test_spec_document_has_the_63_operations(spec_document: dict[str, Any]) -> None:
    assert len(_document_operations(spec_document)) == 63


def test_every_operation_validates(checker: Checker, spec_document: dict[str, Any]) -> None:
    send = checker.send
    repo, env = f"/repos/{REPO}", f"/repos/{REPO}/environments/prod%20eu"
    checker.sandbox.add_user("octo-admin")
    checker.sandbox.add_team(ORG, "release")

    assert send("GET", repo, expect=200).json()["full_name"] == REPO
    user = send("GET", "/users/Octo-Admin", expect=200).json()
    team = send("GET", f"/orgs/{ORG}/teams/release", expect=200).json()
    assert (user["login"], team["slug"], team["organization"]["login"]) == (
        "octo-admin",
        "release",
        ORG,
    )
    full_settings = {
        "wait_timer": 5,
        "prevent_self_review": True,
        "reviewers": [{"type": "User", "id": user["id"]}, {"type": "Team", "id": team["id"]}],
        "deployment_branch_policy": {"protected_branches": True, "custom_branch_policies": False},
    }
    created = send("PUT", env, full_settings, expect=200).json()
    assert created["name"] == "prod eu"
    assert [r["type"] for r in created["protection_rules"]] == [
        "wait_timer",
        "required_reviewers",
        "branch_policy",
    ]
    reviewers = [r["reviewer"] for r in created["protection_rules"][1]["reviewers"]]
    assert [reviewers[0]["login"], reviewers[1]["slug"]] == ["octo-admin", "release"]
    _exercise_branch_policies(checker, env)
    send("PUT", f"/repos/{REPO}/environments/staging", expect=200)
    listed = send("GET", f"{repo}/environments", expect=200).json()
    assert [e["name"] for e in listed["environments"]] == ["prod eu", "staging"]
    assert send("GET", env, expect=200).json()["url"].endswith("/environments/prod%20eu")

    _exercise_secrets(checker, f"{env}/secrets")
    _exercise_variables(checker, f"{env}/variables")
    _exercise_secrets(checker, f"{repo}/actions/secrets")
    _exercise_variables(checker, f"{repo}/actions/variables")
    _exercise_org_secrets(checker, f"/orgs/{ORG}/actions/secrets")
    _exercise_secrets(checker, f"{repo}/dependabot/secrets")
    _exercise_org_secrets(checker, f"/orgs/{ORG}/dependabot/secrets")
    _exercise_org_variables(checker, f"/orgs/{ORG}/actions/variables")
    listed_repos = send("GET", f"/orgs/{ORG}/repos?per_page=1", expect=200)
    assert [r["full_name"] for r in listed_repos.json()] == [REPO]

    rate = send("GET", "/rate_limit", expect=200).json()
    assert rate["resources"]["core"]["limit"] == 5000
    send("DELETE", f"/repos/{REPO}/environments/staging", expect=204)
    _exercise_app(checker)

    assert checker.seen == _document_operations(spec_document)


def _exercise_app(checker: Checker) -> None:
    send = checker.send
    installations = checker.sandbox.register_app(APP_ID, app_key().public_pem)
    auth = {"Authorization": f"Bearer {app_jwt()}"}
    listed = send("GET", "/app/installations?per_page=100", headers=auth, expect=200).json()
    assert [i["id"] for i in listed] == [installations[ORG]]
    assert send("GET", f"/repos/{REPO}/installation", headers=auth, expect=200).json()["id"]
    assert send("GET", f"/orgs/{ORG}/installation", headers=auth, expect=200).json()["app_id"]
    path = f"/app/installations/{installations[ORG]}/access_tokens"
    token = send("POST", path, {"permissions": {}}, headers=auth, expect=201).json()["token"]
    assert send("GET", f"/repos/{REPO}", token=token, expect=200).json()["full_name"] == REPO


def _exercise_branch_policies(checker: Checker, env: str) -> None:
    send, base = checker.send, f"{env}/deployment-branch-policies"
    custom = {
        "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True}
    }
    send("PUT", env, custom, expect=200)
    made = send("POST", base, {"name": "release/*"}, expect=200).json()
    assert (made["name"], made["type"]) == ("release/*", "branch")
    tag = send("POST", base, {"name": "v*", "type": "tag"}, expect=200).json()
    again = send("POST", base, {"name": "v*", "type": "tag"}, expect=303)
    assert again.headers["Location"].endswith(f"/deployment-branch-policies/{tag['id']}")
    listing = send("GET", f"{base}?per_page=1", expect=200).json()
    assert listing["total_count"] == 2
    assert send("GET", f"{base}/{tag['id']}", expect=200).json()["type"] == "tag"
    send("DELETE", f"{base}/{made['id']}", expect=204)
    assert [p["name"] for p in send("GET", base, expect=200).json()["branch_policies"]] == ["v*"]


def _exercise_secrets(checker: Checker, base: str) -> None:
    send = checker.send
    body = checker.secret_body(f"{base}/public-key", "first")
    assert send("PUT", f"{base}/db_password", body, expect=201).body == b"{}"
    assert send("PUT", f"{base}/DB_PASSWORD", body, expect=204).body == b""
    one = send("GET", f"{base}/Db_Password", expect=200).json()
    assert one["name"] == "DB_PASSWORD"
    listing = send("GET", f"{base}?per_page=5", expect=200).json()
    assert listing["total_count"] == 1
    assert [s["name"] for s in listing["secrets"]] == ["DB_PASSWORD"]
    send("DELETE", f"{base}/db_password", expect=204)


def _exercise_variables(checker: Checker, base: str) -> None:
    send = checker.send
    assert send("POST", base, {"name": "region", "value": "eu-1"}, expect=201).body == b"{}"
    assert send("GET", f"{base}/REGION", expect=200).json()["value"] == "eu-1"
    send("PATCH", f"{base}/region", {"value": "eu-2"}, expect=204)
    listing = send("GET", base, expect=200).json()
    assert [(v["name"], v["value"]) for v in listing["variables"]] == [("REGION", "eu-2")]
    send("DELETE", f"{base}/region", expect=204)


def _exercise_org_secrets(checker: Checker, base: str) -> None:
    send = checker.send
    repo_id = send("GET", f"/repos/{REPO}", expect=200).json()["id"]
    body: dict[str, Any] = {
        **checker.secret_body(f"{base}/public-key", "org"),
        "visibility": "selected",
        "selected_repository_ids": [repo_id],
    }
    assert send("PUT", f"{base}/SHARED", body, expect=201).body == b"{}"
    selected = send("GET", f"{base}/shared", expect=200).json()
    assert selected["selected_repositories_url"].endswith("/SHARED/repositories")
    _exercise_selected(checker, f"{base}/SHARED/repositories", repo_id)
    body["visibility"] = "all"
    send("PUT", f"{base}/SHARED", body, expect=204)
    assert send("GET", f"{base}/shared", expect=200).json()["visibility"] == "all"
    assert send("GET", base, expect=200).json()["total_count"] == 1
    send("DELETE", f"{base}/shared", expect=204)


def _exercise_selected(checker: Checker, path: str, repo_id: int) -> None:
    send = checker.send
    listed = send("GET", path, expect=200).json()
    assert [r["full_name"] for r in listed["repositories"]] == [REPO]
    send("PUT", path, {"selected_repository_ids": []}, expect=204)
    assert send("GET", path, expect=200).json()["total_count"] == 0
    send("PUT", path, {"selected_repository_ids": [repo_id]}, expect=204)


def _exercise_org_variables(checker: Checker, base: str) -> None:
    send = checker.send
    repo_id = send("GET", f"/repos/{REPO}", expect=200).json()["id"]
    body = {"name": "region", "value": "eu-1", "visibility": "selected"}
    body["selected_repository_ids"] = [repo_id]  # type: ignore[assignment]
    assert send("POST", base, body, expect=201).body == b"{}"
    one = send("GET", f"{base}/REGION", expect=200).json()
    assert (one["value"], one["visibility"]) == ("eu-1", "selected")
    _exercise_selected(checker, f"{base}/REGION/repositories", repo_id)
    send("PATCH", f"{base}/region", {"value": "eu-2", "visibility": "private"}, expect=204)
    listing = send("GET", base, expect=200).json()
    assert [(v["name"], v["value"], v["visibility"]) for v in listing["variables"]] == [
        ("REGION", "eu-2", "private")
    ]
    send("DELETE", f"{base}/region", expect=204)


def test_304_is_a_documented_answer_for_rate_limit(
    sandbox: GitHubSandbox, openapi: OpenAPI
) -> None:
    first = call(sandbox.url, "GET", "/rate_limit")
    again = call(
        sandbox.url, "GET", "/rate_limit", headers={"If-None-Match": first.headers["ETag"]}
    )
    assert again.status == 304
    assert again.body == b""
    openapi.validate_response(_Request("GET", "/rate_limit", None), _Response(again))
