"""Tests of rotation/calendar.py: the .ics file parses back with icalendar and holds the events."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from icalendar import Calendar

from envmatrix.errors import UsageError
from envmatrix.policy import Policy, load_policy
from envmatrix.ports import VaultEntry
from envmatrix.rotation.calendar import (
    calendar_rotations,
    rotation_calendar,
    select_owners,
    write_calendar,
)
from envmatrix.rotation.schedule import RotationStatus, rotation_statuses

AT = datetime(2026, 6, 1, tzinfo=UTC)
STAMP = datetime(2026, 6, 1, 12, tzinfo=UTC)

POLICY = """\
version: 1
name: console
vault: {mount: kv}
github: {repositories: [occ-labs/operator-console]}
environments:
  staging: {github: staging}
  production: {github: prod-eu}
owners:
  reliability: {contact: reliability@occ.example}
  integrations: {contact: "#integrations on Slack"}
secrets:
  SUPABASE_SERVICE_KEY:
    owner: reliability
    vault: apps/{environment}/supabase#service_key
    environments: [staging, production]
    rotation: {schedule: "0 9 1 */3 *", strategy: supabase-api-key,
                options: {project_ref: abc, access_token_env: SB_PAT}}
  SHOPIFY_ADMIN_TOKEN:
    owner: integrations
    vault: apps/{environment}/shopify
    environments: [production]
    rotation: {max_age: 90d, strategy: manual}
"""


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "envmatrix.yaml"
    path.write_text(POLICY)
    return load_policy(path)


@pytest.fixture
def statuses(policy: Policy) -> tuple[RotationStatus, ...]:
    entries = {
        "apps/staging/supabase": VaultEntry(
            "apps/staging/supabase", 2, datetime(2026, 4, 2, tzinfo=UTC), frozenset({"service_key"})
        ),
        "apps/production/supabase": VaultEntry(
            "apps/production/supabase",
            7,
            datetime(2026, 5, 2, tzinfo=UTC),
            frozenset({"service_key"}),
        ),
        "apps/production/shopify": VaultEntry(
            "apps/production/shopify",
            1,
            datetime(2026, 3, 1, tzinfo=UTC),
            frozenset({"SHOPIFY_ADMIN_TOKEN"}),
        ),
    }
    return rotation_statuses(policy, ["staging", "production"], entries, AT)


def events(calendar: Calendar) -> list[dict[str, object]]:
    parsed = Calendar.from_ical(calendar.to_ical())
    return [
        {
            "uid": str(e["uid"]),
            "summary": str(e["summary"]),
            "start": e.decoded("dtstart"),
            "stamp": e.decoded("dtstamp"),
            "description": str(e["description"]),
            "organizer": str(e["organizer"]) if "organizer" in e else None,
            "attendee": str(e["attendee"]) if "attendee" in e else None,
        }
        for e in parsed.walk("VEVENT")
    ]


def test_one_event_per_rotation_in_the_window(
    policy: Policy, statuses: tuple[RotationStatus, ...]
) -> None:
    found = calendar_rotations(policy, statuses, (), AT, AT + timedelta(days=90))
    rows = events(rotation_calendar(found, STAMP))
    assert [(r["summary"], r["start"]) for r in rows] == [
        ("Rotate SHOPIFY_ADMIN_TOKEN (production)", datetime(2026, 5, 30, tzinfo=UTC)),  # overdue
        ("Rotate SUPABASE_SERVICE_KEY (production)", datetime(2026, 7, 1, 9, tzinfo=UTC)),
        ("Rotate SUPABASE_SERVICE_KEY (staging)", datetime(2026, 7, 1, 9, tzinfo=UTC)),
        ("Rotate SHOPIFY_ADMIN_TOKEN (production)", datetime(2026, 8, 28, tzinfo=UTC)),
    ]
    assert {r["stamp"] for r in rows} == {STAMP}
    assert rows[1]["uid"] == "SUPABASE_SERVICE_KEY-production-20260701T090000Z@console.envmatrix"
    assert len({r["uid"] for r in rows}) == len(rows)


def test_description_names_owner_contact_strategy_and_path(
    policy: Policy, statuses: tuple[RotationStatus, ...]
) -> None:
    found = calendar_rotations(policy, statuses, ["reliability"], AT, AT + timedelta(days=90))
    description = events(rotation_calendar(found, STAMP))[0]["description"]
    assert description == "\n".join(
        [
            "Owner: reliability (reliability@occ.example)",
            "Strategy: supabase-api-key",
            "Rule: cron 0 9 1 */3 * (UTC)",
            "Vault path: kv/apps/production/supabase#service_key",
            "Repositories: occ-labs/operator-console",
            "Last rotated: 2026-05-02T00:00:00Z (Vault version 7)",
        ]
    )


def test_overdue_event_says_so(policy: Policy, statuses: tuple[RotationStatus, ...]) -> None:
    found = calendar_rotations(policy, statuses, ["integrations"], AT, AT + timedelta(days=10))
    (row,) = events(rotation_calendar(found, STAMP))
    assert str(row["description"]).endswith("\nOVERDUE")


def test_email_contacts_become_organizer_and_attendee(
    policy: Policy, statuses: tuple[RotationStatus, ...]
) -> None:
    found = calendar_rotations(policy, statuses, (), AT, AT + timedelta(days=90))
    by_owner = {r["summary"]: r for r in events(rotation_calendar(found, STAMP))}
    supabase = by_owner["Rotate SUPABASE_SERVICE_KEY (staging)"]
    assert supabase["organizer"] == supabase["attendee"] == "mailto:reliability@occ.example"
    shopify = by_owner["Rotate SHOPIFY_ADMIN_TOKEN (production)"]
    assert shopify["organizer"] is None and shopify["attendee"] is None  # a Slack channel


def test_uids_are_stable_across_runs(policy: Policy, statuses: tuple[RotationStatus, ...]) -> None:
    window = (AT, AT + timedelta(days=90))
    first = events(rotation_calendar(calendar_rotations(policy, statuses, (), *window), STAMP))
    later = events(rotation_calendar(calendar_rotations(policy, statuses, (), *window)))
    assert [r["uid"] for r in first] == [r["uid"] for r in later]
    assert later[0]["stamp"] != STAMP  # DTSTAMP defaults to now


def test_owner_filter(policy: Policy, statuses: tuple[RotationStatus, ...]) -> None:
    assert {s.owner for s in select_owners(policy, statuses, ["integrations"])} == {"integrations"}
    assert len(select_owners(policy, statuses, [])) == len(statuses) == 3
    with pytest.raises(UsageError, match="--owner 'nobody' is not an owner"):
        select_owners(policy, statuses, ["nobody"])


def test_write_calendar_replaces_the_file_whole(
    tmp_path: Path, policy: Policy, statuses: tuple[RotationStatus, ...]
) -> None:
    target = tmp_path / "rotations.ics"
    target.write_text("old")
    os.chmod(target, 0o640)
    found = calendar_rotations(policy, statuses, (), AT, AT + timedelta(days=90))
    write_calendar(str(target), rotation_calendar(found, STAMP))
    assert len(Calendar.from_ical(target.read_bytes()).walk("VEVENT")) == 4
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["envmatrix.yaml", "rotations.ics"]


def test_write_calendar_into_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot write the calendar"):
        write_calendar(str(tmp_path / "nope" / "r.ics"), rotation_calendar([]))


# -- issue 10 item 9: imports cleanly everywhere ----------------------------------------------


def ics_events(calendar: Calendar) -> dict[str, tuple[datetime, int, str]]:
    """UID -> (DTSTART, SEQUENCE, DESCRIPTION) of every event, as a calendar reads them back."""
    parsed = Calendar.from_ical(calendar.to_ical())
    return {
        str(e["uid"]): (e.decoded("dtstart"), int(e["sequence"]), str(e["description"]))
        for e in parsed.walk("VEVENT")
    }


def calendar_of(policy: Policy, entries: dict[str, VaultEntry], at: datetime) -> Calendar:
    statuses = rotation_statuses(policy, ["staging", "production"], entries, at)
    return rotation_calendar(calendar_rotations(policy, statuses, (), at, at + timedelta(days=90)))


def vault_entries(production_version: int, created: datetime) -> dict[str, VaultEntry]:
    def entry(path: str, key: str, version: int, when: datetime) -> VaultEntry:
        return VaultEntry(path, version, when, frozenset({key}))

    return {
        "apps/staging/supabase": entry(
            "apps/staging/supabase", "service_key", 2, AT - timedelta(60)
        ),
        "apps/production/supabase": entry(
            "apps/production/supabase", "service_key", production_version, created
        ),
        "apps/production/shopify": entry(
            "apps/production/shopify", "SHOPIFY_ADMIN_TOKEN", 1, datetime(2026, 3, 1, tzinfo=UTC)
        ),
    }


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("name: payments", "name: search"),  # two names
        (None, "name: search"),  # one named after its file, one named
        ("name: team.a", "name: team-a"),  # names that differ in one character
    ],
)
def test_two_policies_with_the_same_secrets_never_share_a_uid(
    tmp_path: Path, first: str | None, second: str
) -> None:
    uids = []
    for i, name in enumerate((first, second)):
        path = tmp_path / f"policy{i}.yaml"
        text = (
            POLICY.replace("name: console", name) if name else POLICY.replace("name: console\n", "")
        )
        path.write_text(text)
        uids.append(set(ics_events(calendar_of(load_policy(path), vault_entries(7, AT), AT))))
    assert len(uids[0]) == len(uids[1]) == 4 and not uids[0] & uids[1]
    policy = load_policy(tmp_path / "policy1.yaml")
    assert all(uid.endswith(f"@{policy.name}.envmatrix") for uid in uids[1])


@pytest.mark.parametrize(
    "later",
    [timedelta(hours=1), timedelta(days=3), timedelta(days=20)],
)
def test_overdue_events_are_the_same_in_a_later_export(policy: Policy, later: timedelta) -> None:
    """An overdue rotation keeps its UID, start and SEQUENCE however often it is exported."""
    entries = vault_entries(7, datetime(2026, 1, 2, tzinfo=UTC))  # production overdue since 04-01
    now, then = (
        ics_events(calendar_of(policy, entries, AT)),
        ics_events(calendar_of(policy, entries, AT + later)),
    )
    overdue = {uid for uid, (_, _, text) in now.items() if text.endswith("OVERDUE")}
    assert len(overdue) == 2  # SUPABASE_SERVICE_KEY in production, SHOPIFY_ADMIN_TOKEN
    for uid in overdue:
        assert then[uid] == now[uid]
    assert now["SUPABASE_SERVICE_KEY-production-20260401T090000Z@console.envmatrix"][:2] == (
        datetime(2026, 4, 1, 9, tzinfo=UTC),
        2 * 7 + 1,
    )


def test_sequence_rises_when_an_event_with_the_same_uid_changes(policy: Policy) -> None:
    """A scheduled rotation becomes overdue, then the secret is rotated (a new Vault version):
    each rewrite of the same UID carries a higher SEQUENCE, so importing calendars apply it."""
    uid = "SUPABASE_SERVICE_KEY-production-20260701T090000Z@console.envmatrix"
    version_7 = vault_entries(7, datetime(2026, 5, 2, tzinfo=UTC))
    upcoming = ics_events(calendar_of(policy, version_7, AT))[uid]
    overdue = ics_events(calendar_of(policy, version_7, datetime(2026, 7, 1, 10, tzinfo=UTC)))[uid]
    version_8 = vault_entries(8, datetime(2026, 6, 15, tzinfo=UTC))  # rotated early: same fire
    rotated = ics_events(calendar_of(policy, version_8, datetime(2026, 6, 20, tzinfo=UTC)))[uid]
    assert upcoming[0] == overdue[0] == rotated[0] == datetime(2026, 7, 1, 9, tzinfo=UTC)
    assert upcoming[1] < overdue[1] < rotated[1]


def test_a_secret_not_in_vault_is_overdue_on_the_day_of_the_export(policy: Policy) -> None:
    uid = "SUPABASE_SERVICE_KEY-staging-never-rotated@console.envmatrix"
    entries = {k: v for k, v in vault_entries(7, AT).items() if "staging" not in k}
    morning = ics_events(calendar_of(policy, entries, AT + timedelta(hours=8)))[uid]
    evening = ics_events(calendar_of(policy, entries, AT + timedelta(hours=23)))[uid]
    next_day = ics_events(calendar_of(policy, entries, AT + timedelta(days=1, hours=1)))[uid]
    assert morning == evening and morning[0] == AT  # 00:00 UTC of the export's day
    assert next_day[0] == AT + timedelta(days=1) and next_day[1] > morning[1]


@pytest.mark.parametrize(
    ("contact", "attendees"),
    [
        (
            "Reliability Team <reliability@occ.example>",
            [("reliability@occ.example", "Reliability Team")],
        ),
        ('"Ops, EU" <ops@occ.example>', [("ops@occ.example", "Ops, EU")]),
        ("Zoë Ops <zoe@occ.example>", [("zoe@occ.example", "Zoë Ops")]),
        ("reliability@occ.example", [("reliability@occ.example", "reliability")]),
        (
            "Ann <ann@occ.example>, bob@occ.example",
            [("ann@occ.example", "Ann"), ("bob@occ.example", "reliability")],
        ),
        ("#reliability on Slack", []),
        ("https://occ.example/oncall", []),
    ],
)
def test_an_owner_written_name_and_email_keeps_its_attendee(
    tmp_path: Path, contact: str, attendees: list[tuple[str, str]]
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        POLICY.replace("{contact: reliability@occ.example}", f"{{contact: '{contact}'}}")
    )
    policy = load_policy(path)
    calendar = Calendar.from_ical(calendar_of(policy, vault_entries(7, AT), AT).to_ical())
    event = next(
        e for e in calendar.walk("VEVENT") if "SUPABASE_SERVICE_KEY (staging)" in str(e["summary"])
    )
    found = event.get("attendee", [])
    found = found if isinstance(found, list) else [found]
    assert [(str(a), a.params["cn"]) for a in found] == [
        (f"mailto:{email}", cn) for email, cn in attendees
    ]
    organizer = event.get("organizer")
    assert (str(organizer) if organizer else None) == (
        f"mailto:{attendees[0][0]}" if attendees else None
    )
