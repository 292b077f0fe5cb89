"""`--repository R` and `--secret S` on plan and apply: Terraform's `-target` for the policy.

A narrowing keeps only the cells of the named repositories and secrets in the desired state, so
observe reads only their targets and apply writes only them:

- `--repository R` (repeatable): every cell of those repositories (secrets, flags, environments);
  pruning stays as the policy says, inside those repositories only.
- `--secret S` (repeatable): only those secrets' cells (and the GitHub environments they need);
  no flag is set and nothing is pruned, and other secrets of the same environments are not
  listed (not even as orphans): they are outside the run, not outside the policy.

Both together: the named secrets in the named repositories. Names are checked against the policy
first (UsageError, exit 3, with the closest name it has); a narrowing that leaves nothing is a
usage error too, never an empty success.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from envmatrix.errors import UsageError
from envmatrix.pipeline.desired import DesiredState, did_you_mean, resolve_repository
from envmatrix.pipeline.plan import Kind, Plan
from envmatrix.policy import Policy

LISTED_NAMES = 12  # an error lists the policy's names when it has at most this many


@dataclass(frozen=True)
class Narrowing:
    """The repositories and secrets a run is limited to, in the policy's spelling; empty: all."""

    repositories: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.repositories or self.secrets)

    def to_json(self) -> dict[str, list[str]]:
        """`{"repositories": [...], "secrets": [...]}`, as a saved plan records it."""
        return {"repositories": list(self.repositories), "secrets": list(self.secrets)}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Narrowing:
        """From a saved plan's keys (absent in plans saved before narrowing existed: none)."""
        return cls(tuple(document.get("repositories") or ()), tuple(document.get("secrets") or ()))

    def describe(self) -> str:
        """`--repository acme/web --secret DB_URL`, or `no narrowing`."""
        words = [f"--repository {r}" for r in self.repositories]
        words += [f"--secret {s}" for s in self.secrets]
        return " ".join(words) or "no --repository or --secret"


NO_NARROWING = Narrowing()


def resolve_narrowing(
    policy: Policy, repositories: Sequence[str] = (), secrets: Sequence[str] = ()
) -> Narrowing:
    """Command-line names -> the policy's spelling (GitHub names ignore case); UsageError naming
    the closest name for one the policy does not have."""
    repos = tuple(dict.fromkeys(_repository(policy, name) for name in repositories))
    names = tuple(dict.fromkeys(_secret(policy, name) for name in secrets))
    return Narrowing(repos, names)


def _repository(policy: Policy, name: str) -> str:
    spelled = resolve_repository(policy, name)
    assert spelled is not None
    return spelled


def _secret(policy: Policy, name: str) -> str:
    if name in policy.secrets:
        return name
    spelled = next((s for s in policy.secrets if s.lower() == name.lower()), None)
    if spelled is not None:
        return spelled
    known = list(policy.secrets)
    listed = f" ({', '.join(known)})" if 0 < len(known) <= LISTED_NAMES else ""
    flag = " (it is a flag: narrow by --repository instead)" if name in policy.flags else ""
    raise UsageError(
        f"--secret {name!r} is not a secret of the policy{flag}{did_you_mean(name, known)}{listed}"
    )


def narrow_desired(desired: DesiredState, narrowing: Narrowing) -> DesiredState:
    """The desired state with only the narrowing's cells; the same state when there is none.

    Raises UsageError when the narrowing (with the environments already selected) leaves no
    cell at all."""
    if not narrowing:
        return desired
    repos = set(narrowing.repositories)
    names = set(narrowing.secrets)
    secrets = tuple(
        c
        for c in desired.secrets
        if (not repos or c.target.repository in repos) and (not names or c.name in names)
    )
    flags = () if names else tuple(f for f in desired.flags if f.target.repository in repos)
    kept = {c.target for c in secrets} | {f.target for f in flags}
    if not names:  # whole repositories: their targets even when empty (pruning, orphans)
        kept |= {t for t in desired.targets if t.repository in repos}
    if not kept:
        raise UsageError(
            f"{narrowing.describe()} leaves nothing of the policy in the selected environments"
        )
    targets = tuple(t for t in desired.targets if t in kept)
    prune = desired.prune and not names
    return replace(desired, targets=targets, secrets=secrets, flags=flags, prune=prune)


def narrow_plan(plan: Plan, narrowing: Narrowing) -> Plan:
    """Drop the rows of secrets outside `--secret` (other secrets of the same environments would
    otherwise show as orphans); the same plan without `--secret`."""
    if not narrowing.secrets:
        return plan
    names = set(narrowing.secrets)
    return plan.only(lambda c: c.kind is not Kind.SECRET or c.name in names)
