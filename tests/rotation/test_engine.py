"""The rotation engine against a real OpenBao and the GitHub sandbox (in process)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from envmatrix.adapters.github import GitHubAdapter
from envmatrix.audit.events import MemorySink
from envmatrix.rotation.engine import RotationEngine, rotate_due
from envmatrix.rotation.groups import groups_for
from envmatrix.rotation.journal import JournalStore, Step, pending_path
from envmatrix.rotation.strategies import StrategySettings
from envmatrix.rotation.strategies.base import BaseStrategy, Created
from envmatrix.sandbox import Fault
from envmatrix.secret import SecretValue
from envmatrix.strategy_registry import STRATEGIES, GenerateOptions, Registered
from tests.rotation.rotation_support import (
    copies,
    echo_rotation,
    load,
    plan_writes,
    provider_valid,
    seed,
    sync_all,
    trust_initial,
    write_policy,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world(tmp_path: Path, vault: Any, sandbox: Any) -> Any:
    def make(rotation: dict[str, Any], environments: list[str] | None = None) -> Any:
        path = write_policy(
            tmp_path, vault.mount, rotation, environments or ["staging", "production"]
        )
        policy = load(path)
        tokens = seed(policy, vault, sandbox)
        trust_initial(tmp_path, tokens)
        sync_all(path, vault, sandbox)
        return path, policy, tokens

    return make


def engine_for(policy: Any, vault: Any, sandbox: Any, **kw: Any) -> RotationEngine:
    kw.setdefault("settings", StrategySettings(Path(".")))
    return RotationEngine(policy, vault, GitHubAdapter(sandbox.url, "sandbox-token"), **kw)


def test_generate_promotes_a_new_version_and_syncs_every_copy(world, vault, sandbox) -> None:
    path, policy, tokens = world(
        {"max_age": "30d", "strategy": "generate", "options": {"length": 40, "alphabet": "hex"}}
    )
    audit = MemorySink()
    engine = engine_for(policy, vault, sandbox, audit=audit)
    outcomes = [engine.rotate(g) for g in groups_for(policy, "API_TOKEN")]
    assert [o.result for o in outcomes] == ["done", "done"]
    for env in ("staging", "production"):
        entry = vault.read_entry(f"apps/{env}/api")
        new = vault.read_values(f"apps/{env}/api")["token"].reveal()
        assert len(new) == 40 and set(new) <= set("0123456789abcdef")
        assert copies(sandbox, env) == [new, new]
        assert copies(sandbox, env, "API_CLIENT_ID") == [f"client-{env}"] * 2
        previous = vault.read_values(f"apps/{env}/api", entry.version - 1)["token"]
        assert previous.reveal() == tokens[env]
        assert vault.read_document(pending_path(f"apps/{env}/api")) is None
        journal = JournalStore(vault).read(f"apps/{env}/api").journal
        assert journal.step is Step.DONE and journal.new_version == entry.version
    assert plan_writes(path, vault, sandbox) == []
    actions = [e.action for e in audit.events if e.action.startswith("rotation.")]
    assert actions[:8] == [
        "rotation.start",
        "rotation.create",
        "rotation.stage",
        "rotation.test",
        "rotation.promote",
        "rotation.sync",
        "rotation.revoke",
        "rotation.done",
    ]
    assert any(e.action == "secret.put" for e in audit.events)


def test_grace_keeps_the_previous_credential_until_rotate_due(
    world, vault, sandbox, tmp_path
) -> None:
    path, policy, tokens = world(echo_rotation(tmp_path, grace="1d"), ["production"])
    clock = Clock()
    engine = engine_for(policy, vault, sandbox, clock=clock)
    [group] = groups_for(policy, "API_TOKEN")
    outcome = engine.rotate(group)
    assert outcome.result == "in-grace", outcome.message
    new = vault.read_values("apps/production/api")["token"].reveal()
    assert provider_valid(tmp_path) == {tokens["production"], new}
    again = engine.rotate(group)
    assert again.result == "failed" and "grace period until" in again.message
    assert rotate_due(engine, (), due=lambda *a: []) == []  # grace not over: nothing to revoke
    clock.now += timedelta(days=1, seconds=1)
    [finished] = rotate_due(engine, (), due=lambda *a: [])
    assert finished.result == "done"
    assert provider_valid(tmp_path) == {new}
    assert copies(sandbox, "production") == [new, new]


def test_rollback_within_grace_restores_and_resyncs_the_previous_value(
    world,
    vault,
    sandbox,
    tmp_path,
) -> None:
    path, policy, tokens = world(echo_rotation(tmp_path, grace="7d"), ["production"])
    engine = engine_for(policy, vault, sandbox)
    [group] = groups_for(policy, "API_TOKEN")
    assert engine.rotate(group).result == "in-grace"
    new = vault.read_values("apps/production/api")["token"].reveal()
    outcome = engine.rollback(group)
    assert outcome.result == "rolled-back", outcome.message
    assert vault.read_values("apps/production/api")["token"].reveal() == tokens["production"]
    assert copies(sandbox, "production") == [tokens["production"]] * 2
    assert provider_valid(tmp_path) == {tokens["production"]}  # the new token was discarded
    assert new not in provider_valid(tmp_path)
    assert plan_writes(path, vault, sandbox) == []
    assert engine.rollback(group).result == "failed"  # nothing left to roll back
    assert engine.rotate(group).result == "in-grace"  # and a new rotation may begin


def test_rollback_after_grace_is_refused(world, vault, sandbox, tmp_path) -> None:
    path, policy, tokens = world(echo_rotation(tmp_path, grace="1h"), ["production"])
    clock = Clock()
    engine = engine_for(policy, vault, sandbox, clock=clock)
    [group] = groups_for(policy, "API_TOKEN")
    engine.rotate(group)
    clock.now += timedelta(hours=2)
    outcome = engine.rollback(group)
    assert outcome.result == "failed" and "grace period ended" in outcome.message
    assert copies(sandbox, "production") != [tokens["production"]] * 2


def test_a_failed_test_abandons_before_cutover(world, vault, sandbox, tmp_path) -> None:
    rotation = echo_rotation(tmp_path, options={"fail_step": "test"})
    path, policy, tokens = world(rotation, ["production"])
    before = vault.read_entry("apps/production/api").version
    engine = engine_for(policy, vault, sandbox)
    [group] = groups_for(policy, "API_TOKEN")
    outcome = engine.rotate(group)
    assert outcome.result == "failed" and "failed at step test (exit 1)" in outcome.message
    assert vault.read_entry("apps/production/api").version == before
    assert copies(sandbox, "production") == [tokens["production"]] * 2
    assert provider_valid(tmp_path) == {tokens["production"]}  # discarded
    assert vault.read_document(pending_path("apps/production/api")) is None
    assert JournalStore(vault).read("apps/production/api").journal.step is Step.FAILED


def test_a_failed_sync_stays_promoted_and_resume_resyncs(world, vault, sandbox) -> None:
    path, policy, tokens = world({"max_age": "30d", "strategy": "generate"}, ["production"])
    [group] = groups_for(policy, "API_TOKEN")
    sandbox.inject(Fault(method="PUT", path="storefront-sync/.*/secrets/API_TOKEN", status=500))
    outcome = engine_for(policy, vault, sandbox).rotate(group)
    assert outcome.result == "failed" and "--resume" in outcome.message
    assert JournalStore(vault).read("apps/production/api").journal.step is Step.PROMOTED
    new = vault.read_values("apps/production/api")["token"].reveal()
    assert set(copies(sandbox, "production")) <= {tokens["production"], new}
    sandbox.clear_faults()
    assert engine_for(policy, vault, sandbox).resume(group).result == "done"
    assert copies(sandbox, "production") == [new, new]
    assert plan_writes(path, vault, sandbox) == []


def test_a_second_runner_is_refused_while_a_rotation_is_in_progress(world, vault, sandbox) -> None:
    path, policy, _ = world({"max_age": "30d", "strategy": "generate"}, ["production"])
    [group] = groups_for(policy, "API_TOKEN")
    first = engine_for(policy, vault, sandbox, actor="runner-one")
    with pytest.MonkeyPatch.context() as mp:  # stop the first runner right after staging
        mp.setattr(first, "_test", _raise_crash)
        with pytest.raises(_Crash):
            first.rotate(group)
    second = engine_for(policy, vault, sandbox, actor="runner-two")
    outcome = second.rotate(group)
    assert outcome.result == "failed"
    assert "being rotated by runner-one on " in outcome.message  # holder: actor, host, pid
    assert " since " in outcome.message and "--resume" in outcome.message
    assert second.resume(group).result == "done"


class _Crash(BaseException):
    pass


def _raise_crash(run: Any) -> None:
    raise _Crash()


class _RacingStrategy(BaseStrategy):
    """Writes the path itself during test, as a concurrent writer would."""

    name = "racing"

    def __init__(self, vault: Any) -> None:
        self.vault = vault
        self.discarded = False

    def create(self, ctx: Any) -> Created:
        return Created({k: SecretValue("new-" + k) for k in ctx.keys.values()})

    def test(self, ctx: Any, pending: Any) -> None:
        self.vault.write_values(
            ctx.path, {"token": SecretValue("someone-else"), "client_id": SecretValue("x")}
        )

    def revoke(self, ctx: Any, previous: Any) -> None:
        return None

    def discard(self, ctx: Any, pending: Any) -> None:
        self.discarded = True


def test_vault_changed_during_the_rotation_abandons_it(world, vault, sandbox, monkeypatch) -> None:
    path, policy, tokens = world({"max_age": "30d", "strategy": "generate"}, ["production"])
    racing = _RacingStrategy(vault)
    racer = Registered("tests.rotation.test_engine:_racing", GenerateOptions)
    monkeypatch.setitem(STRATEGIES, "generate", racer)
    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "_RACER", racing, raising=False)
    [group] = groups_for(policy, "API_TOKEN")
    outcome = engine_for(policy, vault, sandbox).rotate(group)
    assert outcome.result == "failed" and "changed since the rotation began" in outcome.message
    assert racing.discarded
    assert vault.read_values("apps/production/api")["token"].reveal() == "someone-else"
    assert copies(sandbox, "production") == [tokens["production"]] * 2


_RACER: Any = None


def _racing(options: Any, settings: Any) -> Any:
    return _RACER
