"""End to end through the CLI: a real OpenBao, the GitHub sandbox, the example policy."""

from __future__ import annotations

import json
from pathlib import Path

from envmatrix.sandbox import Fault
from tests.world import OTHER_REPO, REPO, World, example_policy_text


def changes(world: World, *args: str) -> list[tuple[str, str, str | None, str, str]]:
    result = world.run("plan", "--json", *args)
    assert result.code == 0, result.err
    return [
        (c["action"], c["kind"], c["environment"], c["name"], c["reason"])
        for c in result.json()["changes"]
    ]


def test_apply_makes_every_github_copy_equal_vault_and_then_converges(world: World) -> None:
    world.seed()
    first = world.run("plan", "--detailed-exitcode")
    assert first.code == 2
    applied = world.run("apply", "--yes")
    assert applied.code == 0, applied.err
    assert "Apply complete: 20 written, 0 failed, 0 blocked" in applied.out
    assert world.mismatches() == []
    again = world.run("plan", "--detailed-exitcode")
    assert again.code == 0
    assert "No changes." in again.out
    assert world.sandbox.variable_value(REPO, "production", "FEATURE_AI_ESCALATIONS") == "true"


def test_new_vault_version_updates_exactly_its_cells(world: World) -> None:
    world.seed()
    assert world.run("apply", "--yes").code == 0
    world.set_vault_value("SHOPIFY_ADMIN_TOKEN", "production", "shpat-rotated-by-hand")
    world.set_vault_value("SUPABASE_SERVICE_KEY", "staging", "new-service-key")  # shared path
    assert changes(world) == [
        ("update", "secret", "production", "SHOPIFY_ADMIN_TOKEN", "vault-newer"),
        ("update", "secret", "staging", "SUPABASE_SERVICE_KEY", "vault-newer"),
    ]
    assert world.run("apply", "--yes").code == 0
    assert (
        world.sandbox.secret_value(REPO, "production", "SHOPIFY_ADMIN_TOKEN")
        == "shpat-rotated-by-hand"
    )
    assert world.mismatches() == []
    assert changes(world) == []


def test_secret_rewritten_outside_is_detected_and_restored(world: World) -> None:
    world.seed()
    assert world.run("apply", "--yes").code == 0
    world.sandbox.advance_clock(2)
    world.sandbox.write_secret_outside(REPO, "staging", "ZOHO_CLIENT_ID", "typed-by-hand")
    assert changes(world) == [("update", "secret", "staging", "ZOHO_CLIENT_ID", "changed-outside")]
    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.secret_value(REPO, "staging", "ZOHO_CLIENT_ID") == world.vault_value(
        "ZOHO_CLIENT_ID", "staging"
    )
    assert changes(world) == []


def test_secret_present_before_envmatrix_is_rewritten_from_vault(world: World) -> None:
    world.seed()
    world.sandbox.create_environment(REPO, "production")
    world.sandbox.write_secret_outside(REPO, "production", "SUPABASE_URL", "https://old.example")
    assert ("update", "secret", "production", "SUPABASE_URL", "changed-outside") in changes(world)
    assert world.run("apply", "--yes").code == 0
    assert world.mismatches() == []


def test_missing_in_vault_is_blocked_names_owner_and_the_rest_is_applied(world: World) -> None:
    world.seed(leave_out=("ZOHO_REFRESH_TOKEN", "production"))
    plan = world.run("plan", "--json").json()
    blocked = [c for c in plan["changes"] if c["action"] == "blocked"]
    assert [(c["environment"], c["name"]) for c in blocked] == [
        ("production", "ZOHO_REFRESH_TOKEN")
    ]
    assert "owner: integrations" in blocked[0]["detail"]
    assert plan["summary"]["blocked"] == 1
    applied = world.run("apply", "--yes")
    assert applied.code == 0
    assert "warning: ZOHO_REFRESH_TOKEN" in applied.out and "owner: integrations" in applied.out
    assert world.sandbox.secret_value(REPO, "production", "ZOHO_REFRESH_TOKEN") is None
    assert world.mismatches() == []
    # blocked alone is reported, not a change to make
    assert world.run("plan", "--detailed-exitcode").code == 0


def test_orphans_are_left_alone_and_prune_deletes_only_what_envmatrix_wrote(world: World) -> None:
    world.seed()
    assert world.run("apply", "--yes").code == 0
    world.sandbox.write_secret_outside(REPO, "production", "LEGACY_TOKEN", "someone-elses")
    policy = world.policy_path.read_text()
    # CHATWOOT_API_TOKEN leaves the policy: envmatrix wrote it
    start = policy.index("  CHATWOOT_API_TOKEN:")
    end = policy.index("  GA_MCP_SERVICE_ACCOUNT_JSON:")
    world.write_policy(policy[:start] + policy[end:])
    orphans = {(c[2], c[3]) for c in changes(world) if c[0] == "orphan"}
    assert orphans == {
        ("production", "LEGACY_TOKEN"),
        ("production", "CHATWOOT_API_TOKEN"),
        ("staging", "CHATWOOT_API_TOKEN"),
    }
    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.secret_value(REPO, "production", "LEGACY_TOKEN") == "someone-elses"

    world.write_policy(world.policy_path.read_text().replace("prune: false", "prune: true"))
    assert sorted(c for c in changes(world) if c[0] != "orphan") == [
        ("delete", "secret", "production", "CHATWOOT_API_TOKEN", "pruned"),
        ("delete", "secret", "staging", "CHATWOOT_API_TOKEN", "pruned"),
    ]
    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.secret_value(REPO, "production", "CHATWOOT_API_TOKEN") is None
    assert world.sandbox.secret_value(REPO, "production", "LEGACY_TOKEN") == "someone-elses"
    assert changes(world) == [("orphan", "secret", "production", "LEGACY_TOKEN", "not-in-policy")]


def test_saved_plan_applies_exactly_and_is_refused_when_stale(world: World, tmp_path: Path) -> None:
    world.seed()
    planfile = tmp_path / "plan.json"
    assert world.run("plan", "--out", str(planfile)).code == 0
    world.set_vault_value("ZOHO_CLIENT_ID", "staging", "moved-on")
    refused = world.run("apply", str(planfile), "--yes")
    assert refused.code == 1
    assert "stale" in refused.err
    assert world.sandbox.environment_names(REPO) == []  # nothing written

    assert world.run("plan", "--out", str(planfile)).code == 0
    applied = world.run("apply", str(planfile), "--yes")
    assert applied.code == 0, applied.err
    assert world.mismatches() == []


def test_environment_filter_accepts_logical_and_github_names(world: World) -> None:
    world.seed()
    only_prod = {c[2] for c in changes(world, "--environment", "production")}
    assert only_prod == {"production"}
    unknown = world.run("plan", "--environment", "qa")
    assert unknown.code == 3 and "qa" in unknown.err


def test_apply_refuses_without_terminal_or_yes(world: World) -> None:
    world.seed()
    result = world.run("apply")
    assert result.code == 3
    assert "--yes" in result.err
    assert world.sandbox.environment_names(REPO) == []


def test_failed_write_is_reported_others_land_and_rerun_converges(world: World) -> None:
    world.seed()
    world.sandbox.inject(Fault(method="PUT", path="/secrets/ZOHO_CLIENT_SECRET$", status=500))
    result = world.run("apply", "--yes", "--json")
    assert result.code == 1
    report = result.json()
    failed = [r for r in report["results"] if r["result"] == "failed"]
    assert {(r["environment"], r["name"]) for r in failed} == {
        ("production", "ZOHO_CLIENT_SECRET"),
        ("staging", "ZOHO_CLIENT_SECRET"),
    }
    assert all("500" in r["error"] for r in failed)
    assert report["summary"]["written"] == 18
    world.sandbox.clear_faults()
    assert world.run("apply", "--yes").code == 0
    assert world.mismatches() == []
    assert world.run("plan", "--detailed-exitcode").code == 0


def test_canary_values_never_leave_vault(world: World, tmp_path: Path) -> None:
    canaries = {name: f"CANARY-{i}-d41d8cd98f00" for i, name in enumerate(world.policy.secrets)}
    for name, value in canaries.items():
        for env in ("staging", "production"):
            world.set_vault_value(name, env, value)
    outputs = []
    planfile = tmp_path / "canary-plan.json"
    for args in (
        ("validate",),
        ("plan",),
        ("plan", "--json", "--out", str(planfile)),
        ("apply", str(planfile), "--yes", "--json"),
        ("plan", "--detailed-exitcode"),
    ):
        result = world.run(*args)
        outputs += [result.out, result.err]
    world.set_vault_value("SUPABASE_URL", "staging", canaries["SUPABASE_URL"] + "-v2")
    world.sandbox.inject(Fault(method="PUT", status=422))
    failing = world.run("apply", "--yes", "--json")
    assert failing.code == 1
    outputs += [failing.out, failing.err, planfile.read_text()]
    outputs += [
        p.read_text(errors="replace")
        for p in tmp_path.rglob("*")
        if p.is_file() and p.suffix != ".sqlite"
    ]
    text = "\n".join(outputs)
    assert "CANARY-" not in text
    assert (
        world.sandbox.secret_value(REPO, "production", "SUPABASE_URL") == canaries["SUPABASE_URL"]
    )


def test_bad_policy_exits_3_before_any_call(world: World) -> None:
    world.write_policy(example_policy_text("secret", **{"owner: support": "owner: suport"}))
    world.env["VAULT_ADDR"] = "http://127.0.0.1:9"  # nothing listens; a call would be exit 1
    for command in (("validate",), ("plan",), ("apply", "--yes")):
        result = world.run(*command)
        assert result.code == 3
        assert result.err.count("\n") == 1
        # validate lists the problems on stdout and sums them up on stderr
        shown = result.out if command == ("validate",) else result.err
        assert "envmatrix.yaml:" in shown and "owner 'suport'" in shown
    assert sum(world.sandbox.request_counts().values()) == 0


def test_plan_json_matches_the_contract_shape(world: World) -> None:
    world.seed(leave_out=("SUPABASE_SERVICE_KEY", "production"))
    data = world.run("plan", "--json").json()
    assert set(data) == {
        "changes",
        "summary",
        "rotation_overdue",
        "rotations_in_progress",
        "requests",  # contract Additions (issue 13)
        "vault_requests",
    }
    assert set(data["requests"]) == {
        "by_endpoint",
        "not_modified",
        "max_in_flight",
        "rate_limit_remaining",
        "paced_seconds",
    }
    assert data["rotations_in_progress"] == []
    assert set(data["summary"]) == {"create", "update", "delete", "blocked", "orphan"}
    for change in data["changes"]:
        assert {"action", "kind", "repository", "environment", "name", "reason", "detail"} <= set(
            change
        )
    flag = [
        c for c in data["changes"] if c["kind"] == "variable" and c["environment"] == "production"
    ]
    assert flag[0]["value"] == "false"
    assert json.dumps(data).count("SUPABASE_SERVICE_KEY") >= 2


def test_apply_sets_a_probed_flag_true_only_when_its_probe_passes(world: World) -> None:
    from tests.standins.supabase import SupabaseSandbox

    head, flags = world.policy_path.read_text().split("\nflags:\n")
    world.write_policy(head + "\nflags:\n" + flags + "    probe: supabase\n")
    assert world.policy.flags["FEATURE_AI_ESCALATIONS"].probe == "supabase"
    with SupabaseSandbox() as supabase:
        world.seed()
        good = supabase.add_secret_key("ci")
        for env in ("staging", "production"):
            world.set_vault_value("SUPABASE_URL", env, supabase.url)
        world.set_vault_value("SUPABASE_SERVICE_KEY", "staging", good)
        world.set_vault_value("SUPABASE_SERVICE_KEY", "production", "sb_secret_wrong")
        result = world.run("apply", "--yes", "--json")
        assert result.code == 1
        failed = [r for r in result.json()["results"] if r["result"] == "failed"]
        assert [(r["environment"], r["name"]) for r in failed] == [
            ("production", "FEATURE_AI_ESCALATIONS")
        ]
        assert "probe supabase failed" in failed[0]["error"]
        assert world.sandbox.variable_value(REPO, "production", "FEATURE_AI_ESCALATIONS") is None
        assert world.sandbox.variable_value(REPO, "staging", "FEATURE_AI_ESCALATIONS") == "true"
        assert "sb_secret_wrong" not in result.out + result.err and good not in result.out

        world.set_vault_value("SUPABASE_SERVICE_KEY", "production", good)
        assert world.run("apply", "--yes").code == 0
        assert world.sandbox.variable_value(REPO, "production", "FEATURE_AI_ESCALATIONS") == "true"


def test_plan_and_matrix_mark_overdue_rotations(world: World) -> None:
    world.seed(leave_out=("SUPABASE_SERVICE_KEY", "production"))  # never rotated: due now
    overdue = world.run("plan", "--json").json()["rotation_overdue"]
    assert [(o["secret"], o["environment"], o["owner"], o["state"]) for o in overdue] == [
        ("SUPABASE_SERVICE_KEY", "production", "reliability", "never-rotated")
    ]
    human = world.run("plan")
    assert "↻ rotation overdue: SUPABASE_SERVICE_KEY in production (never rotated" in human.out
    cells = world.run("matrix", "--format", "json").json()["cells"]
    marked = {(c["environment"], c["secret"]) for c in cells if c["rotation_overdue"]}
    assert marked == {("production", "SUPABASE_SERVICE_KEY")}
    assert "↻" in world.run("matrix", "--format", "markdown").out


# -- scope: repository secrets (Actions repository secrets) -----------------------------------

SENTRY, CODECOV = "SENTRY_AUTH_TOKEN", "CODECOV_TOKEN"


def repository_rows(world: World, *args: str) -> list[tuple[str, str, str, str]]:
    """(action, repository, name, reason) of the repository-level changes of a plan."""
    result = world.run("plan", "--json", *args)
    assert result.code == 0, result.err
    rows = [c for c in result.json()["changes"] if c["environment"] is None]
    assert all(c["kind"] == "secret" for c in rows)
    return [(c["action"], c["repository"], c["name"], c["reason"]) for c in rows]


def test_repository_secrets_are_created_decrypt_to_vault_and_converge(
    world: World, tmp_path: Path
) -> None:
    world.add_repository_secrets()
    world.seed()
    raw = world.run("plan", "--json").out
    assert '"environment": null' in raw
    assert repository_rows(world) == [
        ("create", REPO, CODECOV, "missing"),
        ("create", REPO, SENTRY, "missing"),
        ("create", OTHER_REPO, SENTRY, "missing"),
    ]
    human = world.run("plan").out
    assert f"{REPO} · (repository)" in human and f"{OTHER_REPO} · (repository)" in human
    planfile = tmp_path / "plan.json"
    assert world.run("plan", "--out", str(planfile)).code == 0
    world.sandbox.reset_counts()
    applied = world.run("apply", str(planfile), "--yes")
    assert applied.code == 0, applied.err
    assert "Apply complete: 23 written, 0 failed, 0 blocked" in applied.out
    assert f"✓ create secret {OTHER_REPO}/(repository) {SENTRY}" in applied.out
    assert world.sandbox.request_counts()[("GET", "actions/get-repo-public-key")] == 2
    for repo in (REPO, OTHER_REPO):
        value = world.sandbox.repository_secret_value(repo, SENTRY)
        assert value is not None and value == world.vault_value(SENTRY, "")
    assert world.sandbox.repository_secret_value(REPO, CODECOV) == world.vault_value(CODECOV, "")
    assert world.sandbox.repository_secret_value(OTHER_REPO, CODECOV) is None
    assert world.sandbox.environment_names(OTHER_REPO) == []  # no environment secrets there
    assert world.mismatches() == []
    # the repository's sync state sits at envmatrix/state/<owner>/<repo>, its environments below
    state = world.vault.read_document(f"envmatrix/state/{REPO}")
    assert state is not None and set(state.data["secrets"]) == {SENTRY, CODECOV}
    assert world.vault.read_document(f"envmatrix/state/{REPO}/production") is not None
    world.sandbox.reset_counts()
    again = world.run("plan", "--detailed-exitcode")
    assert again.code == 0 and "No changes." in again.out
    # one repository secrets list per repository; no environments list where none is targeted
    counts = world.sandbox.request_counts()
    assert counts[("GET", "actions/list-repo-secrets")] == 2
    assert counts[("GET", "repos/get-all-environments")] == 1  # operator-console only


def test_repository_secret_vault_newer_and_changed_outside(world: World) -> None:
    world.add_repository_secrets()
    world.seed()
    assert world.run("apply", "--yes").code == 0
    world.set_vault_value(SENTRY, "", "sntrys-rotated-by-hand")
    assert repository_rows(world) == [
        ("update", REPO, SENTRY, "vault-newer"),
        ("update", OTHER_REPO, SENTRY, "vault-newer"),
    ]
    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.repository_secret_value(OTHER_REPO, SENTRY) == "sntrys-rotated-by-hand"
    assert changes(world) == []

    world.sandbox.advance_clock(2)
    world.sandbox.write_secret_outside(REPO, None, CODECOV, "typed-by-hand")
    assert changes(world) == [("update", "secret", None, CODECOV, "changed-outside")]
    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.repository_secret_value(REPO, CODECOV) == world.vault_value(CODECOV, "")
    assert changes(world) == []


def test_repository_secret_missing_in_vault_is_blocked_naming_its_owner(world: World) -> None:
    world.add_repository_secrets()
    world.seed(leave_out=(SENTRY, ""))
    plan = world.run("plan", "--json").json()
    blocked = [c for c in plan["changes"] if c["action"] == "blocked"]
    assert [(c["repository"], c["environment"], c["name"]) for c in blocked] == [
        (REPO, None, SENTRY),
        (OTHER_REPO, None, SENTRY),
    ]
    assert all("owner: reliability" in c["detail"] for c in blocked)
    applied = world.run("apply", "--yes")
    assert applied.code == 0, applied.err
    assert f"warning: {SENTRY} in {OTHER_REPO}/(repository) not synced" in applied.out
    assert world.sandbox.repository_secret_value(REPO, SENTRY) is None
    assert world.sandbox.repository_secret_value(REPO, CODECOV) is not None
    assert world.run("plan", "--detailed-exitcode").code == 0


def test_repository_orphans_only_where_the_policy_has_repository_secrets_and_prune(
    world: World,
) -> None:
    world.seed()
    world.sandbox.write_secret_outside(REPO, None, "LEGACY_CI_TOKEN", "someone-elses")
    world.sandbox.reset_counts()
    assert repository_rows(world) == []  # no scope: repository secret: the level is not ours
    # listed once all the same: a same-named repository secret would shadow an absent
    # environment secret (README: Scopes and precedence); its other secrets are not rows
    assert world.sandbox.request_counts()[("GET", "actions/list-repo-secrets")] == 1

    world.add_repository_secrets()
    world.seed()
    assert world.run("apply", "--yes").code == 0
    assert repository_rows(world) == [("orphan", REPO, "LEGACY_CI_TOKEN", "not-in-policy")]
    policy = world.policy_path.read_text()
    start, end = policy.index("  CODECOV_TOKEN:"), policy.index("\nflags:")
    world.write_policy(policy[:start] + "\n" + policy[end:].lstrip("\n"))
    assert sorted(repository_rows(world)) == [
        ("orphan", REPO, CODECOV, "not-in-policy"),
        ("orphan", REPO, "LEGACY_CI_TOKEN", "not-in-policy"),
    ]
    world.write_policy(world.policy_path.read_text().replace("prune: false", "prune: true"))
    assert sorted(repository_rows(world)) == [
        ("delete", REPO, CODECOV, "pruned"),
        ("orphan", REPO, "LEGACY_CI_TOKEN", "not-in-policy"),
    ]
    assert world.run("apply", "--yes").code == 0
    assert world.sandbox.repository_secret_value(REPO, CODECOV) is None
    assert world.sandbox.repository_secret_value(REPO, "LEGACY_CI_TOKEN") == "someone-elses"
    assert repository_rows(world) == [("orphan", REPO, "LEGACY_CI_TOKEN", "not-in-policy")]
    state = world.vault.read_document(f"envmatrix/state/{REPO}")
    assert state is not None and set(state.data["secrets"]) == {SENTRY}


def test_environment_filter_leaves_the_repository_level_out(world: World) -> None:
    world.add_repository_secrets()
    world.seed()
    assert repository_rows(world, "--environment", "production") == []
    assert len(repository_rows(world, "--environment", "production", "-e", "staging")) == 3


def test_matrix_shows_repository_secrets_in_a_repository_column(world: World) -> None:
    world.add_repository_secrets()
    world.seed()
    assert world.run("apply", "--yes").code == 0
    world.set_vault_value(SENTRY, "", "sntrys-newer")
    cells = world.run("matrix", "--format", "json").json()["cells"]
    sentry = {
        (c["repository"], c["environment"]): c["status"] for c in cells if c["secret"] == SENTRY
    }
    assert sentry == {
        (REPO, "staging"): "not-required",
        (REPO, "production"): "not-required",
        (REPO, None): "stale",
        (OTHER_REPO, None): "stale",
    }
    url = {c["environment"]: c["status"] for c in cells if c["secret"] == "SUPABASE_URL"}
    assert url == {"staging": "ok", "production": "ok", None: "not-required"}
    table = world.run("matrix").out
    assert "(repository)" in table and OTHER_REPO in table


def test_audit_lists_every_write_of_an_apply(world: World) -> None:
    world.seed()
    assert world.run("audit").out.strip() == "No audit events."
    assert world.run("apply", "--yes").code == 0
    table = world.run("audit")
    assert table.code == 0
    assert table.out.count("secret.put") == 16 and "environment.create" in table.out
    events = world.run("audit", "--since", "1h", "--json").json()["events"]
    assert sum(e["action"] == "secret.put" and e["result"] == "ok" for e in events) == 16
    assert world.run("audit", "--since", "yesterday").code == 3


def test_version_and_bare_invocation(world: World) -> None:
    from envmatrix import __version__

    assert world.run("--version").out.strip() == f"envmatrix {__version__}"
    bare = world.run()
    assert bare.code == 3 and "Usage: envmatrix" in bare.out and bare.err == ""


def test_saved_plan_is_applied_whole_and_refuses_another_environment_selection(
    world: World, tmp_path: Path
) -> None:
    world.seed()
    planfile = tmp_path / "plan.json"
    assert world.run("plan", "--out", str(planfile)).code == 0
    narrower = world.run("apply", str(planfile), "--environment", "staging", "--yes")
    assert narrower.code == 3
    assert "applied whole" in narrower.err and narrower.out == ""
    assert world.sandbox.environment_names(REPO) == []  # nothing written
    other_policy = tmp_path / "other.yaml"
    other_policy.write_text(world.policy_path.read_text() + "\n# another policy\n")
    assert world.run("apply", str(planfile), "--policy", str(other_policy), "--yes").code == 3
    assert world.sandbox.environment_names(REPO) == []
    # repeating the plan's own selection (GitHub names or logical) is fine
    same = world.run(
        "apply",
        str(planfile),
        "-e",
        "staging",
        "-e",
        "PRODUCTION",
        "--policy",
        str(world.policy_path),
        "--yes",
    )
    assert same.code == 0, same.err
    assert world.mismatches() == []


def test_saved_plan_whose_policy_moved_is_stale_unless_told_where_it_went(
    world: World, tmp_path: Path
) -> None:
    world.seed()
    planfile = tmp_path / "plan.json"
    assert world.run("plan", "--out", str(planfile)).code == 0
    moved = tmp_path / "moved" / "envmatrix.yaml"
    moved.parent.mkdir()
    world.policy_path.rename(moved)
    gone = world.run("apply", str(planfile), "--yes")
    assert gone.code == 1
    assert "which is gone" in gone.err and "--policy" in gone.err
    assert world.sandbox.environment_names(REPO) == []
    applied = world.run("apply", str(planfile), "--policy", str(moved), "--yes")
    assert applied.code == 0, applied.err
    world.policy_path = moved
    assert world.mismatches() == []
