"""apply, the apply lock and rotation on a real OpenBao whose KV v2 data an operator deleted,
destroyed or metadata-deleted, on `cas_required` mounts and with small `max_versions`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hvac
import pytest

from envmatrix.adapters.github import GitHubAdapter
from envmatrix.lock import APPLY_LOCK, VaultLock, lock_path
from envmatrix.pipeline.desired import Target
from envmatrix.pipeline.state import SyncState, state_path
from envmatrix.rotation.engine import RotationEngine
from envmatrix.rotation.groups import groups_for
from envmatrix.rotation.journal import JournalStore, Step, journal_path, pending_path
from envmatrix.rotation.strategies import StrategySettings
from envmatrix.secret import SecretValue
from tests.envmatrix.adapters.test_vault_lifecycle import REMOVALS, remove
from tests.rotation.rotation_support import (
    REPOS,
    copies,
    echo_rotation,
    load,
    plan_writes,
    seed,
    sync_all,
    trust_initial,
    write_policy,
)

GENERATE = {"max_age": "30d", "strategy": "generate", "options": {"length": 32}}
PATH = "apps/production/api"


@pytest.fixture
def world(tmp_path: Path, vault: Any, sandbox: Any) -> Any:
    def make(rotation: dict[str, Any]) -> Any:
        path = write_policy(tmp_path, vault.mount, rotation, ["production"])
        policy = load(path)
        tokens = seed(policy, vault, sandbox)
        trust_initial(tmp_path, tokens)
        return path, policy, tokens

    return make


def engine_for(policy: Any, vault: Any, sandbox: Any) -> RotationEngine:
    github = GitHubAdapter(sandbox.url, "sandbox-token")
    return RotationEngine(policy, vault, github, settings=StrategySettings(Path(".")))


def production_state(repository: str) -> str:
    return state_path(Target(repository, "production", "production"))


@pytest.mark.parametrize("how", REMOVALS)
def test_apply_converges_after_its_sync_state_is_removed(
    world: Any, vault: Any, sandbox: Any, vault_admin: hvac.Client, how: str
) -> None:
    path, _policy, _tokens = world(GENERATE)
    sync_all(path, vault, sandbox)
    for repository in REPOS:
        remove(vault_admin, vault.mount, production_state(repository), how)
    assert plan_writes(path, vault, sandbox)  # no record: the secrets are rewritten once
    sync_all(path, vault, sandbox)  # asserts the report is ok: the state was saved
    assert plan_writes(path, vault, sandbox) == []
    for repository in REPOS:
        state = SyncState.from_document(vault.read_document(production_state(repository)))
        assert "API_TOKEN" in str(state.to_document())


@pytest.mark.parametrize("how", REMOVALS)
def test_the_apply_lock_is_taken_after_its_document_is_removed(
    vault: Any, vault_admin: hvac.Client, how: str
) -> None:
    first = VaultLock(vault, APPLY_LOCK, "apply", "token:a accessor:1")
    with first:
        pass  # taken and released: the document holds a released lock
    remove(vault_admin, vault.mount, lock_path(APPLY_LOCK), how)
    second = VaultLock(vault, APPLY_LOCK, "apply", "token:b accessor:2")
    with second as held:
        assert second.read() is not None and second.read().id == held.id  # type: ignore[union-attr]
    assert second.release_error is None


@pytest.mark.parametrize("how", REMOVALS)
def test_rotation_after_its_journal_and_pending_values_are_removed(
    world: Any, vault: Any, sandbox: Any, vault_admin: hvac.Client, how: str
) -> None:
    path, policy, _tokens = world(GENERATE)
    sync_all(path, vault, sandbox)
    engine = engine_for(policy, vault, sandbox)
    [group] = groups_for(policy, "API_TOKEN")
    assert engine.rotate(group).result == "done"
    remove(vault_admin, vault.mount, journal_path(PATH), how)
    # a crashed run's pending values, then removed the same way
    vault.write_values(pending_path(PATH), {"token": SecretValue("left-over")}, cas=0)
    remove(vault_admin, vault.mount, pending_path(PATH), how)
    outcome = engine.rotate(group)
    assert outcome.result == "done", outcome.message
    new = vault.read_values(PATH)["token"].reveal()
    assert copies(sandbox, "production") == [new, new]
    entry = JournalStore(vault).read(PATH)
    assert entry is not None and entry.journal.step is Step.DONE


def test_a_leftover_pending_document_is_written_over(world: Any, vault: Any, sandbox: Any) -> None:
    path, policy, _tokens = world(GENERATE)
    sync_all(path, vault, sandbox)
    vault.write_values(pending_path(PATH), {"token": SecretValue("left-over")}, cas=0)
    vault.write_values(pending_path(PATH), {"token": SecretValue("left-over-2")}, cas=1)
    outcome = engine_for(policy, vault, sandbox).rotate(*groups_for(policy, "API_TOKEN"))
    assert outcome.result == "done", outcome.message


@pytest.mark.parametrize("scope", ["mount", "secret"])
def test_rotate_and_rollback_on_cas_required(
    world: Any, vault: Any, sandbox: Any, vault_admin: hvac.Client, tmp_path: Path, scope: str
) -> None:
    path, policy, tokens = world(echo_rotation(tmp_path, grace="1d"))
    kv = vault_admin.secrets.kv.v2
    if scope == "mount":
        kv.configure(cas_required=True, mount_point=vault.mount)
    else:  # every path envmatrix writes, its own documents included
        for p in (PATH, pending_path(PATH), journal_path(PATH), lock_path(APPLY_LOCK)):
            kv.update_metadata(path=p, cas_required=True, mount_point=vault.mount)
        for repository in REPOS:
            kv.update_metadata(
                path=production_state(repository), cas_required=True, mount_point=vault.mount
            )
    sync_all(path, vault, sandbox)
    engine = engine_for(policy, vault, sandbox)
    [group] = groups_for(policy, "API_TOKEN")
    outcome = engine.rotate(group)
    assert outcome.result == "in-grace", outcome.message
    new = vault.read_values(PATH)["token"].reveal()
    assert copies(sandbox, "production") == [new, new]
    back = engine.rollback(group)
    assert back.result == "rolled-back", back.message
    assert copies(sandbox, "production") == [tokens["production"]] * 2
    assert plan_writes(path, vault, sandbox) == []


@pytest.mark.parametrize("scope", ["mount", "secret"])
def test_rotation_is_refused_when_vault_would_prune_the_previous_version(
    world: Any, vault: Any, sandbox: Any, vault_admin: hvac.Client, tmp_path: Path, scope: str
) -> None:
    path, policy, tokens = world(echo_rotation(tmp_path, grace="1d"))
    sync_all(path, vault, sandbox)
    kv = vault_admin.secrets.kv.v2
    if scope == "mount":
        kv.configure(max_versions=1, mount_point=vault.mount)
    else:
        kv.update_metadata(path=PATH, max_versions=1, mount_point=vault.mount)
    before = vault.read_entry(PATH).version
    outcome = engine_for(policy, vault, sandbox).rotate(*groups_for(policy, "API_TOKEN"))
    assert outcome.result == "failed"
    assert "max_versions=1" in outcome.message and "rollback" in outcome.message
    assert "\n" not in outcome.message
    assert vault.read_entry(PATH).version == before  # nothing was promoted
    assert vault.read_values(PATH)["token"].reveal() == tokens["production"]
    assert JournalStore(vault).read(PATH) is None  # nor begun


def test_envmatrix_documents_work_with_max_versions_one(
    world: Any, vault: Any, sandbox: Any, vault_admin: hvac.Client, tmp_path: Path
) -> None:
    path, policy, _tokens = world(echo_rotation(tmp_path, grace="1d"))
    kv = vault_admin.secrets.kv.v2
    documents = [pending_path(PATH), journal_path(PATH), lock_path(APPLY_LOCK)]
    documents += [production_state(repository) for repository in REPOS]
    for p in documents:
        kv.update_metadata(path=p, max_versions=1, mount_point=vault.mount)
    sync_all(path, vault, sandbox)
    engine = engine_for(policy, vault, sandbox)
    [group] = groups_for(policy, "API_TOKEN")
    assert engine.rotate(group).result == "in-grace"
    assert engine.rollback(group).result == "rolled-back"
    assert plan_writes(path, vault, sandbox) == []


def test_rollback_names_a_previous_version_vault_no_longer_holds(
    world: Any, vault: Any, sandbox: Any, vault_admin: hvac.Client, tmp_path: Path
) -> None:
    path, policy, _tokens = world(echo_rotation(tmp_path, grace="1d"))
    sync_all(path, vault, sandbox)
    engine = engine_for(policy, vault, sandbox)
    [group] = groups_for(policy, "API_TOKEN")
    outcome = engine.rotate(group)
    assert outcome.result == "in-grace"
    vault_admin.secrets.kv.v2.destroy_secret_versions(
        path=PATH, versions=[outcome.previous_version], mount_point=vault.mount
    )
    back = engine.rollback(group)
    assert back.result != "rolled-back"
    assert f"previous version v{outcome.previous_version} is no longer in Vault" in back.message
    assert "\n" not in back.message
