"""The Chatwoot command rotator, driven by `envmatrix rotate` against a Chatwoot stand-in that
implements the two endpoints it uses (reset_access_token retires the old token at once)."""

from __future__ import annotations

import json
import secrets
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.world import REPO, World

ROTATOR = Path(__file__).resolve().parents[2] / "policies" / "rotators" / "chatwoot.py"


class Chatwoot:
    """Chatwoot's profile token endpoints, nothing else."""

    def __init__(self) -> None:
        self.token = "cw-" + secrets.token_hex(12)
        self.resets = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        chatwoot = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                return self.headers.get("api_access_token") == chatwoot.token

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/api/v1/profile" and self._authorised():
                    return self._answer(200, {"id": 1, "name": "bot"})
                self._answer(401, {"error": "You need to sign in or sign up before continuing."})

            def do_POST(self) -> None:  # noqa: N802
                if self.path == "/api/v1/profile/reset_access_token" and self._authorised():
                    chatwoot.token = "cw-" + secrets.token_hex(12)
                    chatwoot.resets += 1
                    return self._answer(200, {"id": 1, "access_token": chatwoot.token})
                self._answer(401, {"error": "unauthorised"})

            def log_message(self, *args: object) -> None:
                return None

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def chatwoot() -> Iterator[Chatwoot]:
    server = Chatwoot()
    yield server
    server.close()


def test_rotate_chatwoot_token_end_to_end(world: World, chatwoot: Chatwoot) -> None:
    rotators = world.policy_path.parent / "rotators"
    rotators.mkdir()
    shutil.copy(ROTATOR, rotators / "chatwoot.py")
    world.seed()
    world.set_vault_value("CHATWOOT_API_TOKEN", "production", chatwoot.token)
    assert world.run("apply", "--yes").code == 0
    old = chatwoot.token
    world.env["CHATWOOT_URL"] = chatwoot.url

    result = world.run("rotate", "CHATWOOT_API_TOKEN", "--environment", "production", "--yes")

    assert result.code == 0, result.out + result.err
    assert chatwoot.resets == 1 and chatwoot.token != old
    assert world.vault_value("CHATWOOT_API_TOKEN", "production") == chatwoot.token
    assert world.sandbox.secret_value(REPO, "production", "CHATWOOT_API_TOKEN") == chatwoot.token
    assert chatwoot.token not in result.out + result.err and old not in result.out + result.err
    assert world.run("plan", "--detailed-exitcode").code == 0


def test_rotation_stops_before_cut_over_when_chatwoot_refuses(
    world: World, chatwoot: Chatwoot
) -> None:
    rotators = world.policy_path.parent / "rotators"
    rotators.mkdir()
    shutil.copy(ROTATOR, rotators / "chatwoot.py")
    world.seed()
    world.set_vault_value("CHATWOOT_API_TOKEN", "production", "cw-not-the-token")
    assert world.run("apply", "--yes").code == 0
    world.env["CHATWOOT_URL"] = chatwoot.url

    result = world.run("rotate", "CHATWOOT_API_TOKEN", "--environment", "production", "--yes")

    assert result.code == 1
    assert chatwoot.resets == 0
    assert (
        world.sandbox.secret_value(REPO, "production", "CHATWOOT_API_TOKEN") == "cw-not-the-token"
    )
    assert "cw-not-the-token" not in result.out + result.err
