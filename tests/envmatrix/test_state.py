"""Sync state records: packing, tolerant reading, paths."""

from __future__ import annotations

from datetime import UTC, datetime

from envmatrix.pipeline.desired import Target
from envmatrix.pipeline.state import SyncRecord, SyncState, state_path
from envmatrix.ports import VaultDocument

WHEN = datetime(2026, 11, 26, 9, 30, 5, tzinfo=UTC)


def test_a_record_packs_to_one_string_and_back() -> None:
    record = SyncRecord("apps/production/supabase", "service_key", 7, WHEN)
    assert record.pack() == "7|2026-11-26T09:30:05Z|apps/production/supabase#service_key"
    assert SyncRecord.unpack(record.pack()) == record


def test_unreadable_entries_count_as_no_record() -> None:
    document = VaultDocument(
        "p",
        {
            "secrets": {
                "GOOD": "3|2026-11-26T09:30:05Z|apps/x#k",
                "BAD": "three|when|where",
                "NUM": 5,
            }
        },
        4,
    )
    state = SyncState.from_document(document)
    assert set(state.records) == {"GOOD"} and state.version == 4
    assert (
        SyncState.from_document(None).records == {}
        and SyncState.from_document(None).version is None
    )
    assert SyncState.from_document(VaultDocument("p", {"secrets": "junk"}, 1)).records == {}


def test_changes_replace_and_delete_records() -> None:
    old = SyncRecord("apps/x", "k", 1, WHEN)
    state = SyncState({"A": old, "B": old}, 2)
    new = SyncRecord("apps/x", "k", 2, WHEN)
    after = state.with_changes({"A": new}, frozenset({"B"}))
    assert after.records == {"A": new} and after.version == 2
    assert after.to_document() == {"secrets": {"A": new.pack()}}


def test_state_paths_quote_environment_names() -> None:
    target = Target("occ-labs/operator-console", "eu", "prod eu/1")
    assert state_path(target) == "envmatrix/state/occ-labs/operator-console/prod%20eu%2F1"
