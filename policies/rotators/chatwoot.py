#!/usr/bin/env python3
"""envmatrix `command` rotator for a Chatwoot user API token.

Chatwoot rotates a user's token with `POST /api/v1/profile/reset_access_token` (header
`api_access_token: <current token>`), which answers with the profile holding the new
`access_token`; `GET /api/v1/profile` with a token proves it works. Chatwoot retires the old
token at the moment of the reset, so this rotator cannot offer an overlap window: the `grace` in
the policy only bounds how long a rollback is offered, and GitHub holds a dead token from the
reset until envmatrix's sync a few seconds later. (For an agent bot, use
`/api/v1/accounts/{id}/agent_bots/{bot}/reset_access_token` with an admin token the same way.)

Options: `base_url_env` (the environment variable holding Chatwoot's URL, default CHATWOOT_URL).
Protocol: one JSON request per step on stdin (see README "Writing a command rotator").
Values go only to Chatwoot and, for `create`, to stdout as the protocol asks; never to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any


def call(base: str, method: str, path: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(
        base.rstrip("/") + path, method=method, headers={"api_access_token": token}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return dict(json.loads(answer.read() or b"{}"))


def main() -> int:
    request = json.load(sys.stdin)
    options = request.get("options", {})
    base = os.environ.get(options.get("base_url_env", "CHATWOOT_URL"), "")
    if not base.startswith(("http://", "https://")):
        print("Chatwoot URL is not set (options.base_url_env)", file=sys.stderr)
        return 2
    (key,) = request["keys"].values()
    step = request["step"]
    try:
        if step == "create":
            profile = call(
                base, "POST", "/api/v1/profile/reset_access_token", request["current"][key]
            )
            json.dump({"values": {key: profile["access_token"]}, "handle": {}}, sys.stdout)
        elif step == "test":
            call(base, "GET", "/api/v1/profile", request["pending"][key])
        # set, revoke, discard: nothing to do — the reset already retired the old token
    except (urllib.error.URLError, KeyError, ValueError) as exc:
        print(f"Chatwoot {step} failed: {type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
