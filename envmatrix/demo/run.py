"""`envmatrix demo`: the main job end to end on local servers, with nothing to configure.

Starts an OpenBao dev server and the GitHub-API sandbox on free loopback ports, seeds Vault from
policies/example.yaml with generated values (leaving one secret out so a blocked row shows),
then runs plan -> apply -> plan, shows an out-of-band change being detected and repaired, then
the go-live (production protected, a plain variable: envmatrix/demo/golive.py) converged, CI's
organization secret (`visibility: selected`) and Dependabot secret planned, applied and in the
matrix, the matrix as committed evidence (`matrix --check` passing, then failing after a hand
edit) and `import` of the demo org (envmatrix/demo/evidence.py), and stops both servers. Values
are generated, compared in-process and never printed.
"""

from __future__ import annotations

import secrets as random_source
import tempfile
from collections.abc import Collection
from pathlib import Path

from rich.console import Console

from envmatrix.connect import Connections, connections_at
from envmatrix.demo.evidence import import_step, matrix_evidence
from envmatrix.demo.golive import (
    CI_SECRETS,
    ORGANIZATION,
    sandbox_holdings,
    write_ci_secrets_policy,
    write_go_live_policy,
)
from envmatrix.demo.openbao import OpenBaoDevServer
from envmatrix.pipeline.desired import REPOSITORY_LEVEL, Target, desired_state
from envmatrix.policy import Policy, load_policy
from envmatrix.ports import VaultPort
from envmatrix.render import report as render
from envmatrix.render.matrix import matrix_renderable
from envmatrix.sandbox import GitHubSandbox
from envmatrix.secret import SecretValue
from envmatrix.views.matrix import Matrix, matrix_for_run
from envmatrix.workflow import PlanRun, apply_run, make_plan

EXAMPLE_POLICY = Path(__file__).resolve().parent / "example.yaml"  # policies/example.yaml
LEFT_OUT = ("SUPABASE_SERVICE_KEY", "production")  # missing in Vault: blocked, flag waits
TOKEN = "demo-" + random_source.token_hex(8)


def run_demo(out: Console, policy_file: Path = EXAMPLE_POLICY) -> int:
    """Run the demo; returns the exit code."""
    policy = load_policy(policy_file)
    repositories = sorted({r for s in policy.secrets.values() for r in policy.repositories_for(s)})
    out.print(f"Starting OpenBao and the GitHub sandbox for {policy_file.name} ...")
    with (
        OpenBaoDevServer() as bao,
        GitHubSandbox(token=TOKEN, repositories=repositories) as sandbox,
    ):
        connections = connections_at(bao.addr, bao.token, policy.vault.mount, sandbox.url, TOKEN)
        seeded = seed_vault(policy, connections.vault, leave_out=LEFT_OUT)
        out.print(
            f"Seeded Vault at {bao.addr} with {seeded} generated values "
            f"(left out {LEFT_OUT[0]} in {LEFT_OUT[1]}); GitHub sandbox at {sandbox.url}.\n"
        )
        environ = {
            "VAULT_ADDR": bao.addr,
            "VAULT_TOKEN": bao.token,
            "GITHUB_API_URL": sandbox.url,
            "GITHUB_TOKEN": TOKEN,
            "ENVMATRIX_NO_CACHE": "1",  # the demo's answers have no place in the user's cache
        }
        with tempfile.TemporaryDirectory(prefix="envmatrix-demo-") as folder:
            go_live = write_go_live_policy(policy_file, Path(folder), sandbox)
            return _steps(out, str(policy_file), policy, connections, sandbox, go_live, environ)


def _steps(
    out: Console,
    path: str,
    policy: Policy,
    connections: Connections,
    sandbox: GitHubSandbox,
    go_live: Path,
    environ: dict[str, str],
) -> int:
    def plan_step(title: str) -> PlanRun:
        out.rule(title)
        run = make_plan(path, connections, policy=policy)
        render.render_plan(run.plan, out)
        return run

    def apply_step(run: PlanRun) -> bool:
        report = apply_run(run, connections)
        render.render_apply(report, out)
        return report.ok

    name, env = LEFT_OUT
    ok = apply_step(plan_step(f"1. plan: {name} is missing in Vault for {env}, so the flag waits"))
    mismatched = _mismatches(policy, connections, sandbox)
    out.print(f"Checked every GitHub copy against Vault: {len(mismatched)} mismatches.")
    converged = plan_step("2. plan again: converged (the blocked cell stays reported)")

    spec = policy.secrets[name]
    connections.vault.write_values(
        spec.vault_path(env),
        {
            **connections.vault.read_values(spec.vault_path(env)),
            spec.vault_key(name): _generated(name),
        },
    )
    ok &= apply_step(plan_step(f"3. the owner adds {name} to Vault: plan, apply, flag flips"))

    sandbox.advance_clock(2)  # GitHub timestamps have one-second resolution: a later second
    repo = policy.repositories_for(spec)[0]
    sandbox.write_secret_outside(repo, policy.github_environment(env), name, "pasted-by-hand")
    ok &= apply_step(plan_step("4. someone ran `gh secret set` by hand: detected, repaired"))

    settled = plan_step("5. plan: nothing left to do")
    path, policy = str(go_live), load_policy(go_live)  # plan_step reads these from here on
    out.print(
        "The go-live: production gets required reviewers, a 30-minute wait timer, self-review"
        " prevented and protected branches only; SUPABASE_REGION is a plain variable."
    )
    ok &= apply_step(plan_step("6. plan: protection-differs and the new variable; apply"))

    ci_secrets = write_ci_secrets_policy(go_live)
    path, policy = str(ci_secrets), load_policy(ci_secrets)
    seed_vault(policy, connections.vault, only=CI_SECRETS)
    out.print(
        f"CI's secrets: github.organization {ORGANIZATION}; ORG_SENTRY_DSN an organization"
        " secret for selected repositories only, NPM_TOKEN a Dependabot secret (workflows"
        " Dependabot triggers read only those). Their values are in Vault under ci/."
    )
    ok &= apply_step(plan_step("7. plan: an organization secret and a Dependabot secret; apply"))
    out.print("The GitHub sandbox now holds:", *sandbox_holdings(sandbox), sep="\n  ")
    final = plan_step("8. final plan: protection, variable and CI secrets converged")
    out.rule("9. the environment matrix (envmatrix matrix)")
    out.print(matrix_renderable(matrix_for_run(final)))
    mismatched += _mismatches(policy, connections, sandbox)
    clean = not settled.plan.changes and not final.plan.changes

    folder = go_live.parent
    out.rule("10. the matrix as committed evidence (envmatrix matrix --check)")
    region, production = "SUPABASE_REGION", policy.github_environment(env)

    def change_region() -> str:
        sandbox.advance_clock(2)  # a later second than envmatrix's write, as a human's edit
        sandbox.write_variable_outside(repo, production, region, "us-east-1")
        return f"Someone changes {region} in {repo}'s {production} settings by hand."

    def matrix_now() -> Matrix:
        return matrix_for_run(make_plan(path, connections, policy=policy))

    evidence = matrix_evidence(out, folder, matrix_now, change_region)
    out.rule(f"11. adopting an existing org (envmatrix import --organization {ORGANIZATION})")
    imported = import_step(out, folder, ORGANIZATION, environ)
    ok = ok and not mismatched and not converged.plan.has_writes and clean
    ok = ok and evidence and imported
    out.print(f"\nDemo {'finished: every step did what it should' if ok else 'FAILED'}.")
    return 0 if ok else 1


def seed_vault(
    policy: Policy,
    vault: VaultPort,
    leave_out: tuple[str, str] | None = None,
    only: Collection[str] | None = None,
) -> int:
    """Write a generated value for every (secret, environment) of the policy into Vault, or
    only for the secrets named in `only`; returns how many values were written.

    A `scope: repository` (or organization) secret has one value; `leave_out=(name, <any
    environment>)` skips it.
    """
    by_path: dict[str, dict[str, SecretValue]] = {}
    for name, spec in policy.secrets.items():
        if only is not None and name not in only:
            continue
        for env in spec.environments or ("",):
            skipped = leave_out is not None and leave_out[0] == name
            if (name, env) != leave_out and not (spec.repository_level and skipped):
                values = by_path.setdefault(spec.vault_path(env), {})
                values[spec.vault_key(name)] = _generated(name)
    for path, values in by_path.items():
        vault.write_values(path, values)
    return sum(len(v) for v in by_path.values())


def _generated(name: str) -> SecretValue:
    if name.endswith("_URL"):
        return SecretValue(f"https://{random_source.token_hex(6)}.supabase.example")
    return SecretValue(f"demo-{random_source.token_urlsafe(24)}")


def _mismatches(policy: Policy, connections: Connections, sandbox: GitHubSandbox) -> list[str]:
    """Cells whose GitHub value differs from Vault's (compared here, never shown)."""
    wrong = []
    for cell in desired_state(policy).secrets:
        try:
            expected = connections.vault.read_values(cell.vault_path).get(cell.vault_key)
        except Exception:
            expected = None
        actual = github_value(sandbox, cell.target, cell.name)
        if expected is not None and (actual is None or expected.reveal() != actual):
            where = cell.target.github_environment or REPOSITORY_LEVEL
            wrong.append(f"{cell.target.repository}/{where}/{cell.name}")
    return wrong


def github_value(sandbox: GitHubSandbox, target: Target, name: str) -> str | None:
    """The sandbox's decrypted copy of a secret in a target (environment, repository or
    organization level; Actions or Dependabot store)."""
    dependabot = target.store == "dependabot"
    if target.organization:
        if dependabot:
            return sandbox.organization_dependabot_secret_value(target.repository, name)
        return sandbox.organization_secret_value(target.repository, name)
    if target.github_environment is None:
        if dependabot:
            return sandbox.dependabot_secret_value(target.repository, name)
        return sandbox.repository_secret_value(target.repository, name)
    return sandbox.secret_value(target.repository, target.github_environment, name)
