"""The environment a `command` rotator runs with: an allow-list, never envmatrix's own.

envmatrix's environment holds its Vault login (VAULT_TOKEN, an AppRole secret id, the Actions
OIDC request token), its GitHub token and other strategies' admin credentials (an admin DSN,
AWS_SECRET_ACCESS_KEY, a Supabase access token); its HOME holds `~/.vault-token`, gh's and AWS's
credential files. A rotator is often a vendored script for one service, so it gets only:

- what any program needs to run and reach the network: PATH, the locale (LANG, LANGUAGE,
  LC_*), TZ, TMPDIR, proxy settings (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, ALL_PROXY, also in lower
  case) and CA settings (SSL_CERT_FILE, SSL_CERT_DIR, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE);
- a fresh, empty HOME (a private temporary directory, removed when the step ends);
- the variables its options name: `options.env: [NAME, ...]` and the value of every
  `options.<anything>_env` (`base_url_env: CHATWOOT_URL`), if set.

Options may not name envmatrix's own login variables (UsageError): passing those on is exactly
what this module exists to prevent.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from envmatrix.errors import UsageError

BASE_VARIABLES = frozenset(
    {
        "PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
        "http_proxy", "https_proxy", "no_proxy", "all_proxy",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    }
)  # fmt: skip
LOCALE_PREFIX = "LC_"
# envmatrix's own logins: never handed to a rotator, even when an option names them
LOGIN_VARIABLES = frozenset(
    {
        "VAULT_TOKEN", "VAULT_ROLE_ID", "VAULT_SECRET_ID", "BAO_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL",
        "GITHUB_TOKEN", "GH_TOKEN", "GITHUB_APP_PRIVATE_KEY", "GITHUB_APP_PRIVATE_KEY_FILE",
    }
)  # fmt: skip
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def named_variables(options: Mapping[str, Any]) -> tuple[str, ...]:
    """The variables a rotator's options name (`env:` list, `*_env:` values); UsageError."""
    names: list[str] = []
    listed = options.get("env", [])
    if not isinstance(listed, list | tuple) or not all(isinstance(n, str) for n in listed):
        raise UsageError("rotation.options.env for command must be a list of variable names")
    names.extend(listed)
    names.extend(
        value for key, value in options.items() if key.endswith("_env") and isinstance(value, str)
    )
    for name in names:
        if not _NAME.match(name):
            raise UsageError(f"rotation.options for command: {name!r} is not a variable name")
        if name in LOGIN_VARIABLES or name == "HOME":
            raise UsageError(
                f"rotation.options for command name {name}: envmatrix's own login and HOME are"
                " never passed to a rotator"
            )
    return tuple(dict.fromkeys(names))


def allowed_environment(
    passed: tuple[str, ...], home: str, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The allow-listed subset of `environ`, plus `passed`, with HOME set to `home`."""
    allowed = {
        name: value
        for name, value in environ.items()
        if name in BASE_VARIABLES or name.startswith(LOCALE_PREFIX) or name in passed
    }
    allowed["HOME"] = home
    return allowed


@contextmanager
def rotator_environment(
    passed: tuple[str, ...], environ: Mapping[str, str] = os.environ
) -> Iterator[dict[str, str]]:
    """The environment for one rotator run, with a fresh 0700 HOME removed afterwards."""
    home = tempfile.mkdtemp(prefix="envmatrix-rotator-home-")  # mkdtemp creates it 0700
    try:
        yield allowed_environment(passed, home, environ)
    finally:
        shutil.rmtree(home, ignore_errors=True)
