"""The plan/apply workflow: policy -> desired -> observe -> diff -> plan -> apply.

These are the functions cli.py calls. They take already-built adapters (`Connections`), so the
same code runs against a real Vault and GitHub, the sandbox, or test doubles.
"""

from __future__ import annotations

import dataclasses
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
from envmatrix.errors import PlanMismatchError, StalePlanError, UsageError
from envmatrix.lock import APPLY_LOCK, VaultLock
from envmatrix.observe import Observed, observe
from envmatrix.plan import Change, Kind, Plan, diff
from envmatrix.policy import MAX_POLICY_BYTES, Policy, load_policy
from envmatrix.ports import GitHubPort, VaultPort
from envmatrix.safeio import UnsafeInput, read_regular_file
from rotation.schedule import RotationStatus, rotation_statuses

PLAN_FORMAT = "envmatrix-plan"
MAX_PLAN_BYTES = 64 * 1024 * 1024  # a plan of 100,000 changes is about 50 MB


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
    run: PlanRun, connections: Connections, audit: AuditSink | None = None
) -> ApplyReport:
    """Carry out a fresh plan."""
    return _applier(run, connections, audit).apply(run.plan)


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
) -> ApplyReport:
    """Apply exactly a saved plan, refusing it when the policy, Vault or GitHub changed since.

    `policy_path` is where the plan's policy is now (see `saved_plan_policy`); by default where
    it was when the plan was made; `policy` is that file already loaded, if the caller has it."""
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
    require_policy_changes(plan_file, saved_changes(plan_file, saved), fresh.plan)
    # equal in every field apply acts on: carry out the plan computed now, not the file's copy
    return _applier(fresh, connections, audit).apply(fresh.plan)


def saved_changes(plan_file: str, saved: Mapping[str, Any]) -> tuple[Change, ...]:
    """The change records of a saved plan; a record that is not one is a UsageError."""
    changes: list[Change] = []
    for number, data in enumerate(saved["changes"], start=1):
        try:
            if not isinstance(data, dict):
                raise TypeError("not an object")
            _check_change_keys(data)
            changes.append(Change.from_json(data))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(
                f"{plan_file}: not a saved envmatrix plan: change {number} is not a planned"
                f" change ({_junk_reason(exc)})"
            ) from None
    return tuple(changes)


_CHANGE_FIELDS = {f.name: f for f in dataclasses.fields(Change)}


def _check_change_keys(data: Mapping[str, Any]) -> None:
    unknown = sorted(str(k) for k in data if k not in _CHANGE_FIELDS)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}")
    required = [
        n
        for n, f in _CHANGE_FIELDS.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [n for n in required if n not in data]
    if missing:
        raise KeyError(missing[0])


def _junk_reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r}" if exc.args and isinstance(exc.args[0], str) else "a key lacks"
    if isinstance(exc, ValueError) and str(exc).startswith("unknown field "):
        return str(exc)
    return type(exc).__name__


def require_policy_changes(plan_file: str, saved: Sequence[Change], fresh: Plan) -> None:
    """Refuse (PlanMismatchError) a saved plan whose changes are not the ones the policy and the
    world produce now, compared in every field apply acts on; display-only fields are not."""
    wanted = [_acted_on(c) for c in fresh.changes]
    given = [_acted_on(c) for c in saved]
    for number, (change, key) in enumerate(zip(saved, given, strict=True), start=1):
        if key not in wanted:
            raise PlanMismatchError(
                f"saved plan {plan_file} does not match the policy: change {number}"
                f" ({describe_change(change)}) is not one the policy produces; plan again"
            )
    for change, key in zip(fresh.changes, wanted, strict=True):
        if key not in given:
            raise PlanMismatchError(
                f"saved plan {plan_file} does not match the policy: it lacks"
                f" {describe_change(change)}, which the policy produces; plan again"
            )
    if given != wanted:  # the same changes, but repeated or in another order
        pairs = zip(given, wanted, strict=False)
        number = next((i for i, (a, b) in enumerate(pairs, start=1) if a != b), len(wanted) + 1)
        raise PlanMismatchError(
            f"saved plan {plan_file} does not match the policy: change {number}"
            f" ({describe_change(saved[number - 1])}) is out of place or repeated; plan again"
        )


def _acted_on(change: Change) -> dict[str, Any]:
    """Every field apply acts on: all but the reason, detail and owner, which only explain."""
    data = change.to_json()
    for explanation in ("reason", "detail", "owner"):
        data.pop(explanation, None)
    return data


def describe_change(change: Change) -> str:
    """`create secret evil/stash loot LOOT from db/prod#password v1`: a change in one line."""
    where = change.environment if change.environment is not None else "(repository)"
    text = f"{change.action} {change.kind} {change.repository} {where} {change.name}"
    if change.vault_path is not None:
        text += f" from {change.vault_path}#{change.vault_key} v{change.vault_version}"
    if change.kind == Kind.VARIABLE and change.value is not None:
        text += f" = {change.value}"
    return text


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


def write_output_file(path: str, text: str) -> None:
    """Write a command's output file (`matrix --out`) atomically; UsageError ("cannot write")
    when its folder is missing, it is a folder, or it is not writable."""
    _atomic_write(path, text)


def read_plan_file(path: str) -> dict[str, Any]:
    """Load a saved plan; anything that is not one is a usage error."""
    try:
        document = json.loads(read_regular_file(path, MAX_PLAN_BYTES).decode("utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such plan file") from None
    except UnsafeInput as exc:
        raise UsageError(f"{path}: not a saved envmatrix plan ({exc})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UsageError(f"{path}: not a saved envmatrix plan ({type(exc).__name__})") from None
    if not isinstance(document, dict) or document.get("format") != PLAN_FORMAT:
        raise UsageError(f"{path}: not a saved envmatrix plan (write one with plan --out)")
    missing = {"policy", "policy_sha256", "environments", "fingerprint", "changes"} - set(document)
    if missing:
        raise UsageError(f"{path}: saved plan lacks {', '.join(sorted(missing))}")
    _check_plan_fields(path, document)
    saved_changes(path, document)  # junk in a change is a usage error before anything connects
    return document


def _check_plan_fields(path: str, document: Mapping[str, Any]) -> None:
    """The saved plan's own fields have their types (its changes are checked one by one)."""
    texts = ("policy", "policy_sha256", "fingerprint")
    bad = [k for k in texts if not isinstance(document[k], str)]
    environments = document["environments"]
    if not isinstance(environments, list) or not all(isinstance(e, str) for e in environments):
        bad.append("environments")
    if not isinstance(document["changes"], list):
        bad.append("changes")
    if bad:
        raise UsageError(f"{path}: not a saved envmatrix plan ({', '.join(bad)} malformed)")


def is_plan_file(path: str) -> bool:
    """Whether a path holds a saved plan (JSON) rather than a policy (YAML)."""
    try:
        return read_regular_file(path, MAX_PLAN_BYTES).lstrip().startswith(b"{")
    except UnsafeInput:  # a FIFO, a device, a huge file: read_plan_file says why it is refused
        return True
    except OSError:
        return False


def _applier(run: PlanRun, connections: Connections, audit: AuditSink | None) -> Applier:
    """An applier over the sync state `run` observed, acting as this run's actor."""
    return Applier(
        connections.vault,
        connections.github,
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
        return hashlib.sha256(read_regular_file(path, MAX_POLICY_BYTES)).hexdigest()
    except (OSError, UnsafeInput):
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
