"""The composition root: the one module that builds adapters, audit stores and the actor.

Every command gets its outside systems from here, as context managers that close what they
open (HTTP sessions, database connections), so nothing else constructs an adapter:

- `connections(policy)`: Vault (the policy's mount) and GitHub, configured from the environment
  as the Vault CLI and gh would (VAULT_ADDR/VAULT_TOKEN/..., GH_TOKEN/GITHUB_TOKEN, GH_HOST,
  GITHUB_API_URL, or a GitHub App: see envmatrix/adapters/github_settings.py).
- `vault_session(policy)`, `github_session()`: one of the two, for commands that need only it
  (rotation status needs no GitHub token; `verify --source github` no Vault token).
- `audit_sink(policy, policy_path, warn)`: the policy's audit store (SQLite or PostgreSQL),
  guarded so that an event it fails to keep becomes a warning instead of stopping a run.
- `state_lock(...)`: a lock in Vault held as this run's actor (`envmatrix.actor`).

Errors: the adapters' `from_environment` raise `UsageError` (exit 3) for missing or invalid
configuration and `RuntimeFailure` subclasses (exit 1) for a login that fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envmatrix.actor import actor_identity
from envmatrix.audit.events import AuditSink
from envmatrix.audit.store import GuardedSink, audit_sink_for
from envmatrix.lock import APPLY_LOCK, ApplyLock, VaultLock
from envmatrix.policy import Policy
from envmatrix.ports import GitHubPort, VaultPort


@dataclass(frozen=True)
class Connections:
    """The adapters one run uses, and who it acts as."""

    vault: VaultPort
    github: GitHubPort

    @property
    def actor(self) -> str:
        """`vault identity / github identity` (see envmatrix/actor.py)."""
        return actor_identity(self.vault, self.github)

    @property
    def concurrency(self) -> int:
        """How many reads observation may have in flight (the GitHub adapter's
        ENVMATRIX_GITHUB_CONCURRENCY; 1 for a port that does not say)."""
        value = getattr(self.github, "concurrency", 1)
        return value if isinstance(value, int) else 1

    @property
    def write_concurrency(self) -> int:
        """How many targets apply may write at once (the GitHub adapter's
        ENVMATRIX_GITHUB_WRITE_CONCURRENCY; 1 for a port that does not say)."""
        value = getattr(self.github, "write_concurrency", 1)
        return value if isinstance(value, int) else 1

    def request_stats(self) -> dict[str, Any] | None:
        """The GitHub adapter's request accounting (`--json`'s `requests` object), or None for a
        GitHub port that keeps none."""
        stats = getattr(self.github, "requests", None)
        to_json = getattr(stats, "to_json", None)
        return to_json() if callable(to_json) else None

    def vault_request_stats(self) -> dict[str, Any] | None:
        """The Vault adapter's round trips (`--json`'s `vault_requests`: `by_operation`,
        `total`), or None for a Vault port that keeps none."""
        stats = getattr(self.vault, "requests", None)
        to_json = getattr(stats, "to_json", None)
        return to_json() if callable(to_json) else None

    def close(self) -> None:
        """Close the adapters' HTTP sessions."""
        for adapter in (self.vault, self.github):
            close = getattr(adapter, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(policy: Policy, environ: Mapping[str, str] = os.environ) -> Connections:
    """Vault and GitHub adapters configured from the environment; close them (or use `with`)."""
    from envmatrix.adapters.github import GitHubAdapter
    from envmatrix.adapters.vault import VaultAdapter

    github = GitHubAdapter.from_environment(environ)
    try:
        vault = VaultAdapter.from_environment(policy.vault.mount, environ)
    except BaseException:
        github.close()
        raise
    return Connections(vault, github)


def connect_mount(mount: str, environ: Mapping[str, str] = os.environ) -> Connections:
    """Vault (the named KV v2 mount) and GitHub from the environment, for a command that has no
    policy yet (`import`); close them (or use `with`)."""
    from envmatrix.adapters.github import GitHubAdapter
    from envmatrix.adapters.vault import VaultAdapter

    github = GitHubAdapter.from_environment(environ)
    try:
        vault = VaultAdapter.from_environment(mount, environ)
    except BaseException:
        github.close()
        raise
    return Connections(vault, github)


def connections_at(
    vault_addr: str, vault_token: str, mount: str, github_url: str, github_token: str
) -> Connections:
    """Adapters for servers given explicitly (the demo's OpenBao and GitHub sandbox)."""
    from envmatrix.adapters.github import GitHubAdapter
    from envmatrix.adapters.vault import VaultAdapter

    return Connections(
        VaultAdapter(vault_addr, vault_token, mount), GitHubAdapter(github_url, github_token)
    )


@contextmanager
def vault_session(policy: Policy, environ: Mapping[str, str] = os.environ) -> Iterator[VaultPort]:
    """The policy's Vault mount alone, closed on exit."""
    from envmatrix.adapters.vault import VaultAdapter

    vault = VaultAdapter.from_environment(policy.vault.mount, environ)
    try:
        yield vault
    finally:
        vault.close()


@contextmanager
def github_session(environ: Mapping[str, str] = os.environ) -> Iterator[GitHubPort]:
    """GitHub alone, closed on exit."""
    from envmatrix.adapters.github import GitHubAdapter

    github = GitHubAdapter.from_environment(environ)
    try:
        yield github
    finally:
        github.close()


def audit_sink(
    policy: Policy,
    policy_path: str | Path,
    warn: Callable[[str], None],
    environ: Mapping[str, str] = os.environ,
) -> GuardedSink:
    """The policy's audit store; an event it fails to keep is passed to `warn`. Use `with`."""
    return GuardedSink(audit_sink_for(policy, policy_path, environ), warn)


def state_lock(
    connections: Connections,
    audit: AuditSink | None = None,
    timeout: float = 0.0,
    name: str = APPLY_LOCK,
    operation: str = "apply",
) -> VaultLock:
    """A lock in Vault taken as this run's actor; by default the mount's apply lock.

    Hold the apply lock around plan *and* apply, so a runner that waited for it plans after the
    previous runner's writes (see envmatrix/lock.py).
    """
    return VaultLock(connections.vault, name, operation, connections.actor, audit, timeout)


def apply_lock(
    connections: Connections,
    audit: AuditSink | None = None,
    timeout: float = 0.0,
    shard: tuple[int, int] | None = None,
    operation: str = "apply",
) -> ApplyLock:
    """The apply lock of a run as this run's actor: the mount's `apply` lock, or with `shard`
    (K, N) shard K of N's lock (see envmatrix/lock.py, ApplyLock)."""
    return ApplyLock(connections.vault, operation, connections.actor, audit, timeout, shard)
