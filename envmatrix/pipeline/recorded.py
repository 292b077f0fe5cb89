"""Targets the policy no longer names, found through envmatrix's sync state.

A target (an environment, a repository's Actions or Dependabot secrets, an organization's) is
observed because the policy declares something in it. When the policy drops the last secret or
variable of a target, that target leaves the desired state, and what envmatrix wrote there would
never again be reported as an orphan or pruned. So plan also observes the targets whose sync
state (`<mount>/envmatrix/state/...`, see pipeline/state.py) records a write of *this* policy:
they join the desired state with no cells (`DesiredState.recorded`), and diff lists only their
recorded secrets and variables (this policy's own) as orphans, or deletes them under the usual
prune rules (`github.prune: true`, and the GitHub copy not changed since envmatrix wrote it).

Where it looks, within the run (its environments, `--repository`, `--shard`; nothing with
`--secret`, which never prunes):

- every repository the policy names: its environments' documents (one Vault LIST of
  `state/<owner>/<repo>/` per repository that has a folder there) — environments of the
  selected ones only, unless the run covers every environment of the policy (then also
  environments the policy no longer has); with every environment, also the repository's own
  document and its Dependabot document (`state/<owner>/<repo>/@dependabot`);
- with every environment, the organization (`github.organization`) and the owners of the
  policy's repositories: the organization's document and its Dependabot document.

Cost: one LIST of `state/`, one per owner (`state/<owner>/`), one per repository with a state
folder, and one read per found document that is not already a target (which observe reads
again, like any target's). Lists read metadata only. A token without `list` on
`<mount>/metadata/envmatrix/*` finds nothing (the run then sees only the policy's targets, as
before).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from urllib.parse import unquote

from envmatrix.errors import VaultPermissionDenied
from envmatrix.pipeline.desired import DesiredState, Target
from envmatrix.pipeline.state import STATE_PREFIX, SyncState, state_path
from envmatrix.ports import VaultPort

DEPENDABOT_DOCUMENT = "@dependabot"


def with_recorded_targets(
    desired: DesiredState,
    vault: VaultPort,
    repositories: Iterable[str],
    organizations: Iterable[str],
    environments: Mapping[str, str],
    every_environment: bool,
    concurrency: int = 1,
) -> DesiredState:
    """`desired` plus the targets, among `repositories` (`owner/name`) and `organizations`
    (logins), whose sync state holds a record this policy wrote and that `desired` does not
    target already (`recorded`, no cells).

    `environments`: lower-cased GitHub environment name -> the policy's name, for the selected
    environments; `every_environment`: the run covers all of the policy's environments (then
    repository-, Dependabot- and organization-level documents count too, and environments the
    policy no longer has). `concurrency`: Vault lists in flight at once (the repositories'
    folders; 1: one at a time, in this thread). Raises what the Vault port raises, except that a
    token not allowed to list the state finds nothing."""
    try:
        found = _candidates(
            vault, repositories, organizations, environments, every_environment, concurrency
        )
    except VaultPermissionDenied:
        return desired
    known = {state_path(t) for t in desired.targets}
    recorded: list[Target] = []
    for target in found:
        path = state_path(target)
        if path in known:
            continue
        known.add(path)
        state = SyncState.from_document(vault.read_document(path))
        if _writes_of(state, desired.policy_name):
            recorded.append(target)
    if not recorded:
        return desired
    return replace(
        desired,
        targets=tuple(sorted({*desired.targets, *recorded})),
        recorded=desired.recorded | frozenset(recorded),
    )


def _writes_of(state: SyncState, policy: str) -> bool:
    """Whether the state records a secret or variable written by `policy`."""
    mine = state.claimed_by(policy, ())
    return any(mine.own_record(name) for name in mine.records) or any(
        mine.own_variable(name) for name in mine.variables
    )


def _candidates(
    vault: VaultPort,
    repositories: Iterable[str],
    organizations: Iterable[str],
    environments: Mapping[str, str],
    every_environment: bool,
    concurrency: int = 1,
) -> list[Target]:
    repos = sorted(set(repositories))
    orgs = sorted(set(organizations)) if every_environment else []
    owners = sorted({r.split("/", 1)[0] for r in repos} | set(orgs))
    if not owners:
        return []
    top = set(vault.list_folder(STATE_PREFIX)) if orgs else set()
    listed = {
        owner: set(vault.list_folder(f"{STATE_PREFIX}/{owner}"))
        for owner in owners
        if f"{owner}/" in top or not orgs
    }
    found: list[Target] = []
    for org in orgs:
        if org in top:
            found.append(Target.organization_level(org))
        if DEPENDABOT_DOCUMENT in listed.get(org, ()):
            found.append(Target.organization_level(org, "dependabot"))
    with_folder: list[str] = []
    for repo in repos:
        owner, name = repo.split("/", 1)
        entries = listed.get(owner, set())
        if every_environment and name in entries:
            found.append(Target.repository_level(repo))
        if f"{name}/" in entries:
            with_folder.append(repo)
    return found + _repository_folders(
        vault, with_folder, environments, every_environment, concurrency
    )


def _repository_folders(
    vault: VaultPort,
    repositories: list[str],
    environments: Mapping[str, str],
    every_environment: bool,
    concurrency: int,
) -> list[Target]:
    """`_repository_folder` of each repository, `concurrency` lists at once, in their order."""

    def folder(repo: str) -> list[Target]:
        return _repository_folder(vault, repo, environments, every_environment)

    if concurrency <= 1 or len(repositories) < 2:
        return [t for repo in repositories for t in folder(repo)]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(repositories))) as pool:
        return [t for targets in pool.map(folder, repositories) for t in targets]


def _repository_folder(
    vault: VaultPort, repo: str, environments: Mapping[str, str], every_environment: bool
) -> list[Target]:
    """The environment (and Dependabot) documents under `state/<owner>/<repo>/`."""
    found: list[Target] = []
    for entry in sorted(vault.list_folder(f"{STATE_PREFIX}/{repo}")):
        if entry.endswith("/"):
            continue
        if entry == DEPENDABOT_DOCUMENT:
            if every_environment:
                found.append(Target.repository_level(repo, "dependabot"))
            continue
        github = unquote(entry)
        logical = environments.get(github.lower())
        if logical is None and not every_environment:
            continue  # an environment outside this run
        found.append(Target(repo, logical or "", github))
    return found
