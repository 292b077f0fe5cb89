"""Failed probes reach owners and CI: notifications from `probe` and from the flags' probes
`apply` runs (a channel that fails to deliver is not recorded, so the next run sends again),
workflow annotations from `probe` in GitHub Actions, and probes withheld in pull-request runs of
`flags` and `apply` unless `--allow-pull-request`. End to end on OpenBao, the GitHub sandbox and
the providers' stand-ins; CI and GITHUB_* are cleared so the tests behave the same everywhere."""

from __future__ import annotations

import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from envmatrix.render.actions import publish_probe
from envmatrix.views.probe import ProbeReport, ProbeResult
from tests.envmatrix.support_gates import example_policy
from tests.envmatrix.test_probes_declared import Providers, declare, providers, put, seed
from tests.world import World

__all__ = ["providers"]
CANARY = "CANARY-probe-report-3e8d"


class FlakyReceiver:
    """A webhook receiver that answers `failures` errors (HTTP 503) before it answers 200."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.delivered: list[tuple[str, Any]] = []
        self.refused = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                failing = outer.failures > 0
                if failing:
                    outer.failures -= 1
                    outer.refused += 1
                else:
                    outer.delivered.append((self.path, json.loads(body)))
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def notices(self, path: str) -> list[dict[str, Any]]:
        return [n for p, body in self.delivered if p == path for n in body["notices"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name == "CI" or name.startswith("GITHUB_"):
            monkeypatch.delenv(name)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"  # nothing listens there: connection refused


def _world(world: World, providers: Providers, flag_probe: bool = False) -> dict[str, str]:
    edit = declare(providers)

    def with_channels(document: dict[str, Any]) -> None:
        edit(document)
        document["notifications"] = [
            {"webhook": {"url_env": "HOOK_A"}},
            {"webhook": {"url_env": "HOOK_B"}},
        ]
        if flag_probe:
            flag = document["flags"]["FEATURE_AI_ESCALATIONS"]
            flag["requires"], flag["probe"] = ["SHOPIFY_ADMIN_TOKEN"], "shopify"

    example_policy(world.policy_path.parent, world.vault.mount, with_channels)
    world.seed()
    good = seed(world.vault, providers, "staging")
    seed(world.vault, providers, "production")
    return good


@pytest.mark.parametrize("failure", ["http-503", "connection-refused"])
def test_an_undelivered_probe_failure_is_sent_again_on_the_next_run(
    world: World, providers: Providers, clean_env: None, failure: str
) -> None:
    _world(world, providers)
    put(world.vault, "SHOPIFY_ADMIN_TOKEN", "production", f"shpat_{CANARY}")
    steady, flaky = FlakyReceiver(), FlakyReceiver(failures=1 if failure == "http-503" else 0)
    try:
        world.env["HOOK_A"] = steady.url("/a")
        world.env["HOOK_B"] = flaky.url("/b") if failure == "http-503" else _closed_port_url()
        first = world.run("probe", "-e", "production", "--notify")
        assert first.code == 1
        assert "HOOK_B" in first.err and ("503" in first.err or "unreachable" in first.err)
        [told] = steady.notices("/a")
        assert (told["kind"], told["secret"], told["environment"]) == (
            "probe-failed",
            "SHOPIFY_ADMIN_TOKEN",
            "production",
        )
        assert "owner: integrations" in told["detail"] and "HTTP 401" in told["detail"]
        assert flaky.notices("/b") == []

        world.env["HOOK_B"] = flaky.url("/b")  # the channel works again
        second = world.run("probe", "-e", "production", "--notify")
        assert second.code == 1
        assert [n["secret"] for n in flaky.notices("/b")] == ["SHOPIFY_ADMIN_TOKEN"]
        assert len(steady.notices("/a")) == 1  # the channel that was told is not told again

        third = world.run("probe", "-e", "production", "--notify")
        assert third.code == 1
        assert len(flaky.notices("/b")) == 1 and len(steady.notices("/a")) == 1
        sent = json.dumps(steady.delivered + flaky.delivered)
        assert CANARY not in sent and CANARY not in first.err + second.err + third.err
    finally:
        steady.close()
        flaky.close()


def test_apply_notifies_the_flags_failed_probe_and_pull_request_runs_withhold_it(
    world: World, providers: Providers, clean_env: None, tmp_path: Path
) -> None:
    _world(world, providers, flag_probe=True)
    put(world.vault, "SHOPIFY_ADMIN_TOKEN", "production", f"shpat_{CANARY}")
    hook = FlakyReceiver()
    try:
        world.env["HOOK_A"] = world.env["HOOK_B"] = hook.url("/hook")
        applied = world.run("apply", "--yes", "--json", "--notify")
        assert applied.code == 1, applied.err  # the production flag was refused
        assert "probe shopify failed" in applied.out
        kinds = {(n["kind"], n["secret"], n["environment"]) for n in hook.notices("/hook")}
        assert ("probe-failed", "SHOPIFY_ADMIN_TOKEN", "production") in kinds
        assert CANARY not in json.dumps(hook.delivered) + applied.out + applied.err
    finally:
        hook.close()

    # a pull-request run: the probes are withheld, and the output says so
    world.env["GITHUB_EVENT_NAME"] = "pull_request"
    before = len(providers.shopify.received)
    flags = world.run("flags", "--json")
    assert "probes not run: a pull-request-triggered run" in flags.err
    rows = {r["logical_environment"]: r for r in json.loads(flags.out)["flags"]}
    assert rows["staging"]["ready"] is False
    assert "probes not run" in rows["staging"]["blocking"][0]["detail"]
    assert len(providers.shopify.received) == before  # nothing was sent

    allowed = world.run("flags", "--json", "--allow-pull-request")
    rows = {r["logical_environment"]: r for r in json.loads(allowed.out)["flags"]}
    assert rows["staging"]["ready"] is True and rows["production"]["ready"] is False
    assert "probes not run" not in allowed.err
    assert len(providers.shopify.received) > before

    check = world.run("flags", "check", "FEATURE_AI_ESCALATIONS", "-e", "staging")
    assert check.code == 1 and "probes not run" in check.err
    check = world.run(
        "flags", "check", "FEATURE_AI_ESCALATIONS", "-e", "staging", "--allow-pull-request"
    )
    assert check.code == 0, check.out + check.err


def test_apply_in_a_pull_request_run_withholds_the_flags_probes_unless_allowed(
    world: World, providers: Providers, clean_env: None
) -> None:
    _world(world, providers, flag_probe=True)
    world.env.update(HOOK_A="", HOOK_B="", GITHUB_EVENT_NAME="pull_request_target")
    withheld = world.run("apply", "--yes", "-e", "staging")
    assert withheld.code == 1  # the flag's write is refused, the rest lands
    assert withheld.err.count("probes not run: a pull-request-triggered run") == 1
    assert "FEATURE_AI_ESCALATIONS" not in _flag_values(world)
    allowed = world.run("apply", "--yes", "-e", "staging", "--allow-pull-request")
    assert allowed.code == 0, allowed.err
    assert "probes not run" not in allowed.err
    assert _flag_values(world).get("FEATURE_AI_ESCALATIONS") == "true"


def _flag_values(world: World) -> dict[str, str]:
    result = world.run("flags", "--json", "--no-probe", "-e", "staging")
    return {
        r["flag"]: r["github_variable"]
        for r in json.loads(result.out)["flags"]
        if r["github_variable"] is not None
    }


def test_probe_in_github_actions_annotates_each_failure_naming_secret_and_owner(
    world: World, providers: Providers, clean_env: None, tmp_path: Path
) -> None:
    _world(world, providers)
    put(world.vault, "CHATWOOT_API_TOKEN", "production", CANARY)
    put(world.vault, "ZOHO_REFRESH_TOKEN", "production", f"1000.{CANARY}")
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs.txt"
    world.env.update(
        HOOK_A="",
        HOOK_B="",
        GITHUB_ACTIONS="true",
        GITHUB_STEP_SUMMARY=str(summary),
        GITHUB_OUTPUT=str(outputs),
    )
    result = world.run("probe", "-e", "production")
    assert result.code == 1
    errors = [line for line in result.out.splitlines() if line.startswith("::error ")]
    assert len(errors) == 2
    titles = {line.split("::")[1] for line in errors}
    assert titles == {
        "error title=Probe chatwoot failed%3A CHATWOOT_API_TOKEN in production (owner%3A support)",
        "error title=Probe zoho failed%3A ZOHO_REFRESH_TOKEN in production (owner%3A integrations)",
    }
    assert "failed=ZOHO_REFRESH_TOKEN,CHATWOOT_API_TOKEN" in outputs.read_text() or (
        "failed=CHATWOOT_API_TOKEN,ZOHO_REFRESH_TOKEN" in outputs.read_text()
    )
    assert "probes_failed=2" in outputs.read_text()
    assert "❌ failed" in summary.read_text()
    for text in (result.out, result.err, summary.read_text(), outputs.read_text()):
        assert CANARY not in text
    # --json: annotations go to stderr, the JSON stays clean on stdout
    as_json = world.run("probe", "-e", "production", "--json")
    assert json.loads(as_json.out)["summary"]["failed"] == 2
    assert as_json.err.count("::error ") == 2


@pytest.mark.parametrize(
    ("detail", "escaped"),
    [
        ("50% refused\nsecond line", "50%25 refused%0Asecond line"),
        ("a\r\nb", "a%0D%0Ab"),
        ("::set-output name=x::y", "::set-output name=x::y"),
    ],
)
def test_probe_annotations_escape_workflow_commands(detail: str, escaped: str) -> None:
    failed = ProbeResult("custom", "prod,eu", False, detail, "API:KEY", "ops,team")
    [line] = publish_probe(ProbeReport((failed,)), {})
    head, _, message = line.partition("::")[2].partition("::")
    assert message == escaped
    assert head == "error title=Probe custom failed%3A API%3AKEY in prod%2Ceu (owner%3A ops%2Cteam)"
    withheld = publish_probe(ProbeReport((), "probes not run: x"), {})
    assert withheld == ["::warning title=Probes withheld::probes not run: x"]
