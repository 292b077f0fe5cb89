#!/usr/bin/env python3
"""An example `command` rotator, and the one envmatrix's tests use.

It stands in for a provider with an API that issues and revokes tokens: the "provider" is a JSON
file (`options.state_file`, relative to the policy's directory) holding the tokens that are
valid. Copy it and replace the four `provider_*` functions with calls to your service.

Protocol (see rotation/strategies/command.py): one JSON request on stdin per step; `create`
prints `{"values": {key: value}, "handle": {...}}`; exit 0 is success. Never print a value
anywhere else, and keep stderr free of values too (envmatrix discards it, but CI logs might not).

Test-only option: `fail_step: <step>` makes that step exit 1.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Any


def provider_issue(state: dict[str, Any]) -> tuple[str, str]:
    """Issue a new token; returns (token id, token)."""
    token_id, token = secrets.token_hex(4), "tok_" + secrets.token_urlsafe(24)
    state["valid"][token_id] = token
    return token_id, token


def provider_works(state: dict[str, Any], token: str) -> bool:
    return token in state["valid"].values()


def provider_revoke(state: dict[str, Any], token: str) -> None:
    state["valid"] = {i: t for i, t in state["valid"].items() if t != token}


def provider_revoke_id(state: dict[str, Any], token_id: str) -> None:
    state["valid"].pop(token_id, None)


def handle_request(request: dict[str, Any], state: dict[str, Any]) -> dict[str, Any] | None:
    step, keys = request["step"], list(request["keys"].values())
    if step == "create":
        issued = {key: provider_issue(state) for key in keys}
        return {
            "values": {k: token for k, (_, token) in issued.items()},
            "handle": {"token_ids": ",".join(i for i, _ in issued.values())},
        }
    if step == "test" and not all(provider_works(state, request["pending"][k]) for k in keys):
        raise SystemExit(1)
    if step == "revoke":
        for key in keys:
            provider_revoke(state, request["previous"].get(key, ""))
    if step == "discard":
        for key in keys:
            provider_revoke(state, request.get("pending", {}).get(key, ""))
        for token_id in filter(None, request["handle"].get("token_ids", "").split(",")):
            provider_revoke_id(state, token_id)
    return None


def main() -> int:
    request = json.load(sys.stdin)
    options = request["options"]
    state_file = Path(options["state_file"])
    state = json.loads(state_file.read_text()) if state_file.exists() else {"valid": {}, "log": []}
    state["log"].append(request["step"])
    if options.get("fail_step") == request["step"]:
        state_file.write_text(json.dumps(state))
        return 1
    try:
        answer = handle_request(request, state)
    finally:
        state_file.write_text(json.dumps(state))
    if answer is not None:
        json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
