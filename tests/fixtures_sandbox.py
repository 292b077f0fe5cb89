"""Fixture plugin: a started GitHub sandbox per test (real socket, milliseconds to start)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from envmatrix.sandbox import GitHubSandbox

SANDBOX_TOKEN = "sandbox-token"
SANDBOX_REPOSITORIES = ("occ-labs/operator-console", "occ-labs/storefront-sync")


@pytest.fixture
def sandbox() -> Iterator[GitHubSandbox]:
    """A running GitHubSandbox with token ``sandbox-token`` and the two occ-labs repositories."""
    sb = GitHubSandbox(
        host="127.0.0.1", port=0, token=SANDBOX_TOKEN, repositories=SANDBOX_REPOSITORIES
    )
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()
