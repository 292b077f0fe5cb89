"""`protection_difference`, pure: tables of what the policy names, what GitHub holds, and the write
(or nothing) that follows. No servers; the end-to-end behaviour is in test_protection.py."""

from __future__ import annotations

import pytest

from envmatrix.pipeline.desired import ProtectionCell, Target
from envmatrix.pipeline.plan import Action, Change, Kind, Reason
from envmatrix.pipeline.protection import (
    ProtectionObservation,
    ProtectionWrite,
    protection_difference,
)
from envmatrix.ports import (
    BranchPattern,
    DeploymentBranchPolicy,
    ObservedProtection,
    ProtectionSettings,
    ReviewerRef,
)

PROD = Target("occ/app", "production", "production")
IDS = {("user", "octo"): 1, ("user", "mallory"): 2, ("team", "occ/release"): 3}
OCTO, MALLORY, RELEASE = (
    ReviewerRef("User", 1, "octo"),
    ReviewerRef("User", 2, "mallory"),
    (ReviewerRef("Team", 3, "occ/release")),
)
MAIN, TAGS = BranchPattern("branch", "main"), BranchPattern("tag", "v*")


def _observed(
    settings: ProtectionSettings | None, policies: tuple[DeploymentBranchPolicy, ...] = ()
) -> ProtectionObservation:
    protection = {PROD: ObservedProtection("production", settings)} if settings else {}
    return ProtectionObservation(
        {"occ/app": frozenset({"production"} if settings else set())},
        protection,
        {PROD: policies} if policies else {},
        IDS,
    )


@pytest.mark.parametrize(
    ("cell", "github"),
    [
        # every named key already as wanted
        (
            ProtectionCell(PROD, (("user", "octo"),), 30, True, "protected"),
            ProtectionSettings(30, True, (OCTO,), "protected"),
        ),
        # only wait_timer named: hand-set reviewers and branches are not a difference
        (ProtectionCell(PROD, wait_timer=5), ProtectionSettings(5, True, (MALLORY,), "protected")),
        # nothing named
        (ProtectionCell(PROD), ProtectionSettings(9, False, (MALLORY,), "custom")),
        # prevent_self_review is invisible without reviewers: not a difference
        (ProtectionCell(PROD, prevent_self_review=True), ProtectionSettings()),
        # reviewers compare by id, whatever their order or spelling
        (
            ProtectionCell(PROD, (("team", "OCC/Release"), ("user", "Octo"))),
            ProtectionSettings(reviewers=(OCTO, RELEASE)),
        ),
    ],
)
def test_in_sync_is_no_change(cell: ProtectionCell, github: ProtectionSettings) -> None:
    assert protection_difference(cell, _observed(github)) is None


def test_named_keys_are_the_whole_state_and_the_rest_is_carried_over() -> None:
    cell = ProtectionCell(PROD, reviewers=(("user", "octo"),))
    github = ProtectionSettings(45, True, (OCTO, MALLORY), "protected")
    difference = protection_difference(cell, _observed(github))
    assert difference is not None and difference.write is not None
    assert difference.detail == "reviewers -user mallory"
    # the PUT keeps what the policy does not name
    assert difference.write.settings == ProtectionSettings(45, True, (OCTO,), "protected")


@pytest.mark.parametrize(
    ("cell", "github", "detail"),
    [
        (ProtectionCell(PROD, wait_timer=0), ProtectionSettings(wait_timer=10), "10 -> 0 min"),
        (
            ProtectionCell(PROD, (("user", "octo"),), prevent_self_review=False),
            ProtectionSettings(prevent_self_review=True, reviewers=(OCTO,)),
            "prevent_self_review true -> false",
        ),
        (
            ProtectionCell(PROD, deployment_branches="all"),
            ProtectionSettings(deployment_branches="protected"),
            "deployment_branches protected -> all",
        ),
        (ProtectionCell(PROD, reviewers=()), ProtectionSettings(reviewers=(RELEASE,)), "-team"),
    ],
)
def test_each_named_key_that_differs_is_a_change(
    cell: ProtectionCell, github: ProtectionSettings, detail: str
) -> None:
    difference = protection_difference(cell, _observed(github))
    assert difference is not None and not difference.blocked
    assert detail in difference.detail


def test_custom_patterns_add_the_missing_and_delete_the_extra_by_id() -> None:
    cell = ProtectionCell(PROD, deployment_branches=(MAIN, TAGS))
    have = (
        DeploymentBranchPolicy(70, MAIN),
        DeploymentBranchPolicy(71, BranchPattern("branch", "hotfix/*")),
    )
    difference = protection_difference(
        cell, _observed(ProtectionSettings(deployment_branches="custom"), have)
    )
    assert difference is not None and difference.write is not None
    assert difference.write.add_patterns == (TAGS,)
    assert difference.write.delete_patterns == (have[1],)
    assert difference.detail == "patterns +tag v* -branch hotfix/*"


def test_switching_to_custom_adds_every_pattern() -> None:
    cell = ProtectionCell(PROD, deployment_branches=(MAIN,))
    difference = protection_difference(cell, _observed(ProtectionSettings()))
    assert difference is not None and difference.write is not None
    assert difference.write.settings.deployment_branches == "custom"
    assert difference.write.add_patterns == (MAIN,)


def test_a_missing_environment_gets_the_named_keys_over_github_defaults() -> None:
    cell = ProtectionCell(PROD, wait_timer=30)
    difference = protection_difference(cell, _observed(None))
    assert difference is not None and difference.write is not None
    assert difference.write.settings == ProtectionSettings(wait_timer=30)
    assert protection_difference(ProtectionCell(PROD, wait_timer=0), _observed(None)) is None


def test_an_unknown_reviewer_blocks() -> None:
    cell = ProtectionCell(PROD, reviewers=(("user", "octo"), ("user", "ghost")), wait_timer=3)
    observation = _observed(ProtectionSettings())
    observation = ProtectionObservation(
        observation.environments, observation.protection, {}, {**IDS, ("user", "ghost"): None}
    )
    difference = protection_difference(cell, observation)
    assert difference is not None and difference.blocked and "user ghost" in difference.detail


def test_a_protection_change_survives_a_saved_plan() -> None:
    write = ProtectionWrite(
        ProtectionSettings(30, True, (RELEASE, OCTO), "custom"),
        (MAIN,),
        (DeploymentBranchPolicy(71, TAGS),),
    )
    change = Change(
        Action.UPDATE,
        Kind.ENVIRONMENT,
        "occ/app",
        "production",
        "production",
        Reason.PROTECTION_DIFFERS,
        "wait_timer 0 -> 30 min",
        logical_environment="production",
        protection=write,
    )
    assert Change.from_json(change.to_json()) == change
    assert Change.from_json(change.to_json()).to_json() == change.to_json()
