"""`envmatrix demo`: the main job end to end on local servers, with nothing to configure.

Starts an OpenBao dev server and the GitHub-API sandbox on free loopback ports, seeds Vault from
policies/example.yaml with generated values (leaving one secret out so a blocked row shows),
then runs plan -> apply -> plan, shows an out-of-band change being detected and repaired, and
stops both servers. Values are generated, compared in-process and never printed.
"""

from __future__ import annotations

import secrets as random_source
from pathlib import Path

from rich.console import Console

from envmatrix import render
from envmatrix.adapters.github import GitHubAdapter
from envmatrix.adapters.vault import VaultAdapter
from envmatrix.desired import DesiredState
from envmatrix.openbao import OpenBaoDevServer
from envmatrix.policy import Policy, load_policy
from envmatrix.sandbox import GitHubSandbox
from envmatrix.secret import SecretValue
from envmatrix.sync import Connections, apply_run, make_plan

EXAMPLE_POLICY = Path(__file__).resolve().parent.parent / "policies" / "example.yaml"
LEFT_OUT = ("ZOHO_REFRESH_TOKEN", "production")  # missing in Vault: shows a blocked row
TOKEN = "demo-" + random_source.token_hex(8)


def run_demo(out: Console, policy_file: Path = EXAMPLE_POLICY) -> int:
    """Run the demo; returns the exit code."""
    policy = load_policy(policy_file)
    repositories = sorted({r for s in policy.secrets.values() for r in policy.repositories_for(s)})
    out.print(f"Starting OpenBao and the GitHub sandbox for {policy_file.name} ...")
    with OpenBaoDevServer() as bao, GitHubSandbox(token=TOKEN, repositories=repositories) as sandbox:
        vault = VaultAdapter(bao.addr, bao.token, policy.vault.mount)
        connections = Connections(vault, GitHubAdapter(sandbox.url, TOKEN))
        seeded = seed_vault(policy, vault, leave_out=LEFT_OUT)
        out.print(f"Seeded Vault at {bao.addr} with {seeded} generated values "
                  f"(left out {LEFT_OUT[0]} in {LEFT_OUT[1]}); GitHub sandbox at {sandbox.url}.\n")
        return _steps(out, str(policy_file), policy, connections, sandbox)


def _steps(
    out: Console, path: str, policy: Policy, connections: Connections, sandbox: GitHubSandbox
) -> int:
    out.rule("1. plan: what differs")
    first = make_plan(path, connections, policy=policy)
    render.render_plan(first.plan, out)

    out.rule("2. apply --yes: make GitHub match Vault")
    report = apply_run(first, connections)
    render.render_apply(report, out)
    mismatched = _mismatches(first.desired, connections, sandbox)
    out.print(f"Checked every GitHub copy against Vault: {len(mismatched)} mismatches.")

    out.rule("3. plan again: converged")
    second = make_plan(path, connections, policy=policy)
    render.render_plan(second.plan, out)

    out.rule("4. someone runs `gh secret set` by hand; envmatrix notices and repairs it")
    repo = policy.repositories_for(policy.secrets["SUPABASE_SERVICE_KEY"])[0]
    sandbox.write_secret_outside(repo, policy.github_environment("production"),
                                 "SUPABASE_SERVICE_KEY", "pasted-by-hand")
    drifted = make_plan(path, connections, policy=policy)
    render.render_plan(drifted.plan, out)
    repaired = apply_run(drifted, connections)
    render.render_apply(repaired, out)
    final = make_plan(path, connections, policy=policy)
    ok = report.ok and repaired.ok and not mismatched and not final.plan.has_writes
    out.print(f"\nDemo {'finished: every step did what it should' if ok else 'FAILED'}.")
    return 0 if ok else 1


def seed_vault(policy: Policy, vault: VaultAdapter, leave_out: tuple[str, str] | None = None) -> int:
    """Write a generated value for every (secret, environment) of the policy into Vault."""
    by_path: dict[str, dict[str, SecretValue]] = {}
    for name, spec in policy.secrets.items():
        for env in spec.environments:
            if (name, env) != leave_out:
                by_path.setdefault(spec.vault_path(env), {})[spec.vault_key(name)] = _generated(name)
    for path, values in by_path.items():
        vault.write_values(path, values)
    return sum(len(v) for v in by_path.values())


def _generated(name: str) -> SecretValue:
    if name.endswith("_URL"):
        return SecretValue(f"https://{random_source.token_hex(6)}.supabase.example")
    return SecretValue(f"demo-{random_source.token_urlsafe(24)}")


def _mismatches(
    desired: DesiredState, connections: Connections, sandbox: GitHubSandbox
) -> list[str]:
    """Cells whose GitHub value differs from Vault's (compared here, never shown)."""
    wrong = []
    for cell in desired.secrets:
        try:
            expected = connections.vault.read_values(cell.vault_path).get(cell.vault_key)
        except Exception:
            expected = None
        actual = sandbox.secret_value(cell.target.repository, cell.target.github_environment, cell.name)
        if expected is not None and (actual is None or expected.reveal() != actual):
            wrong.append(f"{cell.target.repository}/{cell.target.github_environment}/{cell.name}")
    return wrong
