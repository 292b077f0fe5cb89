"""The bad-input corpus: policy files, arguments, environment variables and server answers.

Each case must end with one clear line on stderr, the right exit code (3 for policy/usage, 1 for
runtime), no traceback, and nothing written to GitHub or Vault.
"""

from __future__ import annotations

import http.server
import json
import os
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


def plan_file(changes: object, **fields: object) -> Setup:
    """A saved plan whose changes (or other fields) are junk: `apply FILE --yes`."""

    def setup(w: World, tmp: Path) -> tuple[str, ...]:
        document = {
            "format": "envmatrix-plan",
            "version": 1,
            "policy": str(w.policy_path),
            "policy_sha256": "0" * 64,
            "environments": ["staging"],
            "fingerprint": "f",
            "changes": changes,
            **fields,
        }
        path = tmp / "plan.json"
        path.write_text(json.dumps(document))
        return ("apply", str(path), "--yes")

    return setup


def special_file(make: Callable[[Path], Path], *argv: str) -> Setup:
    """A FIFO, a device or another special file where a command reads a file: FILE in argv."""

    def setup(w: World, tmp: Path) -> tuple[str, ...]:
        path = make(tmp)
        return tuple(a.replace("FILE", str(path)) for a in argv)

    return setup


def fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "fifo")
    return tmp / "fifo"


CHANGE = {
    "action": "create",
    "kind": "secret",
    "repository": "occ-labs/operator-console",
    "environment": "staging",
    "name": "ZOHO_CLIENT_ID",
    "reason": "missing",
    "detail": "",
}
POSTGRES = "      strategy: manual                  # changes only in Zoho's API console"
GITHUB_REPOSITORIES = "  repositories: [occ-labs/operator-console]"
MISSPELT_REPOSITORY = "occ-labs/operator-consle"

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
    "strategy option misspelt (postgres mode)": (
        policy_text(
            POSTGRES,
            "      strategy: postgres\n"
            "      options: {dsn_env: PG_ADMIN_DSN, mdoe: alternating, roles: [a, b]}",
        ),
        3,
        "rotation.options.mdoe: unknown key 'mdoe'",
    ),
    "strategy option of the wrong type": (
        policy_text(POSTGRES, "      strategy: generate\n      options: {length: many}"),
        3,
        "rotation.options.length",
    ),
    "strategy option missing": (
        policy_text(POSTGRES, "      strategy: aws-iam\n      options: {on_revoke: delete}"),
        3,
        "rotation.options.user: required key is missing",
    ),
    "strategy mode without its roles": (
        policy_text(
            POSTGRES,
            "      strategy: postgres\n"
            "      options: {dsn_env: PG_ADMIN_DSN, mode: alternating, role: app}",
        ),
        3,
        "mode alternating takes roles",
    ),
    "repository '..'": (
        policy_text(GITHUB_REPOSITORIES, "  repositories: [occ-labs/..]"),
        3,
        "'.' and '..' are not GitHub names",
    ),
    "repository '.'": (
        policy_text(GITHUB_REPOSITORIES, "  repositories: [./operator-console]"),
        3,
        "'.' and '..' are not GitHub names",
    ),
    "GitHub environment '..'": (
        policy_text("staging:    {github: staging}", "staging:    {github: '..'}"),
        3,
        "'.' and '..' are not environment names",
    ),
    "GitHub environment '.'": (
        policy_text("production: {github: production}", "production: {github: .}"),
        3,
        "'.' and '..' are not environment names",
    ),
    "Vault path with a '.' segment": (
        policy_text("vault: apps/{environment}/shopify", "vault: ./apps/{environment}/shopify"),
        3,
        "must not contain '.' or '..' segments",
    ),
    "Vault path in envmatrix's space": (
        policy_text("vault: apps/{environment}/shopify", "vault: envmatrix/{environment}/shopify"),
        3,
        "envmatrix/ is envmatrix's own",
    ),
    # validate lists problems on stdout (tests/envmatrix/test_safeio.py: a FIFO there too)
    "policy is a FIFO": (special_file(fifo, "plan", "--policy", "FILE"), 3, "a FIFO"),
    "policy is /dev/zero": (args("plan", "--policy", "/dev/zero"), 3, "a character device"),
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
    "apply given a FIFO": (special_file(fifo, "apply", "FILE", "--yes"), 3, "a FIFO"),
    "plan file change not an object": (plan_file(["create"]), 3, "change 1 is not a planned"),
    "plan file change with an unknown action": (
        plan_file([dict(CHANGE, action="overwrite")]),
        3,
        "change 1 is not a planned change",
    ),
    "plan file change with an extra field": (
        plan_file([CHANGE, dict(CHANGE, sudo=True)]),
        3,
        "change 2 is not a planned change (unknown",
    ),
    "plan file change without a name": (
        plan_file([{k: v for k, v in CHANGE.items() if k != "name"}]),
        3,
        "no 'name'",
    ),
    "plan file change with a bad timestamp": (
        plan_file([dict(CHANGE, github_updated_at="yesterday")]),
        3,
        "change 1",
    ),
    "plan file changes not a list": (plan_file({"a": 1}), 3, "changes malformed"),
    "plan file environments not a list": (
        plan_file([], environments="staging"),
        3,
        "environments malformed",
    ),
    "plan file nested too deeply": (
        file_arg(b'{"format": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "apply", "FILE", "--yes"),
        3,
        "not a saved envmatrix plan",
    ),
    "matrix --out into a missing folder": (
        args("matrix", "--out", "/nonexistent/dir/matrix.md", "--format", "markdown"),
        3,
        "cannot write",
    ),
    "matrix --repository misspelt": (
        args("matrix", "-r", MISSPELT_REPOSITORY),
        3,
        "did you mean occ-labs/operator-console?",
    ),
    "scan --repository misspelt": (
        folder_arg("scan", "--workflows", "FOLDER", "-r", MISSPELT_REPOSITORY),
        3,
        "did you mean occ-labs/operator-console?",
    ),
    "verify --repository misspelt": (
        args("verify", "-e", "staging", "-r", MISSPELT_REPOSITORY),
        3,
        "did you mean occ-labs/operator-console?",
    ),
    "flags check --repository misspelt": (
        args(
            "flags",
            "check",
            "FEATURE_AI_ESCALATIONS",
            "-e",
            "staging",
            "-r",
            MISSPELT_REPOSITORY,
            "--no-probe",
        ),
        3,
        "did you mean occ-labs/operator-console?",
    ),
    "flags check of a misspelt flag": (
        args("flags", "check", "FEATURE_AI_ESCALATION", "-e", "staging", "--no-probe"),
        3,
        "did you mean FEATURE_AI_ESCALATIONS?",
    ),
    "plan --environment misspelt": (args("plan", "-e", "prodution"), 3, "did you mean production?"),
    "matrix --environment misspelt": (args("matrix", "-e", "stagng"), 3, "did you mean staging?"),
    "rotation status --environment misspelt": (
        args("rotation", "status", "-e", "prodution"),
        3,
        "did you mean production?",
    ),
    "verify --environment misspelt": (args("verify", "-e", "stagin"), 3, "did you mean staging?"),
    "repository '..' as --repository": (
        args("matrix", "-r", "occ-labs/.."),
        3,
        "is not targeted by the policy",
    ),
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
    "attempts zero": (env("ENVMATRIX_GITHUB_ATTEMPTS", "0"), 3, "ENVMATRIX_GITHUB_ATTEMPTS"),
    "attempts a fraction": (
        env("ENVMATRIX_GITHUB_ATTEMPTS", "2.5"),
        3,
        "ENVMATRIX_GITHUB_ATTEMPTS='2.5' is not",
    ),
    "max wait NaN": (env("ENVMATRIX_GITHUB_MAX_WAIT", "nan"), 3, "ENVMATRIX_GITHUB_MAX_WAIT"),
    "max wait infinite": (env("ENVMATRIX_GITHUB_MAX_WAIT", "inf"), 3, "ENVMATRIX_GITHUB_MAX_WAIT"),
    "backoff negative": (
        env("ENVMATRIX_GITHUB_BACKOFF", "-1"),
        3,
        "ENVMATRIX_GITHUB_BACKOFF='-1' is out of range",
    ),
    "secondary backoff huge": (
        env("ENVMATRIX_GITHUB_SECONDARY_BACKOFF", "1e12"),
        3,
        "ENVMATRIX_GITHUB_SECONDARY_BACKOFF",
    ),
    "timeout zero": (env("ENVMATRIX_GITHUB_TIMEOUT", "0"), 3, "ENVMATRIX_GITHUB_TIMEOUT"),
    "write interval NaN": (
        env("ENVMATRIX_GITHUB_WRITE_INTERVAL", "NaN"),
        3,
        "ENVMATRIX_GITHUB_WRITE_INTERVAL",
    ),
    "GitHub token with a newline": (
        env("GITHUB_TOKEN", "sandbox-token\nX-Injected: 1"),
        3,
        "GITHUB_TOKEN holds a line break",
    ),
    "GitHub token with a carriage return": (
        env("GITHUB_TOKEN", "sandbox\rtoken"),
        3,
        "GITHUB_TOKEN holds a line break",
    ),
    "Vault token with a newline": (
        env("VAULT_TOKEN", "root\nroot"),
        3,
        "VAULT_TOKEN holds a line break",
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
    "Vault wrong token": (
        env("VAULT_TOKEN", "s.not-a-token"),
        1,
        "the token is invalid, expired or revoked",
    ),
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
