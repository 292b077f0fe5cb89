"""Who is acting: one spelling of the actor, used by audit records, locks and journals.

- `actor_identity(vault, github)`: `token:ci-role accessor:1a2b3c4d… / github:octo-bot` — the
  Vault login, and the GitHub login when a GitHub adapter is in use. Best effort: an identity
  lookup that fails gives `unknown`, it never stops a run.
- `holder_identity(actor)`: the actor plus where it runs, `… on HOST pid N`, as stored in a lock
  or a rotation journal (a dead holder on the same host can then be recognised).
"""

from __future__ import annotations

import os
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


def _identity(adapter: VaultPort | GitHubPort) -> str:
    try:
        return adapter.identity()
    except (EnvmatrixError, OSError):
        return "unknown"
