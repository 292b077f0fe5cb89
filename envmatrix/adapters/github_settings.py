"""Where GitHub is and who envmatrix is there, read from the environment as gh reads it.

Pure configuration, no request: `github_settings(environ)` returns a `GitHubSettings`.

- API URL: `GITHUB_API_URL` (as GitHub Actions sets it) wins; else `GH_HOST` (as gh): `github.com`
  → `https://api.github.com`, a `*.ghe.com` tenant `T.ghe.com` → `https://api.T.ghe.com`, any
  other host (GitHub Enterprise Server) → `https://HOST/api/v3`; else `https://api.github.com`.
- Login, first match wins:
  1. a GitHub App: `GITHUB_APP_ID` + `GITHUB_APP_PRIVATE_KEY` (PEM text) or
     `GITHUB_APP_PRIVATE_KEY_FILE`, optional `GITHUB_APP_INSTALLATION_ID`;
  2. a token, in gh's order for the host: github.com and `*.ghe.com` take `GH_TOKEN`, then
     `GITHUB_TOKEN`; an Enterprise Server host takes `GH_ENTERPRISE_TOKEN`, then
     `GITHUB_ENTERPRISE_TOKEN`, then (unlike gh, because Actions on GHES and local servers hand
     jobs a `GITHUB_TOKEN`) `GH_TOKEN`, then `GITHUB_TOKEN`.
  When two variables of one pair are both set and differ, a warning names both (never a value).

Errors: UsageError (exit 3) naming the variable — never its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from envmatrix.errors import UnsafeInput, UsageError
from envmatrix.redact import url_for_display
from envmatrix.safeio import read_regular_file
from envmatrix.settings import text_setting

DEFAULT_API_URL = "https://api.github.com"
PUBLIC_PAIR = ("GH_TOKEN", "GITHUB_TOKEN")
ENTERPRISE_PAIR = ("GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN")
MAX_KEY_BYTES = 64 * 1024  # an RSA private key in PEM is a few KB
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_APP_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")  # the numeric App ID or its client ID (Iv1.…)


@dataclass(frozen=True)
class TokenLogin:
    """A token (PAT, Actions `GITHUB_TOKEN`, installation token) and the variable it came from."""

    token: str = field(repr=False)
    source: str


@dataclass(frozen=True)
class AppLogin:
    """A GitHub App: its ID, its private key (PEM), and an installation ID when one is fixed."""

    app_id: str
    private_key: str = field(repr=False)
    installation_id: int | None = None
    source: str = "GITHUB_APP_ID"


@dataclass(frozen=True)
class GitHubSettings:
    """The API URL, the variable that chose it, the login, and warnings to show."""

    api_url: str
    url_source: str
    login: TokenLogin | AppLogin
    warnings: tuple[str, ...] = ()


def github_settings(environ: Mapping[str, str]) -> GitHubSettings:
    """Read the API URL and the login from `environ`. Raises UsageError (see module docstring)."""
    api_url, url_source = api_url_from(environ)
    if text_setting(environ, "GITHUB_APP_ID"):
        return GitHubSettings(api_url, url_source, app_login(environ))
    pairs = [PUBLIC_PAIR] if is_public_api(api_url) else [ENTERPRISE_PAIR, PUBLIC_PAIR]
    for pair in pairs:
        found = _token_from(environ, pair)
        if found is not None:
            login, warnings = found
            return GitHubSettings(api_url, url_source, login, warnings)
    names = " or ".join(name for pair in pairs for name in pair)
    raise UsageError(f"no GitHub login: set {names} (or GITHUB_APP_ID for a GitHub App)")


def api_url_from(environ: Mapping[str, str]) -> tuple[str, str]:
    """(API URL, the variable it came from: GITHUB_API_URL, GH_HOST or "default")."""
    url = text_setting(environ, "GITHUB_API_URL")
    if url:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UsageError(f"GITHUB_API_URL={url_for_display(url)!r} is not an http(s) URL")
        return url.rstrip("/"), "GITHUB_API_URL"
    host = text_setting(environ, "GH_HOST").lower().removeprefix("https://").rstrip("/")
    if not host:
        return DEFAULT_API_URL, "default"
    if not _HOST.match(host):
        raise UsageError(
            f"GH_HOST={url_for_display(host)!r} is not a host name (e.g. github.example.com)"
        )
    return api_url_for_host(host), "GH_HOST"


def api_url_for_host(host: str) -> str:
    """gh's REST root for a host: github.com, a ghe.com tenant, or an Enterprise Server."""
    if host in ("github.com", "api.github.com"):
        return DEFAULT_API_URL
    if host.endswith(".ghe.com"):
        return f"https://api.{host.removeprefix('api.')}"
    return f"https://{host}/api/v3"


def is_public_api(api_url: str) -> bool:
    """True for api.github.com and ghe.com tenants (gh's GH_TOKEN hosts)."""
    host = (urlparse(api_url).hostname or "").lower()
    return host in ("api.github.com", "github.com") or host.endswith(".ghe.com")


def _token_from(
    environ: Mapping[str, str], pair: tuple[str, str]
) -> tuple[TokenLogin, tuple[str, ...]] | None:
    first, second = (text_setting(environ, name) for name in pair)
    if not first and not second:
        return None
    warnings: tuple[str, ...] = ()
    if first and second and first != second:
        warnings = (
            f"{pair[0]} and {pair[1]} are both set and differ; using {pair[0]} (gh's order)",
        )
    return TokenLogin(first or second, pair[0] if first else pair[1]), warnings


def app_login(environ: Mapping[str, str]) -> AppLogin:
    """The GitHub App login from GITHUB_APP_ID, its key and an optional installation ID."""
    app_id = text_setting(environ, "GITHUB_APP_ID")
    if not _APP_ID.match(app_id):
        raise UsageError("GITHUB_APP_ID must be the App's ID (a number) or its client ID")
    return AppLogin(app_id, _private_key(environ), _installation_id(environ))


def _private_key(environ: Mapping[str, str]) -> str:
    text = environ.get("GITHUB_APP_PRIVATE_KEY", "").strip()
    path = text_setting(environ, "GITHUB_APP_PRIVATE_KEY_FILE")
    if text and path:
        raise UsageError("set GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_FILE, not both")
    source = "GITHUB_APP_PRIVATE_KEY"
    if path:
        source = "GITHUB_APP_PRIVATE_KEY_FILE"
        text = _read_key_file(Path(path).expanduser())
    if not text:
        raise UsageError(
            "GITHUB_APP_ID is set but neither GITHUB_APP_PRIVATE_KEY (PEM text) nor "
            "GITHUB_APP_PRIVATE_KEY_FILE is"
        )
    if "\n" not in text and "\\n" in text:  # a PEM pasted into one line with escaped newlines
        text = text.replace("\\n", "\n")
    if "-----BEGIN" not in text or "PRIVATE KEY-----" not in text:
        raise UsageError(
            f"{source} does not hold a PEM private key (-----BEGIN … PRIVATE KEY-----)"
        )
    return text


def _read_key_file(path: Path) -> str:
    try:
        data = read_regular_file(path, MAX_KEY_BYTES)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"GITHUB_APP_PRIVATE_KEY_FILE={str(path)!r}: {reason}") from None
    except UnsafeInput as exc:
        raise UsageError(f"GITHUB_APP_PRIVATE_KEY_FILE={str(path)!r}: {exc}") from None
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise UsageError(f"GITHUB_APP_PRIVATE_KEY_FILE={str(path)!r} is not a PEM file") from None


def _installation_id(environ: Mapping[str, str]) -> int | None:
    raw = text_setting(environ, "GITHUB_APP_INSTALLATION_ID")
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise UsageError(f"GITHUB_APP_INSTALLATION_ID={raw!r} is not a positive whole number")
    return int(raw)
