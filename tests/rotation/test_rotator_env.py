"""rotation/rotator_env.py: a `command` rotator runs with an allow-listed environment and a fresh
HOME, never with envmatrix's credentials (real rotator processes report what they saw)."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from envmatrix.errors import UsageError
from envmatrix.rotation.rotator_env import BASE_VARIABLES
from envmatrix.rotation.strategies import StrategySettings, get_strategy
from envmatrix.rotation.strategies.base import RotationContext
from envmatrix.secret import SecretValue

CTX = RotationContext(
    "apps/production/api", "production", {"API_TOKEN": "token"}, {},
    {"token": SecretValue("old-value")},
)  # fmt: skip

# what envmatrix may hold while it rotates: its Vault logins, GitHub tokens, other strategies'
# admin credentials
CREDENTIALS = {
    "VAULT_TOKEN": "canary-vault-token",
    "VAULT_ROLE_ID": "canary-role-id",
    "VAULT_SECRET_ID": "canary-secret-id",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "canary-oidc-request-token",
    "ACTIONS_ID_TOKEN_REQUEST_URL": "https://canary.example.test/oidc",
    "AWS_ACCESS_KEY_ID": "AKIACANARY",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret",
    "GH_TOKEN": "canary-gh-token",
    "GITHUB_TOKEN": "canary-github-token",
    "PG_ADMIN_DSN": "postgresql://admin:canary-pg-password@db/postgres",
    "SUPABASE_ACCESS_TOKEN": "sbp_canary",
    "UNRELATED_SETTING": "not-needed",
}
PASSED = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "HTTPS_PROXY": "http://proxy.example.test:3128",
    "no_proxy": "localhost",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
    "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
}
SPY = """
home = os.environ.get("HOME", "")
report = {
    "environ": dict(os.environ),
    "home": home,
    "home_mode": oct(os.stat(home).st_mode & 0o777) if home else None,
    "home_entries": os.listdir(home) if home else None,
    "vault_token_file": os.path.exists(os.path.expanduser("~/.vault-token")),
}
with open(request["options"]["report"], "a") as out:
    out.write(json.dumps(report) + "\\n")
if request["step"] == "create":
    print(json.dumps({"values": {"token": "new-value"}}))
"""


def _spy(tmp_path: Path) -> Path:
    script = tmp_path / "bin" / "rotator"
    script.parent.mkdir(exist_ok=True)
    script.write_text(
        f"#!{sys.executable}\nimport json, os, sys\nrequest = json.load(sys.stdin)\n{SPY}"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture
def real_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """envmatrix's HOME, holding a Vault CLI token and gh/AWS credential files."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".vault-token").write_text("canary-home-vault-token")
    (home / ".aws" / "credentials").write_text("[default]\naws_secret_access_key=canary\n")
    monkeypatch.setenv("HOME", str(home))
    for name, value in {**CREDENTIALS, **PASSED}.items():
        monkeypatch.setenv(name, value)
    return home


def _reports(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "report.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_every_step_sees_only_the_allow_list_and_a_fresh_home(tmp_path, real_home) -> None:
    _spy(tmp_path)
    options = {"command": ["bin/rotator"], "report": str(tmp_path / "report.jsonl")}
    strategy = get_strategy("command", options, StrategySettings(tmp_path))
    strategy.create(CTX)
    pending = {"token": SecretValue("new-value")}
    strategy.set(CTX, pending)
    strategy.test(CTX, pending)
    strategy.revoke(CTX, {"token": SecretValue("old-value")})
    strategy.discard(CTX, pending)
    reports = _reports(tmp_path)
    assert len(reports) == 5
    homes = set()
    for report in reports:
        environ = report["environ"]
        extra = {n for n in environ if n not in BASE_VARIABLES and not n.startswith("LC_")}
        assert extra <= {"HOME", "PWD"}, extra
        assert {k: environ[k] for k in PASSED} == PASSED
        for name, value in CREDENTIALS.items():
            assert name not in environ
            assert value not in json.dumps(report)
        assert report["home"] != str(real_home) and report["home_mode"] == "0o700"
        assert report["home_entries"] == [] and report["vault_token_file"] is False
        homes.add(report["home"])
    assert len(homes) == 5  # one per step ...
    assert not any(Path(h).exists() for h in homes)  # ... removed when it ends


@pytest.mark.parametrize(
    "options",
    [
        {"env": ["UNRELATED_SETTING"]},
        {"base_url_env": "UNRELATED_SETTING"},
        {"env": ["UNRELATED_SETTING", "NOT_SET_ANYWHERE"], "token_env": "UNRELATED_SETTING"},
    ],
)
def test_variables_the_options_name_are_passed(tmp_path, real_home, options) -> None:
    _spy(tmp_path)
    options = {"command": ["bin/rotator"], "report": str(tmp_path / "report.jsonl"), **options}
    get_strategy("command", options, StrategySettings(tmp_path)).create(CTX)
    environ = _reports(tmp_path)[0]["environ"]
    assert environ["UNRELATED_SETTING"] == "not-needed"
    assert "NOT_SET_ANYWHERE" not in environ
    assert not set(CREDENTIALS) - {"UNRELATED_SETTING"} & set(environ)


@pytest.mark.parametrize(
    "options",
    [
        {"env": ["VAULT_SECRET_ID"]},
        {"env": ["GH_TOKEN"]},
        {"token_env": "ACTIONS_ID_TOKEN_REQUEST_TOKEN"},
        {"vault_env": "VAULT_TOKEN"},
        {"env": ["HOME"]},
        {"env": "AWS_SECRET_ACCESS_KEY"},
        {"env": ["NOT A NAME"]},
    ],
)
def test_options_cannot_hand_envmatrix_logins_to_a_rotator(tmp_path, options) -> None:
    with pytest.raises(UsageError, match="rotation.options"):
        get_strategy("command", {"command": ["bin/rotator"], **options}, StrategySettings(tmp_path))
