"""`--shard K/N` on plan and apply: one of N runners' share of the policy's repositories.

When one runner is not enough (thousands of repositories, several tokens or GitHub Apps), a
GitHub Actions matrix runs N jobs, each with `--shard K/N` (K = 1..N). The partition:

- a repository belongs to shard `1 + (H mod N)`, where H is the first 8 bytes, big-endian, of
  the SHA-256 of its lower-cased `owner/name` (stable across runs, machines and Python versions,
  unlike `hash()`; GitHub names ignore case, so does the partition);
- everything not tied to one repository (organization-level targets: a target whose
  `repository` is an owner without `/name`; the Vault-side reports: overdue rotations and
  rotations left half-way) belongs to shard 1, `ORGANIZATION_SHARD`.

So the N shards' plans together are exactly the single run's plan, each row in exactly one
shard. One row depends on other shards' repositories: an organization secret is `shadowed` when
a same-named repository or environment secret of a repository it reaches overrides it, and
those repositories may be anyone's. So shard 1, when the policy has organization secrets, also
lists the secrets of every other shard's repository and environment targets (read only, for
that check: `DesiredState.shadow_targets`), as the single run does. Targets the policy no
longer names (pipeline/recorded.py) count for that check in no run.

Locks are per shard (see envmatrix/lock.py, `ApplyLock`): two different shards of the same N run
at once; the same shard twice, shards of different N, and an unsharded run with any shard
exclude each other.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace

from envmatrix.errors import UsageError
from envmatrix.pipeline.desired import DesiredState, Target

MAX_SHARDS = 1000
ORGANIZATION_SHARD = 1  # the shard that plans and applies what no single repository holds
_FORM = re.compile(r"^\s*(\d{1,7})\s*/\s*(\d{1,7})\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (1 <= index <= count <= MAX_SHARDS)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def lock_name(self) -> str:
        """The lock this shard's apply holds: `apply/shard-K-of-N`."""
        return f"apply/shard-{self.index}-of-{self.count}"

    @property
    def holds_organization(self) -> bool:
        """Whether this shard plans what no single repository holds (shard 1)."""
        return self.index == ORGANIZATION_SHARD

    def holds_repository(self, repository: str) -> bool:
        """Whether `owner/name` is in this shard; an owner alone (organization level) is in
        shard 1."""
        if "/" not in repository:
            return self.holds_organization
        return shard_of(repository, self.count) == self.index

    def holds(self, target: Target) -> bool:
        """Whether this shard plans `target`: an organization's own secrets and variables are
        shard 1's; a repository's and its environments' go by the repository's hash."""
        if target.organization:
            return self.holds_organization
        return self.holds_repository(target.repository)


def shard_of(repository: str, count: int) -> int:
    """The shard (1..count) of `owner/name`: 1 + first 8 bytes of sha256(lower-case) mod count."""
    digest = hashlib.sha256(repository.strip().lower().encode("utf-8")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str, option: str = "--shard") -> Shard:
    """`K/N` -> Shard; UsageError (exit 3, one line) for anything else or out of range."""
    found = _FORM.match(text)
    example = f"K/N with 1 <= K <= N <= {MAX_SHARDS}, like 2/3"
    if found is None:
        raise UsageError(f"{option} {text!r} is not {example}")
    index, count = int(found[1]), int(found[2])
    if not 1 <= count <= MAX_SHARDS:
        raise UsageError(f"{option} {text!r}: N must be 1 to {MAX_SHARDS} ({example})")
    if not 1 <= index <= count:
        raise UsageError(f"{option} {text!r}: K must be 1 to N ({example})")
    return Shard(index, count)


def shard_desired(desired: DesiredState, shard: Shard | None) -> DesiredState:
    """The desired state with only the shard's targets (and their cells); the same state for
    None. A shard may hold nothing at all (more shards than repositories): an empty plan."""
    if shard is None:
        return desired
    targets = tuple(t for t in desired.targets if shard.holds(t))
    organization_secrets = any(c.target.organization for c in desired.secrets)
    shadow_targets = (
        tuple(t for t in desired.targets if not t.organization and not shard.holds(t))
        if shard.holds_organization and organization_secrets
        else ()
    )
    return replace(
        desired,
        shadow_targets=shadow_targets,
        targets=targets,
        secrets=tuple(c for c in desired.secrets if shard.holds(c.target)),
        flags=tuple(f for f in desired.flags if shard.holds(f.target)),
        variables=tuple(v for v in desired.variables if shard.holds(v.target)),
        protections=tuple(p for p in desired.protections if shard.holds(p.target)),
        recorded=frozenset(t for t in desired.recorded if shard.holds(t)),
    )
