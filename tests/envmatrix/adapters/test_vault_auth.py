"""Vault login without a static token: AppRole, and GitHub Actions OIDC -> Vault JWT auth.

Real OpenBao (the session server, with the auth methods enabled at their default paths for one
test and disabled after) and a local stand-in for the Actions runner's ID-token endpoint that
signs real RS256 JWTs with a key the test generates; the jwt auth method trusts only that key.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import hvac
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from envmatrix.adapters import actions_oidc
from envmatrix.adapters.vault import VaultAdapter
from envmatrix.demo.openbao import OpenBaoDevServer
from envmatrix.errors import EnvmatrixError, UsageError
from envmatrix.secret import SecretValue
from tests.world import REPO, World

ISSUER = "https://token.actions.githubusercontent.com"
DEFAULT_AUDIENCE = "https://github.com/occ-labs"  # what GitHub puts in aud when none is asked for
ROLE = "envmatrix-production"
BODY_CANARY = "CANARY-RESPONSE-BODY-7c1d"
README_POLICY = """
path "secret/subkeys/*"            { capabilities = ["read"] }
path "secret/data/*"               { capabilities = ["read"] }
path "secret/data/envmatrix/*"     { capabilities = ["create", "read", "update", "delete"] }
path "secret/metadata/envmatrix/*" { capabilities = ["create", "read", "update", "delete", "list"] }
"""


# -- the Actions runner's ID token endpoint ---------------------------------------------------


class IdTokenIssuer:
    """Serves `GET /idtoken?api-version=2.0[&audience=A]` like the runner: `{"value": jwt}`."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.request_token = f"runner-request-token-{uuid.uuid4().hex}"
        self.environment = "production"
        self.issued: list[str] = []
        self.audiences: list[str | None] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/idtoken?api-version=2.0"

    @property
    def public_pem(self) -> str:
        public = self.key.public_key()
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode()

    def env(self) -> dict[str, str]:
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    def sign(self, audience: str | None) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": audience or DEFAULT_AUDIENCE,
            "sub": f"repo:{REPO}:environment:{self.environment}",
            "repository": REPO,
            "environment": self.environment,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        token = jwt.encode(claims, self.key, algorithm="RS256")
        self.issued.append(token)
        return token

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                if self.headers.get("Authorization") != f"bearer {issuer.request_token}":
                    return self._answer(401, {"message": f"bad request token {BODY_CANARY}"})
                if parts.path != "/idtoken" or query.get("api-version") != ["2.0"]:
                    return self._answer(404, {"message": BODY_CANARY})
                audience = query.get("audience", [None])[0]
                issuer.audiences.append(audience)
                self._answer(200, {"value": issuer.sign(audience)})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def issuer() -> Iterator[IdTokenIssuer]:
    server = IdTokenIssuer()
    yield server
    server.stop()


# -- Vault setup, the way an operator would do it ----------------------------------------------


@pytest.fixture
def mount_policy(vault_admin: hvac.Client, vault_mount: str) -> Iterator[str]:
    """The policy README.md gives ("Vault authentication in CI"), on this test's KV mount."""
    name = f"envmatrix-{vault_mount}"
    rules = README_POLICY.replace("secret/", f"{vault_mount}/")
    vault_admin.sys.create_or_update_policy(name, rules)
    yield name
    vault_admin.sys.delete_policy(name)


@pytest.fixture
def auth_method(vault_admin: hvac.Client) -> Iterator[Callable[[str, str], None]]:
    """Enable an auth method at a path for this test; every one is disabled (tokens revoked)."""
    enabled: list[str] = []

    def enable(method: str, path: str) -> None:
        vault_admin.sys.enable_auth_method(method, path=path)
        enabled.append(path)

    yield enable
    for path in enabled:
        vault_admin.sys.disable_auth_method(path)


@pytest.fixture
def approle(
    vault_admin: hvac.Client, auth_method: Callable[[str, str], None], mount_policy: str
) -> dict[str, str]:
    """AppRole `envmatrix-ci` at auth/approle/: the role id and a secret id for it."""
    auth_method("approle", "approle")
    approle = vault_admin.auth.approle
    approle.create_or_update_approle("envmatrix-ci", token_policies=[mount_policy], token_ttl="10m")
    role_id = approle.read_role_id("envmatrix-ci")["data"]["role_id"]
    secret_id = approle.generate_secret_id("envmatrix-ci")["data"]["secret_id"]
    return {"VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id}


def configure_jwt(
    admin: hvac.Client,
    issuer: IdTokenIssuer,
    policy: str,
    path: str = "jwt",
    audience: str = DEFAULT_AUDIENCE,
) -> None:
    """The jwt auth method trusting the test key, and a production role bound to this repo."""
    admin.auth.jwt.configure(
        jwt_validation_pubkeys=[issuer.public_pem], bound_issuer=ISSUER, path=path
    )
    admin.auth.jwt.create_role(
        ROLE,
        user_claim="sub",
        allowed_redirect_uris=[],
        role_type="jwt",
        bound_audiences=[audience],
        bound_claims={"repository": REPO, "environment": "production"},
        token_policies=[policy],
        token_ttl="10m",
        path=path,
    )


@pytest.fixture
def jwt_auth(
    vault_admin: hvac.Client,
    auth_method: Callable[[str, str], None],
    mount_policy: str,
    issuer: IdTokenIssuer,
) -> dict[str, str]:
    """JWT auth at auth/jwt/ with role envmatrix-production; the job's environment variables."""
    auth_method("jwt", "jwt")
    configure_jwt(vault_admin, issuer, mount_policy)
    return {"VAULT_AUTH_ROLE": ROLE, **issuer.env()}


def use_login(world: World, login: dict[str, str]) -> None:
    """The world's CLI environment with `login` instead of the root VAULT_TOKEN."""
    del world.env["VAULT_TOKEN"]
    world.env.update(login)


@pytest.fixture
def vault_tokens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Vault token envmatrix obtains by logging in during the test (for leak checks)."""
    tokens: list[str] = []
    for method in ("login_approle", "login_jwt"):
        original = getattr(VaultAdapter, method)

        def spy(self: VaultAdapter, *args: Any, _original: Any = original) -> None:
            _original(self, *args)
            tokens.append(self._client.token)

        monkeypatch.setattr(VaultAdapter, method, spy)
    return tokens


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- AppRole --------------------------------------------------------------------------------------


def test_approle_plan_and_verify_work_with_only_role_id_and_secret_id(
    world: World, approle: dict[str, str]
) -> None:
    world.seed()
    use_login(world, approle)
    plan = world.run("plan", "--json")
    assert plan.code == 0, plan.err
    assert plan.json()["summary"]["create"] > 0
    verify = world.run("verify", "--environment", "production", "--source", "vault")
    assert verify.code == 0, verify.out + verify.err


def test_approle_identity_names_the_role_and_the_token_obtained(
    vault_env: dict[str, str], vault_mount: str, approle: dict[str, str], vault_admin: hvac.Client
) -> None:
    environ = {"VAULT_ADDR": vault_env["VAULT_ADDR"], **approle}
    adapter = VaultAdapter.from_environment(vault_mount, environ)
    try:
        identity = adapter.identity()
    finally:
        adapter.close()
    assert identity.startswith("approle:envmatrix-ci token:approle accessor:")
    shown = identity.rsplit("accessor:", 1)[1]
    assert len(shown) == 9 and shown.endswith("…")  # a prefix, never the whole accessor
    accessors = vault_admin.list("auth/token/accessors")["data"]["keys"]
    (accessor,) = [a for a in accessors if a.startswith(shown[:-1])]
    looked_up = vault_admin.auth.token.lookup_accessor(accessor)["data"]
    assert looked_up["meta"] == {"role_name": "envmatrix-ci"}


def test_a_wrong_secret_id_fails_in_one_line_naming_the_login(
    world: World, approle: dict[str, str]
) -> None:
    wrong = f"{uuid.uuid4()}"
    use_login(world, {**approle, "VAULT_SECRET_ID": wrong})
    result = world.run("plan")
    assert result.code == 1
    line = one_error_line(result.err)
    assert line == (
        "error: Vault AppRole login at approle/ refused (400): check VAULT_ROLE_ID and "
        "VAULT_SECRET_ID (the secret id may have expired or run out of uses)"
    )
    assert wrong not in result.out + result.err
    assert approle["VAULT_ROLE_ID"] not in result.out + result.err


def test_an_approle_path_without_the_auth_method_says_so(
    world: World, approle: dict[str, str]
) -> None:
    use_login(world, {**approle, "VAULT_APPROLE_PATH": "ci-approle"})
    result = world.run("plan")
    assert result.code == 1
    assert one_error_line(result.err) == (
        "error: Vault AppRole login at ci-approle/ refused (403): is the approle auth method "
        "enabled there? (VAULT_APPROLE_PATH)"
    )


def test_the_readme_shows_the_policy_these_tests_log_in_with() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    assert README_POLICY.strip() in readme


def test_vault_token_wins_over_other_settings(vault_env: dict[str, str], vault_mount: str) -> None:
    environ = {**vault_env, "VAULT_ROLE_ID": "half-an-approle", "VAULT_AUTH_ROLE": ROLE}
    adapter = VaultAdapter.from_environment(vault_mount, environ)
    try:
        assert adapter.identity().startswith("token:token accessor:")  # the root token
    finally:
        adapter.close()


# -- GitHub Actions OIDC -> JWT -------------------------------------------------------------------


def test_jwt_verify_plan_and_apply_with_only_the_role_and_the_actions_variables(
    world: World, jwt_auth: dict[str, str], issuer: IdTokenIssuer
) -> None:
    world.seed()
    use_login(world, jwt_auth)
    assert sorted(world.env) == sorted(
        {
            "VAULT_ADDR",
            "VAULT_AUTH_ROLE",
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "GITHUB_API_URL",
            "GITHUB_TOKEN",
            "ENVMATRIX_POLICY",
            "ENVMATRIX_GITHUB_BACKOFF",
            "ENVMATRIX_AUDIT_DB",
        }
    )
    verify = world.run("verify", "--environment", "production", "--source", "vault")
    assert verify.code == 0, verify.out + verify.err
    assert world.run("plan", "--detailed-exitcode").code == 2
    assert world.run("apply", "--yes").code == 0
    assert world.mismatches() == []
    assert issuer.audiences == [None, None, None]  # GitHub's default audience each time
    actors = {event["actor"] for event in world.run("audit", "--json").json()["events"]}
    assert actors  # apply wrote, and each row says who: the role, the token's name, its accessor
    login = f"jwt:{ROLE} token:jwt-repo:{REPO}:environment:production accessor:"
    assert all(actor.startswith(login) for actor in actors), actors


def test_a_staging_token_is_refused_by_the_production_role(
    world: World, jwt_auth: dict[str, str], issuer: IdTokenIssuer
) -> None:
    issuer.environment = "staging"
    use_login(world, jwt_auth)
    result = world.run("verify", "--environment", "production", "--source", "vault")
    assert result.code == 1
    assert one_error_line(result.err) == (
        f"error: Vault JWT login at jwt/ for role {ROLE} refused (400): check bound_claims "
        "(repository, environment) against this job"
    )
    (token,) = issuer.issued
    assert token not in result.out + result.err
    assert token.split(".")[1] not in result.out + result.err  # not even the claims


def test_audience_and_path_come_from_the_environment(
    world: World,
    vault_admin: hvac.Client,
    auth_method: Callable[[str, str], None],
    mount_policy: str,
    issuer: IdTokenIssuer,
) -> None:
    auth_method("jwt", "gha")
    configure_jwt(vault_admin, issuer, mount_policy, path="gha", audience="https://vault.occ")
    world.seed()
    use_login(world, {"VAULT_AUTH_ROLE": ROLE, "VAULT_JWT_PATH": "gha", **issuer.env()})
    refused = world.run("plan")
    assert one_error_line(refused.err) == (
        f"error: Vault JWT login at gha/ for role {ROLE} refused (400): check bound_audiences "
        "against the token's aud (VAULT_JWT_AUDIENCE)"
    )
    world.env["VAULT_JWT_AUDIENCE"] = "https://vault.occ"
    assert world.run("plan").code == 0
    assert issuer.audiences == [None, "https://vault.occ"]


def test_an_unknown_role_and_a_missing_mount_are_named(
    world: World, jwt_auth: dict[str, str]
) -> None:
    use_login(world, {**jwt_auth, "VAULT_AUTH_ROLE": "envmatrix-qa"})
    assert one_error_line(world.run("plan").err) == (
        "error: Vault JWT login at jwt/ for role envmatrix-qa refused (400): no such role "
        "(VAULT_AUTH_ROLE)"
    )
    world.env.update(VAULT_AUTH_ROLE=ROLE, VAULT_JWT_PATH="github-actions")
    assert one_error_line(world.run("plan").err) == (
        f"error: Vault JWT login at github-actions/ for role {ROLE} refused (403): is the jwt "
        "auth method enabled there? (VAULT_JWT_PATH)"
    )


def test_a_refused_id_token_request_is_one_line_without_the_answer(
    world: World, jwt_auth: dict[str, str], issuer: IdTokenIssuer
) -> None:
    use_login(world, {**jwt_auth, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "expired-request-token"})
    result = world.run("plan")
    assert result.code == 1
    host = urlsplit(issuer.url).netloc
    assert one_error_line(result.err) == (
        f"error: GitHub Actions ID token request to {host} answered 401: check that the job has "
        "`permissions: id-token: write`"
    )
    assert BODY_CANARY not in result.out + result.err
    assert "expired-request-token" not in result.out + result.err


def test_no_credential_appears_in_any_output(
    world: World,
    approle: dict[str, str],
    jwt_auth: dict[str, str],
    issuer: IdTokenIssuer,
    vault_tokens: list[str],
) -> None:
    world.seed(leave_out=("SUPABASE_SERVICE_KEY", "production"))
    world.env["ENVMATRIX_DEBUG"] = "1"  # every library's debug log goes to stderr too
    outputs = []
    for login in (approle, jwt_auth):
        world.env.pop("VAULT_TOKEN", None)
        for name in ("VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_AUTH_ROLE"):
            world.env.pop(name, None)
            world.monkeypatch.delenv(name, raising=False)
        world.env.update(login)
        for args in (
            ("plan", "--json"),
            ("apply", "--yes"),
            ("verify", "-e", "production", "--source", "vault"),
            ("verify", "-e", "production", "--source", "vault", "--json"),
            ("matrix",),
        ):
            result = world.run(*args)
            outputs.append(result.out + result.err)
    assert len(vault_tokens) >= 10 and len(issuer.issued) >= 5  # every command logged in
    credentials = [*vault_tokens, *issuer.issued, issuer.request_token, *approle.values()]
    for text in outputs:
        for credential in credentials:
            assert credential not in text
    assert all(token.startswith(("s.", "hvs.")) for token in vault_tokens)


# -- configuration errors (no server) -------------------------------------------------------------

ADDR = {"VAULT_ADDR": "http://127.0.0.1:8200"}
ACTIONS = {
    "ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:1/x?a=1",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t",
}
ACCEPTED = (
    "set VAULT_TOKEN (or log in with the Vault CLI, which writes ~/.vault-token); or "
    "VAULT_ROLE_ID and VAULT_SECRET_ID (AppRole); or VAULT_AUTH_ROLE in "
    "GitHub Actions with `permissions: id-token: write` (JWT)"
)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (ADDR, f"VAULT_TOKEN is not set and no other Vault login is configured: {ACCEPTED}"),
        (
            {**ADDR, "VAULT_ROLE_ID": "r"},
            f"AppRole login needs VAULT_ROLE_ID and VAULT_SECRET_ID: VAULT_SECRET_ID is not set; "
            f"accepted: {ACCEPTED}",
        ),
        (
            {**ADDR, "VAULT_SECRET_ID": "s", **ACTIONS},
            "AppRole login needs VAULT_ROLE_ID and VAULT_SECRET_ID: VAULT_ROLE_ID is not set; "
            f"accepted: {ACCEPTED}",
        ),
        (
            {
                **ADDR,
                "VAULT_ROLE_ID": "r",
                "VAULT_SECRET_ID": "s",
                "VAULT_AUTH_ROLE": ROLE,
                **ACTIONS,
            },
            "both AppRole (VAULT_ROLE_ID/VAULT_SECRET_ID) and JWT (VAULT_AUTH_ROLE) are set: keep "
            f"one; accepted: {ACCEPTED}",
        ),
        (
            {**ADDR, "VAULT_AUTH_ROLE": ROLE, "ACTIONS_ID_TOKEN_REQUEST_URL": "http://x/?a=1"},
            "VAULT_AUTH_ROLE is set but this is not a GitHub Actions job allowed to request an ID "
            "token (ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set): "
            f"give the job `permissions: id-token: write`; accepted: {ACCEPTED}",
        ),
    ],
)
def test_missing_or_contradictory_configuration_is_a_usage_error(
    environ: dict[str, str], expected: str
) -> None:
    with pytest.raises(UsageError) as raised:
        VaultAdapter.from_environment("secret", environ)
    assert str(raised.value) == expected
    assert raised.value.exit_code == 3


def test_the_cli_lists_the_accepted_logins_and_exits_3(world: World) -> None:
    del world.env["VAULT_TOKEN"]
    result = world.run("plan")
    assert result.code == 3
    assert one_error_line(result.err) == (
        f"error: VAULT_TOKEN is not set and no other Vault login is configured: {ACCEPTED}"
    )


# -- the ID token request itself ------------------------------------------------------------------


def test_the_id_token_request_sends_the_bearer_token_and_the_audience(
    issuer: IdTokenIssuer,
) -> None:
    token = actions_oidc.request_id_token(issuer.env(), "https://vault.occ/a b")
    assert isinstance(token, SecretValue)
    assert token.reveal() == issuer.issued[-1]
    assert issuer.audiences == ["https://vault.occ/a b"]
    claims = jwt.decode(
        token.reveal(),
        issuer.key.public_key(),
        algorithms=["RS256"],
        audience="https://vault.occ/a b",
    )
    assert claims["repository"] == REPO


def test_an_unreachable_runner_endpoint_is_one_line(openbao_server: OpenBaoDevServer) -> None:
    dead = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:9/idtoken?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t",
    }
    environ = {"VAULT_ADDR": openbao_server.addr, "VAULT_AUTH_ROLE": ROLE, **dead}
    with pytest.raises(EnvmatrixError) as raised:
        VaultAdapter.from_environment("secret", environ)
    assert str(raised.value) == (
        "GitHub Actions ID token request to 127.0.0.1:9 unreachable (URLError): check that the "
        "job has `permissions: id-token: write`"
    )
    assert raised.value.exit_code == 1
