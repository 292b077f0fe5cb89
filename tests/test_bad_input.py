"""The bad-input corpus: policy files, arguments, environment variables and server answers.

Each case must end with one clear line on stderr, the right exit code (3 for policy/usage, 1 for
runtime), no traceback, and nothing written to GitHub or Vault.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envmatrix.sandbox import Fault
from tests.world import World

WRITES = ("PUT", "POST", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def html_server() -> Iterator[str]:
    """Something at an HTTP address that is not GitHub or Vault: answers every path with HTML."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _page(self) -> None:
            body = b"<html><body><h1>Welcome to nginx!</h1></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_LIST = _page  # noqa: N815

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    return "http://127.0.0.1:9"


Setup = Callable[[World, Path], tuple[str, ...]]


def policy_text(old: str, new: str) -> Setup:
    def setup(w: World, tmp: Path) -> tuple[str, ...]:
        assert old in w.policy_path.read_text(), f"case no longer matches the policy: {old!r}"
        w.write_policy(w.policy_path.read_text().replace(old, new, 1))
        return ("plan",)

    return setup


def raw_policy(data: bytes) -> Setup:
    def setup(w: World, tmp: Path) -> tuple[str, ...]:
        w.policy_path.write_bytes(data)
        return ("plan",)

    return setup


def args(*argv: str) -> Setup:
    return lambda w, tmp: argv


def env(name: str, value: str | None, *argv: str) -> Setup:
    def setup(w: World, tmp: Path) -> tuple[str, ...]:
        if value is None:
            w.env.pop(name, None)
            w.monkeypatch.delenv(name, raising=False)
        else:
            w.env[name] = value
        return argv or ("plan",)

    return setup


def fault(f: Fault, *argv: str) -> Setup:
    def setup(w: World, tmp: Path) -> tuple[str, ...]:
        w.env["ENVMATRIX_GITHUB_ATTEMPTS"] = "2"
        w.sandbox.inject(f)
        return argv or ("apply", "--yes")

    return setup


def file_arg(content: bytes | None, *argv: str) -> Setup:
    def setup(w: World, tmp: Path) -> tuple[str, ...]:
        path = tmp / "given-file"
        if content is not None:
            path.write_bytes(content)
        return tuple(a.replace("FILE", str(path)) for a in argv)

    return setup


def folder_arg(*argv: str) -> Setup:
    def setup(w: World, tmp: Path) -> tuple[str, ...]:
        folder = tmp / "a-folder"
        folder.mkdir()
        return tuple(a.replace("FOLDER", str(folder)) for a in argv)

    return setup


CASES: dict[str, tuple[Setup, int, str]] = {
    # -- policy files --
    "unknown key": (
        policy_text("  prune: false", "  prune: false\n  prnue: true"),
        3,
        "unknown key 'prnue'",
    ),
    "wrong type": (policy_text("prune: false", "prune: 3"), 3, "github.prune"),
    "duplicate key": (policy_text("  ZOHO_CLIENT_ID:", "  SUPABASE_URL:"), 3, "duplicate key"),
    "bad cron": (policy_text('"0 9 15 * *"', '"61 9 15 * *"'), 3, "rotation.schedule"),
    "unknown owner": (policy_text("owner: data", "owner: analytics"), 3, "owner 'analytics'"),
    "unknown environment": (
        policy_text(
            "    vault: apps/{environment}/shopify\n    environments: [staging, production]",
            "    vault: apps/{environment}/shopify\n    environments: [staging, prd]",
        ),
        3,
        "environment 'prd'",
    ),
    "unknown flag requirement": (
        policy_text("requires: [SUPABASE_URL,", "requires: [SUPABASE_URI,"),
        3,
        "'SUPABASE_URI' is not declared",
    ),
    "invalid secret name": (
        policy_text("  CHATWOOT_API_TOKEN:", "  CHATWOOT-API-TOKEN:"),
        3,
        "must match",
    ),
    "unknown strategy": (
        policy_text("strategy: manual", "strategy: rotate-me"),
        3,
        "unknown strategy",
    ),
    "empty file": (raw_policy(b""), 3, "empty"),
    "binary junk": (raw_policy(bytes(range(256)) * 4), 3, "binary data"),
    "malformed YAML": (raw_policy(b"version: 1\nsecrets: {a: [}\n"), 3, "invalid YAML"),
    "oversize policy": (raw_policy(b"# " + b"x" * 1_100_000 + b"\nversion: 1\n"), 3, "larger than"),
    "policy is a list": (raw_policy(b"- version: 1\n"), 3, "must be a mapping"),
    "policy path is a directory": (args("plan", "--policy", "/"), 3, "cannot read"),
    "missing policy file": (
        args("plan", "--policy", "/nonexistent/policy.yaml"),
        3,
        "no such policy file",
    ),
    # -- arguments --
    "unknown command": (args("deploy"), 3, "No such command"),
    "unknown option": (args("plan", "--frobnicate"), 3, "No such option"),
    "unknown environment argument": (args("plan", "--environment", "qa"), 3, "--environment 'qa'"),
    "apply without --yes and no terminal": (args("apply"), 3, "--yes"),
    "apply given a policy as plan file": (
        file_arg(b"version: 1\n", "apply", "FILE", "--yes"),
        3,
        "not a saved plan",
    ),
    "apply given garbage JSON": (
        file_arg(b"{not json", "apply", "FILE", "--yes"),
        3,
        "not a saved envmatrix plan",
    ),
    "apply given other JSON": (
        file_arg(b'{"changes": []}', "apply", "FILE", "--yes"),
        3,
        "not a saved envmatrix plan",
    ),
    "apply given a missing plan": (file_arg(None, "apply", "FILE", "--yes"), 3, "not a saved plan"),
    "plan --out into a missing folder": (
        args("plan", "--out", "/nonexistent/dir/plan.json"),
        3,
        "cannot write",
    ),
    "plan --out onto a folder": (folder_arg("plan", "--out", "FOLDER"), 3, "cannot write"),
    "plan --json --out onto a folder": (
        folder_arg("plan", "--json", "--out", "FOLDER"),
        3,
        "cannot write",
    ),
    # -- environment variables --
    "no GitHub token": (env("GITHUB_TOKEN", None), 3, "GITHUB_TOKEN"),
    "no Vault address": (env("VAULT_ADDR", None), 3, "VAULT_ADDR"),
    "no Vault token": (env("VAULT_TOKEN", None), 3, "VAULT_TOKEN"),
    "Vault address without scheme": (env("VAULT_ADDR", "127.0.0.1:8200"), 3, "VAULT_ADDR"),
    "GitHub URL without scheme": (env("GITHUB_API_URL", "api.github.com"), 3, "GITHUB_API_URL"),
    "GitHub URL not http": (env("GITHUB_API_URL", "ftp://example.com"), 3, "GITHUB_API_URL"),
    "backoff not a number": (
        env("ENVMATRIX_GITHUB_BACKOFF", "fast"),
        3,
        "ENVMATRIX_GITHUB_BACKOFF",
    ),
    "write interval not a number": (
        env("ENVMATRIX_GITHUB_WRITE_INTERVAL", "1s"),
        3,
        "ENVMATRIX_GITHUB_WRITE_INTERVAL",
    ),
    "ENVMATRIX_POLICY missing file": (
        env("ENVMATRIX_POLICY", "/nonexistent.yaml"),
        3,
        "no such policy file",
    ),
    # -- server answers --
    "GitHub wrong token": (env("GITHUB_TOKEN", "not-the-token"), 1, "401"),
    "GitHub unreachable": (env("GITHUB_API_URL", closed_port_url()), 1, "GET"),
    "Vault unreachable": (env("VAULT_ADDR", closed_port_url()), 1, "unreachable"),
    "Vault wrong token": (env("VAULT_TOKEN", "s.not-a-token"), 1, "Vault denied read"),
    "GitHub HTML error page": (
        fault(Fault(operation="repos/get-all-environments", html=True)),
        1,
        "environments",
    ),
    "GitHub truncated JSON": (
        fault(Fault(operation="repos/get-all-environments", truncate=True)),
        1,
        "environments",
    ),
    "GitHub 404 for the repository": (
        fault(Fault(operation="repos/get-all-environments", status=404)),
        1,
        "404",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input(case: str, world: World, tmp_path: Path) -> None:
    setup, code, message = CASES[case]
    world.seed()
    state_before = world.vault.read_document("envmatrix/state/occ-labs/operator-console/production")
    argv = setup(world, tmp_path)
    result = world.run(*argv)
    assert result.code == code, result.err
    assert result.err.count("\n") == 1, result.err
    assert result.err.startswith("error: ")
    assert message in result.err
    assert result.out == ""  # stdout is for results (JSON included); errors go to stderr only
    assert "Traceback" not in result.out + result.err
    writes = {k: n for k, n in world.sandbox.request_counts().items() if k[0] in WRITES}
    assert writes == {}
    assert (
        world.vault.read_document("envmatrix/state/occ-labs/operator-console/production")
        == state_before
    )


@pytest.mark.parametrize("target", ["GITHUB_API_URL", "VAULT_ADDR"])
def test_not_github_or_vault_at_the_address(target: str, world: World, html_server: str) -> None:
    world.seed()
    world.env[target] = html_server
    world.env["ENVMATRIX_GITHUB_ATTEMPTS"] = "2"
    result = world.run("plan")
    assert result.code == 1
    assert result.err.count("\n") == 1 and result.err.startswith("error: ")
    assert html_server.split("//")[1] in result.err
    assert "Traceback" not in result.err
