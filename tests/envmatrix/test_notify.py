"""Notifications: the policy's Slack-compatible and generic webhook channels, end to end on
OpenBao and the GitHub sandbox, against a local HTTP receiver. CI and GITHUB_* are cleared so the
tests behave the same on a laptop and in GitHub Actions."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.world import REPO, World

CANARY = "canary-notify-5b1e90"


class Receiver:
    """A local webhook receiver: records (path, JSON body); `/fail` answers 500."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.received.append((self.path, json.loads(body)))
                self.send_response(500 if self.path == "/fail" else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def on(self, path: str) -> list[Any]:
        return [body for p, body in self.received if p == path]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    for name in list(os.environ):
        if name == "CI" or name.startswith("GITHUB_"):
            monkeypatch.delenv(name)
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _with_channels(world: World, receiver: Receiver) -> None:
    text = world.policy_path.read_text()
    world.write_policy(
        text
        + "\nnotifications:\n"
        + "  - slack: {webhook_url_env: SLACK_WEBHOOK_URL}\n"
        + "  - webhook: {url_env: ENVMATRIX_WEBHOOK_URL}\n"
    )
    world.env["SLACK_WEBHOOK_URL"] = receiver.url("/slack")
    world.env["ENVMATRIX_WEBHOOK_URL"] = receiver.url("/hook")


def _trouble(world: World) -> None:
    """A blocked secret (integrations) and a GitHub copy written outside envmatrix (support)."""
    world.seed()
    world.set_vault_value("SUPABASE_URL", "production", CANARY)  # a real value, synced
    assert world.run("apply", "--yes").code == 0
    world.set_vault_value("SHOPIFY_ADMIN_TOKEN", "production", "   ")
    world.sandbox.advance_clock(5)
    world.sandbox.write_secret_outside(REPO, "production", "CHATWOOT_API_TOKEN", CANARY)


def test_plan_notifies_each_owner_once_per_channel_and_only_what_is_new(
    world: World, receiver: Receiver
) -> None:
    _with_channels(world, receiver)
    _trouble(world)
    assert receiver.received == []  # apply ran without --notify and outside CI
    result = world.run("plan", "--notify")
    assert result.code == 0, result.err
    hooks = receiver.on("/hook")
    assert sorted(h["owner"] for h in hooks) == ["integrations", "support"]
    by_owner = {h["owner"]: h for h in hooks}
    shopify = by_owner["integrations"]["notices"]
    assert {(n["kind"], n["secret"], n["environment"]) for n in shopify} == {
        ("blocked", "SHOPIFY_ADMIN_TOKEN", "production")
    }
    assert by_owner["support"]["notices"][0]["kind"] == "changed-outside"
    assert by_owner["support"]["contact"] == "support@occ.example"
    slack = receiver.on("/slack")
    assert len(slack) == 2 and all(set(m) == {"text"} for m in slack)
    assert any("SHOPIFY_ADMIN_TOKEN" in m["text"] and "integrations" in m["text"] for m in slack)
    assert CANARY not in json.dumps(receiver.received)

    assert world.run("plan", "--notify").code == 0
    assert len(receiver.received) == 4  # nothing new: nothing sent

    world.set_vault_value("ZOHO_CLIENT_ID", "production", " ")  # a new problem, same owner
    assert world.run("plan", "--notify").code == 0
    [new] = receiver.on("/hook")[2:]
    assert new["owner"] == "integrations"
    assert [n["secret"] for n in new["notices"]] == ["ZOHO_CLIENT_ID"]  # only what changed


@pytest.mark.parametrize(
    ("environ", "sent"),
    [
        ({}, False),
        (
            {"CI": "true", "GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/7/merge"},
            False,
        ),
        ({"CI": "true", "GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/feature"}, False),
        ({"CI": "true", "GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/trunk"}, True),
        ({"CI": "true", "GITHUB_EVENT_NAME": "schedule", "GITHUB_REF": "refs/heads/x"}, True),
        ({"CI": "false", "GITHUB_EVENT_NAME": "schedule"}, False),
    ],
)
def test_in_ci_only_on_the_default_branch_or_a_schedule(
    world: World, receiver: Receiver, tmp_path: Path, environ: dict[str, str], sent: bool
) -> None:
    _with_channels(world, receiver)
    _trouble(world)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"repository": {"default_branch": "trunk"}}))
    world.env.update(environ, GITHUB_EVENT_PATH=str(event))
    assert world.run("plan").code == 0
    assert bool(receiver.received) is sent


def test_an_unset_channel_is_skipped_with_one_warning_and_a_failing_one_warns(
    world: World, receiver: Receiver
) -> None:
    _with_channels(world, receiver)
    del world.env["SLACK_WEBHOOK_URL"]
    world.env["ENVMATRIX_WEBHOOK_URL"] = receiver.url("/fail")
    _trouble(world)
    result = world.run("plan", "--notify")
    assert result.code == 0
    assert result.err.count("SLACK_WEBHOOK_URL is not set") == 1
    assert "ENVMATRIX_WEBHOOK_URL: answered HTTP 500" in result.err
    assert receiver.url("/fail") not in result.err  # the URL is a credential
    assert len(receiver.on("/fail")) == 2


def test_rotation_due_and_a_failed_rotate_notify(world: World, receiver: Receiver) -> None:
    _with_channels(world, receiver)
    world.seed()
    assert world.run("apply", "--yes").code == 0
    due = world.run("rotation", "due", "--notify", "--at", "2099-01-01T00:00:00Z")
    assert due.code == 1
    kinds = {n["kind"] for h in receiver.on("/hook") for n in h["notices"]}
    assert kinds == {"rotation-overdue"}
    assert world.run("rotation", "due", "--notify", "--at", "2099-01-01T00:00:00Z").code == 1
    assert len(receiver.on("/hook")) == len(receiver.on("/slack"))  # nothing new the 2nd time
    count = len(receiver.received)
    assert count > 0
