"""Every fault of docs/FAULTS.md on a real socket: the GitHub sandbox and real OpenBao servers.

Each test injects one fault, checks what a user sees (exit code, the failure named with its
cause, what landed), then removes the fault and checks that a re-run converges: `apply` exits 0,
`plan --detailed-exitcode` exits 0 and every GitHub copy equals Vault's value. Destructive Vault
faults (seal, stop) use a private OpenBao server, never the session one.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import hvac
import pytest
from github import Auth, Github, GithubException, GithubRetry

from envmatrix.adapters.github import GitHubAdapter, RetryPolicy
from envmatrix.adapters.vault import VaultAdapter
from envmatrix.connect import Connections
from envmatrix.demo.openbao import OpenBaoDevServer
from envmatrix.pipeline.desired import Target, desired_state
from envmatrix.pipeline.state import SyncState, state_path
from envmatrix.sandbox import Fault, GitHubSandbox
from envmatrix.workflow import apply_run, make_plan
from tests.fixtures_vault import _wait_for_kv_mount
from tests.world import REPO, World, example_policy_text

PUT_SECRET = ("PUT", "actions/create-or-update-environment-secret")
FLAG = "FEATURE_AI_ESCALATIONS"
FAST = {
    "ENVMATRIX_GITHUB_BACKOFF": "0.01",
    "ENVMATRIX_GITHUB_SECONDARY_BACKOFF": "0.01",
    "ENVMATRIX_GITHUB_ATTEMPTS": "4",
    "ENVMATRIX_GITHUB_MAX_WAIT": "5",
    "ENVMATRIX_GITHUB_TIMEOUT": "1",
}


@pytest.fixture
def fast(world: World) -> World:
    """The world with retries tuned so the suite never sleeps more than a second or two."""
    world.env.update(FAST)
    world.seed()
    return world


def converges(world: World) -> None:
    """After the fault: a re-run lands everything and the next plan has nothing to do."""
    again = world.run("apply", "--yes")
    assert again.code == 0, again.out + again.err
    assert world.run("plan", "--detailed-exitcode").code == 0
    assert world.mismatches() == []


def force_unlock(world: World) -> None:
    """Free the apply lock a dead or failed run left, the way its error message says to."""
    locked = world.run("apply", "--yes")
    assert locked.code == 1
    found = re.search(r"run envmatrix force-unlock (\S+)$", locked.err.strip())
    assert found, locked.err
    freed = world.run("force-unlock", found.group(1), "--yes")
    assert freed.code == 0, freed.err


def statuses(sandbox: GitHubSandbox, method: str, path_end: str) -> list[int]:
    return [
        r.status for r in sandbox.request_log() if r.method == method and r.path.endswith(path_end)
    ]


def applied_ok(world: World) -> None:
    result = world.run("apply", "--yes")
    assert result.code == 0, result.out + result.err
    assert "Apply complete: 20 written, 0 failed" in result.out


# -- GitHub: transient answers are retried ---------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_transient_5xx_is_retried_and_apply_succeeds(fast: World, status: int) -> None:
    fast.sandbox.inject(
        Fault(method="PUT", path="/production/secrets/SUPABASE_URL$", status=status, times=2)
    )
    applied_ok(fast)
    assert statuses(fast.sandbox, "PUT", "/production/secrets/SUPABASE_URL")[:3] == [
        status,
        status,
        201,
    ]
    converges(fast)


def test_persistent_500_fails_that_item_only_and_rerun_converges(fast: World) -> None:
    fast.sandbox.inject(
        Fault(method="PUT", path="/production/secrets/ZOHO_CLIENT_SECRET$", status=500)
    )
    result = fast.run("apply", "--yes", "--json")
    assert result.code == 1
    report = result.json()
    [failed] = [r for r in report["results"] if r["result"] == "failed"]
    assert (failed["environment"], failed["name"]) == ("production", "ZOHO_CLIENT_SECRET")
    assert "500" in failed["error"] and "gave up after 4 attempts" in failed["error"]
    assert report["summary"] == {"written": 19, "failed": 1, "blocked": 0}
    assert statuses(fast.sandbox, "PUT", "/production/secrets/ZOHO_CLIENT_SECRET") == [500] * 4
    assert statuses(fast.sandbox, "PUT", "/staging/secrets/ZOHO_CLIENT_SECRET") == [201]
    # sync state holds only what landed: the failed cell has no record
    state = SyncState.from_document(
        fast.vault.read_document(
            state_path(next(t for t in _targets(fast) if t.github_environment == "production"))
        )
    )
    assert "ZOHO_CLIENT_SECRET" not in state.records and "ZOHO_CLIENT_ID" in state.records
    fast.sandbox.clear_faults()
    converges(fast)


def test_429_with_retry_after_waits_and_retries(fast: World) -> None:
    fast.sandbox.inject(
        Fault(method="PUT", path="/staging/secrets/", status=429, retry_after=1, times=1)
    )
    applied_ok(fast)
    assert 429 in [r.status for r in fast.sandbox.request_log()]
    converges(fast)


def test_429_without_retry_after_is_retried_where_pygithub_gives_up(fast: World) -> None:
    fault = Fault(method="GET", path="/environments$", status=429, times=1)
    fast.sandbox.inject(fault)
    pygithub = Github(
        auth=Auth.Token("sandbox-token"), base_url=fast.sandbox.url, retry=GithubRetry(), lazy=True
    )
    with pytest.raises(GithubException) as caught:
        _ = pygithub.get_repo(REPO).get_environments().totalCount
    assert caught.value.status == 429
    fast.sandbox.inject(Fault(method="PUT", path="/secrets/", status=429, times=3))
    applied_ok(fast)
    converges(fast)


def test_secondary_rate_limit_403_backs_off_and_retries(fast: World) -> None:
    fast.sandbox.inject(Fault(method="PUT", path="/secrets/", status=403, secondary=True, times=3))
    applied_ok(fast)
    assert [r.status for r in fast.sandbox.request_log()].count(403) == 3
    converges(fast)


def test_primary_limit_exhausted_waits_for_a_near_reset(fast: World) -> None:
    fast.sandbox.set_rate_limit(remaining=0, reset_in=3)  # within ENVMATRIX_GITHUB_MAX_WAIT=5
    applied_ok(fast)
    assert fast.sandbox.request_log()[0].status == 403  # refused once, then waited for the reset
    converges(fast)


def test_primary_limit_with_a_far_reset_stops_at_once(fast: World) -> None:
    fast.sandbox.set_rate_limit(remaining=0, reset_in=3600)
    result = fast.run("apply", "--yes")
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert (
        "primary rate limit exhausted" in result.err
        and "ENVMATRIX_GITHUB_MAX_WAIT=5s" in result.err
    )
    assert sum(fast.sandbox.request_counts().values()) == 1  # no retries, no sleeping until reset
    fast.sandbox.set_rate_limit(remaining=5000)
    converges(fast)


def test_primary_limit_spent_mid_apply_fails_the_rest_without_requests(fast: World) -> None:
    # enough for the plan's three lists: environments, repository and organization secrets
    fast.sandbox.set_rate_limit(remaining=3, reset_in=3600)
    result = fast.run("apply", "--yes", "--json")
    assert result.code == 1
    report = result.json()
    assert report["summary"] == {"written": 0, "failed": 20, "blocked": 0}
    assert all("ENVMATRIX_GITHUB_MAX_WAIT=5s" in r["error"] for r in report["results"])
    assert sum(fast.sandbox.request_counts().values()) == 3  # the rest were never sent
    fast.sandbox.set_rate_limit(remaining=5000)
    converges(fast)


def test_answer_slower_than_the_timeout_is_retried(fast: World) -> None:
    # GitHub wrote it, but the answer came after the client's timeout: the retry writes again
    fast.sandbox.inject(
        Fault(method="PUT", path="/production/secrets/SUPABASE_URL$", late_answer=1.5, times=1)
    )
    applied_ok(fast)
    # the PUT given up on still lands when its delay ends: let it, before the re-run (a faster
    # run, e.g. with concurrent observation, would otherwise plan before it lands)
    assert fast.sandbox.wait_until_idle()
    assert fast.sandbox.request_counts()[PUT_SECRET] == len(desired_state(fast.policy).secrets) + 1
    converges(fast)


@pytest.mark.parametrize("method", ["PUT", "GET"])
def test_connection_reset_is_retried(fast: World, method: str) -> None:
    fast.sandbox.inject(Fault(method=method, reset=True, times=2))
    applied_ok(fast)
    assert 0 in [r.status for r in fast.sandbox.request_log()]  # 0: the sandbox reset it
    converges(fast)


def test_html_error_page_is_retried(fast: World) -> None:
    fast.sandbox.inject(Fault(method="PUT", path="/secrets/", status=502, html=True, times=2))
    applied_ok(fast)
    converges(fast)


def test_html_error_page_that_persists_is_named_without_the_page(fast: World) -> None:
    fast.sandbox.inject(
        Fault(method="PUT", path="/production/secrets/CHATWOOT_API_TOKEN$", status=502, html=True)
    )
    result = fast.run("apply", "--yes", "--json")
    assert result.code == 1
    [failed] = [r for r in result.json()["results"] if r["result"] == "failed"]
    assert "502 unexpected response (not GitHub's JSON error shape)" in failed["error"]
    assert "<html" not in result.out.lower()
    fast.sandbox.clear_faults()
    converges(fast)


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_truncated_json_is_retried(fast: World, method: str) -> None:
    fast.sandbox.inject(Fault(method=method, truncate=True, times=2))
    applied_ok(fast)
    converges(fast)


def test_flag_patch_failing_transiently_is_retried(fast: World) -> None:
    applied_ok(fast)
    fast.sandbox.write_variable_outside(REPO, "production", FLAG, "false")
    fast.sandbox.inject(Fault(method="PATCH", status=502, times=2))
    result = fast.run("apply", "--yes")
    assert result.code == 0, result.out
    assert statuses(fast.sandbox, "PATCH", f"/production/variables/{FLAG}") == [502, 502, 204]
    assert fast.sandbox.variable_value(REPO, "production", FLAG) == "true"
    converges(fast)


def test_variable_post_retried_after_a_timeout_lands_once(fast: World) -> None:
    # the first POST is held past the client's 1 s timeout; the retry creates the variable and
    # the late original then meets a 409: the value is right either way
    fast.sandbox.inject(Fault(method="POST", path="/production/variables$", delay=1.5, times=1))
    applied_ok(fast)
    _wait_for(lambda: len(statuses(fast.sandbox, "POST", "/production/variables")) == 2)
    assert sorted(statuses(fast.sandbox, "POST", "/production/variables")) == [201, 409]
    assert fast.sandbox.variable_value(REPO, "production", FLAG) == "true"
    converges(fast)


def test_variable_post_whose_answer_was_lost_becomes_a_patch(sandbox: GitHubSandbox) -> None:
    github = GitHubAdapter(sandbox.url, "sandbox-token", retry=RetryPolicy(3, 0.01, 0.01, 5, 1))
    github.create_environment(REPO, "production")
    # an earlier POST landed but its answer was lost, so the caller still thinks it is absent
    sandbox.write_variable_outside(REPO, "production", FLAG, "false")
    github.set_environment_variable(REPO, "production", FLAG, "true", exists=False)
    assert statuses(sandbox, "POST", "/production/variables") == [409]
    assert statuses(sandbox, "PATCH", f"/production/variables/{FLAG}") == [204]
    assert sandbox.variable_value(REPO, "production", FLAG) == "true"


def _wait_for(condition: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_seeded_random_502s_over_a_whole_apply_converge_after_reruns(fast: World) -> None:
    fast.env["ENVMATRIX_GITHUB_ATTEMPTS"] = "2"  # so that some items really fail
    fast.sandbox.inject(Fault(method="PUT", path="/secrets/", status=502, probability=0.3, seed=7))
    codes = [fast.run("apply", "--yes").code for _ in range(6)]
    assert codes[0] == 1  # seed 7: at least one item failed twice in a row
    assert 0 in codes and codes[codes.index(0) :] == [0] * (6 - codes.index(0))
    assert fast.run("plan", "--detailed-exitcode").code == 0  # with the fault still active
    assert fast.mismatches() == []
    fast.sandbox.clear_faults()
    converges(fast)


def test_exhausted_retries_name_the_endpoint_and_the_cause(sandbox: GitHubSandbox) -> None:
    github = GitHubAdapter(sandbox.url, "sandbox-token", retry=RetryPolicy(2, 0.01, 0.01, 5, 1))
    sandbox.inject(Fault(method="PUT", status=503))
    with pytest.raises(Exception) as caught:
        github.create_environment(REPO, "staging")
    assert str(caught.value) == (
        f"PUT {sandbox.url}/repos/{REPO}/environments/staging: 503 Service Unavailable; "
        "gave up after 2 attempts"
    )


# -- Vault -----------------------------------------------------------------------------------------


def test_token_lacking_read_names_path_and_capability(
    fast: World, vault_admin: hvac.Client
) -> None:
    mount = fast.vault.mount
    vault_admin.sys.create_or_update_policy(
        f"lister-{mount}",
        f"""
        path "{mount}/subkeys/*" {{ capabilities = ["read"] }}
        path "{mount}/data/envmatrix/*" {{ capabilities = ["create", "read", "update"] }}
    """,
    )
    token = vault_admin.auth.token.create(policies=[f"lister-{mount}"], ttl="10m")["auth"][
        "client_token"
    ]
    root = fast.env["VAULT_TOKEN"]
    fast.env["VAULT_TOKEN"] = token
    result = fast.run("apply", "--yes", "--json")
    assert result.code == 1
    errors = {r["error"] for r in result.json()["results"] if r["result"] == "failed"}
    assert (
        f"Vault denied read on {mount}/data/apps/production/supabase: "
        "the token lacks that capability" in errors
    )
    assert fast.sandbox.request_counts()[PUT_SECRET] == 0
    fast.env["VAULT_TOKEN"] = root
    converges(fast)


def test_sync_state_cas_mismatch_from_a_second_writer_is_merged(fast: World) -> None:
    applied_ok(fast)
    fast.set_vault_value("SHOPIFY_ADMIN_TOKEN", "production", "rotated-1")
    fast.set_vault_value("ZOHO_CLIENT_ID", "production", "rotated-2")
    connections = Connections(fast.vault, GitHubAdapter(fast.sandbox.url, "sandbox-token"))
    ours = make_plan(str(fast.policy_path), connections)  # reads the state at version N
    assert len(ours.plan.writes) == 2  # in two targets: both state documents race
    other = fast.run("apply", "--yes")  # another runner writes the state: version N+1
    assert other.code == 0
    report = apply_run(ours, connections)  # our CAS write of version N fails, then merges
    assert report.ok, report.state_errors
    assert fast.run("plan", "--detailed-exitcode").code == 0
    assert fast.mismatches() == []


# -- Vault faults on a private OpenBao server (sealing or stopping it) -----------------------------


@pytest.fixture(scope="module")
def own_openbao() -> Iterator[OpenBaoDevServer]:
    with OpenBaoDevServer() as server:
        yield server


@pytest.fixture
def fragile(
    own_openbao: OpenBaoDevServer,
    sandbox: GitHubSandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    """A seeded world on the private OpenBao server, which a test may seal or stop."""
    if not own_openbao.running:
        own_openbao.start()
    if own_openbao.health_status() == 503:
        own_openbao.unseal()
    mount = _fresh_mount(own_openbao)
    policy_path = tmp_path / "envmatrix.yaml"
    policy_path.write_text(example_policy_text(mount))
    env = {
        "VAULT_ADDR": own_openbao.addr,
        "VAULT_TOKEN": own_openbao.token,
        "GITHUB_API_URL": sandbox.url,
        "GITHUB_TOKEN": "sandbox-token",
        "ENVMATRIX_POLICY": str(policy_path),
        "ENVMATRIX_AUDIT_DB": str(tmp_path / "audit.sqlite"),
        **FAST,
    }
    monkeypatch.chdir(tmp_path)
    vault = VaultAdapter(own_openbao.addr, own_openbao.token, mount=mount)
    world = World(vault, sandbox, policy_path, env, monkeypatch)
    world.seed()
    yield world
    vault.close()


def _fresh_mount(server: OpenBaoDevServer) -> str:
    client = hvac.Client(url=server.addr, token=server.token, timeout=10)
    mount = f"kv-{uuid.uuid4().hex[:12]}"
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    _wait_for_kv_mount(client, mount)
    client.adapter.close()
    return mount


def test_vault_sealed_before_apply_stops_with_one_line(
    fragile: World, own_openbao: OpenBaoDevServer
) -> None:
    own_openbao.seal()
    result = fragile.run("apply", "--yes")
    assert result.code == 1
    assert result.err == f"error: Vault at {own_openbao.addr} is sealed\n" or (
        result.err.count("\n") == 1 and "is sealed" in result.err
    ), result.err
    assert sum(fragile.sandbox.request_counts().values()) == 0  # nothing read or written in GitHub
    own_openbao.unseal()
    converges(fragile)


def test_vault_sealed_mid_apply_fails_the_rest_and_rerun_converges(
    fragile: World, own_openbao: OpenBaoDevServer
) -> None:
    before = {c: fragile.vault_value(c[0], c[1]) for c in _cells(fragile)}
    # the first secret PUT is held 0.3 s; meanwhile the server is sealed
    fragile.sandbox.inject(Fault(method="PUT", path="/secrets/", delay=0.3, times=1))
    sealer = threading.Thread(target=_when_first_put(fragile.sandbox, own_openbao.seal))
    sealer.start()
    result = fragile.run("apply", "--yes")
    sealer.join()
    assert result.code == 1
    assert "is sealed" in result.out + result.err
    assert fragile.sandbox.request_counts()[PUT_SECRET] >= 1  # some landed, without a record
    _each_copy_absent_or_vaults(fragile, before)
    own_openbao.unseal()
    # the apply lock could not be released while sealed: the operator frees it, as Terraform's
    force_unlock(fragile)
    converges(fragile)


def test_vault_down_stops_with_one_line_and_rerun_converges(
    fragile: World, own_openbao: OpenBaoDevServer
) -> None:
    applied_ok(fragile)
    values = {c: fragile.vault_value(*c) for c in _cells(fragile)}
    own_openbao.stop()
    result = fragile.run("plan")
    assert result.code == 1
    assert result.err.count("\n") == 1 and "unreachable: connection refused" in result.err, (
        result.err
    )
    assert fragile.run("apply", "--yes").code == 1
    # the dev server restarts empty: an operator restores the same values (new versions, no state)
    own_openbao.start()
    fragile.vault.mount = _recreate(own_openbao, fragile.vault.mount)
    for (name, env), value in values.items():
        assert value is not None
        fragile.set_vault_value(name, env, value)
    converges(fragile)


def _recreate(server: OpenBaoDevServer, mount: str) -> str:
    client = hvac.Client(url=server.addr, token=server.token, timeout=10)
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    _wait_for_kv_mount(client, mount)
    client.adapter.close()
    return mount


def _when_first_put(sandbox: GitHubSandbox, action: object) -> object:
    def run() -> None:
        deadline = time.monotonic() + 10
        while sandbox.request_counts()[PUT_SECRET] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        action()  # type: ignore[operator]

    return run


def _cells(world: World) -> list[tuple[str, str]]:
    return [(name, env) for name, spec in world.policy.secrets.items() for env in spec.environments]


def _each_copy_absent_or_vaults(
    world: World, vault_values: dict[tuple[str, str], str | None]
) -> None:
    for cell in desired_state(world.policy).secrets:
        actual = world.sandbox.secret_value(
            cell.target.repository, cell.target.github_environment, cell.name
        )
        assert actual in (None, vault_values[(cell.name, cell.target.logical_environment)]), cell


def _targets(world: World) -> list[Target]:
    return sorted({c.target for c in desired_state(world.policy).secrets}, key=str)


def test_sealed_mid_apply_still_reports_each_item(
    fragile: World, own_openbao: OpenBaoDevServer
) -> None:
    fragile.sandbox.inject(Fault(method="PUT", path="/secrets/", delay=0.3, times=1))
    sealer = threading.Thread(target=_when_first_put(fragile.sandbox, own_openbao.seal))
    sealer.start()
    result = fragile.run("apply", "--yes", "--json")
    sealer.join()
    own_openbao.unseal()
    report = result.json()
    assert any("is sealed" in (r["error"] or "") for r in report["results"])
    assert any("is sealed" in e for e in report["state_errors"])
