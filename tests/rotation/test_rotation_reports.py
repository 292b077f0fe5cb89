"""Rotation says what it did (issue 10 item 8), on OpenBao and the GitHub sandbox:

- a step that does not apply to the strategy is reported skipped with its reason, never as ✓;
- a rollback of a first-ever rotation (no previous value of the rotated key) removes from GitHub
  what that rotation wrote (and only that);
- flag variables that require a rotated secret are re-evaluated in the same run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envmatrix.adapters.github import GitHubAdapter
from envmatrix.rotation.engine import RotationEngine, RotationOutcome
from envmatrix.rotation.groups import groups_for
from envmatrix.rotation.strategies import StrategySettings
from envmatrix.secret import SecretValue
from tests.rotation.rotation_support import (
    REPOS,
    copies,
    echo_rotation,
    load,
    run_cli,
    seed,
    sync_all,
    trust_initial,
    write_policy,
)

FLAG = "FEATURE_API"


def engine_for(policy: Any, vault: Any, sandbox: Any, value: str = "typed-new-value") -> Any:
    settings = StrategySettings(Path("."), value_source=lambda name, key: SecretValue(value))
    return RotationEngine(
        policy, vault, GitHubAdapter(sandbox.url, "sandbox-token"), settings=settings
    )


def with_flag(path: Path, environments: list[str]) -> Path:
    """Add FEATURE_API (requires API_TOKEN) to the policy written by write_policy."""
    policy = json.loads(path.read_text())
    policy["flags"] = {FLAG: {"requires": ["API_TOKEN"], "environments": environments}}
    path.write_text(json.dumps(policy, indent=2))
    return path


def steps(outcome: RotationOutcome) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in outcome.to_json()["steps"]}


# -- skipped steps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rotation", "skipped"),
    [
        ({"max_age": "30d", "strategy": "generate"}, {"tested", "revoked"}),
        (
            {"max_age": "30d", "strategy": "generate", "options": {"length": 64}},
            {"tested", "revoked"},
        ),
        ({"max_age": "30d", "strategy": "manual"}, {"tested", "revoked"}),
        (None, set()),  # command: the rotator tests and revokes at its provider
    ],
)
def test_a_step_that_does_not_apply_is_skipped_with_its_reason(
    tmp_path: Path, vault: Any, sandbox: Any, rotation: Any, skipped: set[str]
) -> None:
    path = write_policy(tmp_path, vault.mount, rotation or echo_rotation(tmp_path), ["production"])
    policy = load(path)
    trust_initial(tmp_path, seed(policy, vault, sandbox))
    sync_all(path, vault, sandbox)
    (outcome,) = [
        engine_for(policy, vault, sandbox).rotate(g) for g in groups_for(policy, "API_TOKEN")
    ]
    assert outcome.result == "done", outcome.message
    found = steps(outcome)
    assert {name for name, s in found.items() if s["skipped"]} == skipped
    strategy = policy.secrets["API_TOKEN"].rotation.strategy  # type: ignore[union-attr]
    for name in skipped:
        assert found[name]["ok"] and f"{strategy} has no provider" in found[name]["detail"]
    if not skipped:
        assert found["tested"]["detail"] == "the new credential works"
        assert "retired" in found["revoked"]["detail"]


def test_the_command_line_shows_skipped_steps_with_a_dash(
    tmp_path: Path, vault: Any, vault_env: Any, sandbox: Any
) -> None:
    path = write_policy(
        tmp_path, vault.mount, {"max_age": "30d", "strategy": "manual"}, ["production"]
    )
    seed(load(path), vault, sandbox)
    sync_all(path, vault, sandbox)
    args = ["rotate", "API_TOKEN", "--policy", str(path), "--yes"]
    done = run_cli(args, vault_env, sandbox, stdin="pasted-new-token\n")
    assert done.returncode == 0, done.stderr
    assert "– apps/production/api tested: skipped: manual has no provider" in done.stdout
    assert "– apps/production/api revoked: skipped: manual has no provider" in done.stdout
    assert "the new credential works" not in done.stdout and "retired" not in done.stdout
    assert "✓ apps/production/api synced:" in done.stdout
    again = run_cli([*args, "--json"], vault_env, sandbox, stdin="another-token\n")
    (rotation,) = json.loads(again.stdout)["rotations"]
    by_step = {s["step"]: s for s in rotation["steps"]}
    assert by_step["tested"]["skipped"] is True and by_step["synced"]["skipped"] is False


# -- rollback of a first-ever rotation -----------------------------------------------------------


@pytest.mark.parametrize("before", ["no-path", "sibling-key-only"])
def test_rolling_back_a_first_rotation_removes_what_it_wrote(
    tmp_path: Path, vault: Any, sandbox: Any, before: str
) -> None:
    rotation = {"max_age": "30d", "strategy": "generate", "grace": "1h"}
    path = with_flag(write_policy(tmp_path, vault.mount, rotation, ["production"]), ["production"])
    policy = load(path)
    vault.write_values("apps/production/other", {"value": SecretValue("other")})
    if before == "sibling-key-only":
        vault.write_values("apps/production/api", {"client_id": SecretValue("client-production")})
    sync_all(path, vault, sandbox)  # API_TOKEN blocked: nothing in Vault
    assert copies(sandbox, "production") == [None, None]
    assert [sandbox.variable_value(r, "production", FLAG) for r in REPOS] == ["false", "false"]

    engine = engine_for(policy, vault, sandbox)
    (group,) = groups_for(policy, "API_TOKEN")
    rotated = engine.rotate(group)
    assert rotated.result == "in-grace", rotated.message
    new = vault.read_values("apps/production/api")["token"].reveal()
    assert copies(sandbox, "production") == [new, new]
    # the flag turned true in the same run, not at the next apply
    assert [sandbox.variable_value(r, "production", FLAG) for r in REPOS] == ["true", "true"]
    assert any(s.step == "flags" and s.ok for s in rotated.steps)

    sandbox.clock.advance(5)  # an outside write in a later second is not ours to remove
    sandbox.write_secret_outside(REPOS[1], "production", "API_TOKEN", "set-by-hand")
    back = engine.rollback(group)
    assert back.result == "rolled-back", back.message
    assert "token" not in vault.read_values("apps/production/api")
    assert copies(sandbox, "production") == [None, "set-by-hand"]
    assert copies(sandbox, "production", "OTHER") == ["other", "other"]
    if before == "sibling-key-only":
        assert copies(sandbox, "production", "API_CLIENT_ID") == ["client-production"] * 2
    assert [sandbox.variable_value(r, "production", FLAG) for r in REPOS] == ["false", "false"]
    assert "removed" in steps(back)["resync"]["detail"]


def test_a_rollback_with_a_previous_value_restores_it_and_removes_nothing(
    tmp_path: Path, vault: Any, sandbox: Any
) -> None:
    rotation = {"max_age": "30d", "strategy": "generate", "grace": "1h"}
    path = write_policy(tmp_path, vault.mount, rotation, ["production"])
    policy = load(path)
    tokens = seed(policy, vault, sandbox)
    sync_all(path, vault, sandbox)
    engine = engine_for(policy, vault, sandbox)
    (group,) = groups_for(policy, "API_TOKEN")
    assert engine.rotate(group).result == "in-grace"
    back = engine.rollback(group)
    assert back.result == "rolled-back", back.message
    assert copies(sandbox, "production") == [tokens["production"]] * 2
    assert "removed" not in steps(back)["resync"]["detail"]
    assert steps(back)["discard"]["skipped"]  # generate: nothing to discard at a provider


# -- flags re-evaluated in the same run ---------------------------------------------------------


@pytest.mark.parametrize("environments", [["production"], ["staging", "production"]])
def test_flags_of_other_environments_and_secrets_are_left_alone(
    tmp_path: Path, vault: Any, sandbox: Any, environments: list[str]
) -> None:
    rotation = {"max_age": "30d", "strategy": "generate"}
    path = with_flag(write_policy(tmp_path, vault.mount, rotation, environments), environments)
    policy = load(path)
    for env in environments:
        vault.write_values(f"apps/{env}/other", {"value": SecretValue("o")})
    sync_all(path, vault, sandbox)
    engine = engine_for(policy, vault, sandbox)
    first = groups_for(policy, "API_TOKEN")[-1]  # production
    assert engine.rotate(first).result == "done"
    for env in environments:
        expected = "true" if env == first.environment else "false"
        assert [sandbox.variable_value(r, env, FLAG) for r in REPOS] == [expected] * 2
