"""The rotation calendar: an iCalendar file with one event per upcoming rotation.

Each event names the secret and environment, the owner and contact, the strategy and the Vault
path (never a value). UIDs are stable (`<secret>-<environment>-<due UTC>@envmatrix`), so a
calendar that subscribes to a regenerated file updates events instead of duplicating them. Times
are UTC. The owner's contact becomes ORGANIZER and ATTENDEE when it is an email address.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from icalendar import Calendar, Event, vCalAddress

from envmatrix.errors import UsageError
from envmatrix.policy import Policy
from rotation.schedule import RotationOccurrence, RotationStatus, upcoming

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
    event.add("dtstamp", stamp)
    event.add("dtstart", occurrence.due)
    event.add("duration", EVENT_LENGTH)
    event.add("summary", f"Rotate {status.secret} ({status.where})")
    event.add("description", event_description(occurrence))
    event.add("categories", ["envmatrix", "rotation"])
    if EMAIL.match(status.contact):
        event.add("organizer", _address(status, role=None))
        event.add("attendee", _address(status, role="REQ-PARTICIPANT"))
    return event


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
    return f"{status.last_rotated:%Y-%m-%dT%H:%M:%SZ} (Vault version {status.vault_version})"


def _address(status: RotationStatus, role: str | None) -> vCalAddress:
    address = vCalAddress(f"mailto:{status.contact}")
    address.params["cn"] = status.owner
    if role:
        address.params["role"] = role
    return address


def write_calendar(path: str, calendar: Calendar) -> None:
    """Write the .ics file atomically: readers see the old file or the new one, never half."""
    target = Path(path)
    try:
        mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o644
        _replace(target, calendar.to_ical(), mode)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the calendar ({exc.strerror})") from None


def _replace(target: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def calendar_rotations(
    policy: Policy,
    statuses: Iterable[RotationStatus],
    owners: Sequence[str],
    start: datetime,
    end: datetime,
) -> tuple[RotationOccurrence, ...]:
    """The rotations of these owners (all when none) due in [start, end), overdue ones first."""
    return upcoming(select_owners(policy, statuses, owners), start, end)
