"""The Supabase adapter: the only module that imports `supabase` (supabase-py).

`check_supabase(url, key)` makes the cheapest admin call that needs a secret key,
`auth.admin.list_users(page=1, per_page=1)` (Supabase Auth admin API, GET /auth/v1/admin/users),
through an httpx client of our own that is closed when the call ends. supabase-py may put the URL
or key into exception text, so every failure is re-raised as a one-line `CheckFailed` built from
our own words and an HTTP status, never the library's text.
"""

from __future__ import annotations

import re

from envmatrix.errors import CheckFailed, missing_extra
from envmatrix.secret import SecretValue

SUPABASE_URL = "SUPABASE_URL"
SUPABASE_KEY = "SUPABASE_SERVICE_KEY"
PROBE_TIMEOUT = 10.0  # seconds
_HTTP_URL = re.compile(r"^https?://[^\s/]+")


def check_supabase(url: SecretValue, key: SecretValue, timeout: float = PROBE_TIMEOUT) -> None:
    """Raise CheckFailed unless the Supabase project at `url` accepts `key` as a secret key.

    The one place envmatrix calls the supabase client (the probe and the supabase-api-key
    rotation's test step both come here)."""
    if not _HTTP_URL.match(url.reveal()):
        raise CheckFailed(f"{SUPABASE_URL} is not an http(s) URL")
    try:
        import supabase  # noqa: F401 - the 'supabase' extra; its absence is not a failed check
    except ModuleNotFoundError as exc:
        raise missing_extra(exc) or exc from None
    try:
        _list_one_user(url, key, timeout)
    except CheckFailed:
        raise
    except Exception as exc:  # library text may carry the URL or key: keep only what we know
        raise CheckFailed(_failure_line(exc)) from None


def _list_one_user(url: SecretValue, key: SecretValue, timeout: float) -> None:
    import httpx
    from supabase import create_client
    from supabase.lib.client_options import SyncClientOptions

    # our own HTTP client, so its connections are closed when the probe ends
    # a non-browser User-Agent: Supabase refuses secret keys from browser-like clients
    headers = {"User-Agent": "envmatrix"}
    with httpx.Client(timeout=timeout, headers=headers) as http:
        options = SyncClientOptions(
            httpx_client=http, auto_refresh_token=False, persist_session=False
        )
        client = create_client(url.reveal(), key.reveal(), options)
        client.auth.admin.list_users(page=1, per_page=1)


def _failure_line(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return f"Supabase rejected {SUPABASE_KEY} (HTTP {status}): wrong, revoked or not secret"
    if isinstance(status, int) and status:
        return f"Supabase admin call failed (HTTP {status})"
    return f"Supabase admin call failed ({type(exc).__name__}): unreachable or not Supabase"
