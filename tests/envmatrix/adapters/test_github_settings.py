"""GitHub settings read as gh reads them: token precedence, GH_HOST, GitHub App variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from envmatrix.adapters.github_settings import AppLogin, TokenLogin, github_settings
from envmatrix.errors import UsageError
from tests.github_app import app_key

# canaries: distinct values per variable, so a test can tell which one was used and that none
# is ever shown
VALUES = {
    "GH_TOKEN": "canary-gh-token",
    "GITHUB_TOKEN": "canary-github-token",
    "GH_ENTERPRISE_TOKEN": "canary-gh-enterprise",
    "GITHUB_ENTERPRISE_TOKEN": "canary-github-enterprise",
}
GHES = {"GH_HOST": "ghe.example.com"}


def _env(*names: str, **extra: str) -> dict[str, str]:
    return {**{name: VALUES[name] for name in names}, **extra}


@pytest.mark.parametrize(
    ("environ", "used", "warned"),
    [
        (_env("GH_TOKEN"), "GH_TOKEN", None),
        (_env("GITHUB_TOKEN"), "GITHUB_TOKEN", None),
        (_env("GH_TOKEN", "GITHUB_TOKEN"), "GH_TOKEN", ("GH_TOKEN", "GITHUB_TOKEN")),
        ({"GH_TOKEN": "same", "GITHUB_TOKEN": "same"}, "GH_TOKEN", None),
        ({"GH_TOKEN": "  ", "GITHUB_TOKEN": VALUES["GITHUB_TOKEN"]}, "GITHUB_TOKEN", None),
        # github.com ignores the enterprise pair, as gh does
        (_env("GH_ENTERPRISE_TOKEN", "GITHUB_TOKEN"), "GITHUB_TOKEN", None),
        (_env("GH_ENTERPRISE_TOKEN", "GH_TOKEN", GH_HOST="github.com"), "GH_TOKEN", None),
        (_env("GH_ENTERPRISE_TOKEN", "GH_TOKEN", GH_HOST="octo.ghe.com"), "GH_TOKEN", None),
        # an Enterprise Server host takes the enterprise pair first, in gh's order
        (_env("GH_ENTERPRISE_TOKEN", "GH_TOKEN", **GHES), "GH_ENTERPRISE_TOKEN", None),
        (_env("GITHUB_ENTERPRISE_TOKEN", "GITHUB_TOKEN", **GHES), "GITHUB_ENTERPRISE_TOKEN", None),
        (
            _env("GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN", **GHES),
            "GH_ENTERPRISE_TOKEN",
            ("GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN"),
        ),
        # ... then GH_TOKEN/GITHUB_TOKEN (Actions on GHES hands jobs a GITHUB_TOKEN)
        (_env("GITHUB_TOKEN", **GHES), "GITHUB_TOKEN", None),
        (
            _env("GITHUB_TOKEN", GITHUB_API_URL="https://ghe.example.com/api/v3"),
            "GITHUB_TOKEN",
            None,
        ),
        (
            _env("GH_TOKEN", "GITHUB_TOKEN", GITHUB_API_URL="http://127.0.0.1:9"),
            "GH_TOKEN",
            ("GH_TOKEN", "GITHUB_TOKEN"),
        ),
    ],
)
def test_token_precedence(
    environ: dict[str, str], used: str, warned: tuple[str, str] | None
) -> None:
    settings = github_settings(environ)
    assert isinstance(settings.login, TokenLogin)
    assert settings.login.source == used
    assert settings.login.token == environ[used].strip()
    if warned is None:
        assert settings.warnings == ()
    else:
        (warning,) = settings.warnings
        assert warning.startswith(f"{warned[0]} and {warned[1]} are both set and differ")
        assert f"using {warned[0]}" in warning
    shown = " ".join(settings.warnings) + repr(settings)
    assert not any(value in shown for value in VALUES.values())


@pytest.mark.parametrize(
    ("environ", "url", "source"),
    [
        ({}, "https://api.github.com", "default"),
        ({"GH_HOST": "github.com"}, "https://api.github.com", "GH_HOST"),
        ({"GH_HOST": "ghe.example.com"}, "https://ghe.example.com/api/v3", "GH_HOST"),
        ({"GH_HOST": "GHE.Example.com:8443"}, "https://ghe.example.com:8443/api/v3", "GH_HOST"),
        ({"GH_HOST": "https://ghe.example.com/"}, "https://ghe.example.com/api/v3", "GH_HOST"),
        ({"GH_HOST": "octo.ghe.com"}, "https://api.octo.ghe.com", "GH_HOST"),
        (
            {"GH_HOST": "ghe.example.com", "GITHUB_API_URL": "https://other.example/api/v3/"},
            "https://other.example/api/v3",
            "GITHUB_API_URL",
        ),
    ],
)
def test_api_url_from_gh_host_unless_github_api_url_is_set(
    environ: dict[str, str], url: str, source: str
) -> None:
    settings = github_settings({**environ, "GH_TOKEN": "t", "GH_ENTERPRISE_TOKEN": "e"})
    assert (settings.api_url, settings.url_source) == (url, source)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "GH_TOKEN or GITHUB_TOKEN"),
        (GHES, "GH_ENTERPRISE_TOKEN or GITHUB_ENTERPRISE_TOKEN or GH_TOKEN or GITHUB_TOKEN"),
        (_env("GH_ENTERPRISE_TOKEN"), "GH_TOKEN or GITHUB_TOKEN"),  # github.com: not enterprise
        ({"GH_HOST": "ghe.example.com/path", "GH_TOKEN": "t"}, "GH_HOST"),
        ({"GH_HOST": "user:canary-pw@ghe.example.com", "GH_TOKEN": "t"}, "GH_HOST"),
        ({"GH_TOKEN": "two\nlines"}, "GH_TOKEN holds a line break"),
        ({"GH_ENTERPRISE_TOKEN": "a\tb", **GHES}, "GH_ENTERPRISE_TOKEN holds"),
    ],
)
def test_missing_or_bad_settings_are_one_line_usage_errors(
    environ: dict[str, str], expected: str
) -> None:
    with pytest.raises(UsageError) as caught:
        github_settings(environ)
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert "canary" not in message and "two" not in message


def test_app_login_wins_over_a_token_and_reads_key_text_or_file(tmp_path: Path) -> None:
    key = app_key()
    from_text = github_settings(
        {"GITHUB_APP_ID": "12", "GITHUB_APP_PRIVATE_KEY": key.private_pem, "GH_TOKEN": "t"}
    )
    assert from_text.login == AppLogin("12", key.private_pem.strip(), None)
    one_line = key.private_pem.strip().replace("\n", "\\n")  # pasted into a one-line secret
    escaped = github_settings({"GITHUB_APP_ID": "12", "GITHUB_APP_PRIVATE_KEY": one_line})
    assert isinstance(escaped.login, AppLogin)
    assert escaped.login.private_key == key.private_pem.strip()
    pem = tmp_path / "app.pem"
    pem.write_text(key.private_pem)
    from_file = github_settings(
        {
            "GITHUB_APP_ID": "Iv23liAbc.1",
            "GITHUB_APP_PRIVATE_KEY_FILE": str(pem),
            "GITHUB_APP_INSTALLATION_ID": "987",
        }
    )
    assert from_file.login == AppLogin("Iv23liAbc.1", key.private_pem.strip(), 987)
    assert key.private_pem[40:80] not in repr(from_file)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"GITHUB_APP_ID": "12"}, "neither GITHUB_APP_PRIVATE_KEY"),
        ({"GITHUB_APP_ID": "12 34", "GITHUB_APP_PRIVATE_KEY": "PEM"}, "GITHUB_APP_ID"),
        ({"GITHUB_APP_ID": "12", "GITHUB_APP_PRIVATE_KEY": "canary-not-a-pem"}, "no PEM"),
        (
            {
                "GITHUB_APP_ID": "1",
                "GITHUB_APP_PRIVATE_KEY": "x",
                "GITHUB_APP_PRIVATE_KEY_FILE": "y",
            },
            "not both",
        ),
        ({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY_FILE": "/nonexistent/k.pem"}, "FILE"),
        ({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY_FILE": "/dev/zero"}, "regular file"),
        (
            {
                "GITHUB_APP_ID": "1",
                "GITHUB_APP_PRIVATE_KEY": "P",
                "GITHUB_APP_INSTALLATION_ID": "0",
            },
            "INSTALLATION_ID",
        ),
        (
            {
                "GITHUB_APP_ID": "1",
                "GITHUB_APP_PRIVATE_KEY": "P",
                "GITHUB_APP_INSTALLATION_ID": "x",
            },
            "INSTALLATION_ID",
        ),
    ],
)
def test_app_settings_errors_name_the_variable_never_the_key(
    environ: dict[str, str], expected: str
) -> None:
    if environ.get("GITHUB_APP_PRIVATE_KEY") == "P":
        environ = {**environ, "GITHUB_APP_PRIVATE_KEY": app_key().private_pem}
    with pytest.raises(UsageError) as caught:
        github_settings(environ)
    message = str(caught.value)
    assert expected.replace("no PEM", "does not hold a PEM") in message
    assert "canary" not in message and "PRIVATE KEY-----\n" not in message
