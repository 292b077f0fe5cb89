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
    rotation: {schedule: "0 9 1 */3 *", strategy: supabase-api-key}
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
