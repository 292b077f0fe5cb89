"""API economy benchmark: requests per endpoint for plan and apply on 50 repositories.

Runs the example policy widened to 50 repositories against a real OpenBao dev server and the
GitHub sandbox, and prints, per phase, the requests each endpoint received next to the lower bound
the issue sets:

  plan:  per repository one environments list; per repository x environment one secrets page per
         100 secrets and one variables page per 30 variables (where a flag lives); one Vault
         metadata read per distinct path; at most one sync-state read per repository x environment
  apply: the plan's requests + at most one public-key GET per environment + one PUT per changed
         secret (+ environment creation and flag variables, which are writes of their own)

GitHub requests are counted by the sandbox (every request that reached a route). Vault requests
are counted by a proxy around the Vault adapter: each adapter call is one HTTP request when no
retry happens (none does here). Usage: `make bench` or `.venv/bin/python bench/api_economy.py`.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envmatrix.adapters.github import GitHubAdapter  # noqa: E402
from envmatrix.adapters.vault import VaultAdapter  # noqa: E402
from envmatrix.connect import Connections  # noqa: E402
from envmatrix.demo.openbao import OpenBaoDevServer  # noqa: E402
from envmatrix.demo.run import seed_vault  # noqa: E402
from envmatrix.policy import load_policy  # noqa: E402
from envmatrix.sandbox import GitHubSandbox  # noqa: E402
from envmatrix.secret import SecretValue  # noqa: E402
from envmatrix.workflow import PlanRun, apply_run, make_plan  # noqa: E402

REPOSITORIES = [f"occ-labs/service-{i:02d}" for i in range(50)]
TOKEN = "bench-token"


class CountingVault:
    """Counts calls to the Vault adapter by method (one call = one request without retries)."""

    def __init__(self, inner: VaultAdapter) -> None:
        self._inner, self.calls = inner, Counter[str]()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted


def widened_policy(tmp: Path) -> Path:
    yaml = YAML()
    data = yaml.load((ROOT / "policies" / "example.yaml").read_text())
    data["github"]["repositories"] = REPOSITORIES
    path = tmp / "bench-policy.yaml"
    with path.open("w") as handle:
        yaml.dump(data, handle)
    return path


def lower_bound_plan(run: PlanRun) -> int:
    repositories = {t.repository for t in run.desired.targets}
    # per repository: its environments list and its repository secrets list (what a job falls
    # back to); per owner: its organization secrets list
    bound = 2 * len(repositories) + len({r.split("/", 1)[0].lower() for r in repositories})
    for target in run.desired.targets:
        env = run.observed.github.get(target)
        if env is None:
            continue
        bound += math.ceil(max(len(env.secrets), 1) / 100)
        if run.desired.flags_in(target):
            bound += math.ceil(max(len(env.variables), 1) / 30)
    # per Vault path: its metadata and, when it has a version, one data read (presence, size)
    paths = run.desired.vault_paths()
    versions = sum(1 for p in paths if run.observed.vault[p].version is not None)
    return bound + len(paths) + versions + len(run.desired.targets)


def measure(
    action: Callable[[], Any], sandbox: GitHubSandbox, vault: CountingVault
) -> tuple[Any, Counter[str], float]:
    sandbox.reset_counts()
    vault.calls.clear()
    started = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - started
    counts: Counter[str] = Counter()
    for (method, operation), n in sandbox.request_counts().items():
        counts[f"github {method} {operation}"] += n
    for method, n in vault.calls.items():
        counts[f"vault {method}"] += n
    return result, counts, elapsed


def report(label: str, counts: Counter[str], bound: int, elapsed: float, note: str = "") -> None:
    total = sum(counts.values())
    print(
        f"\n== {label}: {total} requests, bound {bound}, ratio {total / bound:.3f}"
        f" ({elapsed:.2f}s wall) {note}"
    )
    for endpoint, n in sorted(counts.items()):
        print(f"   {n:6d}  {endpoint}")


def apply_bound(run: PlanRun) -> int:
    """What an apply may add: one key GET per environment written to, one PUT per changed secret,
    the environment/variable writes themselves, one state write per target written to, one Vault
    data read per (path, version) and one identity lookup."""
    writes = run.plan.writes
    secret_targets = {(c.repository, c.environment) for c in writes if c.kind.value == "secret"}
    reads = {(c.vault_path, c.vault_version) for c in writes if c.kind.value == "secret"}
    return len(secret_targets) * 2 + len(writes) + len(reads) + 1


def main() -> int:
    import tempfile

    with (
        tempfile.TemporaryDirectory() as tmp,
        OpenBaoDevServer() as bao,
        GitHubSandbox(token=TOKEN, repositories=REPOSITORIES) as sandbox,
    ):
        path = widened_policy(Path(tmp))
        policy = load_policy(path)
        adapter = VaultAdapter(bao.addr, bao.token, policy.vault.mount)
        seed_vault(policy, adapter, leave_out=("SUPABASE_SERVICE_KEY", "production"))
        vault = CountingVault(adapter)

        def connections() -> Connections:  # a fresh GitHub adapter = a fresh CLI run
            return Connections(vault, GitHubAdapter(sandbox.url, TOKEN))  # type: ignore[arg-type]

        def plan() -> PlanRun:
            return make_plan(str(path), connections(), policy=policy)

        print(
            f"policy: {len(policy.secrets)} secrets x 2 environments x {len(REPOSITORIES)}"
            " repositories, SUPABASE_SERVICE_KEY left out of Vault in production"
        )
        run, counts, t = measure(plan, sandbox, vault)
        report("plan (fresh: no environments in GitHub yet)", counts, lower_bound_plan(run), t)

        _, counts, t = measure(lambda: apply_run(run, connections()), sandbox, vault)
        report(
            "apply of that plan (writes only)",
            counts,
            apply_bound(run),
            t,
            f"[{len(run.plan.writes)} planned writes]",
        )

        run, counts, t = measure(plan, sandbox, vault)
        report(
            "plan (steady state: everything in sync)",
            counts,
            lower_bound_plan(run),
            t,
            f"[{len(run.plan.writes)} changes]",
        )

        spec = policy.secrets["SHOPIFY_ADMIN_TOKEN"]
        adapter.write_values(
            spec.vault_path("production"), {"SHOPIFY_ADMIN_TOKEN": SecretValue("bench-rotated")}
        )
        run, counts, t = measure(plan, sandbox, vault)
        report(
            "plan after one Vault change",
            counts,
            lower_bound_plan(run),
            t,
            f"[{len(run.plan.writes)} changes]",
        )
        _, counts, t = measure(lambda: apply_run(run, connections()), sandbox, vault)
        report(
            "apply of that plan (writes only)",
            counts,
            apply_bound(run),
            t,
            f"[{len(run.plan.writes)} planned writes]",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
