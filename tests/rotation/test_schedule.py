"""Tests of rotation/schedule.py: pure tables of schedules, checked against croniter directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter, croniter_range

from envmatrix.errors import UsageError
from envmatrix.policy import Policy, RotationSpec, load_policy
from envmatrix.ports import VaultEntry
from envmatrix.rotation.schedule import (
    MAX_OCCURRENCES_PER_SECRET,
    RotationState,
    evaluation_time,
    fires_between,
    next_due,
    next_fire,
    overdue_cells,
    overdue_secrets,
    rotation_paths,
    rotation_status,
    rotation_statuses,
    upcoming,
)

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


POLICY = """\
version: 1
name: console
github: {repositories: [occ-labs/operator-console]}
environments:
  staging: {github: staging}
  production: {github: production}
owners:
  reliability: {contact: reliability@occ.example}
  integrations: {contact: integrations@occ.example}
secrets:
  SUPABASE_URL:
    owner: reliability
    vault: apps/{environment}/supabase#url
    environments: [staging, production]
  SUPABASE_SERVICE_KEY:
    owner: reliability
    vault: apps/{environment}/supabase#service_key
    environments: [staging, production]
    rotation: {schedule: "0 9 1 */3 *", strategy: supabase-api-key,
                options: {project_ref: abc, access_token_env: SB_PAT}}
  ZOHO_REFRESH_TOKEN:
    owner: integrations
    vault: apps/{environment}/zoho#refresh_token
    environments: [production]
    rotation: {schedule: "0 10 * * 1", timezone: Europe/Berlin, strategy: command,
                options: {command: [rotate.sh]}}
  ZOHO_CLIENT_SECRET:
    owner: integrations
    vault: apps/{environment}/zoho#client_secret
    environments: [production]
    rotation: {schedule: "0 10 * * 1", timezone: Europe/Berlin, strategy: command,
                options: {command: [rotate.sh]}}
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


def entry(path: str, created: datetime | None, *keys: str, version: int = 3) -> VaultEntry:
    if created is None:
        return VaultEntry(path, None)
    return VaultEntry(path, version, created, frozenset(keys))


# -- cron, checked against croniter --------------------------------------------------------------

CRON_TABLE = [
    # expression, timezone, after, expected next fire (UTC)
    ("0 9 1 */3 *", "UTC", utc(2026, 2, 15), utc(2026, 4, 1, 9)),
    ("0 9 1 */3 *", "UTC", utc(2026, 4, 1, 9), utc(2026, 7, 1, 9)),  # strictly after
    ("0 9 1 */3 *", "UTC", utc(2026, 4, 1, 8, 59, 59), utc(2026, 4, 1, 9)),
    ("0 9 1 */3 *", "UTC", utc(2026, 10, 1, 9, 0, 0, 500), utc(2027, 1, 1, 9)),
    ("0 9 15 * *", "UTC", utc(2026, 12, 20), utc(2027, 1, 15, 9)),
    ("0 10 * * 1", "Europe/Berlin", utc(2026, 10, 20), utc(2026, 10, 26, 9)),  # CET
    ("0 10 * * 1", "Europe/Berlin", utc(2026, 10, 13), utc(2026, 10, 19, 8)),  # CEST
    ("0 10 * * 1", "Europe/Berlin", utc(2026, 3, 24), utc(2026, 3, 30, 8)),
    ("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), utc(2026, 3, 29, 1)),  # 03:00 CEST
    ("30 2 * * *", "Europe/Berlin", utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)),
    ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), utc(2026, 10, 25, 0, 30)),  # CEST
    ("30 2 * * 0", "Europe/Berlin", utc(2026, 3, 23), utc(2026, 3, 29, 1)),
    ("30 2 * * 0", "Europe/Berlin", utc(2026, 10, 19), utc(2026, 10, 25, 0, 30)),
]


@pytest.mark.parametrize(("expr", "zone", "after", "expected"), CRON_TABLE)
def test_next_fire_matches_croniter(
    expr: str, zone: str, after: datetime, expected: datetime
) -> None:
    direct = croniter(expr, after.astimezone(ZoneInfo(zone))).get_next(datetime)
    # in UTC: PEP 495 makes an ambiguous local time unequal to every time in another zone
    assert next_fire(expr, zone, after) == expected == direct.astimezone(UTC)
    assert next_fire(expr, zone, after).tzinfo is UTC


@pytest.mark.parametrize("expr", ["30 2 * * *", "30 2 * * 0"])
def test_fall_back_repeat_is_fired_once(expr: str) -> None:
    first = utc(2026, 10, 25, 0, 30)  # 02:30 CEST; 02:30 CET (01:30Z) repeats the wall time
    repeat = croniter(expr, first.astimezone(BERLIN)).get_next(datetime)
    assert repeat.astimezone(UTC) == utc(2026, 10, 25, 1, 30)  # croniter fires twice
    assert next_fire(expr, "Europe/Berlin", first) > utc(2026, 10, 26)


def test_rotated_between_the_two_fall_back_fires_waits_for_the_next_day() -> None:
    between = utc(2026, 10, 25, 1, 10)  # 02:10 CET, after 02:30 CEST fired
    assert next_fire("30 2 * * *", "Europe/Berlin", between) == utc(2026, 10, 26, 1, 30)


def test_weekly_berlin_across_both_dst_changes() -> None:
    spring = list(fires_between("30 2 * * 0", "Europe/Berlin", utc(2026, 3, 20), utc(2026, 4, 6)))
    assert spring == [utc(2026, 3, 22, 1, 30), utc(2026, 3, 29, 1), utc(2026, 4, 5, 0, 30)]
    fall = list(fires_between("30 2 * * 0", "Europe/Berlin", utc(2026, 10, 17), utc(2026, 11, 2)))
    assert fall == [utc(2026, 10, 18, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 11, 1, 1, 30)]


def test_hourly_berlin_skips_the_repeated_hour() -> None:
    fires = list(
        fires_between(
            "0 * * * *", "Europe/Berlin", utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 3, 30)
        )
    )
    # 01:00 CEST, 02:00 CEST, [02:00 CET dropped], 03:00 CET, 04:00 CET
    assert fires == [
        utc(2026, 10, 24, 23),
        utc(2026, 10, 25),
        utc(2026, 10, 25, 2),
        utc(2026, 10, 25, 3),
    ]


@pytest.mark.parametrize("expr", ["0 9 1 */3 *", "0 9 15 * *", "*/20 * * * *", "0 0 13 * 5"])
def test_fires_between_matches_croniter_range(expr: str) -> None:
    start, end = utc(2026, 1, 1), utc(2026, 1, 20)
    if "*/20" in expr:
        end = utc(2026, 1, 1, 5)
    expected = [t for t in croniter_range(start, end, expr) if t < end]
    assert list(fires_between(expr, "UTC", start, end)) == expected
    assert expected  # the table must exercise something


def test_fires_between_includes_a_fire_at_the_start_and_excludes_the_end() -> None:
    fires = list(fires_between("0 9 1 */3 *", "UTC", utc(2026, 4, 1, 9), utc(2026, 10, 1, 9)))
    assert fires == [utc(2026, 4, 1, 9), utc(2026, 7, 1, 9)]


# -- max_age -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_age", "last", "expected"),
    [
        ("90d", utc(2026, 1, 1), utc(2026, 4, 1)),
        ("12h", utc(2026, 1, 1, 18), utc(2026, 1, 2, 6)),
        ("2w", utc(2026, 10, 20), utc(2026, 11, 3)),
    ],
)
def test_max_age_next_due(max_age: str, last: datetime, expected: datetime) -> None:
    assert next_due(RotationSpec(max_age=max_age), last) == expected


def test_max_age_counts_elapsed_time_not_wall_clock_across_dst() -> None:
    last = datetime(2026, 10, 24, 12, tzinfo=BERLIN)  # CEST
    spec = RotationSpec(max_age="1d", timezone="Europe/Berlin")
    assert next_due(spec, last) == utc(2026, 10, 25, 10)


# -- statuses ------------------------------------------------------------------------------------


def test_status_of_a_cron_secret(policy: Policy) -> None:
    e = entry("apps/production/supabase", utc(2026, 4, 2), "url", "service_key")
    status = rotation_status(policy, "SUPABASE_SERVICE_KEY", "production", e, utc(2026, 6, 1))
    assert (status.last_rotated, status.next_due, status.overdue) == (
        utc(2026, 4, 2),
        utc(2026, 7, 1, 9),
        False,
    )
    assert status.state is RotationState.OK
    assert (status.owner, status.contact, status.strategy) == (
        "reliability",
        "reliability@occ.example",
        "supabase-api-key",
    )
    assert (status.path, status.key, status.vault_version) == (
        "apps/production/supabase",
        "service_key",
        3,
    )
    assert status.repositories == ("occ-labs/operator-console",)


@pytest.mark.parametrize(
    ("at", "overdue"),
    [(utc(2026, 7, 1, 8, 59, 59), False), (utc(2026, 7, 1, 9), True), (utc(2026, 9, 1), True)],
)
def test_overdue_from_the_due_time_on(policy: Policy, at: datetime, overdue: bool) -> None:
    e = entry("apps/production/supabase", utc(2026, 4, 2), "service_key")
    status = rotation_status(policy, "SUPABASE_SERVICE_KEY", "production", e, at)
    assert status.overdue is overdue
    assert status.state is (RotationState.OVERDUE if overdue else RotationState.OK)


def test_status_of_a_max_age_secret_uses_the_secret_name_as_key(policy: Policy) -> None:
    e = entry("apps/production/shopify", utc(2026, 1, 1), "SHOPIFY_ADMIN_TOKEN")
    status = rotation_status(policy, "SHOPIFY_ADMIN_TOKEN", "production", e, utc(2026, 4, 1))
    assert (status.next_due, status.overdue) == (utc(2026, 4, 1), True)


@pytest.mark.parametrize(
    "vault_entry",
    [
        None,  # path absent from the mapping
        VaultEntry("apps/production/shopify", None),  # missing, deleted or destroyed
        entry("apps/production/shopify", utc(2026, 1, 1), "OTHER_KEY"),  # key absent
    ],
)
def test_never_rotated_is_due_now(policy: Policy, vault_entry: VaultEntry | None) -> None:
    at = utc(2026, 5, 5, 5, 5)
    status = rotation_status(policy, "SHOPIFY_ADMIN_TOKEN", "production", vault_entry, at)
    assert (status.last_rotated, status.next_due, status.overdue) == (None, at, True)
    assert status.state is RotationState.NEVER_ROTATED
    assert status.vault_version is None


def test_naive_evaluation_time_is_utc(policy: Policy) -> None:
    e = entry("apps/production/supabase", utc(2026, 4, 2), "service_key")
    naive = datetime(2026, 7, 1, 9)
    status = rotation_status(policy, "SUPABASE_SERVICE_KEY", "production", e, naive)
    assert status.overdue and status.at == utc(2026, 7, 1, 9)


def test_statuses_cover_each_rotating_secret_per_environment_soonest_first(policy: Policy) -> None:
    entries = {
        "apps/staging/supabase": entry("apps/staging/supabase", utc(2026, 4, 2), "service_key"),
        "apps/production/supabase": entry(
            "apps/production/supabase", utc(2026, 1, 2), "service_key"
        ),
        "apps/production/zoho": entry(
            "apps/production/zoho", utc(2026, 5, 30), "refresh_token", "client_secret"
        ),
    }
    statuses = rotation_statuses(policy, ["staging", "production"], entries, utc(2026, 6, 1))
    assert [(s.secret, s.environment, s.state.value) for s in statuses] == [
        ("SUPABASE_SERVICE_KEY", "production", "overdue"),  # due 2026-04-01
        ("SHOPIFY_ADMIN_TOKEN", "production", "never-rotated"),  # due now (2026-06-01)
        ("ZOHO_CLIENT_SECRET", "production", "ok"),  # Monday 2026-06-01 10:00 Berlin
        ("ZOHO_REFRESH_TOKEN", "production", "ok"),
        ("SUPABASE_SERVICE_KEY", "staging", "ok"),  # 2026-07-01
    ]
    zoho = statuses[2]
    assert zoho.group == ("ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN")
    assert zoho.next_due == utc(2026, 6, 1, 8)
    assert overdue_secrets(statuses) == ["SHOPIFY_ADMIN_TOKEN", "SUPABASE_SERVICE_KEY"]
    assert overdue_secrets(statuses, "staging") == []
    assert overdue_cells(statuses) == {
        ("SUPABASE_SERVICE_KEY", "production"),
        ("SHOPIFY_ADMIN_TOKEN", "production"),
    }


def test_statuses_only_for_selected_environments(policy: Policy) -> None:
    statuses = rotation_statuses(policy, ["staging"], {}, utc(2026, 6, 1))
    assert [(s.secret, s.environment) for s in statuses] == [("SUPABASE_SERVICE_KEY", "staging")]
    assert rotation_paths(policy, ["staging"]) == ("apps/staging/supabase",)
    assert rotation_paths(policy, ["production"]) == (
        "apps/production/shopify",
        "apps/production/supabase",
        "apps/production/zoho",
    )


# -- upcoming rotations --------------------------------------------------------------------------


def test_upcoming_cron_lists_every_fire_in_the_window(policy: Policy) -> None:
    e = entry("apps/production/supabase", utc(2026, 4, 2), "service_key")
    status = rotation_status(policy, "SUPABASE_SERVICE_KEY", "production", e, utc(2026, 6, 1))
    found = upcoming([status], utc(2026, 6, 1), utc(2027, 6, 1))
    assert [o.due for o in found] == [
        utc(2026, 7, 1, 9),
        utc(2026, 10, 1, 9),
        utc(2027, 1, 1, 9),
        utc(2027, 4, 1, 9),
    ]
    assert not any(o.overdue for o in found)
    assert found[0].uid == "SUPABASE_SERVICE_KEY-production-20260701T090000Z@console.envmatrix"


def test_upcoming_overdue_cron_comes_first_at_its_due_time(policy: Policy) -> None:
    e = entry("apps/production/supabase", utc(2026, 1, 2), "service_key")
    status = rotation_status(policy, "SUPABASE_SERVICE_KEY", "production", e, utc(2026, 6, 1))
    found = upcoming([status], utc(2026, 6, 1), utc(2026, 9, 1))
    assert [(o.due, o.overdue) for o in found] == [
        (utc(2026, 4, 1, 9), True),
        (utc(2026, 7, 1, 9), False),
    ]


def test_upcoming_max_age_is_next_due_then_every_max_age(policy: Policy) -> None:
    e = entry("apps/production/shopify", utc(2026, 1, 1), "SHOPIFY_ADMIN_TOKEN")
    status = rotation_status(policy, "SHOPIFY_ADMIN_TOKEN", "production", e, utc(2026, 2, 1))
    found = upcoming([status], utc(2026, 2, 1), utc(2026, 11, 1))
    assert [o.due for o in found] == [utc(2026, 4, 1), utc(2026, 6, 30), utc(2026, 9, 28)]


def test_upcoming_overdue_max_age(policy: Policy) -> None:
    e = entry("apps/production/shopify", utc(2026, 1, 1), "SHOPIFY_ADMIN_TOKEN")
    status = rotation_status(policy, "SHOPIFY_ADMIN_TOKEN", "production", e, utc(2026, 7, 1))
    found = upcoming([status], utc(2026, 7, 1), utc(2026, 10, 1))
    assert [(o.due, o.overdue) for o in found] == [
        (utc(2026, 4, 1), True),
        (utc(2026, 9, 28), False),
    ]  # 06-30 fell before the window


def test_upcoming_never_rotated(policy: Policy) -> None:
    at = utc(2026, 6, 1)
    statuses = rotation_statuses(policy, ["staging", "production"], {}, at)
    found = upcoming(statuses, at, at + timedelta(days=40))
    shopify = [o for o in found if o.status.secret == "SHOPIFY_ADMIN_TOKEN"]
    assert [(o.due, o.overdue) for o in shopify] == [(at, True)]  # no date to count max_age from
    assert shopify[0].uid == "SHOPIFY_ADMIN_TOKEN-production-never-rotated@console.envmatrix"
    supabase = [o for o in found if o.status.secret == "SUPABASE_SERVICE_KEY"]
    assert [(o.due, o.overdue) for o in supabase] == [
        (at, True),
        (at, True),
        (utc(2026, 7, 1, 9), False),
        (utc(2026, 7, 1, 9), False),
    ]


def test_upcoming_is_capped_per_secret(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY.replace('"0 9 1 */3 *"', '"* * * * *"'))
    minutely = load_policy(path)
    e = entry("apps/staging/supabase", utc(2026, 6, 1), "service_key")
    status = rotation_status(minutely, "SUPABASE_SERVICE_KEY", "staging", e, utc(2026, 6, 1))
    assert len(upcoming([status], utc(2026, 6, 1), utc(2026, 9, 1))) == MAX_OCCURRENCES_PER_SECRET


# -- the evaluation time -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-01-01", utc(2027, 1, 1)),
        ("2027-01-01T09:00", utc(2027, 1, 1, 9)),
        ("2027-01-01T09:00+01:00", utc(2027, 1, 1, 8)),
        ("2027-01-01T09:00:00Z", utc(2027, 1, 1, 9)),
    ],
)
def test_evaluation_time_parses_at(text: str, expected: datetime) -> None:
    assert evaluation_time(text) == expected


def test_evaluation_time_defaults_to_now() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=BERLIN)
    assert evaluation_time(None, now) == utc(2026, 3, 1, 11)


@pytest.mark.parametrize("text", ["tomorrow", "2027-13-01", ""])
def test_evaluation_time_rejects_what_is_not_iso(text: str) -> None:
    with pytest.raises(UsageError, match="--at"):
        evaluation_time(text)
