"""`generate`: a random value from the operating system's CSPRNG, for secrets envmatrix owns.

Options: `length` (default 32, 16..4096) and `alphabet`: `alphanumeric` (default), `hex`,
`urlsafe` (letters, digits, `-` and `_`), or any other string of at least 2 distinct characters
used as the alphabet itself. Each key of the group gets its own value. Nothing to test or revoke:
the value is only a value until a consumer reads it.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from typing import Any

from envmatrix.errors import RotationTestFailed, UsageError
from envmatrix.rotation.strategies import StrategySettings
from envmatrix.rotation.strategies.base import BaseStrategy, Created, RotationContext
from envmatrix.secret import SecretValue

ALPHABETS = {
    "alphanumeric": string.ascii_letters + string.digits,
    "hex": "0123456789abcdef",
    "urlsafe": string.ascii_letters + string.digits + "-_",
}
DEFAULT_LENGTH = 32
LENGTH_RANGE = (16, 4096)


class GenerateStrategy(BaseStrategy):
    """Random values of a fixed length over an alphabet."""

    name = "generate"
    not_applicable = {
        "test": "generate has no provider to test the new value against (length checked)",
        "revoke": "generate has no provider to revoke the previous value at",
        "discard": "generate has no provider: the new value is simply dropped",
    }

    def __init__(self, length: int = DEFAULT_LENGTH, alphabet: str = ALPHABETS["alphanumeric"]):
        self.length, self.alphabet = length, alphabet

    def create(self, ctx: RotationContext) -> Created:
        return Created({key: self._value() for key in ctx.keys.values()})

    def test(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        for key in ctx.keys.values():
            value = pending.get(key)
            if value is None or len(value) != self.length:
                raise RotationTestFailed(
                    f"generated value for {key} is missing or has a wrong length"
                )

    def revoke(self, ctx: RotationContext, previous: Mapping[str, SecretValue]) -> None:
        return None

    def _value(self) -> SecretValue:
        return SecretValue("".join(secrets.choice(self.alphabet) for _ in range(self.length)))


def build(options: Mapping[str, Any], settings: StrategySettings) -> GenerateStrategy:
    """A GenerateStrategy from `rotation.options`."""
    unknown = sorted(set(options) - {"length", "alphabet"})
    if unknown:
        raise UsageError(f"rotation.options for generate: unknown option {unknown[0]!r}")
    return GenerateStrategy(
        _length(options.get("length", DEFAULT_LENGTH)),
        _alphabet(options.get("alphabet", "alphanumeric")),
    )


def _length(raw: Any) -> int:
    low, high = LENGTH_RANGE
    if not isinstance(raw, int) or isinstance(raw, bool) or not low <= raw <= high:
        raise UsageError(f"rotation.options.length for generate must be a number {low}..{high}")
    return raw


def _alphabet(raw: Any) -> str:
    if not isinstance(raw, str):
        raise UsageError("rotation.options.alphabet must be alphanumeric, hex, urlsafe or a string")
    alphabet = ALPHABETS.get(raw, raw)
    if len(set(alphabet)) < 2:
        raise UsageError("rotation.options.alphabet needs at least 2 distinct characters")
    return "".join(dict.fromkeys(alphabet))  # duplicates would bias the choice
