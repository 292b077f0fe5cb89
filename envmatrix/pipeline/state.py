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
bodies with more than 1,000 JSON strings; 100 secrets (GitHub's per-environment limit) stay at 200.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    """The records of one (repository, GitHub environment) and the document version read."""

    records: Mapping[str, SyncRecord]
    version: int | None  # Vault document version, for check-and-set; None when absent

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
        return cls(records, document.version)

    def to_document(self) -> dict[str, object]:
        return {"secrets": {name: r.pack() for name, r in sorted(self.records.items())}}

    def with_changes(
        self, written: Mapping[str, SyncRecord], deleted: frozenset[str] = frozenset()
    ) -> SyncState:
        """This state after an apply wrote `written` and deleted `deleted` (same version)."""
        records = {n: r for n, r in self.records.items() if n not in deleted}
        records.update(written)
        return SyncState(records, self.version)


def state_path(target: Target) -> str:
    """The Vault document path (relative to the mount) for a target's sync state."""
    owner, repo = target.repository.split("/", 1)
    if target.github_environment is None:
        return f"{STATE_PREFIX}/{owner}/{repo}"
    return f"{STATE_PREFIX}/{owner}/{repo}/{quote(target.github_environment, safe='')}"
