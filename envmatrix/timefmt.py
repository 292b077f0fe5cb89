"""Time formats and durations, spelled once.

- `iso_utc` / `parse_iso_utc`: `2026-11-29T21:40:38Z`, the one stamp envmatrix writes into its
  Vault documents (sync state, journals), JSON and calendars; second resolution, always UTC.
- `human_utc`: `2026-11-29 21:40 UTC` for people (tables, messages).
- `parse_duration`: `90d`, `12h`, `30m`, `45s`, `2w` (the policy's `max_age`/`grace`, `--since`,
  `--lock-timeout`).
- `parse_moment`: an ISO 8601 date or time from the command line; naive means UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"
DURATION = re.compile(r"^(?P<n>[1-9][0-9]*)(?P<unit>[smhdw])$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def iso_utc(moment: datetime) -> str:
    """`2026-11-29T21:40:38Z` (naive datetimes are taken as UTC)."""
    return aware(moment).astimezone(UTC).strftime(ISO_UTC)


def parse_iso_utc(text: str) -> datetime:
    """The inverse of `iso_utc`; ValueError for anything else."""
    return datetime.strptime(text, ISO_UTC).replace(tzinfo=UTC)


def human_utc(moment: datetime, *, seconds: bool = False) -> str:
    """`2026-11-29 21:40 UTC` (with `:38` when `seconds`)."""
    pattern = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return f"{aware(moment).astimezone(UTC).strftime(pattern)} UTC"


def aware(moment: datetime) -> datetime:
    """Naive times are UTC here (Vault and GitHub report UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_duration(text: str) -> timedelta:
    """`90d`, `12h`, `30m`, `45s`, `2w` -> timedelta. Raises ValueError otherwise."""
    match = DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90d, 12h, 30m")
    return timedelta(**{DURATION_UNITS[match["unit"]]: int(match["n"])})


def parse_timeout(text: str) -> float:
    """`0`, `0s`, `30s`, `5m`, `1h` -> seconds (Terraform's -lock-timeout takes the same).

    Raises ValueError for anything else."""
    text = text.strip()
    return 0.0 if text in ("0", "0s") else parse_duration(text).total_seconds()


def parse_moment(text: str) -> datetime:
    """An ISO 8601 date or time (`2027-01-01`, `2027-01-01T09:00+01:00`) in UTC; naive is UTC.

    Raises ValueError for anything else."""
    return aware(datetime.fromisoformat(text.strip())).astimezone(UTC)


def parse_since(text: str, now: datetime) -> datetime:
    """`24h`/`7d` before `now`, or an ISO time (naive = UTC). Raises ValueError otherwise."""
    try:
        return now - parse_duration(text.strip())
    except ValueError:
        return parse_moment(text)
