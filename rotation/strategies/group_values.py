"""Fit a provider strategy's new values to its rotation group.

The engine promotes exactly the group's keys (the Vault keys the policy's secrets name at that
path) and refuses a `Created` whose values cover any other set. A provider strategy knows which
keys it changes (`password`, `access_key_id`…); the group's other keys (a project `url` beside an
API key) keep their current values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from envmatrix.errors import RuntimeFailure, UsageError
from envmatrix.rotation.strategies.base import RotationContext
from envmatrix.secret import SecretValue


def check_group(strategy: str, ctx: RotationContext, changed: Iterable[str]) -> None:
    """Refuse, before touching the provider, a rotation whose new values the engine would refuse."""
    group = set(ctx.keys.values())
    outside = sorted(set(changed) - group)
    if outside:
        raise UsageError(
            f"{strategy} rotation of {ctx.path} changes {', '.join(outside)}, which no secret "
            f"of the policy names: add a secret with vault: {ctx.path}#{outside[0]}"
        )
    missing = sorted(k for k in group - set(changed) if k not in ctx.current)
    if missing:
        raise RuntimeFailure(
            f"{strategy}: Vault {ctx.path} has no {', '.join(missing)} to keep beside the "
            "rotated values"
        )


def values_for_group(
    strategy: str, ctx: RotationContext, changed: Mapping[str, SecretValue]
) -> dict[str, SecretValue]:
    """`changed` plus the group's other keys carried over; errors name what the policy lacks."""
    check_group(strategy, ctx, changed)
    return {key: changed[key] if key in changed else ctx.current[key] for key in ctx.keys.values()}
