"""Conditional GitHub reads (issue 13 item 2): the ETag cache never serves stale data.

The truth is a plan made without the cache (`ENVMATRIX_NO_CACHE=1`): after every kind of change
a plan from a warm cache must say exactly what it says. The sandbox keeps GitHub's primary rate
limit and charges nothing for a 304, so "free" is measured, not assumed.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envmatrix.adapters.github import GitHubAdapter
from envmatrix.adapters.github_cache import (
    GitHubCache,
    cache_folder,
    cache_key,
    conditional_reads,
    token_identity,
)
from envmatrix.sandbox import GitHubSandbox
from tests.world import REPO, Result, World


def plan(world: World, **env: str) -> dict[str, Any]:
    result = run_plan(world, **env)
    assert result.code in (0, 2), result.err
    document: dict[str, Any] = result.json()
    return document


def run_plan(world: World, **env: str) -> Result:
    for name in ("ENVMATRIX_NO_CACHE", "ENVMATRIX_CACHE_DIR", "GITHUB_EVENT_NAME"):
        world.env.pop(name, None)
        world.monkeypatch.delenv(name, raising=False)
    world.env.update(env)
    result = world.run("plan", "--json")
    for name in env:
        world.env.pop(name)
        world.monkeypatch.delenv(name, raising=False)
    return result


def outcome(result: Result) -> tuple[int, Any]:
    """A plan's exit code and its changes (or, when it failed, its message)."""
    if result.code in (0, 2):
        return result.code, result.json()["changes"]
    return result.code, result.err


def truth(world: World) -> dict[str, Any]:
    """What a plan says without any cache."""
    return plan(world, ENVMATRIX_NO_CACHE="1")["changes"]  # type: ignore[no-any-return]


def entries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.json"))


@pytest.fixture
def warm(world: World, tmp_path: Path) -> World:
    """A seeded world whose cache (ENVMATRIX_CACHE_DIR) holds every read of one plan."""
    world.seed()
    world.env["ENVMATRIX_NO_CACHE"] = "1"
    applied = world.run("apply", "--yes")  # GitHub holds what the policy says
    assert applied.code == 0, applied.err
    plan(world, ENVMATRIX_CACHE_DIR=str(tmp_path / "cache"))
    assert entries(tmp_path / "cache")
    return world


def cached_plan(world: World, tmp_path: Path) -> dict[str, Any]:
    return plan(world, ENVMATRIX_CACHE_DIR=str(tmp_path / "cache"))


@pytest.mark.parametrize("concurrency", ["1", "8"])
def test_a_replan_of_an_unchanged_org_costs_no_rate_limit_points(
    world: World, tmp_path: Path, concurrency: str
) -> None:
    world.seed()
    cache = str(tmp_path / "cache")
    first = plan(world, ENVMATRIX_CACHE_DIR=cache, ENVMATRIX_GITHUB_CONCURRENCY=concurrency)
    spent = world.sandbox.rate_limit_used()
    assert spent == sum(first["requests"]["by_endpoint"].values()) > 0
    for _ in range(2):
        again = plan(world, ENVMATRIX_CACHE_DIR=cache, ENVMATRIX_GITHUB_CONCURRENCY=concurrency)
        assert world.sandbox.rate_limit_used() == spent  # every read answered 304: 0 points
        requests = again["requests"]
        assert requests["not_modified"] == sum(requests["by_endpoint"].values()) > 0
        assert again["changes"] == first["changes"]
    assert world.sandbox.rate_limit_used() == spent


def test_the_default_folder_follows_xdg_and_is_private(world: World, tmp_path: Path) -> None:
    world.seed()
    plan(world, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    folder = tmp_path / "xdg" / "envmatrix" / "github"
    files = entries(folder)
    assert files
    for path in [folder, *{f.parent for f in files}]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = path.read_text()
        assert "sandbox-token" not in text  # the identity is a hash, never the token
        assert "encrypted_value" not in text


def mutate_outside_secret(world: World) -> None:
    world.sandbox.write_secret_outside(REPO, "production", "SUPABASE_SERVICE_KEY", "drifted")


def mutate_outside_variable(world: World) -> None:
    world.sandbox.write_variable_outside(REPO, "staging", "FEATURE_AI_ESCALATIONS", "tampered")


def mutate_by_another_client(world: World) -> None:
    other = GitHubAdapter(world.sandbox.url, "sandbox-token")  # no cache: someone else's tool
    try:
        other.delete_environment_secret(REPO, "staging", "SUPABASE_URL")
    finally:
        other.close()


def mutate_by_envmatrix(world: World) -> None:
    world.set_vault_value("SUPABASE_URL", "production", "https://moved.example")
    world.sandbox.advance_clock(60)  # the write's updated_at differs from the last one's
    world.env["ENVMATRIX_CACHE_DIR"] = world.env["CACHE"]  # apply with the same cache
    applied = world.run("apply", "--yes", "--json")
    assert applied.code == 0, applied.err
    assert [r["result"] for r in applied.json()["results"]] == ["ok"]


def mutate_delete_environment(world: World) -> None:
    other = GitHubAdapter(world.sandbox.url, "sandbox-token")
    try:
        other._write("DELETE", f"/repos/{REPO}/environments/production", None)
    finally:
        other.close()


def mutate_delete_repository(world: World) -> None:
    with world.sandbox.state.lock:
        del world.sandbox.state.repositories[REPO.lower()]


def mutate_add_a_page(world: World) -> None:
    for i in range(130):  # 100 a page: a second page appears
        world.sandbox.write_secret_outside(REPO, "staging", f"EXTRA_{i:03d}", "x")


MUTATIONS: dict[str, Callable[[World], None]] = {
    "outside secret write": mutate_outside_secret,
    "outside variable write": mutate_outside_variable,
    "API write by another client": mutate_by_another_client,
    "write by envmatrix": mutate_by_envmatrix,
    "deleted environment": mutate_delete_environment,
    "deleted repository": mutate_delete_repository,
    "page added": mutate_add_a_page,
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_a_warm_cache_sees_every_change(warm: World, tmp_path: Path, name: str) -> None:
    world = warm
    world.env["CACHE"] = str(tmp_path / "cache")
    before = outcome(run_plan(world, ENVMATRIX_NO_CACHE="1"))
    world.sandbox.advance_clock(60)  # time passes between runs: writes get new timestamps
    MUTATIONS[name](world)
    spent = world.sandbox.rate_limit_used()
    seen = outcome(run_plan(world, ENVMATRIX_CACHE_DIR=str(tmp_path / "cache")))
    cost = world.sandbox.rate_limit_used() - spent
    after = outcome(run_plan(world, ENVMATRIX_NO_CACHE="1"))
    assert seen == after
    if name != "write by envmatrix":
        assert after != before
        assert cost > 0  # what changed was read in full
    # (apply re-read what it wrote, so the cache holds it already; its plan was empty before
    # and is after: the new timestamps must not read as drift)
    # the cache holds the new answers: the next plan is free (unless it failed) and agrees
    spent = world.sandbox.rate_limit_used()
    again = outcome(run_plan(world, ENVMATRIX_CACHE_DIR=str(tmp_path / "cache")))
    if after[0] in (0, 2):
        assert world.sandbox.rate_limit_used() == spent
    assert again == seen


def test_pages_removed_are_seen(warm: World, tmp_path: Path) -> None:
    world = warm
    mutate_add_a_page(world)
    with_page = cached_plan(world, tmp_path)
    other = GitHubAdapter(world.sandbox.url, "sandbox-token")
    try:
        for i in range(130):
            other.delete_environment_secret(REPO, "staging", f"EXTRA_{i:03d}")
    finally:
        other.close()
    without = cached_plan(world, tmp_path)
    assert without["changes"] == truth(world) != with_page["changes"]
    assert not any("EXTRA_" in json.dumps(c) for c in without["changes"])


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "other url", "body edited"])
def test_a_damaged_entry_is_ignored_not_an_error(warm: World, tmp_path: Path, damage: str) -> None:
    world = warm
    files = entries(tmp_path / "cache")
    for path in files:
        text = path.read_text()
        entry = json.loads(text)
        if damage == "truncated":
            path.write_text(text[: len(text) // 2])
        elif damage == "garbage":
            path.write_bytes(b"\x00\xff not json")
        elif damage == "empty":
            path.write_text("")
        elif damage == "other url":
            path.write_text(json.dumps({**entry, "url": entry["url"] + "x"}))
        else:  # a body that is not the one the ETag stands for
            path.write_text(json.dumps({**entry, "body": entry["body"] + " "}))
    mutate_outside_secret(world)
    seen = cached_plan(world, tmp_path)
    assert seen["requests"]["not_modified"] == 0  # nothing usable: every read a full answer
    assert seen["changes"] == truth(world)
    again = cached_plan(world, tmp_path)  # rewritten whole
    assert again["requests"]["not_modified"] == sum(again["requests"]["by_endpoint"].values())


@pytest.mark.parametrize("mode", [0o755, 0o770, 0o707])
def test_a_cache_folder_others_can_open_is_refused_with_a_warning(
    world: World, tmp_path: Path, mode: int
) -> None:
    world.seed()
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, mode)
    first = plan(world, ENVMATRIX_CACHE_DIR=str(folder))
    result = run_plan(world, ENVMATRIX_CACHE_DIR=str(folder))  # the warning: on stderr
    assert f"{folder}: has mode {mode:04o} (must be 0700)" in result.err
    second = plan(world, ENVMATRIX_CACHE_DIR=str(folder))
    assert not entries(folder)
    assert first["requests"]["not_modified"] == second["requests"]["not_modified"] == 0
    assert second["changes"] == first["changes"]


def test_entry_files_others_could_write_are_ignored(warm: World, tmp_path: Path) -> None:
    world = warm
    for path in entries(tmp_path / "cache"):
        os.chmod(path, 0o644)
    seen = cached_plan(world, tmp_path)
    assert seen["requests"]["not_modified"] == 0


@pytest.mark.parametrize(
    "env",
    [
        {"ENVMATRIX_NO_CACHE": "1"},
        {"GITHUB_EVENT_NAME": "pull_request"},
        {"GITHUB_EVENT_NAME": "pull_request_target"},
        {"GITHUB_EVENT_NAME": "pull_request_review"},
        {"GITHUB_EVENT_NAME": "pull_request_review_comment"},
    ],
)
def test_off_when_asked_and_in_pull_request_runs(
    warm: World, tmp_path: Path, env: dict[str, str]
) -> None:
    world = warm
    before = {p: p.stat().st_mtime_ns for p in entries(tmp_path / "cache")}
    spent = world.sandbox.rate_limit_used()
    seen = plan(world, ENVMATRIX_CACHE_DIR=str(tmp_path / "cache"), **env)
    assert seen["requests"]["not_modified"] == 0
    assert world.sandbox.rate_limit_used() - spent == sum(seen["requests"]["by_endpoint"].values())
    assert {p: p.stat().st_mtime_ns for p in entries(tmp_path / "cache")} == before  # untouched


def test_folder_settings() -> None:
    assert cache_folder({"ENVMATRIX_CACHE_DIR": "/x/y"}) == Path("/x/y")
    assert cache_folder({"XDG_CACHE_HOME": "/c"}) == Path("/c/envmatrix/github")
    assert cache_folder({"XDG_CACHE_HOME": "relative"}) == (
        Path.home() / ".cache" / "envmatrix" / "github"
    )
    assert cache_folder({"ENVMATRIX_NO_CACHE": "1", "ENVMATRIX_CACHE_DIR": "/x"}) is None
    assert cache_folder({"ENVMATRIX_NO_CACHE": "0", "ENVMATRIX_CACHE_DIR": "/x"}) == Path("/x")
    assert cache_folder({"GITHUB_EVENT_NAME": "pull_request", "ENVMATRIX_CACHE_DIR": "/x"}) is None
    assert cache_folder({"GITHUB_EVENT_NAME": "push", "ENVMATRIX_CACHE_DIR": "/x"}) == Path("/x")


@pytest.mark.parametrize(
    ("base", "url", "parameters", "key"),
    [
        ("", "/repos/a/b/environments", {"per_page": 100}, "/repos/a/b/environments?per_page=100"),
        (
            "/api/v3",
            "https://ghes/api/v3/repos/a/b/environments?per_page=100&page=2",
            None,
            "/api/v3/repos/a/b/environments?page=2&per_page=100",
        ),
        ("/api/v3", "/users/x", None, "/api/v3/users/x"),
    ],
)
def test_keys_are_the_full_url_with_its_page(
    base: str, url: str, parameters: dict[str, Any] | None, key: str
) -> None:
    assert cache_key(base, url, parameters) == key


def test_tokens_never_share_entries(sandbox: GitHubSandbox, tmp_path: Path) -> None:
    cache = GitHubCache(tmp_path / "cache")
    mine = GitHubAdapter(sandbox.url, "sandbox-token", cache=cache)
    mine.list_environments(REPO)
    assert mine.list_environments(REPO) == []
    assert mine.requests.not_modified == 1
    stranger = GitHubAdapter(sandbox.url, "someone-else", cache=cache)
    # a token the server refuses gets the server's refusal, never the other token's answer
    with pytest.raises(Exception, match="401"):
        stranger.list_environments(REPO)
    assert stranger.requests.not_modified == 0
    folders = {p.name for p in (tmp_path / "cache").iterdir()}
    assert len(folders) == 2  # one per identity
    assert token_identity(sandbox.url, "a") != token_identity(sandbox.url, "b")
    assert token_identity(sandbox.url, "a") != token_identity(sandbox.url + "/api/v3", "a")
    mine.close()
    stranger.close()


def test_two_plans_at_once_share_the_folder_safely(warm: World, tmp_path: Path) -> None:
    world = warm
    mutate_add_a_page(world)  # both runs rewrite entries at the same time
    cache = GitHubCache(tmp_path / "cache")
    identity = token_identity(world.sandbox.url, "sandbox-token")
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def read() -> None:
        adapter = GitHubAdapter(world.sandbox.url, "sandbox-token", cache=cache)
        try:
            for _ in range(5):
                names = [s.name for s in adapter.list_environment_secrets(REPO, "staging")]
                results.append(names)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            adapter.close()

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert cache.scope(identity) is not None
    truth_names = results[0]
    assert len(truth_names) > 100
    assert all(names == truth_names for names in results)
    seen = cached_plan(world, tmp_path)
    assert seen["changes"] == truth(world)
    for path in entries(tmp_path / "cache"):
        assert not path.name.startswith(".")  # no temporary file left behind


def test_a_wrapped_requester_without_cache_entries_sends_plain_requests(
    sandbox: GitHubSandbox, tmp_path: Path
) -> None:
    adapter = GitHubAdapter(sandbox.url, "sandbox-token")
    scope = GitHubCache(tmp_path / "c").scope(token_identity(sandbox.url, "sandbox-token"))
    assert scope is not None
    conditional_reads(adapter._requester, scope, "")
    spent = sandbox.rate_limit_used()
    adapter.list_environments(REPO)
    adapter.list_environments(REPO)
    assert sandbox.rate_limit_used() == spent + 1
    adapter.close()
