"""Wall time of observation with GitHub answering in 50 ms, serial vs a bounded pool.

The GitHub sandbox (in this process, a delay fault of 50 ms on every answer) and an in-memory
Vault (bench/cpu_scale.py's); N repositories x 3 environments x 20 secrets, half the environments
existing. Prints, per cap: wall seconds, requests the sandbox received and the most it answered
at once. Usage: `.venv/bin/python bench/observe_concurrency.py [N]` (default 50).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cpu_scale import ENVIRONMENTS, MemoryVault, policy_file  # noqa: E402

from envmatrix.adapters.github import GitHubAdapter  # noqa: E402
from envmatrix.pipeline.desired import desired_state  # noqa: E402
from envmatrix.pipeline.observe import observe  # noqa: E402
from envmatrix.policy import load_policy  # noqa: E402
from envmatrix.sandbox import Fault, GitHubSandbox  # noqa: E402

TOKEN = "bench-token"


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    with tempfile.TemporaryDirectory() as tmp:
        policy = load_policy(policy_file(Path(tmp), n))
    desired = desired_state(policy)
    repositories = list(policy.github.repositories)
    with GitHubSandbox(token=TOKEN, repositories=repositories, rate_limit=100_000) as sandbox:
        for repo in repositories[::2]:
            for environment in ENVIRONMENTS:
                sandbox.create_environment(repo, environment)
        sandbox.inject(Fault(delay=0.05))
        print(f"{n} repositories x {len(ENVIRONMENTS)} environments, GitHub answering in 50 ms")
        for cap in (1, 4, 10, 16):
            sandbox.reset_counts()
            github = GitHubAdapter(sandbox.url, TOKEN, concurrency=cap)
            started = time.perf_counter()
            observe(desired, MemoryVault(), github, cap)  # type: ignore[arg-type]
            wall = time.perf_counter() - started
            requests = sum(sandbox.request_counts().values())
            print(
                f"  concurrency {cap:2d}: {wall:6.2f} s, {requests} requests,"
                f" at most {sandbox.max_in_flight()} in flight"
            )
            github.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
