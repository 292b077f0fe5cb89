"""Leak proofing across everything: canary values planted in Vault (and in the process
environment for `verify`) appear nowhere — not in stdout or stderr of any command or format, not
with debug logging on, not on error paths, not in any file written (plans, matrices, calendars,
step summaries, the audit database), not in envmatrix's own Vault documents (sync state, locks,
rotation journals).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from envmatrix.sandbox import Fault
from tests.world import World

CANARY = "CANARY-7f3a9c"


def canaries(world: World) -> dict[tuple[str, str], str]:
    return {
        (name, env): f"{CANARY}-{name}-{env}"
        for name, spec in world.policy.secrets.items()
        for env in spec.environments
    }


def plant(world: World) -> dict[tuple[str, str], str]:
    planted = canaries(world)
    for (name, env), value in planted.items():
        if name == "SUPABASE_URL":
            value = f"http://127.0.0.1:9/{value}"  # a URL, so the probe gets as far as a call
        world.set_vault_value(name, env, value)
    return planted


def envmatrix_documents(world: World) -> str:
    """Every document envmatrix keeps under <mount>/envmatrix/ (state, locks, journals)."""
    import hvac

    client = hvac.Client(url=world.env["VAULT_ADDR"], token=world.env["VAULT_TOKEN"])
    texts, pending = [], ["envmatrix/"]
    while pending:
        folder = pending.pop()
        try:
            keys = client.secrets.kv.v2.list_secrets(folder, mount_point=world.vault.mount)
        except hvac.exceptions.InvalidPath:
            continue
        for key in keys["data"]["keys"]:
            if key.endswith("/"):
                pending.append(folder + key)
            elif not folder.startswith("envmatrix/pending/"):  # staged values are secrets
                document = world.vault.read_document(folder + key)
                texts.append(json.dumps(document.data if document else None))
    client.adapter.close()
    return "\n".join(texts)


def test_no_value_anywhere(world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    world.seed()
    plant(world)
    world.env["ENVMATRIX_DEBUG"] = "1"
    world.env["ENVMATRIX_GITHUB_ATTEMPTS"] = "2"
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "deploy.yml").write_text(
        "jobs:\n  deploy:\n    environment: production\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ secrets.SUPABASE_URL }} ${{ secrets.SENTRY_DSN }}\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    commands = [
        ("validate",),
        ("plan",),
        ("plan", "--json", "--out", str(out / "plan.json")),
        ("apply", str(out / "plan.json"), "--yes", "--json"),
        ("plan", "--detailed-exitcode"),
        *[
            ("matrix", "--format", f, "--out", str(out / f"matrix.{f}"))
            for f in ("table", "markdown", "json", "html")
        ],
        ("matrix", "--workflows", str(workflows)),
        ("flags",),
        ("flags", "--json"),
        ("flags", "check", "FEATURE_AI_ESCALATIONS", "--environment", "production"),
        ("verify", "--environment", "production", "--source", "github"),
        ("verify", "--environment", "production", "--source", "vault", "--json"),
        ("scan", "--workflows", str(workflows), "--json"),
        ("probe", "supabase", "--environment", "production"),
        ("rotation", "status", "--json"),
        ("rotation", "due"),
        ("rotation", "calendar", "--ics", str(out / "rotations.ics")),
        ("audit", "--json"),
    ]
    results = [world.run(*c) for c in commands]
    assert [r.code for r in results[:5]] == [0, 0, 0, 0, 0], [r.err[-300:] for r in results[:5]]

    # error paths: a write GitHub refuses, a stale saved plan, Vault sealed off by a bad token
    world.set_vault_value("ZOHO_CLIENT_ID", "staging", f"{CANARY}-second-version")
    world.sandbox.inject(Fault(method="PUT", status=422))
    results.append(world.run("apply", "--yes", "--json"))
    results.append(world.run("apply", str(out / "plan.json"), "--yes"))
    world.sandbox.clear_faults()
    world.sandbox.inject(Fault(method="PUT", reset=True))
    results.append(world.run("apply", "--yes"))
    world.sandbox.clear_faults()

    # verify reading the environment of a CI job that has every value (and one empty)
    for (name, env), value in canaries(world).items():
        if env == "production":
            world.env[name] = value
    world.env["SUPABASE_SERVICE_KEY"] = ""
    world.env.update(
        GITHUB_ACTIONS="true",
        GITHUB_STEP_SUMMARY=str(out / "summary.md"),
        GITHUB_OUTPUT=str(out / "github_output"),
    )
    results.append(world.run("verify", "--environment", "production", "--source", "environ"))
    assert results[-1].code == 1

    shown = "\n".join(r.out + r.err for r in results)
    files = "\n".join(
        p.read_bytes().decode("utf-8", "replace")
        for p in tmp_path.rglob("*")
        if p.is_file() and "workflows" not in p.parts
    )
    logs = caplog.text
    documents = envmatrix_documents(world)
    for where, text in (
        ("output", shown),
        ("files", files),
        ("logs", logs),
        ("vault documents", documents),
    ):
        assert CANARY not in text, f"a value leaked into {where}"
    assert "DEBUG" in shown or "DEBUG" in logs  # debug logging really was on
    # the canaries really went through: GitHub holds them (decrypted by the sandbox)
    held = world.sandbox.secret_value("occ-labs/operator-console", "production", "ZOHO_CLIENT_ID")
    assert held == f"{CANARY}-ZOHO_CLIENT_ID-production"
    assert len(list(out.iterdir())) >= 7
