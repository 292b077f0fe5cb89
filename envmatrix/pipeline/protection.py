"""Environment protection: observe it, diff it against the policy, and the write that converges it.

The policy's `environments.<name>.protection` names some of four settings (reviewers, wait_timer,
prevent_self_review, deployment_branches); each one named is the whole wanted state of that
setting, and one left out keeps what GitHub has. The write is one `PUT` of the environment with
every setting (the ones left out carry GitHub's current values, so the result does not depend on
whether GitHub's PUT merges or replaces), plus the custom branch and tag patterns to add and to
delete.

Request economy: the environments list of each repository with a protected environment (the same
one call that tells which environments exist) carries wait timer, reviewers, prevent self-review
and the branch policy kind; the custom patterns are listed only for an environment that has
custom patterns on GitHub and a policy that names `deployment_branches`; each reviewer the policy
names is looked up to its id once per run (`GET /users/{u}`, `GET /orgs/{o}/teams/{t}`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from envmatrix.pipeline.desired import DesiredState, ProtectionCell, Target
from envmatrix.ports import (
    BranchPattern,
    DeploymentBranchPolicy,
    GitHubPort,
    ObservedProtection,
    ProtectionSettings,
    ReviewerRef,
)

ReviewerKey = tuple[str, str]  # ("user", login) / ("team", "org/slug"), lower-case
_GITHUB_TYPE = {"user": "User", "team": "Team"}


@dataclass(frozen=True)
class ProtectionObservation:
    """What GitHub holds for the protected environments of a desired state.

    `environments`: the lower-case environment names of each repository that was listed here;
    `protection`: per target whose environment exists; `branch_policies`: the custom patterns,
    for the targets that needed them; `reviewer_ids`: each named reviewer's id (None: GitHub
    has no such user or team).
    """

    environments: Mapping[str, frozenset[str]] = field(default_factory=dict)
    protection: Mapping[Target, ObservedProtection] = field(default_factory=dict)
    branch_policies: Mapping[Target, tuple[DeploymentBranchPolicy, ...]] = field(
        default_factory=dict
    )
    reviewer_ids: Mapping[ReviewerKey, int | None] = field(default_factory=dict)

    def canonical(self) -> dict[str, object]:
        """A JSON-able digest input: a saved plan is stale when any of it changes."""
        return {
            "protection": {_key(t): _canonical(p.settings) for t, p in self.protection.items()},
            "branch_policies": {
                _key(t): sorted([p.id, p.pattern.type, p.pattern.name] for p in policies)
                for t, policies in self.branch_policies.items()
            },
            "reviewer_ids": {":".join(k): v for k, v in sorted(self.reviewer_ids.items())},
        }


@dataclass(frozen=True)
class ProtectionWrite:
    """What apply sends for one environment: the whole PUT, then the patterns to add and the
    pattern ids to delete (custom deployment branches only)."""

    settings: ProtectionSettings
    add_patterns: tuple[BranchPattern, ...] = ()
    delete_patterns: tuple[DeploymentBranchPolicy, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            **_canonical(self.settings),
            "add_patterns": [{"type": p.type, "name": p.name} for p in self.add_patterns],
            "delete_patterns": [
                {"id": p.id, "type": p.pattern.type, "name": p.pattern.name}
                for p in self.delete_patterns
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProtectionWrite:
        """The inverse of to_json (a saved plan); KeyError/TypeError/ValueError when malformed."""
        settings = ProtectionSettings(
            wait_timer=int(data["wait_timer"]),
            prevent_self_review=bool(data["prevent_self_review"]),
            reviewers=tuple(
                ReviewerRef(str(r["type"]), int(r["id"]), str(r.get("name", "")))
                for r in data["reviewers"]
            ),
            deployment_branches=str(data["deployment_branches"]),
        )
        add = tuple(BranchPattern(str(p["type"]), str(p["name"])) for p in data["add_patterns"])
        delete = tuple(
            DeploymentBranchPolicy(int(p["id"]), BranchPattern(str(p["type"]), str(p["name"])))
            for p in data["delete_patterns"]
        )
        return cls(settings, add, delete)


@dataclass(frozen=True)
class ProtectionDifference:
    """The diff of one cell: a write and what it changes, or `blocked` (a reviewer unknown)."""

    detail: str
    write: ProtectionWrite | None = None

    @property
    def blocked(self) -> bool:
        return self.write is None


def _key(target: Target) -> str:
    return f"{target.repository}|{target.github_environment or ''}"


def _canonical(settings: ProtectionSettings) -> dict[str, Any]:
    return {
        "wait_timer": settings.wait_timer,
        "prevent_self_review": settings.prevent_self_review,
        "reviewers": [{"type": r.type, "id": r.id, "name": r.name} for r in settings.reviewers],
        "deployment_branches": settings.deployment_branches,
    }


# -- observe -------------------------------------------------------------------------------------


def observe_protection(desired: DesiredState, github: GitHubPort) -> ProtectionObservation:
    """Read what the protected environments of `desired` hold (nothing when none is)."""
    if not desired.protections:
        return ProtectionObservation()
    repositories = sorted({cell.target.repository for cell in desired.protections})
    listed = {repo: github.list_environment_protections(repo) for repo in repositories}
    protection = {
        cell.target: found
        for cell in desired.protections
        if (found := _find(listed[cell.target.repository], cell.target)) is not None
    }
    return ProtectionObservation(
        {repo: frozenset(p.environment.lower() for p in items) for repo, items in listed.items()},
        protection,
        _branch_policies(desired.protections, protection, github),
        _reviewer_ids(desired.protections, github),
    )


def _find(listed: Iterable[ObservedProtection], target: Target) -> ObservedProtection | None:
    wanted = (target.github_environment or "").lower()
    return next((p for p in listed if p.environment.lower() == wanted), None)


def _branch_policies(
    cells: Iterable[ProtectionCell],
    protection: Mapping[Target, ObservedProtection],
    github: GitHubPort,
) -> dict[Target, tuple[DeploymentBranchPolicy, ...]]:
    """The custom patterns, only where GitHub has custom ones and the policy lists patterns."""
    found: dict[Target, tuple[DeploymentBranchPolicy, ...]] = {}
    for cell in cells:
        observed = protection.get(cell.target)
        if not isinstance(cell.deployment_branches, tuple) or observed is None:
            continue
        if observed.settings.deployment_branches != "custom":
            continue
        environment = cell.target.github_environment or ""
        policies = github.list_deployment_branch_policies(cell.target.repository, environment)
        found[cell.target] = tuple(policies)
    return found


def _reviewer_ids(
    cells: Iterable[ProtectionCell], github: GitHubPort
) -> dict[ReviewerKey, int | None]:
    """Each distinct reviewer named anywhere in the policy, looked up once."""
    names = {(kind, name.lower()): name for cell in cells for kind, name in cell.reviewers or ()}
    ids: dict[ReviewerKey, int | None] = {}
    for key, name in sorted(names.items()):
        if key[0] == "user":
            ids[key] = github.lookup_user(name)
        else:
            organization, _, slug = name.partition("/")
            ids[key] = github.lookup_team(organization, slug)
    return ids


# -- diff ----------------------------------------------------------------------------------------


def protection_difference(
    cell: ProtectionCell, observation: ProtectionObservation
) -> ProtectionDifference | None:
    """What differs between the cell and GitHub (None: nothing). Pure; no I/O."""
    unknown = [
        f"{kind} {name}"
        for kind, name in cell.reviewers or ()
        if observation.reviewer_ids.get((kind, name.lower())) is None
    ]
    if unknown:
        return ProtectionDifference(
            f"reviewer {', '.join(unknown)} not found on GitHub; the protection of this"
            " environment is not converged until the policy names existing users and teams"
        )
    observed = observation.protection.get(cell.target)
    current = observed.settings if observed is not None else ProtectionSettings()
    have = observation.branch_policies.get(cell.target, ())
    write = _wanted(cell, current, have, observation.reviewer_ids)
    changes = _described(current, write)
    if not changes:
        return None
    return ProtectionDifference("; ".join(changes), write)


def _wanted(
    cell: ProtectionCell,
    current: ProtectionSettings,
    have: tuple[DeploymentBranchPolicy, ...],
    ids: Mapping[ReviewerKey, int | None],
) -> ProtectionWrite:
    """The whole PUT: named settings from the policy, the others as GitHub has them."""
    reviewers = current.reviewers
    if cell.reviewers is not None:
        reviewers = tuple(
            sorted(
                ReviewerRef(_GITHUB_TYPE[kind], ids[(kind, name.lower())] or 0, name)
                for kind, name in dict.fromkeys(cell.reviewers)
            )
        )
    settings = ProtectionSettings(
        wait_timer=current.wait_timer if cell.wait_timer is None else cell.wait_timer,
        prevent_self_review=current.prevent_self_review
        if cell.prevent_self_review is None
        else cell.prevent_self_review,
        reviewers=reviewers,
        deployment_branches=_branches_kind(cell, current),
    )
    if not isinstance(cell.deployment_branches, tuple):
        return ProtectionWrite(settings)
    kept = {p.pattern for p in have} if current.deployment_branches == "custom" else set()
    add = tuple(p for p in cell.deployment_branches if p not in kept)
    delete = tuple(p for p in have if p.pattern not in set(cell.deployment_branches))
    return ProtectionWrite(settings, add, delete)


def _branches_kind(cell: ProtectionCell, current: ProtectionSettings) -> str:
    branches = cell.deployment_branches
    if branches is None:
        return current.deployment_branches
    return branches if isinstance(branches, str) else "custom"


def _described(current: ProtectionSettings, write: ProtectionWrite) -> list[str]:
    """One phrase per setting that differs (empty: in sync)."""
    wanted, changes = write.settings, []
    if {(r.type, r.id) for r in wanted.reviewers} != {(r.type, r.id) for r in current.reviewers}:
        changes.append(f"reviewers {_reviewer_delta(current.reviewers, wanted.reviewers)}")
    if wanted.wait_timer != current.wait_timer:
        changes.append(f"wait_timer {current.wait_timer} -> {wanted.wait_timer} min")
    # GitHub reports prevent_self_review only with reviewers; without any it has no effect
    if wanted.reviewers and wanted.prevent_self_review != current.prevent_self_review:
        changes.append(
            f"prevent_self_review {_bool(current.prevent_self_review)}"
            f" -> {_bool(wanted.prevent_self_review)}"
        )
    if wanted.deployment_branches != current.deployment_branches:
        changes.append(
            f"deployment_branches {current.deployment_branches} -> {wanted.deployment_branches}"
        )
    patterns = [f"+{_pattern(p)}" for p in write.add_patterns]
    patterns += [f"-{_pattern(p.pattern)}" for p in write.delete_patterns]
    if patterns:
        changes.append(f"patterns {' '.join(patterns)}")
    return changes


def _reviewer_delta(current: Iterable[ReviewerRef], wanted: Iterable[ReviewerRef]) -> str:
    have = {(r.type, r.id): r for r in current}
    want = {(r.type, r.id): r for r in wanted}
    added = [f"+{_who(r)}" for k, r in want.items() if k not in have]
    removed = [f"-{_who(r)}" for k, r in have.items() if k not in want]
    return " ".join(added + removed)


def _who(reviewer: ReviewerRef) -> str:
    return f"{reviewer.type.lower()} {reviewer.name or f'#{reviewer.id}'}"


def _pattern(pattern: BranchPattern) -> str:
    return f"{pattern.type} {pattern.name}"


def _bool(value: bool) -> str:
    return "true" if value else "false"
