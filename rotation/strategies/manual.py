"""`manual`: the owner supplies the new value (a console-issued token, a pasted key).

The value comes from the run's `ValueSource` (the CLI: stdin when it is not a terminal, a hidden
prompt on a terminal, or `--from-file`); it is never echoed. An empty value is refused. Testing is
the owner's act of issuing it, and revoking the old one is done at the provider by the owner:
envmatrix cannot reach it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envmatrix.errors import RotationTestFailed, UsageError
from envmatrix.rotation.strategies import StrategySettings, ValueSource
from envmatrix.rotation.strategies.base import BaseStrategy, Created, RotationContext
from envmatrix.secret import SecretValue, absence


class ManualStrategy(BaseStrategy):
    """New values typed, piped or read from a file by the owner."""

    name = "manual"
    not_applicable = {
        "test": "manual has no provider to test the new credential against (checked non-empty)",
        "revoke": "manual has no provider to revoke at: the owner retires the previous "
        "credential at the provider",
        "discard": "manual has no provider: the owner withdraws the new credential there",
    }

    def __init__(self, source: ValueSource | None) -> None:
        self._source = source

    def create(self, ctx: RotationContext) -> Created:
        if self._source is None:
            names = ", ".join(ctx.keys)
            raise UsageError(
                f"{names} rotate manually: the owner runs envmatrix rotate {next(iter(ctx.keys))}"
                " on a terminal, or with --from-file or a value on stdin"
            )
        return Created({key: self._ask(name, key) for name, key in ctx.keys.items()})

    def test(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        for key in ctx.keys.values():
            if (why := absence(pending.get(key))) is not None:
                raise RotationTestFailed(f"the value for {key} is {why}")

    def revoke(self, ctx: RotationContext, previous: Mapping[str, SecretValue]) -> None:
        return None

    def _ask(self, name: str, key: str) -> SecretValue:
        assert self._source is not None
        value = self._source(name, key)
        if (why := absence(value)) is not None:
            raise UsageError(f"the new value for {name} is {why}, not a secret; refused")
        return value


def build(options: Mapping[str, Any], settings: StrategySettings) -> ManualStrategy:
    """A ManualStrategy reading from the run's value source. It takes no options."""
    if options:
        raise UsageError(f"rotation.options for manual: unknown option {sorted(options)[0]!r}")
    return ManualStrategy(settings.value_source)
