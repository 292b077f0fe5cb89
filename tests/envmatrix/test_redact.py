"""envmatrix/redact.py and its use: a credential inside an address (VAULT_ADDR, GITHUB_API_URL)
is never echoed, on the real servers' error paths as in the one-line usage errors."""

from __future__ import annotations

import pytest

from envmatrix.adapters.github import GitHubAdapter
from envmatrix.redact import host_for_display, url_for_display
from envmatrix.sandbox import Fault
from tests.world import World

PW = "Url-Pw-5521"


@pytest.mark.parametrize(
    ("url", "shown", "host"),
    [
        (
            f"https://ci:{PW}@vault.example.com:8200",
            "https://***@vault.example.com:8200",
            "vault.example.com:8200",
        ),
        (
            f"https://{PW}@api.github.example/api/v3",
            "https://***@api.github.example/api/v3",
            "api.github.example",
        ),
        # an unencoded '/', '?', '#' or '@' in the password: parsers split elsewhere; we do not
        (f"http://ci:ab/{PW}@h:1/x", "http://***@h:1/x", "h:1"),
        (f"http://ci:ab?{PW}@h", "http://***@h", "h"),
        (f"http://ci:ab#{PW}@h", "http://***@h", "h"),
        (f"http://ci:a@b{PW}@h:2", "http://***@h:2", "h:2"),
        (
            f"postgresql://app:{PW}@db:5432/app?sslmode=require",
            "postgresql://***@db:5432/app?***",
            "db:5432",
        ),
        (f"http://vault:8200/?token={PW}", "http://vault:8200/?***", "vault:8200"),
        (f"ci:{PW}@vault:8200", "***@vault:8200", "vault:8200"),  # no scheme at all
        ("https://api.github.com", "https://api.github.com", "api.github.com"),
    ],
)
def test_userinfo_and_query_are_cut_out(url: str, shown: str, host: str) -> None:
    assert url_for_display(url) == shown
    assert host_for_display(url) == host
    assert PW not in url_for_display(url) + host_for_display(url)


@pytest.mark.parametrize("variable", ["VAULT_ADDR", "GITHUB_API_URL"])
def test_a_bad_address_is_refused_without_its_password(world: World, variable: str) -> None:
    world.env[variable] = f"ftp://ci:{PW}@host:8200"
    result = world.run("plan")
    assert result.code == 3, result.err
    assert "***@host:8200" in result.err and PW not in result.out + result.err


def test_an_unreachable_vault_is_named_without_its_password(world: World) -> None:
    world.env["VAULT_ADDR"] = f"http://ci:{PW}@127.0.0.1:9"
    result = world.run("plan")
    assert result.code == 1
    assert "Vault at http://***@127.0.0.1:9 is unreachable" in result.err
    assert PW not in result.out + result.err


def test_github_errors_and_identity_name_the_api_without_its_password(world: World) -> None:
    world.seed()
    url = world.env["GITHUB_API_URL"].replace("http://", f"http://ci:{PW}@")
    assert GitHubAdapter(url, "t").identity() == f"github-token@{host_for_display(url)}"
    world.env["GITHUB_API_URL"] = url
    world.env["ENVMATRIX_GITHUB_ATTEMPTS"] = "1"
    world.sandbox.inject(Fault(method="GET", status=500))
    result = world.run("plan")
    world.sandbox.clear_faults()
    assert result.code == 1
    assert "http://***@127.0.0.1" in result.err and PW not in result.out + result.err
