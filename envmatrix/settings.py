"""Numeric settings from the environment (`ENVMATRIX_*`): parsed once, range-checked, named.

`float("nan")`, `float("inf")` and `int("0")` all parse; none of them is a sensible retry count
or wait. Every numeric `ENVMATRIX_*` variable goes through `number_setting`, so a bad one is a
one-line UsageError (exit 3) naming the variable and the accepted range, before any request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from envmatrix.errors import UsageError


def number_setting(
    environ: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float,
    maximum: float,
    integer: bool = False,
) -> float:
    """`environ[name]` as a finite number in [minimum, maximum] (a whole number if `integer`),
    else `default` when unset. Raises UsageError naming `name` otherwise."""
    raw = environ.get(name)
    if raw is None:
        return default
    kind = "a whole number" if integer else "a number"
    try:
        value = float(raw.strip())
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not {kind}") from None
    if not math.isfinite(value) or (integer and not value.is_integer()):
        raise UsageError(f"{name}={raw!r} is not {kind}")
    if not minimum <= value <= maximum:
        raise UsageError(f"{name}={raw!r} is out of range: {minimum:g} to {maximum:g}")
    return value


def _whole_number(
    environ: Mapping[str, str], name: str, default: int, minimum: int, maximum: int
) -> int:
    """A whole-number setting in [minimum, maximum] (see `number_setting`)."""
    value = number_setting(environ, name, default, minimum=minimum, maximum=maximum, integer=True)
    return int(value)


def text_setting(environ: Mapping[str, str], name: str) -> str:
    """`environ[name]` without surrounding whitespace ("" when unset). A value holding a line
    break or another control character inside (a token pasted with a newline) is a UsageError
    naming `name`; the value itself is never shown, since it may be a credential."""
    value = environ.get(name, "").strip()
    if not value.isprintable():
        raise UsageError(
            f"{name} holds a line break or another control character; it must be one line"
        )
    return value


# GitHub caps concurrent requests at 100 and asks integrators to avoid them: a handful on
# api.github.com; GHES and the sandbox take more (issue 13)
GITHUB_CONCURRENCY_MAX = 100
GITHUB_CONCURRENCY_DOTCOM = 4
GITHUB_CONCURRENCY_OTHER = 32


def github_concurrency(environ: Mapping[str, str], dotcom: bool) -> int:
    """ENVMATRIX_GITHUB_CONCURRENCY: how many GitHub reads may be in flight at once, a whole
    number in [1, 100]; default 4 on api.github.com, 32 elsewhere (GHES, the sandbox).
    Raises UsageError for anything else."""
    default = GITHUB_CONCURRENCY_DOTCOM if dotcom else GITHUB_CONCURRENCY_OTHER
    return _whole_number(
        environ, "ENVMATRIX_GITHUB_CONCURRENCY", default, 1, GITHUB_CONCURRENCY_MAX
    )


# writes: one at a time on api.github.com and GHE.com (GitHub asks for writes in series, a second
# apart); GHES and the sandbox take several at once (issue 13 item 3)
GITHUB_WRITE_CONCURRENCY_DOTCOM = 1
GITHUB_WRITE_CONCURRENCY_OTHER = 8


def github_write_concurrency(environ: Mapping[str, str], dotcom: bool) -> int:
    """ENVMATRIX_GITHUB_WRITE_CONCURRENCY: how many GitHub writes apply may have in flight at
    once, a whole number in [1, 100]; default 1 on api.github.com and *.ghe.com, 8 elsewhere
    (GHES, the sandbox). The write interval spaces the starts of all writers' writes.
    Raises UsageError for anything else."""
    default = GITHUB_WRITE_CONCURRENCY_DOTCOM if dotcom else GITHUB_WRITE_CONCURRENCY_OTHER
    return _whole_number(
        environ, "ENVMATRIX_GITHUB_WRITE_CONCURRENCY", default, 1, GITHUB_CONCURRENCY_MAX
    )


# GitHub's secondary limit: 900 points per minute per REST endpoint (GET 1, writes 5) on
# api.github.com and *.ghe.com; 850 leaves a margin; GHES and the sandbox: off (issue 13)
GITHUB_POINTS_PER_MINUTE_DOTCOM = 850
GITHUB_POINTS_PER_MINUTE_MAX = 1_000_000


def github_points_per_minute(environ: Mapping[str, str], dotcom: bool) -> int:
    """ENVMATRIX_GITHUB_POINTS_PER_MINUTE: the secondary-limit points one endpoint may be sent
    in any 60 s, a whole number in [0, 1000000] (0: no pacing); default 850 on api.github.com
    and *.ghe.com, 0 elsewhere (GHES, the sandbox). Raises UsageError for anything else."""
    default = GITHUB_POINTS_PER_MINUTE_DOTCOM if dotcom else 0
    return _whole_number(
        environ, "ENVMATRIX_GITHUB_POINTS_PER_MINUTE", default, 0, GITHUB_POINTS_PER_MINUTE_MAX
    )
