"""Saved plans (envmatrix/sync.py): apply carries out only changes the policy produces now.

A saved plan is a review artefact that may outlive the job that made it; whoever can edit the
file must not choose what apply writes. Pure tests of the comparison first (tables of edits),
then the CLI against OpenBao and the GitHub sandbox with plan files edited by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from envmatrix.errors import PlanMismatchError
from envmatrix.pipeline.plan import Action, Change, Kind, Plan, Reason
from envmatrix.pipeline.planfile import require_policy_changes
from tests.world import REPO, World

UPDATE = Change(
    Action.UPDATE,
    Kind.SECRET,
    "acme/web",
    "dev",
    "APP_TOKEN",
    Reason.VAULT_NEWER,
    "last synced v1; Vault app/dev#token v2",
    logical_environment="dev",
    owner="app",
    vault_path="app/dev",
    vault_key="token",
    vault_version=2,
)
FLAG = Change(
    Action.CREATE,
    Kind.VARIABLE,
    "acme/web",
    "dev",
    "FEATURE_X",
    Reason.FLAG_NOT_READY,
    "unset -> false: waiting for APP_TOKEN",
    logical_environment="dev",
    value="false",
    requires=("APP_TOKEN",),
)
ORPHAN = Change(
    Action.ORPHAN,
    Kind.SECRET,
    "acme/web",
    "prod",
    "PAYMENTS_KEY",
    Reason.NOT_IN_POLICY,
    "in GitHub, not in the policy (not written by envmatrix)",
    logical_environment="prod",
)
FRESH = Plan((UPDATE, FLAG, ORPHAN), "fingerprint")

EDITS: dict[str, tuple[tuple[Change, ...], str]] = {
    "another Vault path": (
        (replace(UPDATE, vault_path="db/prod", vault_key="password"), FLAG, ORPHAN),
        "change 1 (update secret acme/web dev APP_TOKEN from db/prod#password v2)",
    ),
    "another Vault key": ((replace(UPDATE, vault_key="admin"), FLAG, ORPHAN), "change 1"),
    "an older Vault version": ((replace(UPDATE, vault_version=1), FLAG, ORPHAN), "v1)"),
    "another repository": (
        (replace(UPDATE, repository="evil/stash"), FLAG, ORPHAN),
        "evil/stash dev APP_TOKEN",
    ),
    "another environment": (
        (replace(UPDATE, environment="loot"), FLAG, ORPHAN),
        "acme/web loot APP_TOKEN",
    ),
    "into the repository scope": (
        (replace(UPDATE, environment=None, logical_environment=None), FLAG, ORPHAN),
        "acme/web (repository) APP_TOKEN",
    ),
    "another name": ((replace(UPDATE, name="LOOT"), FLAG, ORPHAN), "dev LOOT"),
    "an orphan deleted": (
        (UPDATE, FLAG, replace(ORPHAN, action=Action.DELETE, reason=Reason.PRUNED)),
        "change 3 (delete secret acme/web prod PAYMENTS_KEY)",
    ),
    "a flag forced true": ((UPDATE, replace(FLAG, value="true"), ORPHAN), "FEATURE_X = true"),
    "a secret turned variable": ((replace(UPDATE, kind=Kind.VARIABLE), FLAG, ORPHAN), "variable"),
    "a change added": (
        (UPDATE, FLAG, ORPHAN, replace(UPDATE, environment="prod", vault_path="app/prod")),
        "change 4",
    ),
    "a change dropped": ((FLAG, ORPHAN), "lacks update secret acme/web dev APP_TOKEN"),
    "a change repeated": ((UPDATE, UPDATE, FLAG, ORPHAN), "repeated"),
}


@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_a_saved_change_the_policy_does_not_produce_is_refused(edit: str) -> None:
    saved, named = EDITS[edit]
    with pytest.raises(PlanMismatchError) as refused:
        require_policy_changes("plan.json", saved, FRESH)
    message = str(refused.value)
    assert message.startswith("saved plan plan.json does not match the policy: ")
    assert named in message and message.endswith("; plan again")


def test_fields_that_only_explain_a_change_may_differ() -> None:
    explained = replace(UPDATE, reason=Reason.CHANGED_OUTSIDE, detail="edited", owner="someone")
    require_policy_changes("plan.json", (explained, FLAG, ORPHAN), FRESH)
    require_policy_changes("plan.json", (), Plan(()))


# -- end to end: plan --out, edit the file, apply it ------------------------------------------


def _edit_plan(planfile: Path, edit: Callable[[list[dict[str, Any]]], None]) -> None:
    document = json.loads(planfile.read_text())
    edit(document["changes"])
    planfile.write_text(json.dumps(document))


def _first(changes: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    return next(c for c in changes if all(c[k] == v for k, v in match.items()))


def _prod_source_into_staging(changes: list[dict[str, Any]]) -> None:
    change = _first(changes, name="ZOHO_CLIENT_ID", environment="staging")
    change.update(vault_path="apps/production/zoho", vault_key="client_secret")


def _into_another_repository(changes: list[dict[str, Any]]) -> None:
    changes.append(dict(_first(changes, name="ZOHO_CLIENT_ID"), repository="evil/stash"))


def _delete_an_orphan(changes: list[dict[str, Any]]) -> None:
    orphan = _first(changes, name="LEGACY_TOKEN")
    orphan.update(action="delete", reason="pruned")


def _flag_true_early(changes: list[dict[str, Any]]) -> None:
    _first(changes, kind="variable", environment="staging").update(value="true")


def _drop_environment_creation(changes: list[dict[str, Any]]) -> None:
    changes.remove(_first(changes, kind="environment", environment="staging"))


TAMPERING = {
    "production source into staging": (_prod_source_into_staging, "ZOHO_CLIENT_ID from apps/"),
    "into another repository": (
        _into_another_repository,
        "create secret evil/stash production ZOHO_CLIENT_ID",
    ),
    "delete an unmanaged secret": (_delete_an_orphan, "delete secret"),
    "flag true while blocked": (_flag_true_early, "FEATURE_AI_ESCALATIONS = true"),
    "a change left out": (_drop_environment_creation, "lacks create environment"),
}


@pytest.mark.parametrize("case", list(TAMPERING), ids=list(TAMPERING))
def test_apply_refuses_a_hand_edited_plan_and_writes_nothing(
    case: str, world: World, tmp_path: Path
) -> None:
    edit, named = TAMPERING[case]
    world.seed(leave_out=("SUPABASE_SERVICE_KEY", "staging"))  # the staging flag stays false
    world.sandbox.create_environment(REPO, "production")
    world.sandbox.write_secret_outside(REPO, "production", "LEGACY_TOKEN", "someone-elses")
    world.sandbox.reset_counts()
    planfile = tmp_path / "plan.json"
    assert world.run("plan", "--out", str(planfile)).code == 0
    _edit_plan(planfile, edit)
    refused = world.run("apply", str(planfile), "--yes")
    assert refused.code == 1, refused.err
    assert refused.err.count("\n") == 1 and "does not match the policy" in refused.err
    assert named in refused.err and refused.out == ""
    writes = {
        k: n
        for k, n in world.sandbox.request_counts().items()
        if k[0] in ("PUT", "POST", "PATCH", "DELETE")
    }
    assert writes == {}
    assert world.sandbox.secret_value(REPO, "production", "LEGACY_TOKEN") == "someone-elses"


def test_an_unedited_plan_still_applies_and_explanations_may_be_edited(
    world: World, tmp_path: Path
) -> None:
    world.seed()
    planfile = tmp_path / "plan.json"
    assert world.run("plan", "--out", str(planfile)).code == 0
    _edit_plan(planfile, lambda changes: [c.update(detail="reviewed") for c in changes])
    applied = world.run("apply", str(planfile), "--yes")
    assert applied.code == 0, applied.err
    assert world.mismatches() == []


def test_a_plan_narrowed_to_one_environment_is_checked_against_that_selection(
    world: World, tmp_path: Path
) -> None:
    world.seed()
    planfile = tmp_path / "plan.json"
    assert world.run("plan", "--environment", "staging", "--out", str(planfile)).code == 0
    assert json.loads(planfile.read_text())["environments"] == ["staging"]
    applied = world.run("apply", str(planfile), "--yes")
    assert applied.code == 0, applied.err
    assert world.sandbox.environment_names(REPO) == ["staging"]
