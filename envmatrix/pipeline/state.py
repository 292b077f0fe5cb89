"""Sync state: what envmatrix last wrote to each GitHub secret, kept in Vault beside the secrets.

One Vault document per (repository, GitHub environment), at
`<mount>/envmatrix/state/<owner>/<repo>/<environment>`, so CI and laptops plan the same thing with
no extra infrastructure. The repository level (Actions repository secrets, `scope: repository`)
has its own document at `<mount>/envmatrix/state/<owner>/<repo>`: the repository's document, with
its environments' documents beneath it (KV v2 lets a path be a document and a folder at once; an
environment name is never empty, so the two never meet).

Each entry records the Vault path, key and version that was written and the GitHub server time
(`Date` header) of the write: a later `updated_at` on the GitHub secret means somebody else wrote
it since.

Entries are packed as one string each (`version|time|path#key`) because OpenBao refuses request
bodies with more than 1,000 JSON strings; 100 secrets (GitHub's per-environment limit) stay at 400
with their owners.

With `vault.transit` in the policy each entry also carries the transit HMAC of the value written
(`hmac`: secret -> `vault:vN:...`, beside `secrets`; 100 secrets add 200 strings), which
`verify --fingerprint` compares with the HMAC of the value a job received.

Several policies may target one environment, so each record names the policy that wrote it
(`managed_by`: secret -> policy name, beside `secrets` in the same document; one read per target
still tells every policy's records apart). A policy manages, and prunes, only its own records. A
record without an owner is a legacy record (written before policies had names): a policy adopts
it only when it names that secret in that target, and the next state write stores the adoption.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import quote

from envmatrix.pipeline.desired import Target
from envmatrix.ports import VaultDocument
from envmatrix.timefmt import iso_utc, parse_iso_utc

STATE_PREFIX = "envmatrix/state"


@dataclass(frozen=True)
class SyncRecord:
    """envmatrix's last write of one secret to one GitHub environment."""

    vault_path: str
    vault_key: str
    vault_version: int
    written_at: datetime  # GitHub's clock (the write response's Date header)
    hmac: str | None = None  # Vault transit HMAC of the value written (`vault.transit` set)

    def pack(self) -> str:
        stamp = iso_utc(self.written_at)
        return f"{self.vault_version}|{stamp}|{self.vault_path}#{self.vault_key}"

    @classmethod
    def unpack(cls, text: str) -> SyncRecord | None:
        """Parse a packed entry; None for anything unreadable (treated as 'no record')."""
        try:
            version, stamp, ref = text.split("|", 2)
            path, key = ref.rsplit("#", 1)
            when = parse_iso_utc(stamp)
            return cls(path, key, int(version), when)
        except ValueError:
            return None


@dataclass(frozen=True)
class SyncState:
    """The records of one (repository, GitHub environment), who wrote each, and the document
    version read, as seen by the policy `policy` ("" for a policy without a name)."""

    records: Mapping[str, SyncRecord]
    version: int | None  # Vault document version, for check-and-set; None when absent
    managed_by: Mapping[str, str] = field(default_factory=dict)  # secret -> policy; none: legacy
    policy: str = ""
    # plain Actions variables envmatrix wrote: name -> (policy, GitHub's time of the write)
    variables: Mapping[str, tuple[str, datetime]] = field(default_factory=dict)

    def own_variable(self, name: str) -> datetime | None:
        """When this state's policy last wrote variable `name`; None when it did not."""
        found = self.variables.get(name)
        return found[1] if found is not None and found[0] == self.policy else None

    def with_variables(
        self, written: Mapping[str, datetime], deleted: frozenset[str] = frozenset()
    ) -> SyncState:
        """This state after an apply of its policy wrote and deleted those variables."""
        kept = {n: v for n, v in self.variables.items() if n not in deleted}
        kept.update({n: (self.policy, when) for n, when in written.items()})
        return replace(self, variables=kept)

    def owner_of(self, name: str) -> str | None:
        """The policy that wrote `name`'s record; None for no record or a legacy one."""
        return self.managed_by.get(name) if name in self.records else None

    def is_legacy(self, name: str) -> bool:
        """Whether `name` has a record that names no policy (written before names existed)."""
        return name in self.records and not self.managed_by.get(name)

    def own_record(self, name: str) -> SyncRecord | None:
        """`name`'s record when this state's policy wrote (or adopted) it."""
        return self.records.get(name) if self.managed_by.get(name, "") == self.policy else None

    def claimed_by(self, policy: str, names: Iterable[str]) -> SyncState:
        """This state as `policy` sees it: the legacy records of `names` (the secrets it
        declares in this target) become its own. Another policy's records stay theirs."""
        owners = dict(self.managed_by)
        for name in names:
            if self.is_legacy(name) and policy:
                owners[name] = policy
        return replace(self, managed_by=owners, policy=policy)

    @classmethod
    def from_document(cls, document: VaultDocument | None) -> SyncState:
        """The state a Vault document holds; unreadable entries count as 'no record'."""
        if document is None:
            return cls({}, None)
        raw = document.data.get("secrets", {})
        records = {
            name: record
            for name, packed in (raw.items() if isinstance(raw, Mapping) else ())
            if isinstance(packed, str) and (record := SyncRecord.unpack(packed)) is not None
        }
        raw_hmacs = document.data.get("hmac", {})
        for name, hmac in raw_hmacs.items() if isinstance(raw_hmacs, Mapping) else ():
            if name in records and isinstance(hmac, str) and hmac:
                records[name] = replace(records[name], hmac=hmac)
        raw_owners = document.data.get("managed_by", {})
        owners = {
            name: owner
            for name, owner in (raw_owners.items() if isinstance(raw_owners, Mapping) else ())
            if name in records and isinstance(owner, str) and owner
        }
        return cls(records, document.version, owners, variables=_variables(document.data))

    def to_document(self) -> dict[str, object]:
        document: dict[str, object] = {
            "secrets": {name: r.pack() for name, r in sorted(self.records.items())}
        }
        owners = {n: p for n, p in sorted(self.managed_by.items()) if p and n in self.records}
        if owners:
            document["managed_by"] = owners
        if self.variables:
            document["variables"] = {
                n: f"{p}|{iso_utc(when)}" for n, (p, when) in sorted(self.variables.items())
            }
        hmacs = {n: r.hmac for n, r in sorted(self.records.items()) if r.hmac}
        if hmacs:
            document["hmac"] = hmacs
        return document

    def with_changes(
        self, written: Mapping[str, SyncRecord], deleted: frozenset[str] = frozenset()
    ) -> SyncState:
        """This state after an apply of its policy wrote `written` and deleted `deleted` (same
        version): the written records are the policy's; other policies' records are kept."""
        records = {n: r for n, r in self.records.items() if n not in deleted}
        records.update(written)
        owners = {n: p for n, p in self.managed_by.items() if n in records and n not in written}
        if self.policy:
            owners.update(dict.fromkeys(written, self.policy))
        return replace(self, records=records, managed_by=owners)


def _variables(data: Mapping[str, object]) -> dict[str, tuple[str, datetime]]:
    raw = data.get("variables", {})
    found: dict[str, tuple[str, datetime]] = {}
    for name, packed in raw.items() if isinstance(raw, Mapping) else ():
        if not isinstance(packed, str) or "|" not in packed:
            continue
        policy, stamp = packed.rsplit("|", 1)
        try:
            found[name] = (policy, parse_iso_utc(stamp))
        except ValueError:
            continue
    return found


def state_path(target: Target) -> str:
    """The Vault document path (relative to the mount) for a target's sync state.

    An organization's is `<prefix>/<org>` (its repositories' documents are beneath it); a
    Dependabot store's adds `/@dependabot` to the repository's or organization's path ('@' is
    neither in a repository name nor in a percent-encoded environment name)."""
    suffix = "/@dependabot" if target.store == "dependabot" else ""
    if target.organization:
        return f"{STATE_PREFIX}/{target.repository}{suffix}"
    owner, repo = target.repository.split("/", 1)
    if target.github_environment is None:
        return f"{STATE_PREFIX}/{owner}/{repo}{suffix}"
    return f"{STATE_PREFIX}/{owner}/{repo}/{quote(target.github_environment, safe='')}"
