"""Speed and memory of the CLI as a user runs it: `plan`, `apply --yes` and a steady-state `plan`
for the example policy widened to N repositories, each a fresh `envmatrix` process against a real
OpenBao dev server and the GitHub sandbox (in its own process, so only envmatrix is measured).

Prints, per N: wall time and peak RSS (from wait4's rusage) of each command.
Usage: `.venv/bin/python bench/plan_scale.py [N ...]` (default 10 50 200).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import hvac
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envmatrix.adapters.vault import VaultAdapter  # noqa: E402
from envmatrix.demo import seed_vault  # noqa: E402
from envmatrix.openbao import OpenBaoDevServer  # noqa: E402
from envmatrix.policy import load_policy  # noqa: E402

TOKEN = "bench-token"
ENVMATRIX = [sys.executable, "-c", "import sys, cli; sys.exit(cli.main())"]


def start_sandbox(repositories: list[str]) -> tuple[subprocess.Popen[str], str]:
    # GitHub App installations get up to 12,500-15,000 requests/h; a 200-repository first apply
    # needs about 4,800, so the sandbox gets an App's limit rather than a PAT's 5,000
    args = [
        sys.executable,
        "-m",
        "envmatrix.sandbox",
        "--port",
        "0",
        "--token",
        TOKEN,
        "--rate-limit",
        "15000",
    ]
    for repo in repositories:
        args += ["--repo", repo]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    return process, line.rsplit(" ", 1)[-1]


def widened(tmp: Path, repositories: list[str], mount: str) -> Path:
    yaml = YAML()
    data = yaml.load((ROOT / "policies" / "example.yaml").read_text())
    data["github"]["repositories"] = repositories
    data["vault"]["mount"] = mount
    path = tmp / f"policy-{len(repositories)}.yaml"
    with path.open("w") as handle:
        yaml.dump(data, handle)
    return path


def timed(argv: list[str], env: dict[str, str], tmp: Path) -> tuple[int, float, float, str]:
    """Exit code, wall seconds, peak RSS in MiB and last stderr line of one envmatrix process."""
    errors = tmp / "stderr.txt"
    started = time.perf_counter()
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [*ENVMATRIX, *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    last = (errors.read_text().strip().splitlines() or [""])[-1]
    return process.returncode, wall, usage.ru_maxrss / 1024, last


def run_scale(n: int, bao: OpenBaoDevServer, tmp: Path) -> None:
    repositories = [f"occ-labs/service-{i:03d}" for i in range(n)]
    mount = f"bench{n}"
    admin = hvac.Client(url=bao.addr, token=bao.token)
    admin.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    admin.adapter.close()
    time.sleep(0.5)  # a new KV v2 mount upgrades itself first
    policy_path = widened(tmp, repositories, mount)
    seed_vault(load_policy(policy_path), VaultAdapter(bao.addr, bao.token, mount))
    sandbox, url = start_sandbox(repositories)
    env = {
        **os.environ,
        "VAULT_ADDR": bao.addr,
        "VAULT_TOKEN": bao.token,
        "GITHUB_API_URL": url,
        "GITHUB_TOKEN": TOKEN,
        "ENVMATRIX_POLICY": str(policy_path),
        "ENVMATRIX_AUDIT_DB": str(tmp / f"audit-{n}.sqlite"),
    }
    try:
        cells = n * 2 * 8
        print(f"\n== {n} repositories ({cells} secret cells, {n * 2} environments)")
        for label, argv in (
            ("plan (fresh)", ["plan", "--json"]),
            ("apply --yes", ["apply", "--yes"]),
            ("plan (steady)", ["plan", "--detailed-exitcode"]),
        ):
            code, wall, rss, error = timed(argv, env, tmp)
            print(
                f"   {label:14s} exit {code}  {wall:6.2f} s  peak RSS {rss:6.1f} MiB"
                + (f"  ({error})" if code not in (0, 2) else "")
            )
    finally:
        sandbox.terminate()
        sandbox.wait()


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or [10, 50, 200]
    with tempfile.TemporaryDirectory() as tmp, OpenBaoDevServer() as bao:
        for n in sizes:
            run_scale(n, bao, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
