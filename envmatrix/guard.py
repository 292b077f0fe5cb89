"""Stop a run before its next write: a GitHub port whose every write asks first.

`guard_writes(github, check)` wraps a `GitHubPort`; each write method (`create_*`, `put_*`,
`set_*`, `delete_*`) calls `check()` before the request. `run_checks(lock)` is the usual check:
a pending Ctrl-C/SIGTERM (`Interrupted`) and the lock still held (`LockLost`). Both are
`RunStopped`, which apply and rotation stop at instead of failing one item and going on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from envmatrix import interrupt
from envmatrix.lock import ApplyLock, VaultLock
from envmatrix.ports import GitHubPort

_WRITES = ("create_", "put_", "set_", "delete_")


class _GuardedGitHub:
    def __init__(self, github: GitHubPort, check: Callable[[], None]) -> None:
        self._github, self._check = github, check

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._github, name)
        if not (callable(attribute) and name.startswith(_WRITES)):
            return attribute

        def guarded(*args: Any, **kwargs: Any) -> Any:
            self._check()
            return attribute(*args, **kwargs)

        return guarded


def guard_writes(github: GitHubPort, check: Callable[[], None]) -> GitHubPort:
    """`github` with `check()` called before each write; reads pass straight through."""
    return cast(GitHubPort, _GuardedGitHub(github, check))


def run_checks(lock: VaultLock | ApplyLock | None) -> Callable[[], None]:
    """The check before each write: no pending signal (Interrupted), the lock held (LockLost)."""

    def check() -> None:
        interrupt.check()
        if lock is not None:
            lock.check_held()

    return check
