"""Two `envmatrix apply --yes` processes at once on one policy: exactly one writes, the other
exits 1 naming the holder (issue 5, locking). The first secret PUT is slowed down by a sandbox
fault so the winner still holds the lock when the loser asks for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from envmatrix.adapters.vault import VaultAdapter
from envmatrix.audit_store import SqliteAuditSink
from envmatrix.sandbox import Fault, GitHubSandbox
from tests.envmatrix.apply_world import (
    ENVIRONMENTS,
    REPOSITORY,
    cli_env,
    plant_canaries,
    write_policy,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _start_apply(policy: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "apply", "--policy", str(policy), "--yes"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_concurrent_applies_exactly_one_writes_the_other_names_the_holder(
    tmp_path: Path, vault: VaultAdapter, vault_env: dict[str, str], sandbox: GitHubSandbox
) -> None:
    canaries = plant_canaries(vault)
    policy = write_policy(tmp_path, vault.mount)
    put_secret = r"/environments/[^/]+/secrets/[A-Z_]+$"
    sandbox.inject(Fault(method="PUT", path=put_secret, delay=5.0, times=1))
    env = {**os.environ, **cli_env(vault_env, sandbox)}

    runs = [_start_apply(policy, env), _start_apply(policy, env)]
    outputs = [run.communicate(timeout=120) for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes == [0, 1], outputs

    winner, loser = (0, 1) if runs[0].returncode == 0 else (1, 0)
    error = outputs[loser][1]
    assert error.startswith("error: state locked by token:") and error.count("\n") == 1, error
    assert f"pid {runs[winner].pid} since " in error
    assert "(lock ID " in error and "envmatrix force-unlock " in error
    assert "Apply complete: 8 written, 0 failed" in outputs[winner][0]

    # every secret written exactly once, by the winner, with the value Vault holds
    puts = sum(
        n
        for (method, op), n in sandbox.request_counts().items()
        if method == "PUT" and "secret" in op
    )
    assert puts == 4
    written = {
        sandbox.secret_value(REPOSITORY, env_name, name)
        for env_name in ENVIRONMENTS
        for name in ("SUPABASE_URL", "SUPABASE_SERVICE_KEY")
    }
    assert written == set(canaries)

    with SqliteAuditSink(tmp_path / ".envmatrix" / "audit.sqlite") as store:
        events = store.query()
    locks = sorted((e.action, e.result) for e in events if e.action.startswith("lock."))
    assert locks == [("lock.release", "ok"), ("lock.take", "failed"), ("lock.take", "ok")]
    assert sum(e.action == "secret.put" for e in events) == 4
    assert vault.read_document("envmatrix/locks/apply") is not None
    assert "id" not in vault.read_document("envmatrix/locks/apply").data  # released
