"""The rotation calendar: an iCalendar file with one event per upcoming rotation.

Each event names the secret and environment, the owner and contact, the strategy and the Vault
path (never a value). UIDs are stable and unique per policy
(`<secret>-<environment>-<due UTC>@<policy>.envmatrix`), so a calendar that subscribes to a
regenerated file, or imports it again, updates events instead of duplicating them, and two
policies with the same secret names never collide. SEQUENCE is derived from the Vault version
(see `RotationOccurrence.sequence`): an export with nothing changed repeats every event exactly
but DTSTAMP. Times are UTC. Each email address in the owner's contact (`ops@x.example`,
`Ops Team <ops@x.example>`, or several separated by commas) becomes an ATTENDEE (CN: the name
written before it, else the owner); the first is also the ORGANIZER.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses

from icalendar import Calendar, Event, vCalAddress

from envmatrix.errors import UsageError
from envmatrix.files import write_atomic
from envmatrix.policy import Policy
from envmatrix.rotation.schedule import RotationOccurrence, RotationStatus, upcoming
from envmatrix.timefmt import iso_utc

PRODID = "-//envmatrix//rotation calendar//EN"
EVENT_LENGTH = timedelta(minutes=30)  # a slot in the owner's day, not a promise of duration
EMAIL = re.compile(r"^[^@\s:]+@[^@\s]+\.[^@\s]+$")


def select_owners(
    policy: Policy, statuses: Iterable[RotationStatus], owners: Sequence[str]
) -> tuple[RotationStatus, ...]:
    """Keep the statuses of these owners (all when none are given); unknown owners are an error."""
    unknown = [o for o in owners if o not in policy.owners]
    if unknown:
        known = ", ".join(policy.owners) or "none"
        raise UsageError(f"--owner {unknown[0]!r} is not an owner in the policy ({known})")
    return tuple(s for s in statuses if not owners or s.owner in owners)


def rotation_calendar(
    occurrences: Iterable[RotationOccurrence], stamp: datetime | None = None
) -> Calendar:
    """A VCALENDAR with one VEVENT per occurrence; DTSTAMP is `stamp` (default: now, UTC)."""
    stamp = stamp or datetime.now(UTC)
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", "envmatrix rotations")
    for occurrence in occurrences:
        calendar.add_component(rotation_event(occurrence, stamp))
    return calendar


def rotation_event(occurrence: RotationOccurrence, stamp: datetime) -> Event:
    """One rotation as a VEVENT."""
    status = occurrence.status
    event = Event()
    event.add("uid", occurrence.uid)
    event.add("sequence", occurrence.sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", occurrence.due)
    event.add("duration", EVENT_LENGTH)
    event.add("summary", f"Rotate {status.secret} ({status.where})")
    event.add("description", event_description(occurrence))
    event.add("categories", ["envmatrix", "rotation"])
    addresses = contact_addresses(status.contact)
    if addresses:
        event.add("organizer", _address(*addresses[0], status.owner, role=None))
    for name, email in addresses:
        event.add("attendee", _address(name, email, status.owner, role="REQ-PARTICIPANT"))
    return event


def contact_addresses(contact: str) -> list[tuple[str, str]]:
    """(name, email) for each email address in a contact: `ops@x.example`, `Ops <ops@x.example>`
    or a comma-separated list of them; anything else (a Slack channel, a URL) gives none."""
    found = getaddresses([contact])
    return [(name.replace('"', "").strip(), email) for name, email in found if EMAIL.match(email)]


def event_description(occurrence: RotationOccurrence) -> str:
    """What the owner needs to do the rotation: who, how, where (metadata only)."""
    s = occurrence.status
    lines = [
        f"Owner: {s.owner} ({s.contact})",
        f"Strategy: {s.strategy}",
        f"Rule: {s.rule} ({s.spec.timezone})",
        f"Vault path: {s.mount}/{s.path}#{s.key}",
        f"Repositories: {', '.join(s.repositories)}",
        f"Last rotated: {_last_rotated(s)}",
    ]
    if len(s.group) > 1:
        lines.append(f"Rotates together with: {', '.join(n for n in s.group if n != s.secret)}")
    if occurrence.overdue:
        lines.append("OVERDUE: not in Vault yet" if s.last_rotated is None else "OVERDUE")
    return "\n".join(lines)


def _last_rotated(status: RotationStatus) -> str:
    if status.last_rotated is None:
        return "never (missing in Vault)"
    return f"{iso_utc(status.last_rotated)} (Vault version {status.vault_version})"


def _address(name: str, email: str, owner: str, role: str | None) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    address.params["cn"] = name or owner
    if role:
        address.params["role"] = role
    return address


def write_calendar(path: str, calendar: Calendar) -> None:
    """Write the .ics file atomically (new files 0600): readers see old or new, never half."""
    write_atomic(path, calendar.to_ical(), "calendar")


def calendar_rotations(
    policy: Policy,
    statuses: Iterable[RotationStatus],
    owners: Sequence[str],
    start: datetime,
    end: datetime,
) -> tuple[RotationOccurrence, ...]:
    """The rotations of these owners (all when none) due in [start, end), overdue ones first."""
    return upcoming(select_owners(policy, statuses, owners), start, end)
