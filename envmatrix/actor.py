"""Who is acting: one spelling of the actor, used by audit records, locks and journals.

- `actor_identity(vault, github)`: `token:ci-role accessor:1a2b3c4d… / github:octo-bot` — the
  Vault login, and the GitHub login when a GitHub adapter is in use. Best effort: an identity
  lookup that fails gives `unknown`, it never stops a run.
- `holder_identity(actor)`: the actor plus where it runs, `… on HOST pid N`, as stored in a lock
  or a rotation journal; `holder_gone(holder)` recognises one whose process has exited on this
  host.
"""

from __future__ import annotations

import os
import re
import socket

from envmatrix.errors import EnvmatrixError
from envmatrix.ports import GitHubPort, VaultPort


def actor_identity(vault: VaultPort, github: GitHubPort | None = None) -> str:
    """The Vault identity, then the GitHub one (when given), joined by ` / `."""
    parts = [_identity(vault)] + ([_identity(github)] if github is not None else [])
    return " / ".join(parts)


def holder_identity(actor: str) -> str:
    """Who holds a lock or runs a rotation: the actor, this host and this process."""
    return f"{actor or 'unknown'} on {socket.gethostname()} pid {os.getpid()}"


def holder_gone(holder: str) -> bool:
    """`holder` (`<identity> on <host> pid <n>`) ran on this host and that process has exited.

    A holder on another machine cannot be checked; its lease has to run out.
    """
    match = re.search(r" on (?P<host>\S+) pid (?P<pid>\d+)$", holder)
    if match is None or match["host"] != socket.gethostname():
        return False
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False


def _identity(adapter: VaultPort | GitHubPort) -> str:
    try:
        return adapter.identity()
    except (EnvmatrixError, OSError):
        return "unknown"
