"""Vault settings read as the Vault CLI reads them, against real OpenBao servers: namespaces,
the `~/.vault-token` file, and TLS (`bao server -dev-tls`) with every TLS variable."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from envmatrix.adapters.vault import VaultAdapter
from envmatrix.demo.openbao import OpenBaoDevServer
from envmatrix.errors import UsageError, VaultError, VaultUnavailable
from envmatrix.secret import SecretValue
from tests.fixtures_vault import _wait_for_kv_mount


def adapter(environ: dict[str, str], mount: str = "secret") -> VaultAdapter:
    built = VaultAdapter.from_environment(mount, environ=environ)
    built.retries = 1
    return built


# -- namespaces -----------------------------------------------------------------------------------


@pytest.fixture
def namespace(vault_admin: hvac.Client) -> Iterator[str]:
    """A namespace with a KV v2 mount `kv` inside; the root has a mount `kv` of its own too."""
    name = f"team-{uuid.uuid4().hex[:8]}"
    vault_admin.adapter.post(f"/v1/sys/namespaces/{name}")
    inside = hvac.Client(url=vault_admin.url, token=vault_admin.token, namespace=name)
    for client in (inside, vault_admin):
        client.sys.enable_secrets_engine("kv", path=f"kv-{name}", options={"version": "2"})
        _wait_for_kv_mount(client, f"kv-{name}")
    yield name
    vault_admin.sys.disable_secrets_engine(path=f"kv-{name}")
    inside.sys.disable_secrets_engine(path=f"kv-{name}")
    inside.adapter.close()
    vault_admin.adapter.delete(f"/v1/sys/namespaces/{name}")


@pytest.mark.parametrize("spelling", ["{ns}", "{ns}/", "/{ns}/"])
def test_vault_namespace_reads_and_writes_inside_the_namespace_only(
    vault_env: dict[str, str], vault_admin: hvac.Client, namespace: str, spelling: str
) -> None:
    mount = f"kv-{namespace}"
    inside = hvac.Client(url=vault_admin.url, token=vault_admin.token, namespace=namespace)
    inside.secrets.kv.v2.create_or_update_secret(
        "apps/db", {"pw": "in-namespace"}, mount_point=mount
    )
    vault_admin.secrets.kv.v2.create_or_update_secret("apps/db", {"pw": "root"}, mount_point=mount)

    scoped = adapter({**vault_env, "VAULT_NAMESPACE": spelling.format(ns=namespace)}, mount)
    assert scoped.read_values("apps/db")["pw"].reveal() == "in-namespace"
    assert adapter(vault_env, mount).read_values("apps/db")["pw"].reveal() == "root"

    scoped.write_values("apps/new", {"k": SecretValue("written")}, cas=0)
    scoped.write_document("envmatrix/state/o/r/e", {"s": 1}, cas=0)

    def read(client: hvac.Client, path: str) -> object:
        return client.secrets.kv.v2.read_secret_version(
            path=path, mount_point=mount, raise_on_deleted_version=True
        )["data"]["data"]

    assert read(inside, "apps/new") == {"k": "written"}
    assert read(inside, "envmatrix/state/o/r/e") == {"s": 1}
    with pytest.raises(hvac.exceptions.InvalidPath):  # nothing landed in the root's mount
        read(vault_admin, "apps/new")
    assert scoped.identity().startswith("token:")
    inside.adapter.close()


def test_an_unknown_namespace_names_the_namespace(
    vault_env: dict[str, str], vault_mount: str
) -> None:
    scoped = adapter({**vault_env, "VAULT_NAMESPACE": "no-such-team"}, vault_mount)
    with pytest.raises(VaultError) as failed:
        scoped.read_values("apps/db")
    assert "namespace no-such-team/" in str(failed.value)


# -- ~/.vault-token -------------------------------------------------------------------------------


def test_the_token_file_is_used_when_vault_token_is_unset(
    openbao_server: OpenBaoDevServer, vault_mount: str, tmp_path: Path
) -> None:
    (tmp_path / ".vault-token").write_text(openbao_server.token + "\n")
    environ = {"VAULT_ADDR": openbao_server.addr, "HOME": str(tmp_path)}
    assert adapter(environ, vault_mount).write_values("a", {"k": SecretValue("v")}) == 1
    # VAULT_TOKEN wins over the file, as in the Vault CLI
    (tmp_path / ".vault-token").write_text("not-a-token")
    with_env = adapter({**environ, "VAULT_TOKEN": openbao_server.token}, vault_mount)
    assert with_env.read_values("a")["k"].reveal() == "v"
    with pytest.raises(VaultError) as refused:
        adapter(environ, vault_mount).read_values("a")
    assert f"the token in {tmp_path}/.vault-token" in str(refused.value)
    assert "invalid, expired or revoked" in str(refused.value)
    assert "not-a-token" not in str(refused.value)


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_no_token_anywhere_is_a_usage_error_naming_the_token_file(
    openbao_server: OpenBaoDevServer, tmp_path: Path, content: str | None
) -> None:
    if content is not None:
        (tmp_path / ".vault-token").write_text(content)
    with pytest.raises(UsageError) as missing:
        adapter({"VAULT_ADDR": openbao_server.addr, "HOME": str(tmp_path)})
    assert "VAULT_TOKEN is not set" in str(missing.value)
    assert "~/.vault-token" in str(missing.value)


def test_an_approle_login_wins_over_the_token_file(
    openbao_server: OpenBaoDevServer, tmp_path: Path
) -> None:
    (tmp_path / ".vault-token").write_text(openbao_server.token)
    environ = {
        "VAULT_ADDR": openbao_server.addr,
        "HOME": str(tmp_path),
        "VAULT_ROLE_ID": "r",  # incomplete AppRole: the file must not paper over it
    }
    with pytest.raises(UsageError, match="VAULT_SECRET_ID"):
        adapter(environ)


# -- TLS ------------------------------------------------------------------------------------------


@pytest.fixture
def tls_env(openbao_tls_server: OpenBaoDevServer) -> dict[str, str]:
    return {"VAULT_ADDR": openbao_tls_server.addr, "VAULT_TOKEN": openbao_tls_server.token}


def works(environ: dict[str, str]) -> bool:
    built = adapter(environ)
    try:
        return built.identity().startswith("token:")
    finally:
        built.close()


def tls_failure(environ: dict[str, str]) -> str:
    built = adapter(environ)
    sleeps: list[float] = []
    built.retries = 3
    built._sleep = sleeps.append
    with pytest.raises(VaultUnavailable) as failed:
        built.identity()
    built.close()
    assert sleeps == []  # a certificate does not change between attempts: no retries
    message = str(failed.value)
    assert "\n" not in message and "connection reset" not in message
    return message


def test_vault_cacert_and_capath_trust_the_servers_ca(
    tls_env: dict[str, str], openbao_tls_server: OpenBaoDevServer, tmp_path: Path
) -> None:
    ca = str(openbao_tls_server.ca_cert)
    assert "VAULT_CACERT" in tls_failure(tls_env)
    assert works({**tls_env, "VAULT_CACERT": ca})
    folder = tmp_path / "cas"
    folder.mkdir()
    shutil.copy(ca, folder / "dev-ca.crt")  # any file name: no c_rehash needed
    (folder / "README").write_text("not a certificate")
    assert works({**tls_env, "VAULT_CAPATH": str(folder)})
    # VAULT_CACERT wins over VAULT_CAPATH, as in the Vault CLI
    other = tmp_path / "other-ca.pem"
    other.write_bytes(self_signed("other-ca")[0])
    assert "VAULT_CACERT" in tls_failure(
        {**tls_env, "VAULT_CACERT": str(other), "VAULT_CAPATH": str(folder)}
    )
    assert works({**tls_env, "VAULT_CACERT": ca, "VAULT_CAPATH": str(tmp_path)})


@pytest.mark.parametrize(("value", "verified"), [("true", False), ("1", False), ("false", True)])
def test_vault_skip_verify(tls_env: dict[str, str], value: str, verified: bool) -> None:
    environ = {**tls_env, "VAULT_SKIP_VERIFY": value}
    if verified:
        assert "VAULT_CACERT" in tls_failure(environ)
    else:
        assert works(environ)


def test_vault_tls_server_name_is_the_name_checked(
    tls_env: dict[str, str], openbao_tls_server: OpenBaoDevServer
) -> None:
    environ = {**tls_env, "VAULT_CACERT": str(openbao_tls_server.ca_cert)}
    for name in ("localhost", "localhost4"):  # names the dev certificate holds
        assert works({**environ, "VAULT_TLS_SERVER_NAME": name})
    for name in ("vault.example.com", "db.internal"):
        message = tls_failure({**environ, "VAULT_TLS_SERVER_NAME": name})
        assert f"not valid for {name!r}" in message and "VAULT_TLS_SERVER_NAME" in message


def test_a_scheme_that_does_not_match_the_server_is_named(
    tls_env: dict[str, str], openbao_server: OpenBaoDevServer
) -> None:
    plain_as_https = {"VAULT_ADDR": openbao_server.addr.replace("http:", "https:")}
    message = tls_failure({**plain_as_https, "VAULT_TOKEN": openbao_server.token})
    assert "use http://" in message
    tls_as_http = {**tls_env, "VAULT_ADDR": tls_env["VAULT_ADDR"].replace("https:", "http:")}
    built = adapter(tls_as_http)
    with pytest.raises(VaultUnavailable, match="use https:// in VAULT_ADDR"):
        built.identity()


def self_signed(name: str) -> tuple[bytes, bytes]:
    """A self-signed certificate and its unencrypted key, as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def test_a_client_certificate_is_presented(
    tls_env: dict[str, str], openbao_tls_server: OpenBaoDevServer, tmp_path: Path
) -> None:
    cert, key = self_signed("envmatrix-client")
    (tmp_path / "client.pem").write_bytes(cert)
    (tmp_path / "client-key.pem").write_bytes(key)
    environ = {
        **tls_env,
        "VAULT_CACERT": str(openbao_tls_server.ca_cert),
        "VAULT_CLIENT_CERT": str(tmp_path / "client.pem"),
        "VAULT_CLIENT_KEY": str(tmp_path / "client-key.pem"),
    }
    assert works(environ)
    built = adapter(environ)
    assert built._client.adapter.session.cert == (
        str(tmp_path / "client.pem"),
        str(tmp_path / "client-key.pem"),
    )
    built.close()


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"VAULT_CACERT": "{tmp}/missing.pem"}, "VAULT_CACERT"),
        ({"VAULT_CACERT": "{tmp}/not-pem.txt"}, "VAULT_CACERT"),
        ({"VAULT_CACERT": "{tmp}"}, "VAULT_CACERT"),
        ({"VAULT_CAPATH": "{tmp}/missing"}, "VAULT_CAPATH"),
        ({"VAULT_CAPATH": "{tmp}/empty"}, "VAULT_CAPATH"),
        (
            {"VAULT_CLIENT_CERT": "{tmp}/client.pem"},
            "VAULT_CLIENT_CERT is set but VAULT_CLIENT_KEY",
        ),
        (
            {"VAULT_CLIENT_KEY": "{tmp}/client-key.pem"},
            "VAULT_CLIENT_KEY is set but VAULT_CLIENT_C",
        ),
        (
            {"VAULT_CLIENT_CERT": "{tmp}/missing.pem", "VAULT_CLIENT_KEY": "{tmp}/client-key.pem"},
            "VAULT_CLIENT_CERT",
        ),
        (
            {"VAULT_CLIENT_CERT": "{tmp}/client.pem", "VAULT_CLIENT_KEY": "{tmp}/client.pem"},
            "VAULT_CLIENT_KEY",
        ),
        ({"VAULT_SKIP_VERIFY": "maybe"}, "VAULT_SKIP_VERIFY"),
    ],
)
def test_bad_tls_settings_are_usage_errors_naming_the_variable(
    tls_env: dict[str, str], tmp_path: Path, settings: dict[str, str], named: str
) -> None:
    cert, key = self_signed("c")
    (tmp_path / "client.pem").write_bytes(cert)
    (tmp_path / "client-key.pem").write_bytes(key)
    (tmp_path / "not-pem.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    environ = {**tls_env, **{k: v.format(tmp=tmp_path) for k, v in settings.items()}}
    with pytest.raises(UsageError) as bad:
        VaultAdapter.from_environment("secret", environ=environ)
    assert str(bad.value).startswith(named) and "\n" not in str(bad.value)
