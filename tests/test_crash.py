"""Kill-anywhere: SIGKILL a real `envmatrix apply` subprocess at many points, then converge.

After every kill, each GitHub copy must be absent, the value it held before the apply, or Vault's
value (never anything else), and Vault's values must be untouched. Then a normal apply — which
takes over the apply lock the dead run held, since its process is gone — must converge:
`plan --detailed-exitcode` = 0 and every GitHub copy equal to Vault's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest

from envmatrix.adapters.vault import VaultAdapter
from envmatrix.demo.openbao import OpenBaoDevServer
from envmatrix.pipeline.desired import desired_state
from envmatrix.sandbox import Fault, GitHubSandbox
from tests.fixtures_vault import _wait_for_kv_mount
from tests.world import REPO, World, example_policy_text

ROOT = Path(__file__).resolve().parents[1]
FLAG = "FEATURE_AI_ESCALATIONS"
PUT_SECRET = ("PUT", "actions/create-or-update-environment-secret")

# (failpoint, scenario): "create" is a first apply; "update" rotates every value after a first
# apply, so a copy may legitimately still hold its previous value after the kill.
KILL_POINTS = [
    ("apply.after-environment@1", "create"),
    ("apply.after-environment@2", "create"),
    ("apply.before-put@1", "create"),
    *[(f"apply.after-put@{n}", "create") for n in (1, 4, 8, 9, 12, 16)],
    ("apply.after-variable@1", "create"),
    ("apply.before-state@1", "create"),
    ("apply.after-state@1", "create"),
    ("apply.before-state@2", "create"),
    ("apply.after-state@2", "create"),
    ("apply.before-put@1", "update"),
    *[(f"apply.after-put@{n}", "update") for n in (1, 3, 7, 8, 10, 15, 16)],
    ("apply.before-put@9", "update"),
    ("apply.before-state@1", "update"),
    ("apply.after-state@1", "update"),
    ("apply.before-state@2", "update"),
    ("apply.after-put@5", "update"),
]


@dataclass
class Worlds:
    """Makes a fresh world (own KV mount, own sandbox) per kill point."""

    server: OpenBaoDevServer
    admin: hvac.Client
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    opened: list[tuple[GitHubSandbox, VaultAdapter, str]]

    def new(self) -> World:
        mount = f"kv-{uuid.uuid4().hex[:12]}"
        self.admin.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
        _wait_for_kv_mount(self.admin, mount)
        sandbox = GitHubSandbox(repositories=(REPO, "occ-labs/storefront-sync")).start()
        vault = VaultAdapter(self.server.addr, self.server.token, mount=mount)
        self.opened.append((sandbox, vault, mount))
        home = self.tmp_path / mount
        home.mkdir()
        policy_path = home / "envmatrix.yaml"
        policy_path.write_text(example_policy_text(mount))
        env = {
            "VAULT_ADDR": self.server.addr,
            "VAULT_TOKEN": self.server.token,
            "GITHUB_API_URL": sandbox.url,
            "GITHUB_TOKEN": "sandbox-token",
            "ENVMATRIX_POLICY": str(policy_path),
            "ENVMATRIX_AUDIT_DB": str(home / "audit.sqlite"),
            "ENVMATRIX_GITHUB_BACKOFF": "0.01",
        }
        world = World(vault, sandbox, policy_path, env, self.monkeypatch)
        world.seed()
        return world


@pytest.fixture
def worlds(
    openbao_server: OpenBaoDevServer,
    vault_admin: hvac.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Worlds]:
    made = Worlds(openbao_server, vault_admin, tmp_path, monkeypatch, [])
    yield made
    for sandbox, vault, mount in made.opened:
        sandbox.stop()
        vault.close()
        vault_admin.sys.disable_secrets_engine(path=mount)


def start_apply(world: World, failpoint: str | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, **world.env}
    if failpoint:
        env["ENVMATRIX_FAILPOINTS"] = failpoint
    return subprocess.Popen(
        [sys.executable, "-m", "envmatrix", "apply", "--yes"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def snapshot(world: World) -> dict[tuple[str, str, str], tuple[str | None, str | None]]:
    """Per GitHub cell: (its GitHub copy, Vault's value)."""
    return {
        (c.target.repository, c.target.github_environment, c.name): (
            world.sandbox.secret_value(c.target.repository, c.target.github_environment, c.name),
            world.vault_value(c.name, c.target.logical_environment),
        )
        for c in desired_state(world.policy).secrets
    }


def rotate_everything(world: World) -> None:
    for name, spec in world.policy.secrets.items():
        for env in spec.environments:
            world.set_vault_value(name, env, f"rotated-{uuid.uuid4().hex}")


def assert_consistent_after_kill(
    world: World, before: dict[tuple[str, str, str], tuple[str | None, str | None]]
) -> int:
    """Every copy is absent, the previous one or Vault's; Vault is untouched.

    Returns how many copies are Vault's."""
    after = snapshot(world)
    landed = 0
    for cell, (copy, vault_value) in after.items():
        previous, vault_before = before[cell]
        assert vault_value == vault_before, f"{cell}: Vault's value changed"
        assert copy in (None, previous, vault_value), f"{cell}: GitHub holds something else"
        landed += copy == vault_value
    return landed


def recover_and_converge(world: World) -> None:
    # the dead run held the apply lock; its process is gone on this host, so the lock is taken over
    applied = world.run("apply", "--yes")
    assert applied.code == 0, applied.out + applied.err
    assert "took over lock" in applied.err and "holder process gone" in applied.err
    assert world.run("plan", "--detailed-exitcode").code == 0
    assert world.mismatches() == []
    for env in ("staging", "production"):
        assert world.sandbox.variable_value(REPO, env, FLAG) == "true"


def test_sigkill_at_any_failpoint_leaves_a_consistent_world_that_converges(worlds: Worlds) -> None:
    assert len({p for p in KILL_POINTS}) >= 20
    outcomes = []
    for failpoint, scenario in KILL_POINTS:
        world = worlds.new()
        if scenario == "update":
            assert world.run("apply", "--yes").code == 0
            rotate_everything(world)
        before = snapshot(world)
        process = start_apply(world, failpoint)
        _, err = process.communicate(timeout=60)
        assert process.returncode == -signal.SIGKILL, (
            f"{failpoint} ({scenario}) did not fire: {err.decode()}"
        )
        landed = assert_consistent_after_kill(world, before)
        outcomes.append((failpoint, scenario, landed))
        recover_and_converge(world)
    # the points really cut the apply at different places
    assert len({landed for _, _, landed in outcomes}) >= 8, outcomes


def test_sigkill_by_timing_mid_apply(worlds: Worlds) -> None:
    world = worlds.new()
    assert world.run("apply", "--yes").code == 0
    rotate_everything(world)
    before = snapshot(world)
    world.sandbox.inject(Fault(method="PUT", path="/secrets/", delay=0.1))
    process = start_apply(world)
    deadline = time.monotonic() + 30
    while world.sandbox.request_counts()[PUT_SECRET] < 16 + 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.kill()
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    world.sandbox.clear_faults()
    landed = assert_consistent_after_kill(world, before)
    assert 0 < landed < len(before)  # killed mid-way, not before or after the writes
    recover_and_converge(world)
