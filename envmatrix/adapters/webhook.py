"""POSTing a JSON message to an incoming webhook (Slack-compatible or generic), with urllib.

The URL is a credential (a Slack webhook URL is its own token): messages name the channel's
environment variable and the HTTP status, never the URL or the answer's body.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from envmatrix.errors import RuntimeFailure


def post_json(url: str, payload: Mapping[str, Any], label: str, timeout: float = 10.0) -> None:
    """POST `payload` as JSON to `url`; RuntimeFailure naming `label` (the variable) on failure.

    Only http(s) URLs are accepted.
    """
    if not url.lower().startswith(("https://", "http://")):
        raise RuntimeFailure(f"notification channel {label}: not an http(s) URL")
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": "envmatrix"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - checked
            response.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeFailure(f"notification channel {label}: answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = type(getattr(exc, "reason", exc)).__name__
        raise RuntimeFailure(f"notification channel {label}: unreachable ({reason})") from None
