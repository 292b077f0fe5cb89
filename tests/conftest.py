"""Test-session fixtures. Real servers live in the fixture plugins named below."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.fixtures_vault",
    "tests.fixtures_sandbox",
    "tests.fixtures_services",
    "tests.world",
]

_REAL_ACCOUNT_VARS = ("VAULT_", "GITHUB_", "GH_", "AWS_", "ENVMATRIX_", "SUPABASE_")


@pytest.fixture(autouse=True)
def clean_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No test may reach a real account by accident: drop every credential-bearing variable.
    Each test gets its own empty XDG cache (the GitHub ETag cache is on by default)."""
    for name in list(os.environ):
        if name.startswith(_REAL_ACCOUNT_VARS):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    yield
