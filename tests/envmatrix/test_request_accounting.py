"""`--json`'s `requests` object (issue 13 item 4): every request GitHub received, counted once.

The sandbox counts what reached it; the adapter's accounting must agree with it exactly.
"""

from __future__ import annotations

import pytest

from envmatrix.adapters.accounting import endpoint_template
from envmatrix.adapters.github import GitHubAdapter
from envmatrix.sandbox import GitHubSandbox
from tests.world import REPO, World


@pytest.mark.parametrize(
    ("verb", "url", "template"),
    [
        (
            "GET",
            "https://api.github.com/repos/acme/web/environments",
            "GET /repos/{owner}/{repo}/environments",
        ),
        (
            "get",
            "http://ghes:8080/api/v3/repos/acme/web/environments/prod/secrets?per_page=100&page=2",
            "GET /repos/{owner}/{repo}/environments/{environment_name}/secrets",
        ),
        (
            "GET",
            "/repos/a/b/environments/prod/secrets/public-key",
            "GET /repos/{owner}/{repo}/environments/{environment_name}/secrets/public-key",
        ),
        (
            "PUT",
            "/repos/a/b/environments/prod/secrets/DB_PASSWORD",
            "PUT /repos/{owner}/{repo}/environments/{environment_name}/secrets/{secret_name}",
        ),
        (
            "PATCH",
            "/repos/a/b/actions/variables/REGION",
            "PATCH /repos/{owner}/{repo}/actions/variables/{name}",
        ),
        ("GET", "/orgs/acme/actions/secrets", "GET /orgs/{org}/actions/secrets"),
        (
            "PUT",
            "/repos/a/b/environments/prod",
            "PUT /repos/{owner}/{repo}/environments/{environment_name}",
        ),
    ],
)
def test_endpoints_are_counted_by_route_never_by_name(verb: str, url: str, template: str) -> None:
    assert endpoint_template(verb, url) == template


def total_received(sandbox: GitHubSandbox) -> int:
    return sum(sandbox.request_counts().values())


def test_plan_and_apply_json_account_for_every_request_github_received(world: World) -> None:
    world.seed()
    world.sandbox.reset_counts()
    plan = world.run("plan", "--json")
    assert plan.code == 0, plan.err
    requests = plan.json()["requests"]
    assert sum(requests["by_endpoint"].values()) == total_received(world.sandbox) > 0
    received = world.sandbox.request_counts()
    for template, operation in (
        ("GET /repos/{owner}/{repo}/environments", "repos/get-all-environments"),
        (
            "GET /repos/{owner}/{repo}/environments/{environment_name}/secrets",
            "actions/list-environment-secrets",
        ),
    ):
        assert requests["by_endpoint"].get(template, 0) == received[("GET", operation)]
    assert 1 <= requests["max_in_flight"] <= 16  # the default cap off api.github.com
    assert requests["not_modified"] == 0  # no conditional request is sent yet
    assert isinstance(requests["rate_limit_remaining"], int)

    world.sandbox.reset_counts()
    applied = world.run("apply", "--yes", "--json")
    assert applied.code == 0, applied.err
    document = applied.json()
    by_endpoint = document["requests"]["by_endpoint"]
    assert sum(by_endpoint.values()) == total_received(world.sandbox)
    put = "PUT /repos/{owner}/{repo}/environments/{environment_name}/secrets/{secret_name}"
    written = [r for r in document["results"] if r["kind"] == "secret" and r["result"] == "ok"]
    assert by_endpoint[put] == len(written) > 0
    received = world.sandbox.request_counts()
    assert by_endpoint[put] == received[("PUT", "actions/create-or-update-environment-secret")]
    assert not any(REPO in endpoint for endpoint in by_endpoint)  # routes, not names


def test_the_rate_limit_left_is_the_last_answer_s(sandbox: GitHubSandbox) -> None:
    adapter = GitHubAdapter(sandbox.url, "sandbox-token")
    for remaining in (4321, 17):
        sandbox.set_rate_limit(remaining)
        adapter.list_environments(REPO)
        assert adapter.requests.to_json()["rate_limit_remaining"] == remaining - 1
    assert adapter.requests.to_json()["by_endpoint"] == {
        "GET /repos/{owner}/{repo}/environments": 2
    }
