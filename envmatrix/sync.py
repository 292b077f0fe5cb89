"""The plan/apply workflow: policy -> desired -> observe -> diff -> plan -> apply.

These are the functions cli.py calls. They take already-built adapters (`Connections`), so the
same code runs against a real Vault and GitHub, the sandbox, or test doubles.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envmatrix.apply import Applier, ApplyReport
from envmatrix.audit import AuditSink
from envmatrix.desired import DesiredState, desired_state, resolve_environments
from envmatrix.errors import StalePlanError, UsageError
from envmatrix.lock import APPLY_LOCK, VaultLock
from envmatrix.observe import Observed, observe
from envmatrix.plan import Change, Plan, diff
from envmatrix.policy import Policy, load_policy
from envmatrix.ports import GitHubPort, VaultPort
from rotation.schedule import RotationStatus, rotation_statuses

PLAN_FORMAT = "envmatrix-plan"


@dataclass(frozen=True)
class Connections:
    """The adapters one run uses."""

    vault: VaultPort
    github: GitHubPort

    def close(self) -> None:
        """Close the adapters' HTTP sessions."""
        for adapter in (self.vault, self.github):
            close = getattr(adapter, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class PlanRun:
    """A plan and everything it was computed from (needed to apply or save it)."""

    policy_path: str
    policy: Policy
    environments: tuple[str, ...]
    desired: DesiredState
    observed: Observed
    plan: Plan
    rotations: tuple[RotationStatus, ...] = ()  # from the same Vault metadata: no extra reads


def connect(policy: Policy, environ: Mapping[str, str] = os.environ) -> Connections:
    """Adapters configured from the environment (VAULT_*, GITHUB_TOKEN/GH_TOKEN, GITHUB_API_URL)."""
    from envmatrix.adapters.github import GitHubAdapter
    from envmatrix.adapters.vault import VaultAdapter

    github = GitHubAdapter.from_environment(environ)
    vault = VaultAdapter.from_environment(policy.vault.mount, environ)
    return Connections(vault, github)


def make_plan(
    policy_path: str,
    connections: Connections,
    environments: Sequence[str] = (),
    policy: Policy | None = None,
) -> PlanRun:
    """Observe the world for the selected environments and diff it against the policy."""
    policy = policy or load_policy(policy_path)
    selected = resolve_environments(policy, environments)
    desired = desired_state(policy, selected)
    observed = observe(desired, connections.vault, connections.github)
    rotations = rotation_statuses(policy, selected, observed.vault, datetime.now(UTC))
    return PlanRun(
        policy_path, policy, selected, desired, observed, diff(desired, observed), rotations
    )


def apply_run(
    run: PlanRun,
    connections: Connections,
    audit: AuditSink | None = None,
    check: Callable[[], None] | None = None,
) -> ApplyReport:
    """Carry out a fresh plan. `check` runs before each GitHub write and may raise RunStopped
    (see envmatrix/guard.py: the lock still held, no Ctrl-C pending)."""
    return _applier(run, connections, audit, check).apply(run.plan)


def saved_plan_policy(
    plan_file: str, given: str | None = None, environments: Sequence[str] = ()
) -> tuple[str, Policy]:
    """The policy a saved plan is applied with, checked against the command line.

    It is the file the plan was made from; `--policy` may name it, or the same policy moved
    elsewhere (same content). `--environment` may repeat the plan's selection but never change
    it: a saved plan is applied whole, so a narrower selection would silently write more.
    """
    saved = read_plan_file(plan_file)
    recorded = str(saved["policy"])
    path = recorded if given is None else _given_policy(plan_file, saved, given)
    if not Path(path).exists():
        raise StalePlanError(
            f"saved plan {plan_file} was made from {recorded}, which is gone; plan again"
            " (or pass the policy's new place with --policy)"
        )
    policy = load_policy(path)
    planned = tuple(saved["environments"])
    if environments and set(resolve_environments(policy, environments)) != set(planned):
        raise UsageError(
            f"saved plan {plan_file} covers {', '.join(planned) or 'no environment'} and is"
            " applied whole; to apply less, plan again with --environment"
        )
    return path, policy


def _given_policy(plan_file: str, saved: Mapping[str, Any], given: str) -> str:
    same_file = Path(given).resolve() == Path(str(saved["policy"]))
    if same_file or _sha256(given) == saved["policy_sha256"]:
        return given
    raise UsageError(
        f"--policy {given} is not the policy saved plan {plan_file} was made from"
        f" ({saved['policy']}); plan again"
    )


def apply_saved(
    plan_file: str,
    connections: Connections,
    audit: AuditSink | None = None,
    policy_path: str | None = None,
    policy: Policy | None = None,
    check: Callable[[], None] | None = None,
) -> ApplyReport:
    """Apply exactly a saved plan, refusing it when the policy, Vault or GitHub changed since.

    `policy_path` is where the plan's policy is now (see `saved_plan_policy`); by default where
    it was when the plan was made; `policy` is that file already loaded, if the caller has it;
    `check` as for `apply_run`."""
    saved = read_plan_file(plan_file)
    policy_path = policy_path or str(saved["policy"])
    if _sha256(policy_path) != saved["policy_sha256"]:
        raise StalePlanError(
            f"saved plan {plan_file} is stale: {policy_path} changed since; plan again"
        )
    fresh = make_plan(policy_path, connections, tuple(saved["environments"]), policy)
    if fresh.observed.fingerprint() != saved["fingerprint"]:
        raise StalePlanError(
            f"saved plan {plan_file} is stale: Vault or GitHub changed since it was made;"
            " plan again"
        )
    plan = Plan(tuple(Change.from_json(c) for c in saved["changes"]), saved["fingerprint"])
    return _applier(fresh, connections, audit, check).apply(plan)


def vault_lock(
    connections: Connections,
    audit: AuditSink | None = None,
    timeout: float = 0.0,
    name: str = APPLY_LOCK,
    operation: str = "apply",
) -> VaultLock:
    """A lock in Vault taken as this run's actor; by default the mount's apply lock.

    Hold the apply lock around plan *and* apply, so a runner that waited for it plans after the
    previous runner's writes (see envmatrix/lock.py).
    """
    return VaultLock(connections.vault, name, operation, _actor(connections), audit, timeout)


def write_plan_file(run: PlanRun, out: str) -> None:
    """Save a plan (metadata only, never a value) atomically: all of it or nothing."""
    document = {
        "format": PLAN_FORMAT,
        "version": 1,
        "policy": str(Path(run.policy_path).resolve()),
        "policy_sha256": _sha256(run.policy_path),
        "environments": list(run.environments),
        "fingerprint": run.plan.fingerprint,
        "changes": [c.to_json() for c in run.plan.changes],
    }
    _atomic_write(out, json.dumps(document, indent=2) + "\n")


def read_plan_file(path: str) -> dict[str, Any]:
    """Load a saved plan; anything that is not one is a usage error."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such plan file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a saved envmatrix plan ({type(exc).__name__})") from None
    if not isinstance(document, dict) or document.get("format") != PLAN_FORMAT:
        raise UsageError(f"{path}: not a saved envmatrix plan (write one with plan --out)")
    missing = {"policy", "policy_sha256", "environments", "fingerprint", "changes"} - set(document)
    if missing:
        raise UsageError(f"{path}: saved plan lacks {', '.join(sorted(missing))}")
    return document


def is_plan_file(path: str) -> bool:
    """Whether a path holds a saved plan (JSON) rather than a policy (YAML)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(64).lstrip().startswith(b"{")
    except OSError:
        return False


def _applier(
    run: PlanRun,
    connections: Connections,
    audit: AuditSink | None,
    check: Callable[[], None] | None = None,
) -> Applier:
    """An applier over the sync state `run` observed, acting as this run's actor."""
    from envmatrix.guard import guard_writes

    github = connections.github if check is None else guard_writes(connections.github, check)
    return Applier(
        connections.vault,
        github,
        run.observed.sync,
        audit,
        _actor(connections),
        probe=_prober(run.policy, connections),
    )


def _prober(policy: Policy, connections: Connections) -> Callable[[str, str], str | None]:
    """Live checks a flag may require before it is set true (see envmatrix/probe.py)."""
    from envmatrix.probe import probe_runner

    return probe_runner(policy, connections.vault)


def _actor(connections: Connections) -> str:
    try:
        return f"{connections.vault.identity()} / {connections.github.identity()}"
    except Exception:  # identity is best effort; it must never stop an apply
        return "unknown"


def _sha256(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def _atomic_write(path: str, text: str) -> None:
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except OSError as exc:  # e.g. the path is a folder
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write ({exc.strerror})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
