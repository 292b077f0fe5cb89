"""`SecretValue`: how a credential travels from Vault to the encryption call.

It prints as asterisks everywhere (repr, str, format, logging, tracebacks with locals), refuses to
be pickled or serialised, and hands its text out only through `reveal()`, which is called in
exactly the places that must see it: the sealed-box encryption, a provider API call, a Vault write.
"""

from __future__ import annotations

import hmac
from typing import NoReturn

MASK = "**********"


class SecretValue:
    """A secret string that does not show itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("SecretValue takes a str")
        self._value = value

    def reveal(self) -> str:
        """The plain text. Call only at the boundary where it is consumed."""
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"SecretValue('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        raise TypeError("SecretValue is not hashable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("SecretValue cannot be pickled")


# Values that are not secrets: what GitHub substitutes for a missing secret (""), what an editor
# or a template leaves behind (whitespace) and what `jq -r` prints for a missing field ("null").
# A JSON null in Vault reaches us as the text "null" (the Vault adapter gives non-strings as JSON).
_PLACEHOLDERS = frozenset({"null"})


def absence(value: SecretValue | str | None) -> str | None:
    """Why a value is not a secret ("empty", "whitespace-only", "null"), or None when present.

    The one definition of "present" every command uses: plan (blocked), apply (never written),
    flags (not ready), verify (every source) and rotation (a new value must be present). The
    value is looked at in memory only; the answer never contains it.
    """
    if value is None:
        return "null"
    text = value.reveal() if isinstance(value, SecretValue) else value
    if text == "":
        return "empty"
    if not text.strip():
        return "whitespace-only"
    if text.strip().lower() in _PLACEHOLDERS:
        return "null"
    return None


def is_present(value: SecretValue | str | None) -> bool:
    """Whether a value counts as a secret at all (see `absence`)."""
    return absence(value) is None
