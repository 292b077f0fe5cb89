"""diff(desired, observed) as a table of cases: no servers, no mocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from envmatrix.pipeline.desired import DesiredState, FlagCell, SecretCell, Target
from envmatrix.pipeline.observe import Observed
from envmatrix.pipeline.plan import Action, Change, Kind, Reason, diff
from envmatrix.pipeline.state import SyncRecord, SyncState
from envmatrix.ports import ObservedEnvironment, ObservedSecret, ObservedVariable, VaultEntry

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PROD = Target("occ/app", "production", "production")
URL = SecretCell(PROD, "SUPABASE_URL", "apps/production/supabase", "url", "reliability", "supabase")
KEY = SecretCell(
    PROD,
    "SUPABASE_SERVICE_KEY",
    "apps/production/supabase",
    "service_key",
    "reliability",
    "supabase",
)
FLAG = FlagCell(PROD, "FEATURE_AI_ESCALATIONS", ("SUPABASE_URL", "SUPABASE_SERVICE_KEY"), True)


def desired(
    *cells: SecretCell, flags: tuple[FlagCell, ...] = (), prune: bool = False
) -> DesiredState:
    return DesiredState((PROD,), cells, flags, prune, "secret", {"reliability": "rel@occ.example"})


def vault(
    version: int | None = 3, keys: tuple[str, ...] = ("url", "service_key")
) -> dict[str, VaultEntry]:
    return {
        "apps/production/supabase": VaultEntry(
            "apps/production/supabase", version, T0, frozenset(keys)
        )
    }


def github(
    *secrets: tuple[str, datetime], variables: dict[str, str] | None = None
) -> dict[Target, ObservedEnvironment | None]:
    observed = {n: ObservedSecret(n, T0, at) for n, at in secrets}
    listed = {n: ObservedVariable(n, v, T0) for n, v in (variables or {}).items()}
    return {PROD: ObservedEnvironment("production", observed, listed)}


def synced(*names: str, version: int = 3, at: datetime = T0) -> dict[Target, SyncState]:
    keys = {"SUPABASE_URL": "url", "SUPABASE_SERVICE_KEY": "service_key", "OLD_TOKEN": "old"}
    records = {n: SyncRecord("apps/production/supabase", keys[n], version, at) for n in names}
    return {PROD: SyncState(records, 1)}


def rows(plan: object) -> list[tuple[str, str, str, str]]:
    return [(str(c.action), str(c.kind), c.name, str(c.reason)) for c in plan.changes]  # type: ignore[attr-defined]


CASES = {
    "missing in GitHub -> create": (
        desired(URL),
        Observed(vault(), github(), {}),
        [("create", "secret", "SUPABASE_URL", "missing")],
    ),
    "in sync -> nothing": (
        desired(URL),
        Observed(vault(), github(("SUPABASE_URL", T0)), synced("SUPABASE_URL")),
        [],
    ),
    "vault newer -> update": (
        desired(URL),
        Observed(vault(4), github(("SUPABASE_URL", T0)), synced("SUPABASE_URL")),
        [("update", "secret", "SUPABASE_URL", "vault-newer")],
    ),
    "written after our sync -> changed-outside": (
        desired(URL),
        Observed(
            vault(), github(("SUPABASE_URL", T0 + timedelta(seconds=5))), synced("SUPABASE_URL")
        ),
        [("update", "secret", "SUPABASE_URL", "changed-outside")],
    ),
    "no record of writing it -> changed-outside": (
        desired(URL),
        Observed(vault(), github(("SUPABASE_URL", T0)), {}),
        [("update", "secret", "SUPABASE_URL", "changed-outside")],
    ),
    "key missing in Vault -> blocked": (
        desired(KEY),
        Observed(vault(keys=("url",)), github(), {}),
        [("blocked", "secret", "SUPABASE_SERVICE_KEY", "missing-in-vault")],
    ),
    "path missing in Vault -> blocked": (
        desired(URL),
        Observed(vault(None, ()), github(), {}),
        [("blocked", "secret", "SUPABASE_URL", "missing-in-vault")],
    ),
    "not in policy, not ours -> orphan": (
        desired(URL),
        Observed(vault(), github(("SUPABASE_URL", T0), ("LEGACY", T0)), synced("SUPABASE_URL")),
        [("orphan", "secret", "LEGACY", "not-in-policy")],
    ),
    "not in policy, ours, no prune -> orphan": (
        desired(URL),
        Observed(
            vault(),
            github(("SUPABASE_URL", T0), ("OLD_TOKEN", T0)),
            synced("SUPABASE_URL", "OLD_TOKEN"),
        ),
        [("orphan", "secret", "OLD_TOKEN", "not-in-policy")],
    ),
    "not in policy, ours, prune -> delete": (
        desired(URL, prune=True),
        Observed(
            vault(),
            github(("SUPABASE_URL", T0), ("OLD_TOKEN", T0)),
            synced("SUPABASE_URL", "OLD_TOKEN"),
        ),
        [("delete", "secret", "OLD_TOKEN", "pruned")],
    ),
    "not in policy, not ours, prune -> still orphan": (
        desired(URL, prune=True),
        Observed(vault(), github(("SUPABASE_URL", T0), ("LEGACY", T0)), synced("SUPABASE_URL")),
        [("orphan", "secret", "LEGACY", "not-in-policy")],
    ),
    "ours but rewritten by hand, prune -> orphan, not delete": (
        desired(URL, prune=True),
        Observed(
            vault(),
            github(("SUPABASE_URL", T0), ("OLD_TOKEN", T0 + timedelta(hours=1))),
            synced("SUPABASE_URL", "OLD_TOKEN"),
        ),
        [("orphan", "secret", "OLD_TOKEN", "not-in-policy")],
    ),
    "environment absent -> create environment and secret": (
        desired(URL),
        Observed(vault(), {PROD: None}, {}),
        [
            ("create", "environment", "production", "missing"),
            ("create", "secret", "SUPABASE_URL", "missing"),
        ],
    ),
    "flag: all secrets syncable -> true": (
        desired(URL, KEY, flags=(FLAG,)),
        Observed(
            vault(),
            github(("SUPABASE_URL", T0), ("SUPABASE_SERVICE_KEY", T0)),
            synced("SUPABASE_URL", "SUPABASE_SERVICE_KEY"),
        ),
        [("create", "variable", "FEATURE_AI_ESCALATIONS", "flag-ready")],
    ),
    "flag: a required secret blocked -> false": (
        desired(URL, KEY, flags=(FLAG,)),
        Observed(vault(keys=("url",)), github(("SUPABASE_URL", T0)), synced("SUPABASE_URL")),
        [
            ("blocked", "secret", "SUPABASE_SERVICE_KEY", "missing-in-vault"),
            ("create", "variable", "FEATURE_AI_ESCALATIONS", "flag-not-ready"),
        ],
    ),
    "flag already true and ready -> nothing": (
        desired(URL, KEY, flags=(FLAG,)),
        Observed(
            vault(),
            github(
                ("SUPABASE_URL", T0),
                ("SUPABASE_SERVICE_KEY", T0),
                variables={"FEATURE_AI_ESCALATIONS": "true"},
            ),
            synced("SUPABASE_URL", "SUPABASE_SERVICE_KEY"),
        ),
        [],
    ),
    "flag true but secret gone from Vault -> update to false": (
        desired(URL, KEY, flags=(FLAG,)),
        Observed(
            vault(keys=("url",)),
            github(
                ("SUPABASE_URL", T0),
                ("SUPABASE_SERVICE_KEY", T0),
                variables={"FEATURE_AI_ESCALATIONS": "true"},
            ),
            synced("SUPABASE_URL", "SUPABASE_SERVICE_KEY"),
        ),
        [
            ("blocked", "secret", "SUPABASE_SERVICE_KEY", "missing-in-vault"),
            ("update", "variable", "FEATURE_AI_ESCALATIONS", "flag-not-ready"),
        ],
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_diff(case: str) -> None:
    state, observed, expected = CASES[case]
    assert rows(diff(state, observed)) == expected


def test_blocked_names_owner_and_contact_and_full_vault_path() -> None:
    plan = diff(desired(KEY), Observed(vault(keys=("url",)), github(), {}))
    assert plan.changes[0].detail == (
        "missing in Vault at secret/apps/production/supabase#service_key"
        " — owner: reliability (rel@occ.example)"
    )
    assert plan.changes[0].owner == "reliability"


def test_changes_carry_what_they_were_computed_from() -> None:
    at = T0 + timedelta(seconds=9)
    plan = diff(
        desired(URL), Observed(vault(7), github(("SUPABASE_URL", at)), synced("SUPABASE_URL"))
    )
    change = plan.changes[0]
    assert (change.vault_version, change.github_updated_at) == (7, at)
    assert change.kind is Kind.SECRET and change.reason is Reason.CHANGED_OUTSIDE


def test_fingerprint_moves_when_the_world_moves() -> None:
    before = Observed(vault(3), github(("SUPABASE_URL", T0)), synced("SUPABASE_URL"))
    after = Observed(vault(4), github(("SUPABASE_URL", T0)), synced("SUPABASE_URL"))
    assert diff(desired(URL), before).fingerprint != diff(desired(URL), after).fingerprint
    assert diff(desired(URL), before).fingerprint == diff(desired(URL), before).fingerprint


def test_only_writes_count_for_detailed_exitcode() -> None:
    blocked_only = diff(desired(KEY), Observed(vault(keys=("url",)), github(), {}))
    assert not blocked_only.has_writes
    assert blocked_only.summary()["blocked"] == 1
    assert Action.BLOCKED not in {c.action for c in blocked_only.writes}


# -- the repository level (scope: repository secrets) -----------------------------------------

REPO_LEVEL = Target.repository_level("occ/app")
SENTRY = SecretCell(REPO_LEVEL, "SENTRY_AUTH_TOKEN", "ci/sentry", "auth_token", "reliability", None)


def repo_desired(*cells: SecretCell, prune: bool = False) -> DesiredState:
    return DesiredState((REPO_LEVEL,), cells, (), prune, "secret", {})


def repo_vault(version: int | None = 2, keys: tuple[str, ...] = ("auth_token",)) -> dict:
    return {"ci/sentry": VaultEntry("ci/sentry", version, T0, frozenset(keys))}


def repo_github(*secrets: tuple[str, datetime]) -> dict[Target, ObservedEnvironment | None]:
    listed = {n: ObservedSecret(n, T0, at) for n, at in secrets}
    return {REPO_LEVEL: ObservedEnvironment("", listed)}


def repo_synced(*names: str, version: int = 2) -> dict[Target, SyncState]:
    keys = {"SENTRY_AUTH_TOKEN": "auth_token", "OLD_CI_TOKEN": "old"}
    records = {n: SyncRecord("ci/sentry", keys[n], version, T0) for n in names}
    return {REPO_LEVEL: SyncState(records, 1)}


LATER = T0 + timedelta(seconds=5)
REPOSITORY_CASES = {
    "missing -> create": (
        repo_desired(SENTRY),
        Observed(repo_vault(), repo_github(), {}),
        [("create", "SENTRY_AUTH_TOKEN", "missing")],
    ),
    "in sync -> nothing": (
        repo_desired(SENTRY),
        Observed(
            repo_vault(), repo_github(("SENTRY_AUTH_TOKEN", T0)), repo_synced("SENTRY_AUTH_TOKEN")
        ),
        [],
    ),
    "vault newer -> update": (
        repo_desired(SENTRY),
        Observed(
            repo_vault(3), repo_github(("SENTRY_AUTH_TOKEN", T0)), repo_synced("SENTRY_AUTH_TOKEN")
        ),
        [("update", "SENTRY_AUTH_TOKEN", "vault-newer")],
    ),
    "written after our sync -> changed-outside": (
        repo_desired(SENTRY),
        Observed(
            repo_vault(),
            repo_github(("SENTRY_AUTH_TOKEN", LATER)),
            repo_synced("SENTRY_AUTH_TOKEN"),
        ),
        [("update", "SENTRY_AUTH_TOKEN", "changed-outside")],
    ),
    "missing in Vault -> blocked, no environment to create": (
        repo_desired(SENTRY),
        Observed(repo_vault(None, ()), repo_github(), {}),
        [("blocked", "SENTRY_AUTH_TOKEN", "missing-in-vault")],
    ),
    "not in policy, not ours, prune -> orphan": (
        repo_desired(SENTRY, prune=True),
        Observed(
            repo_vault(),
            repo_github(("SENTRY_AUTH_TOKEN", T0), ("LEGACY", T0)),
            repo_synced("SENTRY_AUTH_TOKEN"),
        ),
        [("orphan", "LEGACY", "not-in-policy")],
    ),
    "not in policy, ours, prune -> delete": (
        repo_desired(SENTRY, prune=True),
        Observed(
            repo_vault(),
            repo_github(("SENTRY_AUTH_TOKEN", T0), ("OLD_CI_TOKEN", T0)),
            repo_synced("SENTRY_AUTH_TOKEN", "OLD_CI_TOKEN"),
        ),
        [("delete", "OLD_CI_TOKEN", "pruned")],
    ),
    "not in policy, ours, no prune -> orphan": (
        repo_desired(SENTRY),
        Observed(
            repo_vault(),
            repo_github(("SENTRY_AUTH_TOKEN", T0), ("OLD_CI_TOKEN", T0)),
            repo_synced("SENTRY_AUTH_TOKEN", "OLD_CI_TOKEN"),
        ),
        [("orphan", "OLD_CI_TOKEN", "not-in-policy")],
    ),
}


@pytest.mark.parametrize("case", list(REPOSITORY_CASES), ids=list(REPOSITORY_CASES))
def test_diff_at_the_repository_level(case: str) -> None:
    state, observed, expected = REPOSITORY_CASES[case]
    changes = diff(state, observed).changes
    assert [(str(c.action), c.name, str(c.reason)) for c in changes] == expected
    for change in changes:
        assert change.kind is Kind.SECRET and change.environment is None
        assert change.logical_environment is None and change.to_json()["environment"] is None


def test_repository_level_changes_round_trip_through_a_saved_plan() -> None:
    [change] = diff(repo_desired(SENTRY), Observed(repo_vault(), repo_github(), {})).changes
    assert Change.from_json(change.to_json()) == change


def test_desired_state_has_one_repository_target_per_repository_and_only_for_all_environments() -> (
    None
):
    from envmatrix.pipeline.desired import desired_state
    from envmatrix.policy import Policy

    policy = Policy.model_validate(
        {
            "version": 1,
            "github": {"repositories": ("occ/app", "occ/shop")},
            "environments": {"staging": {"github": "staging"}, "production": {"github": "prod"}},
            "owners": {"reliability": {"contact": "rel@occ.example"}},
            "secrets": {
                "SENTRY_AUTH_TOKEN": {
                    "owner": "reliability",
                    "scope": "repository",
                    "vault": "ci/sentry",
                },
                "DB_URL": {
                    "owner": "reliability",
                    "vault": "apps/{environment}/db",
                    "environments": ("production",),
                    "repositories": ("occ/app",),
                },
            },
        }
    )
    everything = desired_state(policy)
    assert [(t.repository, t.github_environment) for t in everything.targets] == [
        ("occ/app", None),
        ("occ/app", "prod"),
        ("occ/shop", None),
    ]
    sentry = [c for c in everything.secrets if c.name == "SENTRY_AUTH_TOKEN"]
    assert [(c.target.repository, c.vault_ref) for c in sentry] == [
        ("occ/app", "ci/sentry#SENTRY_AUTH_TOKEN"),
        ("occ/shop", "ci/sentry#SENTRY_AUTH_TOKEN"),
    ]
    assert desired_state(policy, ["staging", "production"]).targets == everything.targets
    only_prod = desired_state(policy, ["production"])
    assert [t.github_environment for t in only_prod.targets] == ["prod"]


# -- properties of diff (hypothesis): random worlds, simulated apply, convergence --------------

from dataclasses import replace as _replace  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

P_TARGETS = (
    Target("o/a", "production", "production"),
    Target("o/a", "staging", "staging"),
    Target("o/b", "production", "production"),
    Target.repository_level("o/a"),
)
P_NAMES = ("A_KEY", "B_KEY", "C_KEY", "D_KEY")
P_PATHS = ("p/one", "p/two")
P_KEYS = ("k1", "k2", "k3")
P_TIMES = st.integers(0, 5).map(lambda n: T0 + timedelta(seconds=n))
WRITE_TIME = T0 + timedelta(hours=1)  # GitHub's clock at the simulated apply: after everything


@st.composite
def p_desired(draw: st.DrawFn) -> DesiredState:
    cells = []
    for target in P_TARGETS:
        for name in draw(st.sets(st.sampled_from(P_NAMES))):
            path, key = draw(st.sampled_from(P_PATHS)), draw(st.sampled_from(P_KEYS))
            cells.append(SecretCell(target, name, path, key, "team", None))
    flags = [
        FlagCell(
            target,
            "F_FLAG",
            tuple(draw(st.sets(st.sampled_from(P_NAMES), min_size=1))),
            draw(st.booleans()),
        )
        for target in P_TARGETS[:3]
        if draw(st.booleans())
    ]
    targets = tuple(sorted({c.target for c in cells} | {f.target for f in flags}))
    return DesiredState(targets, tuple(sorted(cells)), tuple(sorted(flags)), draw(st.booleans()))


@st.composite
def p_observed(draw: st.DrawFn, desired: DesiredState) -> Observed:
    vault = {
        path: VaultEntry(path, version, T0, frozenset(draw(st.sets(st.sampled_from(P_KEYS)))))
        for path in P_PATHS
        for version in [draw(st.none() | st.integers(1, 4))]
    }
    github: dict[Target, ObservedEnvironment | None] = {}
    sync: dict[Target, SyncState] = {}
    for target in desired.targets:
        present = target.is_repository_level or draw(st.booleans())
        names = draw(st.sets(st.sampled_from(P_NAMES)))
        secrets = {n: ObservedSecret(n, T0, draw(P_TIMES)) for n in names}
        flag = draw(st.sampled_from([None, "true", "false"]))
        variables = {} if flag is None else {"F_FLAG": ObservedVariable("F_FLAG", flag, T0)}
        github[target] = ObservedEnvironment("", secrets, variables) if present else None
        records = {
            n: SyncRecord(
                draw(st.sampled_from(P_PATHS)),
                draw(st.sampled_from(P_KEYS)),
                draw(st.integers(1, 4)),
                draw(P_TIMES),
            )
            for n in draw(st.sets(st.sampled_from(P_NAMES)))
        }
        sync[target] = SyncState(records, 1 if records else None)
    return Observed(vault, github, sync)


def simulate(observed: Observed, changes: tuple[Change, ...]) -> Observed:
    """What the world holds after every write of a plan landed (apply's bookkeeping included)."""
    github = {t: e for t, e in observed.github.items()}
    sync = dict(observed.sync)
    for change in changes:
        assert change.is_write, change
        target = next(
            t
            for t in github
            if (t.repository, t.github_environment) == (change.repository, change.environment)
        )
        env = github[target] or ObservedEnvironment(change.environment or "")
        secrets, variables = dict(env.secrets), dict(env.variables)
        records = dict(sync.get(target, SyncState({}, None)).records)
        if change.kind is Kind.SECRET and change.action is Action.DELETE:
            secrets.pop(change.name, None)
            records.pop(change.name, None)
        elif change.kind is Kind.SECRET:
            assert change.vault_path and change.vault_key and change.vault_version
            secrets[change.name] = ObservedSecret(change.name, T0, WRITE_TIME)
            records[change.name] = SyncRecord(
                change.vault_path, change.vault_key, change.vault_version, WRITE_TIME
            )
        elif change.kind is Kind.VARIABLE:
            assert change.value is not None
            variables[change.name] = ObservedVariable(change.name, change.value, WRITE_TIME)
        github[target] = _replace(env, secrets=secrets, variables=variables)
        sync[target] = SyncState(records, 1)
    return Observed(observed.vault, github, sync)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_applying_a_plan_converges(data: st.DataObject) -> None:
    """For any world: apply the plan's writes, diff again, and nothing is left to write."""
    want = data.draw(p_desired())
    world = data.draw(p_observed(want))
    first = diff(want, world)
    second = diff(want, simulate(world, first.writes))
    assert second.writes == ()
    # what is left is only what apply cannot or must not fix, and it was already reported
    assert {(c.action, c.repository, c.environment, c.name) for c in second.changes} <= {
        (c.action, c.repository, c.environment, c.name) for c in first.changes
    }


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_blocked_and_orphan_rows_are_never_writes_and_cells_appear_once(
    data: st.DataObject,
) -> None:
    want = data.draw(p_desired())
    plan = diff(want, data.draw(p_observed(want)))
    for change in plan.changes:
        assert change.is_write == (change.action in (Action.CREATE, Action.UPDATE, Action.DELETE))
    assert not any(c.is_write for c in plan.changes if c.action in (Action.BLOCKED, Action.ORPHAN))
    keys = [(c.kind, c.repository, c.environment, c.name) for c in plan.changes]
    assert len(keys) == len(set(keys))
    wanted = {(c.target.repository, c.target.github_environment, c.name) for c in want.secrets}
    for change in plan.changes:
        where = (change.repository, change.environment, change.name)
        if change.action is Action.ORPHAN or change.action is Action.DELETE:
            assert where not in wanted  # a policy secret is never orphaned or deleted
        if change.action is Action.DELETE:
            assert want.prune


# -- issue 10 item 2: several policies on one target ---------------------------------------------


def owned(records: dict[str, str | None], version: int = 3) -> dict[Target, SyncState]:
    """Sync state of PROD: secret -> the policy that wrote it (None: a legacy record)."""
    keys = {"SUPABASE_URL": "url", "SUPABASE_SERVICE_KEY": "service_key"}
    state = {
        n: SyncRecord("apps/production/supabase", keys.get(n, n.lower()), version, T0)
        for n in records
    }
    owners = {n: p for n, p in records.items() if p is not None}
    return {PROD: SyncState(state, 1, owners)}


def as_policy(name: str, *cells: SecretCell, prune: bool = True) -> DesiredState:
    return _replace(desired(*cells, prune=prune), policy_name=name)


def plan_rows(plan: object) -> list[tuple[str, str, str, str | None]]:
    return [(str(c.action), c.name, str(c.reason), c.managed_by) for c in plan.changes]  # type: ignore[attr-defined]


POLICY_CASES = {
    "another policy's secret, prune -> orphan naming it": (
        as_policy("search", URL),
        github(("SUPABASE_URL", T0), ("PAYMENTS_API_KEY", T0)),
        owned({"SUPABASE_URL": "search", "PAYMENTS_API_KEY": "payments"}),
        [("orphan", "PAYMENTS_API_KEY", "not-in-policy", "payments")],
    ),
    "several other policies' secrets -> each orphan names its own": (
        as_policy("search", URL),
        github(("SUPABASE_URL", T0), ("A_KEY", T0), ("B_KEY", T0)),
        owned({"SUPABASE_URL": "search", "A_KEY": "team-a", "B_KEY": "team-b"}),
        [
            ("orphan", "A_KEY", "not-in-policy", "team-a"),
            ("orphan", "B_KEY", "not-in-policy", "team-b"),
        ],
    ),
    "this policy's own dropped secret, prune -> delete": (
        as_policy("search", URL),
        github(("SUPABASE_URL", T0), ("OLD_TOKEN", T0), ("PAYMENTS_API_KEY", T0)),
        owned({"SUPABASE_URL": "search", "OLD_TOKEN": "search", "PAYMENTS_API_KEY": "payments"}),
        [
            ("delete", "OLD_TOKEN", "pruned", None),
            ("orphan", "PAYMENTS_API_KEY", "not-in-policy", "payments"),
        ],
    ),
    "a legacy record of a secret the policy no longer names -> orphan, never deleted": (
        as_policy("search", URL),
        github(("SUPABASE_URL", T0), ("OLD_TOKEN", T0)),
        owned({"SUPABASE_URL": None, "OLD_TOKEN": None}),
        [("orphan", "OLD_TOKEN", "not-in-policy", None)],
    ),
    "a legacy record of a secret the policy names -> adopted, in sync": (
        as_policy("search", URL),
        github(("SUPABASE_URL", T0)),
        owned({"SUPABASE_URL": None}),
        [],
    ),
    "a legacy record adopted, Vault newer -> update": (
        as_policy("search", URL),
        github(("SUPABASE_URL", T0)),
        owned({"SUPABASE_URL": None}, version=2),
        [("update", "SUPABASE_URL", "vault-newer", None)],
    ),
    "another policy's record of an older version -> blocked, not vault-newer": (
        as_policy("search", URL),
        github(("SUPABASE_URL", T0)),
        owned({"SUPABASE_URL": "payments"}, version=2),
        [("blocked", "SUPABASE_URL", "managed-by-another-policy", "payments")],
    ),
    "both policies declare the secret -> blocked naming both": (
        as_policy("search", URL, KEY),
        github(("SUPABASE_URL", T0), ("SUPABASE_SERVICE_KEY", T0)),
        owned({"SUPABASE_URL": "search", "SUPABASE_SERVICE_KEY": "payments"}),
        [("blocked", "SUPABASE_SERVICE_KEY", "managed-by-another-policy", "payments")],
    ),
    "claimed by another policy and gone from GitHub -> still blocked, never created": (
        as_policy("search", KEY),
        github(),
        owned({"SUPABASE_SERVICE_KEY": "payments"}),
        [("blocked", "SUPABASE_SERVICE_KEY", "managed-by-another-policy", "payments")],
    ),
}


@pytest.mark.parametrize("case", list(POLICY_CASES), ids=list(POLICY_CASES))
def test_several_policies_on_one_target(case: str) -> None:
    wanted, environments, sync, expected = POLICY_CASES[case]
    plan = diff(wanted, Observed(vault(), environments, sync))
    assert plan_rows(plan) == expected


def test_a_conflict_names_both_policies_and_the_owner() -> None:
    plan = diff(
        as_policy("search", KEY),
        Observed(vault(), github(), owned({"SUPABASE_SERVICE_KEY": "payments"})),
    )
    (row,) = plan.changes
    assert "policy payments" in row.detail and "policy search" in row.detail
    assert "owner: reliability" in row.detail and row.to_json()["managed_by"] == "payments"
    assert not plan.has_writes


def test_orphans_of_this_policy_carry_no_managed_by() -> None:
    plan = diff(
        as_policy("search", URL, prune=False),
        Observed(
            vault(),
            github(("SUPABASE_URL", T0), ("OLD_TOKEN", T0)),
            owned({"SUPABASE_URL": "search", "OLD_TOKEN": "search"}),
        ),
    )
    assert plan_rows(plan) == [("orphan", "OLD_TOKEN", "not-in-policy", None)]
    assert "written by envmatrix" in plan.changes[0].detail
