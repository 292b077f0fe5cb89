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


# -- issue 10 item 2: one document, several policies ---------------------------------------------


def doc(secrets: dict[str, int], owners: object = None) -> VaultDocument:
    packed = {n: f"{v}|2026-11-26T09:30:05Z|apps/x#{n.lower()}" for n, v in secrets.items()}
    data: dict[str, object] = {"secrets": packed}
    if owners is not None:
        data["managed_by"] = owners
    return VaultDocument("p", data, 2)


def test_each_record_names_the_policy_that_wrote_it() -> None:
    state = SyncState.from_document(doc({"A": 1, "B": 2, "C": 3}, {"A": "pay", "B": "search"}))
    assert (state.owner_of("A"), state.owner_of("B"), state.owner_of("C")) == (
        "pay",
        "search",
        None,
    )
    assert state.is_legacy("C") and not state.is_legacy("A") and not state.is_legacy("NONE")
    pay = state.claimed_by("pay", ["A"])
    assert pay.own_record("A") is not None and pay.own_record("B") is None
    assert pay.own_record("C") is None  # legacy, and pay does not name it here


def test_unreadable_owners_count_as_legacy() -> None:
    for owners in ("junk", {"A": 5}, {"A": ""}, {"GONE": "pay"}, ["A"]):
        state = SyncState.from_document(doc({"A": 1}, owners))
        assert state.is_legacy("A") and "GONE" not in state.managed_by


def test_a_legacy_record_is_adopted_only_by_a_policy_that_names_it() -> None:
    state = SyncState.from_document(doc({"A": 1, "B": 2, "C": 3}, {"B": "search"}))
    pay = state.claimed_by("pay", ["A", "B"])
    assert pay.managed_by == {"A": "pay", "B": "search"}  # B stays search's; C stays legacy
    assert pay.own_record("A") is not None and pay.is_legacy("C")


def test_writing_keeps_every_other_policys_records() -> None:
    state = SyncState.from_document(doc({"A": 1, "B": 2, "C": 3}, {"B": "search"}))
    pay = state.claimed_by("pay", ["A"])
    new = SyncRecord("apps/x", "d", 9, WHEN)
    after = pay.with_changes({"D": new, "A": new}, frozenset({"C"}))
    document = after.to_document()
    assert set(document["secrets"]) == {"A", "B", "D"}  # type: ignore[arg-type]
    assert document["managed_by"] == {"A": "pay", "B": "search", "D": "pay"}
    again = SyncState.from_document(VaultDocument("p", document, 3)).claimed_by("search", ["B"])
    assert again.own_record("B") is not None and again.own_record("D") is None


def test_a_policy_without_a_name_writes_the_legacy_layout() -> None:
    state = SyncState({}, None).with_changes({"A": SyncRecord("apps/x", "a", 1, WHEN)})
    assert state.to_document() == {"secrets": {"A": "1|2026-11-26T09:30:05Z|apps/x#a"}}
