"""The rotation journal: document round trip, and check-and-set as the lock (real OpenBao)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from envmatrix.errors import LockHeldError
from envmatrix.rotation.journal import JournalStore, RotationJournal, Step, journal_path

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def journal(holder: str = "runner-one", step: Step = Step.STARTED) -> RotationJournal:
    return RotationJournal(
        id="r1",
        path="apps/production/api",
        environment="production",
        environments=("production",),
        secrets=("API_TOKEN",),
        strategy="generate",
        step=step,
        holder=holder,
        started_at=T0,
        updated_at=T0,
        previous_version=3,
        history={"started": "2026-11-26T09:00:00Z"},
    )


def test_a_journal_round_trips_through_its_document() -> None:
    later = journal().at(
        Step.PROMOTED,
        T0 + timedelta(minutes=1),
        new_version=4,
        handle={"key_id": "abcd"},
        grace="7d",
        grace_until=T0 + timedelta(days=7),
    )
    again = RotationJournal.from_document(later.to_document())
    assert again == later
    assert later.to_document()["step"] == "promoted"
    assert set(later.history) == {"started", "promoted"}


def test_steps_know_whether_they_are_terminal_or_before_cutover() -> None:
    assert [s for s in Step if s.terminal] == [Step.DONE, Step.ROLLED_BACK, Step.FAILED]
    assert Step.TESTED.before_cutover and not Step.PROMOTED.before_cutover


def test_the_journal_lives_under_envmatrix_rotation(vault) -> None:
    JournalStore(vault).begin(journal(), None)
    document = vault.read_document(journal_path("apps/production/api"))
    assert document is not None and document.data["holder"] == "runner-one"
    assert journal_path("apps/production/api") == "envmatrix/rotation/apps/production/api"


def test_of_two_runners_beginning_at_once_the_second_is_told_who_holds_it(vault) -> None:
    store = JournalStore(vault)
    store.begin(journal("runner-one"), None)
    with pytest.raises(LockHeldError) as held:
        store.begin(journal("runner-two"), None)  # both read "absent": cas=0 for both
    assert "being rotated by runner-one since 2026-11-26T09:00:00Z" in str(held.value)


def test_a_stale_step_write_is_refused(vault) -> None:
    store = JournalStore(vault)
    entry = store.begin(journal(), None)
    store.advance(entry, journal().at(Step.CREATED, T0))
    with pytest.raises(LockHeldError):
        store.advance(entry, journal(holder="late").at(Step.CREATED, T0))  # old version


def test_a_finished_journal_is_begun_over_with_its_version(vault) -> None:
    store = JournalStore(vault)
    entry = store.begin(journal(), None)
    done = store.advance(entry, journal().at(Step.DONE, T0))
    store.begin(journal("runner-two"), store.read("apps/production/api"))
    assert store.read("apps/production/api").journal.holder == "runner-two"
    with pytest.raises(LockHeldError):
        store.begin(journal("runner-three"), done)  # read before runner-two began
