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
from typing import Any

import pytest

from envmatrix.sandbox import Fault
from tests.rotation.test_strategy_postgres import pg  # noqa: F401 (password auth in front)
from tests.world import REPO, World

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
        ("probe", "--json"),
        ("rotation", "status", "--json"),
        ("rotation", "due"),
        ("rotation", "calendar", "--ics", str(out / "rotations.ics")),
        ("audit", "--json"),
        ("import", "-r", REPO, "--mount", world.vault.mount, "--out", str(out / "import.yaml")),
        ("import", "--organization", "occ-labs", "--mount", world.vault.mount, "--json"),
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


# -- every rotation strategy and the supabase probe, with debug on ----------------------------
# Each runs `envmatrix rotate` in a subprocess with ENVMATRIX_DEBUG=1 against its real provider
# (PostgreSQL, moto, the Supabase stand-in, the example command rotator). Values the provider
# mints (an AWS secret access key, a Supabase key) reach no envmatrix code before a library
# could log them: only an allow-listed log keeps them off stdout/stderr.

ADMIN_CANARY = f"{CANARY}-admin-credential"
_GCP_ADMIN_KEY: dict[str, str] = {}  # the gcp strategy's admin key file, for the test to store


def _rotation_for(
    strategy: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], dict[str, str], str]:
    """(rotation block, Vault values at apps/production/api, stdin) for `strategy`, its provider
    ready; admin credentials go into os.environ, which the CLI subprocess inherits."""
    from tests.rotation.rotation_support import echo_rotation

    monkeypatch.setenv("ENVMATRIX_DEBUG", "1")
    values = {"token": f"{CANARY}-old-token", "client_id": f"{CANARY}-old-client-id"}
    if strategy in ("generate", "manual"):
        return {"max_age": "30d", "strategy": strategy}, values, f"{CANARY}-typed-value\n"
    if strategy == "command":
        return echo_rotation(tmp_path), values, ""
    if strategy == "postgres":
        from tests.rotation.test_strategy_postgres import _make_role

        server = request.getfixturevalue("pg")
        role = _make_role(server, "leak", values["token"])
        # trust auth for the admin: the password is never checked, so it can be a canary
        monkeypatch.setenv("PG_LEAK_DSN", f"{server.dsn()} password={ADMIN_CANARY}")
        options = {
            "dsn_env": "PG_LEAK_DSN",
            "role": role,
            "password_key": "token",
            "username_key": "client_id",
        }
        return (
            {"max_age": "30d", "strategy": "postgres", "options": options},
            {**values, "client_id": role},
            "",
        )
    if strategy == "aws-iam":
        import boto3

        aws = request.getfixturevalue("aws_env")
        for name, value in aws.items():
            monkeypatch.setenv(name, value)
        iam = boto3.client(
            "iam", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name=aws["AWS_DEFAULT_REGION"]
        )
        iam.create_user(UserName="leak-deployer")
        key = iam.create_access_key(UserName="leak-deployer")["AccessKey"]
        options = {
            "user": "leak-deployer",
            "endpoint_url_env": "AWS_ENDPOINT_URL",
            "id_key": "client_id",
            "secret_key": "token",
            "test_delay": 0,
        }
        return (
            {"max_age": "30d", "strategy": "aws-iam", "options": options},
            {"client_id": key["AccessKeyId"], "token": key["SecretAccessKey"]},
            "",
        )
    if strategy == "gcp-service-account-key":
        from tests.standins.gcp_iam import GcpIamStandIn

        iam = GcpIamStandIn()
        iam.__enter__()
        request.addfinalizer(lambda: iam.__exit__(None, None, None))
        account, admin = (
            "leak@occ-demo.iam.gserviceaccount.com",
            "admin@occ-demo.iam.gserviceaccount.com",
        )
        iam.add_account(account)
        iam.add_account(admin, manages=(account,))
        _GCP_ADMIN_KEY["value"] = iam.new_key_file(admin)  # goes to apps/production/other
        options = {
            "service_account": account,
            "iam_url": iam.url,
            "credentials_secret": "OTHER",
            "key": "token",
            "test_delay": 0,
        }
        return (
            {"max_age": "30d", "strategy": strategy, "options": options},
            {**values, "token": iam.new_key_file(account)},
            "",
        )
    assert strategy == "supabase-api-key"
    from tests.standins.supabase import SupabaseSandbox

    sb = SupabaseSandbox(access_token=f"sbp_{ADMIN_CANARY}", project_ref="demo").start()
    request.addfinalizer(sb.stop)
    monkeypatch.setenv("SB_LEAK_PAT", f"sbp_{ADMIN_CANARY}")
    options = {
        "project_ref": "demo",
        "api_url": sb.url,
        "access_token_env": "SB_LEAK_PAT",
        "project_url": sb.url,
        "key": "token",
        "test_delay": 0,
    }
    return (
        {"max_age": "30d", "strategy": "supabase-api-key", "options": options},
        {**values, "token": sb.add_secret_key("seeded")},
        "",
    )


@pytest.mark.parametrize(
    "strategy",
    [
        "generate",
        "manual",
        "command",
        "postgres",
        "aws-iam",
        "supabase-api-key",
        "gcp-service-account-key",
    ],
)
def test_rotations_with_debug_on_show_no_value(
    strategy: str,
    tmp_path: Path,
    vault: Any,
    vault_env: dict[str, str],
    sandbox: Any,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from envmatrix.secret import SecretValue
    from tests.rotation.rotation_support import load, run_cli, sync_all, trust_initial
    from tests.rotation.rotation_support import write_policy as write_rotation_policy

    rotation, values, stdin = _rotation_for(strategy, tmp_path, request, monkeypatch)
    path = write_rotation_policy(tmp_path, vault.mount, rotation, ["production"])
    if strategy == "aws-iam":  # the key pair is one group: both secrets declare the rotation
        document = json.loads(path.read_text())
        document["secrets"]["API_CLIENT_ID"]["rotation"] = rotation
        path.write_text(json.dumps(document))
    load(path)
    vault.write_values("apps/production/api", {k: SecretValue(v) for k, v in values.items()})
    other = f"{CANARY}-other"
    if strategy == "gcp-service-account-key":
        other = _GCP_ADMIN_KEY.pop("value")  # OTHER holds the admin key file
    vault.write_values("apps/production/other", {"value": SecretValue(other)})
    trust_initial(tmp_path, {"production": values["token"]})
    sync_all(path, vault, sandbox)

    runs = [
        run_cli(
            ["rotate", "API_TOKEN", "--policy", str(path), "--yes", *flags],
            vault_env,
            sandbox,
            stdin=stdin,
        )
        for flags in ([], ["--json"])
    ]
    assert runs[0].returncode == 0, runs[0].stderr[-2000:]
    versions = vault.read_entry("apps/production/api").version
    held = [vault.read_values("apps/production/api", v) for v in range(1, versions + 1)]
    secrets = {
        value.reveal()
        for version in held
        for key, value in version.items()
        if not (strategy == "postgres" and key == "client_id")
    }  # a role name
    assert len({v["token"].reveal() for v in held}) >= 2  # the rotation really made a value
    secrets |= {ADMIN_CANARY, stdin.strip(), other} - {""}
    if strategy == "gcp-service-account-key":  # each key file's private key on its own, too
        secrets |= {
            json.loads(s)["private_key"] for s in (other, *(v["token"].reveal() for v in held))
        }
    shown = "\n".join(run.stdout + run.stderr for run in runs)
    assert "DEBUG http: GET /v1/" in shown  # debug was on: Vault reads are logged, by path
    for secret in secrets:
        assert secret not in shown, f"{strategy}: a value reached the output"
    assert CANARY not in shown


def test_supabase_probe_with_debug_on_shows_no_value(world: World) -> None:
    from tests.standins.supabase import SupabaseSandbox

    world.seed()
    with SupabaseSandbox(access_token="sbp_unused", project_ref="demo") as sb:
        key, url = sb.add_secret_key("probe"), sb.url
        world.set_vault_value("SUPABASE_URL", "production", url)
        world.set_vault_value("SUPABASE_SERVICE_KEY", "production", key)
        world.env["ENVMATRIX_DEBUG"] = "1"
        ok = world.run("probe", "supabase", "--environment", "production")
        world.set_vault_value("SUPABASE_SERVICE_KEY", "production", f"sb_secret_{CANARY}")
        refused = world.run("probe", "supabase", "--environment", "production", "--json")
    assert ok.code == 0, ok.err
    assert refused.code == 1, refused.out + refused.err
    shown = ok.out + ok.err + refused.out + refused.err
    assert "INFO http: GET (path not shown) -> 200" in shown  # the project URL is a Vault value
    for secret in (key, url, CANARY):
        assert secret not in shown


def test_verify_fingerprint_with_debug_on_shows_no_value(
    world: World, vault_admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """apply's transit HMACs and `verify --fingerprint` (one received value wrong): no canary in
    output, logs or envmatrix's documents; the documents hold HMACs, never the values."""
    import uuid

    caplog.set_level(logging.DEBUG)
    transit = f"transit-{uuid.uuid4().hex[:12]}"
    vault_admin.sys.enable_secrets_engine("transit", path=transit)
    vault_admin.secrets.transit.create_key(name="envmatrix", mount_point=transit)
    try:
        line = f"  mount: {world.vault.mount}\n"
        text = world.policy_path.read_text()
        world.write_policy(text.replace(line, f"{line}  transit: {{mount: {transit}}}\n"))
        world.seed()
        planted = plant(world)
        world.env["ENVMATRIX_DEBUG"] = "1"
        applied = world.run("apply", "--yes")
        assert applied.code == 0, applied.err[-300:]
        for (name, env), value in planted.items():
            if env == "production":
                world.env[name] = world.sandbox.secret_value(REPO, env, name) or value
        world.env["ZOHO_CLIENT_ID"] = f"{CANARY}-outside-write"
        verified = world.run("verify", "-e", "production", "--source", "environ", "--fingerprint")
        assert verified.code == 1 and "ZOHO_CLIENT_ID:" in verified.out
        documents = envmatrix_documents(world)
        assert '"hmac"' in documents
        for where, text in (
            ("output", applied.out + applied.err + verified.out + verified.err),
            ("logs", caplog.text),
            ("vault documents", documents),
        ):
            assert CANARY not in text, f"a value leaked into {where}"
        assert "DEBUG" in applied.err + verified.err + caplog.text
    finally:
        vault_admin.sys.disable_secrets_engine(path=transit)


def test_notifications_with_debug_on_carry_no_value(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """plan/apply/rotation due --notify with canaries everywhere: neither the messages nor the
    output nor envmatrix's documents hold a value (or the channel URL)."""
    import os

    from tests.envmatrix.test_notify import Receiver

    for name in list(os.environ):
        if name == "CI" or name.startswith("GITHUB_"):
            monkeypatch.delenv(name)
    caplog.set_level(logging.DEBUG)
    receiver = Receiver()
    try:
        world.write_policy(
            world.policy_path.read_text()
            + "\nnotifications:\n  - slack: {webhook_url_env: SLACK_WEBHOOK_URL}\n"
            + "  - webhook: {url_env: ENVMATRIX_WEBHOOK_URL}\n"
        )
        world.env.update(
            SLACK_WEBHOOK_URL=receiver.url(f"/slack/{CANARY}-url"),
            ENVMATRIX_WEBHOOK_URL=receiver.url("/hook"),
            ENVMATRIX_DEBUG="1",
        )
        world.seed()
        planted = plant(world)
        results = [world.run("apply", "--yes", "--notify")]
        world.set_vault_value("SHOPIFY_ADMIN_TOKEN", "production", " ")
        world.sandbox.advance_clock(5)
        world.sandbox.write_secret_outside(REPO, "production", "ZOHO_CLIENT_ID", f"{CANARY}-x")
        results.append(world.run("plan", "--notify"))
        results.append(world.run("apply", "--yes", "--notify"))
        results.append(world.run("rotation", "due", "--notify", "--at", "2099-01-01T00:00:00Z"))
        assert receiver.on("/hook"), [r.err[-300:] for r in results]
        sent = json.dumps([body for _, body in receiver.received])
        shown = "\n".join(r.out + r.err for r in results) + caplog.text
        assert "SHOPIFY_ADMIN_TOKEN" in sent and "rotation-overdue" in sent
        for value in planted.values():
            assert value not in sent
        assert CANARY not in sent and CANARY not in shown
        assert CANARY not in envmatrix_documents(world)
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def test_every_declared_probe_with_debug_on_shows_no_value(world: World, tmp_path: Path) -> None:
    """Each preset with a working and a wrong credential, ENVMATRIX_DEBUG=1: the values (the
    ones sent and the ones a provider echoes or mints) appear nowhere in what a user sees."""
    from tests.envmatrix.support_gates import example_policy
    from tests.envmatrix.test_probes_declared import Providers, declare, put, seed
    from tests.standins.ga_mcp import GoogleAnalyticsMcp
    from tests.standins.services import Chatwoot, ShopifyAdmin, ZohoAccounts
    from tests.standins.supabase import SupabaseSandbox

    with (
        ZohoAccounts() as zoho,
        ShopifyAdmin() as shopify,
        Chatwoot() as chatwoot,
        GoogleAnalyticsMcp() as ga,
        SupabaseSandbox() as supabase,
    ):
        providers = Providers(zoho, shopify, chatwoot, ga, supabase)
        assert example_policy(tmp_path, world.vault.mount, declare(providers)) == world.policy_path
        good = seed(world.vault, providers, "staging")
        seed(world.vault, providers, "production")
        wrong = {
            "SUPABASE_SERVICE_KEY": f"sb_secret_{CANARY}",
            "ZOHO_REFRESH_TOKEN": f"1000.{CANARY}",
            "SHOPIFY_ADMIN_TOKEN": f"shpat_{CANARY}",
            "CHATWOOT_API_TOKEN": CANARY,
            "GA_MCP_SERVICE_ACCOUNT_JSON": ga.create_key().replace("ga-mcp@", f"{CANARY}@"),
        }
        for name, value in wrong.items():
            put(world.vault, name, "production", value)
        world.env["ENVMATRIX_DEBUG"] = "1"
        runs = [
            world.run("probe", "--environment", "staging"),
            world.run("probe", "--environment", "staging", "--json"),
            world.run("probe", "--environment", "production"),
            world.run("probe", "--json"),
        ]
        minted = set(ga.access_tokens)  # the access tokens Google's stand-in handed out
    assert [r.code for r in runs] == [0, 0, 1, 1], [r.out + r.err for r in runs]
    shown = "\n".join(r.out + r.err for r in runs)
    # debug really was on: the probes' requests are logged, without their paths
    assert "INFO http: POST (path not shown) -> 200" in shown
    for value in [*good.values(), *wrong.values(), *minted]:
        assert value not in shown
    assert CANARY not in shown and "PRIVATE KEY" not in shown


def test_guided_manual_rotations_with_debug_on_show_no_value(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zoho and Shopify rotated by hand with ENVMATRIX_DEBUG=1: a value the probe refuses (kept
    open, then resumed), a value it accepts, the failed probes notified: neither the new values
    nor the old ones appear in what a user sees, the logs, the messages or envmatrix's
    documents (the staged copy under envmatrix/pending/ is a secret and is skipped)."""
    import os

    from tests.envmatrix.support_gates import example_policy
    from tests.envmatrix.test_notify import Receiver
    from tests.envmatrix.test_probes_declared import Providers, declare, put, seed
    from tests.standins.ga_mcp import GoogleAnalyticsMcp
    from tests.standins.services import Chatwoot, ShopifyAdmin, ZohoAccounts
    from tests.standins.supabase import SupabaseSandbox

    for name in list(os.environ):
        if name == "CI" or name.startswith("GITHUB_"):
            monkeypatch.delenv(name)
    caplog.set_level(logging.DEBUG)
    receiver = Receiver()
    with (
        ZohoAccounts() as zoho,
        ShopifyAdmin() as shopify,
        Chatwoot() as chatwoot,
        GoogleAnalyticsMcp() as ga,
        SupabaseSandbox() as supabase,
    ):
        providers = Providers(zoho, shopify, chatwoot, ga, supabase)
        edit = declare(providers)

        def with_hook(document: dict[str, Any]) -> None:
            edit(document)
            document["notifications"] = [{"webhook": {"url_env": "ENVMATRIX_WEBHOOK_URL"}}]

        example_policy(tmp_path, world.vault.mount, with_hook)
        world.seed()
        good = seed(world.vault, providers, "staging")
        world.env.update(ENVMATRIX_DEBUG="1", ENVMATRIX_WEBHOOK_URL=receiver.url("/hook"))
        wrong, new_token = f"shpat_{CANARY}", shopify.add_token()
        new_refresh = zoho.add_refresh_token(good["ZOHO_CLIENT_ID"])
        files = {}
        for name, value in (("wrong", wrong), ("shop", new_token), ("zoho", new_refresh)):
            files[name] = tmp_path / f"{name}.txt"
            files[name].write_text(value + "\n")
        rotate = ("rotate", "-e", "staging", "--yes", "--notify")
        runs = [
            world.run(*rotate, "SHOPIFY_ADMIN_TOKEN", "--from-file", str(files["wrong"])),
            world.run(*rotate, "SHOPIFY_ADMIN_TOKEN", "--resume", "--json"),
        ]
        put(world.vault, "CHATWOOT_API_TOKEN", "staging", f"{CANARY}-chatwoot")
        runs.append(world.run("probe", "-e", "staging", "--notify"))
        shopify.tokens.add(wrong)  # the owner fixes it at the provider
        runs += [
            world.run(*rotate, "SHOPIFY_ADMIN_TOKEN", "--resume"),
            world.run(*rotate, "ZOHO_REFRESH_TOKEN", "--from-file", str(files["zoho"])),
        ]
    try:
        assert [r.code for r in runs] == [1, 1, 1, 0, 0], [r.err[-400:] for r in runs]
        sent = json.dumps([body for _, body in receiver.received])
        assert "rotation-needs-owner" in sent and "probe-failed" in sent
        shown = "\n".join(r.out + r.err for r in runs) + caplog.text
        assert "api-console.zoho.com" in shown and "DEBUG" in shown  # guided, debug on
        documents = envmatrix_documents(world)
        for value in [*good.values(), wrong, new_token, new_refresh]:
            assert value not in shown and value not in sent and value not in documents
        assert CANARY not in shown + sent + documents
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
