"""Saved plans (`plan --out`, `apply PLANFILE`): the file's format, reading it safely, and the
rule that a saved plan is a review artefact, never a list of orders.

A plan file is JSON: `{format: "envmatrix-plan", version: 1, policy, policy_sha256, environments,
repositories, secrets, fingerprint, changes: [Change.to_json()...]}` — metadata only, never a
value. `environments`, `repositories` and `secrets` are the run's narrowing (`repositories` and
`secrets` empty or absent: not narrowed); `shard` is `K/N` (`--shard`), null or absent (every
repository). `apply PLANFILE` recomputes the plan with the same narrowing and shard and carries
out only the changes the current policy and world produce
(`require_policy_changes`): a hand-edited file cannot write anything the policy does not ask for
(Terraform refuses a plan that does not match its configuration the same way).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from envmatrix.errors import PlanMismatchError, UnsafeInput, UsageError
from envmatrix.pipeline.desired import REPOSITORY_LEVEL
from envmatrix.pipeline.plan import Change, Kind, Plan
from envmatrix.pipeline.shard import parse_shard
from envmatrix.policy import MAX_POLICY_BYTES
from envmatrix.safeio import read_regular_file

PLAN_FORMAT = "envmatrix-plan"
MAX_PLAN_BYTES = 64 * 1024 * 1024  # a plan of 100,000 changes is about 50 MB
NARROWING_KEYS = ("environments", "repositories", "secrets")  # lists of names


def plan_document(
    policy: str,
    policy_sha256: str,
    environments: Sequence[str],
    plan: Plan,
    narrowing: Mapping[str, Sequence[str]] | None = None,
    shard: str | None = None,
) -> dict[str, Any]:
    """The saved form of a plan made from the policy file at `policy` (an absolute path);
    `narrowing` is `{"repositories": [...], "secrets": [...]}` (see pipeline/narrow.py);
    `shard` is `K/N` or None (see pipeline/shard.py)."""
    return {
        "format": PLAN_FORMAT,
        "version": 1,
        "policy": policy,
        "policy_sha256": policy_sha256,
        "environments": list(environments),
        **{key: list(names) for key, names in (narrowing or {}).items()},
        "shard": shard,
        "fingerprint": plan.fingerprint,
        "changes": [c.to_json() for c in plan.changes],
    }


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
    where = change.environment if change.environment is not None else REPOSITORY_LEVEL
    text = f"{change.action} {change.kind} {change.repository} {where} {change.name}"
    if change.vault_path is not None:
        text += f" from {change.vault_path}#{change.vault_key} v{change.vault_version}"
    if change.kind == Kind.VARIABLE and change.value is not None:
        text += f" = {change.value}"
    return text


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
    for key in NARROWING_KEYS:
        names = document[key] if key in document else []
        if not isinstance(names, list) or not all(isinstance(e, str) for e in names):
            bad.append(key)
    if not isinstance(document["changes"], list):
        bad.append("changes")
    if not _shard_field_ok(document.get("shard")):
        bad.append("shard")
    if bad:
        raise UsageError(f"{path}: not a saved envmatrix plan ({', '.join(bad)} malformed)")


def _shard_field_ok(value: object) -> bool:
    """`shard`: absent or null (every repository), or `K/N` as --shard takes it."""
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    try:
        parse_shard(value)
    except UsageError:
        return False
    return True


def is_plan_file(path: str) -> bool:
    """Whether a path holds a saved plan (JSON) rather than a policy (YAML)."""
    try:
        return read_regular_file(path, MAX_PLAN_BYTES).lstrip().startswith(b"{")
    except UnsafeInput:  # a FIFO, a device, a huge file: read_plan_file says why it is refused
        return True
    except OSError:
        return False


def policy_sha256(path: str) -> str:
    """The SHA-256 of the policy file's bytes; "" when it cannot be read."""
    try:
        return hashlib.sha256(read_regular_file(path, MAX_POLICY_BYTES)).hexdigest()
    except (OSError, UnsafeInput):
        return ""
