"""The contract between the rotation engine and a provider strategy.

The engine (rotation/engine.py) owns ordering, journaling, locking, resumption, promotion and
rollback; a strategy only knows its provider. Steps, as in AWS Secrets Manager's rotation:

    create  mint a new credential (it may already work; the old one must keep working)
    set     make the provider accept it, where that is a separate act (default: nothing)
    test    prove the new credential works (raise RotationTestFailed otherwise)
    revoke  retire the previous credential, after the grace period
    discard undo `create` for a rotation that is abandoned or rolled back (default: nothing)

A step that does not apply to a provider (nothing to test against, nothing to revoke at) is
named in the strategy's `not_applicable` ({step: reason}); the engine still calls it (a strategy
may check the values' shape there) but reports it as skipped with the reason, never as done.

Values travel only as SecretValue. `handle` is the strategy's own non-secret bookkeeping (a key
id, a role name) that the engine journals in Vault between steps, so a resumed run on another
machine can continue; it must never hold a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from envmatrix.secret import SecretValue


@dataclass(frozen=True)
class RotationContext:
    """What a strategy gets for one rotation group (secrets sharing one Vault path)."""

    path: str  # Vault path relative to the mount, {environment} resolved
    environment: str | None  # logical environment; None for a repository-scope group
    keys: Mapping[str, str]  # secret name -> key in the Vault path
    options: Mapping[str, Any]  # rotation.options from the policy (non-secret)
    current: Mapping[str, SecretValue]  # the path's current values, all keys
    handle: Mapping[str, str] = field(default_factory=dict)  # from earlier steps of this rotation


@dataclass(frozen=True)
class Created:
    """A freshly minted credential: new values for some keys of the path, and its handle."""

    values: Mapping[str, SecretValue]
    handle: Mapping[str, str] = field(default_factory=dict)


class Strategy(Protocol):
    """A provider plugin of the rotation engine."""

    name: str
    # steps ("test", "revoke", "discard") that do nothing for this provider -> why, in one line
    not_applicable: Mapping[str, str]

    def create(self, ctx: RotationContext) -> Created: ...

    def set(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None: ...

    def test(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None: ...

    def revoke(self, ctx: RotationContext, previous: Mapping[str, SecretValue]) -> None: ...

    def discard(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None: ...


class BaseStrategy:
    """Defaults for the optional steps."""

    name = "base"
    not_applicable: Mapping[str, str] = {}

    def set(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        return None

    def discard(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        return None


def skip_reason(strategy: object, step: str) -> str | None:
    """Why `step` does not apply to `strategy` (its `not_applicable`), None when it does."""
    reasons = getattr(strategy, "not_applicable", None)
    return reasons.get(step) if isinstance(reasons, Mapping) else None
