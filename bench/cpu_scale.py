"""CPU of a fresh plan as the org grows, compute alone: no sockets, no latency.

The policy has 3 environments x 20 secrets for N repositories; Vault and GitHub are in-memory
fakes of the ports (`VaultPort`, `GitHubPort`) answering at once, so what is measured is
envmatrix's own work: desired state, observation bookkeeping, the diff and rendering the plan
(to an in-memory console, as on a terminal, and as `--json`) and the matrix view (markdown).

Prints, per N: CPU seconds (time.process_time) of each phase and in total, then the slope
between consecutive sizes (CPU per repository): a flat slope is linear growth.
Usage: `.venv/bin/python bench/cpu_scale.py [N ...]` (default 50 200 500 1000).
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envmatrix.errors import GitHubError  # noqa: E402
from envmatrix.pipeline.desired import desired_state  # noqa: E402
from envmatrix.pipeline.observe import observe  # noqa: E402
from envmatrix.pipeline.plan import diff  # noqa: E402
from envmatrix.policy import load_policy  # noqa: E402
from envmatrix.ports import (  # noqa: E402
    ObservedSecret,
    ObservedVariable,
    VaultDocument,
    VaultEntry,
    WriteReceipt,
)
from envmatrix.render.matrix import matrix_markdown  # noqa: E402
from envmatrix.render.report import console, plan_json, render_plan  # noqa: E402
from envmatrix.secret import SecretValue  # noqa: E402
from envmatrix.views.matrix import build_matrix  # noqa: E402

ENVIRONMENTS = ("development", "staging", "production")
SECRETS = 20
T = TypeVar("T")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class MemoryVault:
    """Every path exists at version 1 with a value for each key; no documents yet."""

    mount = "secret"

    def read_entry(self, path: str) -> VaultEntry:
        return VaultEntry(path, 1, NOW, frozenset({"value"}))

    def read_values(self, path: str, version: int | None = None) -> dict[str, SecretValue]:
        return {"value": SecretValue(f"bench-value-of-{path}")}

    def read_document(self, path: str) -> VaultDocument | None:
        return None

    def kept_versions(self, path: str) -> int | None:
        return None

    def identity(self) -> str:
        return "bench"


class FreshOrgGitHub:
    """An org in which nothing was written yet: no environments, secrets or variables."""

    def list_environments(self, repository: str) -> Sequence[str]:
        return []

    def list_environment_secrets(self, repository: str, environment: str) -> list[ObservedSecret]:
        return []

    def list_environment_variables(
        self, repository: str, environment: str
    ) -> list[ObservedVariable]:
        return []

    def list_repository_secrets(self, repository: str) -> list[ObservedSecret]:
        return []

    def list_repository_variables(self, repository: str) -> list[ObservedVariable]:
        return []

    def list_organization_secrets(self, organization: str) -> list[ObservedSecret]:
        raise GitHubError("no organization", status=404)

    def create_environment(self, repository: str, environment: str) -> WriteReceipt:
        raise AssertionError("a plan writes nothing")


def policy_file(tmp: Path, n: int) -> Path:
    repositories = [f"occ-labs/service-{i:04d}" for i in range(n)]
    return write_policy(tmp / f"policy-{n}.yaml", "cpu-bench", "secret", repositories)


def write_policy(path: Path, name: str, mount: str, repositories: Sequence[str]) -> Path:
    """The benchmarks' policy at `path`: `repositories` x ENVIRONMENTS x SECRETS secrets, Vault
    paths in `mount`."""
    data: dict[str, Any] = {
        "version": 1,
        "name": name,
        "vault": {"mount": mount},
        "github": {"repositories": list(repositories)},
        "environments": {e: {"github": e} for e in ENVIRONMENTS},
        "owners": {"platform": {"contact": "platform@occ.example"}},
        "secrets": {
            f"SECRET_{i:02d}": {
                "owner": "platform",
                "vault": f"apps/{{environment}}/service-{i:02d}#value",
                "environments": list(ENVIRONMENTS),
            }
            for i in range(SECRETS)
        },
    }
    with path.open("w") as handle:
        YAML().dump(data, handle)
    return path


def cpu(phases: dict[str, float], name: str, action: Callable[[], T]) -> T:
    started = time.process_time()
    result = action()
    phases[name] = time.process_time() - started
    return result


def run(n: int, tmp: Path) -> Mapping[str, float]:
    phases: dict[str, float] = {}
    policy = cpu(phases, "load", lambda: load_policy(policy_file(tmp, n)))
    desired = cpu(phases, "desired", lambda: desired_state(policy))
    observed = cpu(phases, "observe", lambda: observe(desired, MemoryVault(), FreshOrgGitHub()))  # type: ignore[arg-type]
    plan = cpu(phases, "diff", lambda: diff(desired, observed))
    out = console(io.StringIO())
    cpu(phases, "render", lambda: render_plan(plan, out))
    cpu(phases, "json", lambda: plan_json(plan, (), ()))
    cpu(phases, "matrix", lambda: matrix_markdown(build_matrix(desired, plan, ENVIRONMENTS)))
    phases["total"] = sum(phases.values())
    phases["rows"] = len(plan.changes)
    return phases


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or [50, 200, 500, 1000]
    names = ("load", "desired", "observe", "diff", "render", "json", "matrix", "total")
    print(f"policy: N repositories x {len(ENVIRONMENTS)} environments x {SECRETS} secrets")
    print(f"{'N':>6} {'rows':>7} " + " ".join(f"{n:>8}" for n in names) + "   (CPU seconds)")
    previous: tuple[int, float] | None = None
    slopes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            p = run(n, Path(tmp))
            print(f"{n:6d} {int(p['rows']):7d} " + " ".join(f"{p[k]:8.3f}" for k in names))
            if previous:
                slope = (p["total"] - previous[1]) / (n - previous[0]) * 1000
                slopes.append(f"{previous[0]}->{n}: {slope:.2f} ms/repository")
            previous = (n, p["total"])
    print("slope (total CPU per added repository): " + "; ".join(slopes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
