"""GitHub's HTTP behaviour as seen on the wire: errors, validation, Date, Link, ETag, rate limit."""

from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest

from envmatrix.sandbox import GitHubSandbox
from tests.envmatrix.sandbox import REPO, TOKEN, call, put_secret_body, seal


def _iso_plus(moment: datetime, seconds: int) -> str:
    return (moment + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


ENV = f"/repos/{REPO}/environments/staging"
SECRETS = f"{ENV}/secrets"


@pytest.fixture
def staging(sandbox: GitHubSandbox) -> GitHubSandbox:
    sandbox.create_environment(REPO, "staging")
    return sandbox


def test_missing_or_wrong_token_is_401_with_githubs_body(sandbox: GitHubSandbox) -> None:
    expected = {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }
    for token in (None, "wrong"):
        reply = call(sandbox.url, "GET", f"/repos/{REPO}", token=token)
        assert reply.status == 401
        assert reply.json() == expected
    bearer = call(
        sandbox.url, "GET", f"/repos/{REPO}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert bearer.status == 200


def test_unknown_repo_environment_and_path_are_404(staging: GitHubSandbox) -> None:
    for path in (
        "/repos/occ-labs/missing",
        f"/repos/{REPO}/environments/prod",
        f"{SECRETS}/NOPE",
        f"{ENV}/variables/NOPE",
        "/orgs/someone-else/actions/secrets",
        "/not/a/route",
    ):
        reply = call(staging.url, "GET", path)
        assert reply.status == 404, path
        assert reply.json()["message"] == "Not Found"
        assert reply.json()["status"] == "404"


def test_repository_lookup_is_case_insensitive(sandbox: GitHubSandbox) -> None:
    reply = call(sandbox.url, "GET", "/repos/OCC-Labs/Operator-Console")
    assert reply.status == 200
    assert reply.json()["full_name"] == REPO


def test_secret_stored_upper_case_and_found_case_insensitively(staging: GitHubSandbox) -> None:
    body = put_secret_body(staging.url, f"{SECRETS}/public-key", "v1")
    assert call(staging.url, "PUT", f"{SECRETS}/api_Key", body).status == 201
    listed = call(staging.url, "GET", SECRETS).json()
    assert [s["name"] for s in listed["secrets"]] == ["API_KEY"]
    assert call(staging.url, "GET", f"{SECRETS}/Api_KEY").json()["name"] == "API_KEY"


@pytest.mark.parametrize("name", ["9LIVES", "GITHUB_SHA", "Github_x", "bad-name", "a.b"])
def test_invalid_names_are_422(staging: GitHubSandbox, name: str) -> None:
    body = put_secret_body(staging.url, f"{SECRETS}/public-key", "v")
    reply = call(staging.url, "PUT", f"{SECRETS}/{name}", body)
    assert reply.status == 422
    assert reply.json()["message"] == "Validation Failed"
    assert call(staging.url, "POST", f"{ENV}/variables", {"name": name, "value": "x"}).status == 422


def test_value_over_48_kb_is_422_and_48_kb_is_accepted(staging: GitHubSandbox) -> None:
    key_path = f"{SECRETS}/public-key"
    big = call(
        staging.url, "PUT", f"{SECRETS}/BIG", put_secret_body(staging.url, key_path, "x" * 49153)
    )
    assert big.status == 422
    exact = call(
        staging.url, "PUT", f"{SECRETS}/BIG", put_secret_body(staging.url, key_path, "x" * 49152)
    )
    assert exact.status == 201
    assert staging.secret_value(REPO, "staging", "BIG") == "x" * 49152


def test_ciphertext_for_another_key_is_422(staging: GitHubSandbox) -> None:
    repo_key = call(staging.url, "GET", f"/repos/{REPO}/actions/secrets/public-key").json()
    env_key = call(staging.url, "GET", f"{SECRETS}/public-key").json()
    assert repo_key["key"] != env_key["key"]  # every scope has its own key pair
    wrong_box = {"encrypted_value": seal(repo_key["key"], "v"), "key_id": env_key["key_id"]}
    wrong_id = {"encrypted_value": seal(env_key["key"], "v"), "key_id": repo_key["key_id"]}
    not_b64 = {"encrypted_value": "@@@", "key_id": env_key["key_id"]}
    junk = {"encrypted_value": base64.b64encode(b"x" * 64).decode(), "key_id": env_key["key_id"]}
    for body in (wrong_box, wrong_id, not_b64, junk, {"key_id": env_key["key_id"]}):
        assert call(staging.url, "PUT", f"{SECRETS}/S", body).status == 422
    assert staging.secret_value(REPO, "staging", "S") is None


def test_org_secret_requires_visibility(sandbox: GitHubSandbox) -> None:
    base = "/orgs/occ-labs/actions/secrets"
    body = put_secret_body(sandbox.url, f"{base}/public-key", "v")
    assert call(sandbox.url, "PUT", f"{base}/X", body).status == 422
    assert call(sandbox.url, "PUT", f"{base}/X", {**body, "visibility": "public"}).status == 422
    assert call(sandbox.url, "PUT", f"{base}/X", {**body, "visibility": "private"}).status == 201


def test_environment_settings_validation(sandbox: GitHubSandbox) -> None:
    env = f"/repos/{REPO}/environments/prod"
    both = {
        "deployment_branch_policy": {"protected_branches": True, "custom_branch_policies": True}
    }
    for body in (
        {"wait_timer": 43201},
        {"reviewers": [{"type": "User", "id": i} for i in range(7)]},
        both,
    ):
        assert call(sandbox.url, "PUT", env, body).status == 422
    assert sandbox.environment_names(REPO) == []
    assert (
        call(sandbox.url, "PUT", env, {"wait_timer": 43200}).json()["protection_rules"][0][
            "wait_timer"
        ]
        == 43200
    )


def test_deployment_branch_policies_follow_github_rules(sandbox: GitHubSandbox) -> None:
    env = f"/repos/{REPO}/environments/prod"
    base = f"{env}/deployment-branch-policies"
    neither = {
        "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": False}
    }
    assert call(sandbox.url, "PUT", env, neither).status == 422  # one of the two must be true
    assert call(sandbox.url, "PUT", env).status == 200
    # patterns exist only under custom_branch_policies: 404 otherwise, as GitHub documents
    assert call(sandbox.url, "POST", base, {"name": "main"}).status == 404
    custom = {
        "deployment_branch_policy": {"protected_branches": False, "custom_branch_policies": True}
    }
    assert call(sandbox.url, "PUT", env, custom).status == 200
    for body in ({"name": ""}, {"name": "main", "type": "commit"}, {"type": "tag"}):
        assert call(sandbox.url, "POST", base, body).status == 422
    made = call(sandbox.url, "POST", base, {"name": "main"}).json()
    assert call(sandbox.url, "POST", base, {"name": "main", "type": "tag"}).status == 200
    assert call(sandbox.url, "POST", base, {"name": "main"}).status == 303
    assert call(sandbox.url, "GET", f"{base}/999999").status == 404
    assert call(sandbox.url, "DELETE", f"{base}/{made['id']}").status == 204
    assert call(sandbox.url, "DELETE", f"{base}/{made['id']}").status == 404
    assert sandbox.environment_protection(REPO, "prod")["deployment_branches"] == ["tag:main"]
    protected = {
        "deployment_branch_policy": {"protected_branches": True, "custom_branch_policies": False}
    }
    assert call(sandbox.url, "PUT", env, protected).status == 200
    assert call(sandbox.url, "GET", base).json()["total_count"] == 0  # patterns went with custom


def test_users_and_teams_are_found_by_name_ignoring_case(sandbox: GitHubSandbox) -> None:
    user = sandbox.add_user("Octo-Admin")
    team = sandbox.add_team("occ-labs", "Release")
    assert call(sandbox.url, "GET", "/users/octo-admin").json()["id"] == user
    assert call(sandbox.url, "GET", "/orgs/OCC-LABS/teams/release").json()["id"] == team
    assert call(sandbox.url, "GET", "/users/ghost").status == 404
    assert call(sandbox.url, "GET", "/orgs/occ-labs/teams/ghost").status == 404
    assert call(sandbox.url, "GET", "/orgs/nowhere/teams/release").status == 404
    reviewers = [{"type": "User", "id": user}, {"type": "Team", "id": team}]
    shown = call(sandbox.url, "PUT", f"/repos/{REPO}/environments/prod", {"reviewers": reviewers})
    listed = shown.json()["protection_rules"][0]["reviewers"]
    assert [r["reviewer"].get("login") or r["reviewer"]["slug"] for r in listed] == [
        "Octo-Admin",
        "Release",
    ]
    assert listed[1]["reviewer"]["html_url"].endswith("/orgs/occ-labs/teams/Release")


def test_url_encoded_environment_names(sandbox: GitHubSandbox) -> None:
    assert call(sandbox.url, "PUT", f"/repos/{REPO}/environments/prod%20eu%2F1").status == 200
    assert sandbox.environment_names(REPO) == ["prod eu/1"]
    got = call(sandbox.url, "GET", f"/repos/{REPO}/environments/prod%20eu%2F1").json()
    assert got["name"] == "prod eu/1"
    assert got["url"] == f"{sandbox.url}/repos/{REPO}/environments/prod%20eu%2F1"


def test_date_header_equals_updated_at_of_the_write(staging: GitHubSandbox) -> None:
    body = put_secret_body(staging.url, f"{SECRETS}/public-key", "v")
    put = call(staging.url, "PUT", f"{SECRETS}/STAMP", body)
    written_at = parsedate_to_datetime(put.headers["Date"])
    got = call(staging.url, "GET", f"{SECRETS}/STAMP").json()
    assert got["updated_at"] == written_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert got["created_at"] == got["updated_at"]

    staging.advance_clock(5)
    staging.write_secret_outside(REPO, "staging", "STAMP", "by hand")
    later = call(staging.url, "GET", f"{SECRETS}/STAMP").json()["updated_at"]
    # Wall-clock seconds may tick between the two writes, hence 5 or 6.
    assert later in (_iso_plus(written_at, 5), _iso_plus(written_at, 6))
    assert staging.secret_value(REPO, "staging", "STAMP") == "by hand"


def test_variable_patch_records_date_of_the_write(staging: GitHubSandbox) -> None:
    call(staging.url, "POST", f"{ENV}/variables", {"name": "V", "value": "1"})
    staging.advance_clock(7)
    patch = call(staging.url, "PATCH", f"{ENV}/variables/V", {"value": "2"})
    assert patch.status == 204
    got = call(staging.url, "GET", f"{ENV}/variables/V").json()
    assert got["updated_at"] == parsedate_to_datetime(patch.headers["Date"]).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert got["updated_at"] != got["created_at"]


def test_link_headers_follow_github(staging: GitHubSandbox) -> None:
    for i in range(7):
        staging.write_secret_outside(REPO, "staging", f"S{i}", "v")
    first = call(staging.url, "GET", f"{SECRETS}?per_page=3")
    base = f"{staging.url}{SECRETS}"
    assert first.headers["Link"] == (
        f'<{base}?per_page=3&page=2>; rel="next", <{base}?per_page=3&page=3>; rel="last"'
    )
    middle = call(staging.url, "GET", f"{SECRETS}?per_page=3&page=2")
    assert middle.headers["Link"] == (
        f'<{base}?per_page=3&page=1>; rel="prev", <{base}?per_page=3&page=3>; rel="next", '
        f'<{base}?per_page=3&page=3>; rel="last", <{base}?per_page=3&page=1>; rel="first"'
    )
    last = call(staging.url, "GET", f"{SECRETS}?per_page=3&page=3")
    assert [s["name"] for s in last.json()["secrets"]] == ["S6"]
    assert last.json()["total_count"] == 7
    assert "next" not in last.headers["Link"]
    single = call(staging.url, "GET", SECRETS)
    assert single.headers["Link"] is None
    assert len(single.json()["secrets"]) == 7


def test_per_page_caps(staging: GitHubSandbox) -> None:
    for i in range(35):
        staging.write_variable_outside(REPO, "staging", f"V{i:02d}", "v")
    for i in range(120):
        staging.write_secret_outside(REPO, "staging", f"S{i:03d}", "v")
    variables = call(staging.url, "GET", f"{ENV}/variables?per_page=100").json()
    assert len(variables["variables"]) == 30  # variables max 30
    assert len(call(staging.url, "GET", f"{ENV}/variables").json()["variables"]) == 10
    assert len(call(staging.url, "GET", f"{SECRETS}?per_page=500").json()["secrets"]) == 100
    assert len(call(staging.url, "GET", SECRETS).json()["secrets"]) == 30


def test_etag_and_304_without_rate_limit_cost(sandbox: GitHubSandbox) -> None:
    first = call(sandbox.url, "GET", f"/repos/{REPO}")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = call(sandbox.url, "GET", f"/repos/{REPO}", headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.body == b""
    assert again.headers["X-RateLimit-Remaining"] == first.headers["X-RateLimit-Remaining"]
    stale = call(sandbox.url, "GET", f"/repos/{REPO}", headers={"If-None-Match": '"other"'})
    assert stale.status == 200
    charged = int(first.headers["X-RateLimit-Remaining"]) - 1
    assert int(stale.headers["X-RateLimit-Remaining"]) == charged
    assert sandbox.request_counts()[("GET", "repos/get")] == 3


def test_rate_limit_headers_decrement(sandbox: GitHubSandbox) -> None:
    before = int(time.time())
    replies = [call(sandbox.url, "GET", f"/repos/{REPO}") for _ in range(3)]
    assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["4999", "4998", "4997"]
    assert [r.headers["X-RateLimit-Used"] for r in replies] == ["1", "2", "3"]
    assert replies[0].headers["X-RateLimit-Limit"] == "5000"
    assert replies[0].headers["X-RateLimit-Resource"] == "core"
    reset = int(replies[0].headers["X-RateLimit-Reset"])
    assert before + 3500 <= reset <= before + 3700
    overview = call(sandbox.url, "GET", "/rate_limit")
    assert overview.json()["resources"]["core"]["remaining"] == 4997  # /rate_limit is free
    assert overview.headers["X-RateLimit-Remaining"] == "4997"


def test_configurable_limit_runs_out(staging: GitHubSandbox) -> None:
    with GitHubSandbox(token=TOKEN, repositories=(REPO,), rate_limit=2) as small:
        statuses = [call(small.url, "GET", f"/repos/{REPO}").status for _ in range(3)]
        assert statuses == [200, 200, 403]


def test_exhausted_limit_is_403_and_writes_nothing(staging: GitHubSandbox) -> None:
    body = put_secret_body(staging.url, f"{SECRETS}/public-key", "v")
    staging.set_rate_limit(remaining=0, reset_in=120)
    reply = call(staging.url, "PUT", f"{SECRETS}/BLOCKED", body)
    assert reply.status == 403
    assert reply.json()["message"].startswith("API rate limit exceeded for user")
    assert reply.headers["X-RateLimit-Remaining"] == "0"
    assert int(reply.headers["X-RateLimit-Reset"]) - int(time.time()) in range(115, 125)
    assert staging.secret_value(REPO, "staging", "BLOCKED") is None
    staging.advance_clock(121)  # the window resets
    assert call(staging.url, "PUT", f"{SECRETS}/BLOCKED", body).status == 201


def test_every_response_has_date_and_rate_headers(sandbox: GitHubSandbox) -> None:
    for reply in (
        call(sandbox.url, "GET", f"/repos/{REPO}", token="bad"),
        call(sandbox.url, "GET", "/nowhere"),
        call(sandbox.url, "DELETE", f"/repos/{REPO}/environments/none"),
    ):
        assert reply.headers["Date"] is not None
        assert reply.headers["X-RateLimit-Limit"] == "5000"


def test_request_log_never_holds_values(staging: GitHubSandbox) -> None:
    body = put_secret_body(staging.url, f"{SECRETS}/public-key", "do-not-log-me")
    call(staging.url, "PUT", f"{SECRETS}/LOGGED", body)
    log = staging.request_log()
    assert (log[-1].method, log[-1].path, log[-1].status) == ("PUT", f"{SECRETS}/LOGGED", 201)
    assert "do-not-log-me" not in repr(log)
