"""End-to-end tests of `envmatrix rotation status|due|calendar` against a real OpenBao.

Vault versions cannot be backdated, so the tests write real versions now and evaluate the
schedule at later times with `--at`, against the creation times Vault itself recorded.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from icalendar import Calendar

from envmatrix import cli
from envmatrix.adapters.vault import VaultAdapter
from envmatrix.secret import SecretValue

POLICY = """\
version: 1
vault: {{mount: {mount}}}
github: {{repositories: [occ-labs/operator-console]}}
environments:
  staging: {{github: staging}}
  production: {{github: production}}
owners:
  reliability: {{contact: reliability@occ.example}}
  integrations: {{contact: integrations@occ.example}}
secrets:
  SUPABASE_URL:
    owner: reliability
    vault: apps/{{environment}}/supabase#url
    environments: [staging, production]
  SUPABASE_SERVICE_KEY:
    owner: reliability
    vault: apps/{{environment}}/supabase#service_key
    environments: [staging, production]
    rotation: {{schedule: "0 9 1 */3 *", strategy: manual}}
  SHOPIFY_ADMIN_TOKEN:
    owner: integrations
    vault: apps/{{environment}}/shopify
    environments: [production]
    rotation: {{max_age: 90d, strategy: manual}}
"""

CRON_ROTATION = 'rotation: {schedule: "0 9 1 */3 *", strategy: manual}'
VALUES = {
    "apps/production/supabase": {
        "url": "https://p.supabase.example",
        "service_key": "sk-prod-9f3a",
    },
    "apps/staging/supabase": {"url": "https://s.supabase.example", "service_key": "sk-stage-77b1"},
    "apps/production/shopify": {"SHOPIFY_ADMIN_TOKEN": "shpat_4c1d2e"},
}


@pytest.fixture
def policy_file(
    tmp_path: Path, vault: VaultAdapter, vault_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> str:
    """A policy on this test's mount, every secret written to Vault now, VAULT_* exported."""
    for path, values in VALUES.items():
        vault.write_values(path, {k: SecretValue(v) for k, v in values.items()})
    for name, value in vault_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "200")  # rich folds tables at 80 columns when not a terminal
    path = tmp_path / "envmatrix.yaml"
    path.write_text(POLICY.format(mount=vault.mount))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    for values in VALUES.values():
        for value in values.values():
            if not value.startswith("https://"):
                assert value not in out + err
    return code, out, err


def iso(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def created(vault: VaultAdapter, path: str) -> datetime:
    moment = vault.read_entry(path).created_time
    assert moment is not None
    return moment.astimezone(UTC)


def test_due_passes_for_fresh_versions_and_fails_once_max_age_has_passed(
    policy_file: str, vault: VaultAdapter, capsys: pytest.CaptureFixture[str]
) -> None:
    # only the max_age secret rotates here, so the quarterly cron cannot fire in between
    max_age_only = Path(policy_file).read_text().replace(CRON_ROTATION, "description: fixed")
    Path(policy_file).write_text(max_age_only)
    written = created(vault, "apps/production/shopify")
    just_before = iso(written + timedelta(days=90) - timedelta(seconds=1))
    after = iso(written + timedelta(days=90, seconds=1))

    code, out, _ = run(capsys, "rotation", "due", "-p", policy_file, "--at", written.isoformat())
    assert code == 0 and "No rotations due" in out

    code, out, err = run(capsys, "rotation", "due", "-p", policy_file, "--at", just_before)
    assert code == 0, err

    code, out, err = run(capsys, "rotation", "due", "-p", policy_file, "--at", after)
    assert code == 1
    assert "SHOPIFY_ADMIN_TOKEN" in out
    assert err == (
        "error: 1 rotation overdue: SHOPIFY_ADMIN_TOKEN (production, owner: integrations)\n"
    )


def test_due_without_at_uses_now(policy_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "rotation", "due", "--policy", policy_file)
    assert (code, err) == (0, "")
    assert "No rotations due" in out


def test_due_on_cron_schedule_with_json(
    policy_file: str, vault: VaultAdapter, capsys: pytest.CaptureFixture[str]
) -> None:
    written = created(vault, "apps/staging/supabase")
    fire = next_quarterly_fire(written)
    code, out, _ = run(
        capsys, "rotation", "due", "-p", policy_file, "-e", "staging", "--json", "--at", iso(fire)
    )
    assert code == 1
    document = json.loads(out)
    assert document["at"] == iso(fire)
    (row,) = document["rotations"]
    assert row == {
        "secret": "SUPABASE_SERVICE_KEY",
        "environment": "staging",
        "repositories": ["occ-labs/operator-console"],
        "owner": "reliability",
        "contact": "reliability@occ.example",
        "strategy": "manual",
        "rule": "cron 0 9 1 */3 *",
        "timezone": "UTC",
        "path": "apps/staging/supabase",
        "key": "service_key",
        "group": ["SUPABASE_SERVICE_KEY"],
        "vault_version": 1,
        "last_rotated": iso(written),
        "next_due": iso(fire),
        "overdue": True,
        "state": "overdue",
    }
    code, out, _ = run(
        capsys,
        "rotation",
        "due",
        "-p",
        policy_file,
        "-e",
        "staging",
        "--json",
        "--at",
        iso(fire - timedelta(minutes=1)),
    )
    assert (code, json.loads(out)["rotations"]) == (0, [])


def next_quarterly_fire(after: datetime) -> datetime:
    """`0 9 1 */3 *`: 09:00 UTC on the first of January, April, July and October."""
    month = after.month
    while True:
        year, month_of_year = after.year + (month - 1) // 12, (month - 1) % 12 + 1
        candidate = datetime(year, month_of_year, 1, 9, tzinfo=UTC)
        if candidate.month in (1, 4, 7, 10) and candidate > after:
            return candidate
        month += 1


def test_status_lists_every_rotating_secret_with_vault_times(
    policy_file: str, vault: VaultAdapter, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "rotation", "status", "--policy", policy_file, "--json")
    assert code == 0
    rows = {(r["secret"], r["environment"]): r for r in json.loads(out)["rotations"]}
    assert set(rows) == {
        ("SUPABASE_SERVICE_KEY", "staging"),
        ("SUPABASE_SERVICE_KEY", "production"),
        ("SHOPIFY_ADMIN_TOKEN", "production"),
    }
    shopify = rows["SHOPIFY_ADMIN_TOKEN", "production"]
    written = created(vault, "apps/production/shopify")
    assert shopify["last_rotated"] == iso(written)
    assert shopify["next_due"] == iso(written + timedelta(days=90))
    assert shopify["overdue"] is False

    code, out, _ = run(capsys, "rotation", "status", "--policy", policy_file)
    assert code == 0
    assert "SHOPIFY_ADMIN_TOKEN" in out and "3 rotations; 0 overdue" in out


def test_a_secret_missing_in_vault_is_never_rotated_and_due(
    policy_file: str, vault: VaultAdapter, capsys: pytest.CaptureFixture[str]
) -> None:
    vault.delete_document("apps/production/shopify")
    code, out, err = run(capsys, "rotation", "due", "--policy", policy_file, "--json")
    assert code == 1 and "SHOPIFY_ADMIN_TOKEN" in err
    (row,) = json.loads(out)["rotations"]
    assert (row["secret"], row["state"], row["last_rotated"]) == (
        "SHOPIFY_ADMIN_TOKEN",
        "never-rotated",
        None,
    )

    code, _, _ = run(capsys, "rotation", "due", "--policy", policy_file, "-e", "staging")
    assert code == 0  # the missing secret is production's


def test_calendar_writes_an_ics_file_filtered_by_owner(
    policy_file: str, vault: VaultAdapter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ics = tmp_path / "out" / "rotations.ics"
    ics.parent.mkdir()
    code, out, _ = run(
        capsys,
        "rotation",
        "calendar",
        "-p",
        policy_file,
        "--days",
        "366",
        "--owner",
        "integrations",
        "--ics",
        str(ics),
    )
    assert code == 0 and f"to {ics}" in out
    calendar = Calendar.from_ical(ics.read_bytes())
    summaries = [str(e["summary"]) for e in calendar.walk("VEVENT")]
    assert summaries == ["Rotate SHOPIFY_ADMIN_TOKEN (production)"] * 4  # 90d x 4 in 366 days
    due = created(vault, "apps/production/shopify") + timedelta(days=90)
    assert calendar.walk("VEVENT")[0].decoded("dtstart") == due.replace(microsecond=0)
    text = ics.read_text()
    assert "mailto:integrations@occ.example" in text
    assert all(value not in text for v in VALUES.values() for value in v.values())


def test_calendar_json_lists_the_window(
    policy_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "rotation",
        "calendar",
        "-p",
        policy_file,
        "--json",
        "--at",
        "2030-01-01",
        "--days",
        "31",
        "--owner",
        "reliability",
    )
    assert code == 0
    document = json.loads(out)
    assert document["window"] == {"start": "2030-01-01T00:00:00Z", "end": "2030-02-01T00:00:00Z"}
    # versions written today are long overdue in 2030: one overdue row each, then 2030-01-01 09:00
    assert [(r["environment"], r["due"], r["overdue"]) for r in document["rotations"]][2:] == [
        ("production", "2030-01-01T09:00:00Z", False),
        ("staging", "2030-01-01T09:00:00Z", False),
    ]
    assert {r["uid"] for r in document["rotations"][2:]} == {
        "SUPABASE_SERVICE_KEY-production-20300101T090000Z@envmatrix.envmatrix",
        "SUPABASE_SERVICE_KEY-staging-20300101T090000Z@envmatrix.envmatrix",
    }


def ics_export(
    capsys: pytest.CaptureFixture[str], policy: str, ics: Path, at: str
) -> dict[str, tuple[datetime, int]]:
    code, _, err = run(capsys, "rotation", "calendar", "-p", policy, "--ics", str(ics), "--at", at)
    assert code == 0, err
    events = Calendar.from_ical(ics.read_bytes()).walk("VEVENT")
    return {str(e["uid"]): (e.decoded("dtstart"), int(e["sequence"])) for e in events}


def test_two_policies_export_calendars_that_import_side_by_side(
    policy_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two teams' policies with the same secret names on one Vault: no UID is shared, and
    exporting again later repeats every overdue event exactly (UID, start, SEQUENCE)."""
    named = tmp_path / "payments.yaml"
    named.write_text("version: 1\nname: payments-team\n" + Path(policy_file).read_text()[11:])
    first = ics_export(capsys, policy_file, tmp_path / "a.ics", "2030-01-01T08:00")
    other = ics_export(capsys, str(named), tmp_path / "b.ics", "2030-01-01T08:00")
    assert first and len(first) == len(other) and not set(first) & set(other)
    assert all(uid.endswith("@payments-team.envmatrix") for uid in other)
    for later in ("2030-01-01T20:00", "2030-01-05", "2030-02-01"):
        again = ics_export(capsys, policy_file, tmp_path / "a.ics", later)
        overdue = [
            uid for uid, (start, _) in first.items() if start < datetime(2030, 1, 1, tzinfo=UTC)
        ]
        assert len(overdue) == 3  # every secret's current version is long overdue in 2030
        assert {uid: again[uid] for uid in overdue} == {uid: first[uid] for uid in overdue}


def test_an_unnamed_policy_is_warned_when_it_writes_a_calendar(
    policy_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys, "rotation", "calendar", "-p", policy_file, "--ics", str(tmp_path / "c.ics")
    )
    assert code == 0 and "no name:" in err and "'envmatrix'" in err


@pytest.mark.parametrize(
    "args",
    [
        ("rotation", "due", "--at", "next tuesday"),
        ("rotation", "calendar", "--owner", "nobody"),
        ("rotation", "calendar", "--days", "0"),
        ("rotation", "status", "--environment", "qa"),
    ],
)
def test_bad_command_lines_exit_3(
    policy_file: str, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    code, out, err = run(capsys, *args, "--policy", policy_file)
    assert code == 3 and err.startswith("error: ") and out == ""


def test_without_vault_configuration_it_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "envmatrix.yaml"
    path.write_text(POLICY.format(mount="secret"))
    code, _, err = run(capsys, "rotation", "status", "--policy", str(path))
    assert code == 3 and "VAULT_ADDR is not set" in err
