"""Fixture plugin: a real OpenBao dev server and a fresh KV v2 mount per test.

- `openbao_server` (session): the shared `OpenBaoDevServer`. Never seal or stop it in a test;
  destructive tests start their own (see `tests/envmatrix/adapters/test_vault.py`).
- `openbao_tls_server` (session): one started with `-dev-tls` (HTTPS; the CA that signed its
  certificate is `.ca_cert`).
- `vault_admin` (function): an hvac client with the root token, for test setup only (policies,
  tokens, audit devices, planting data the way an operator would).
- `vault_mount` (function): the name of a KV v2 mount enabled for this test and disabled after.
- `vault` (function): a `VaultAdapter` on `vault_mount` with the root token.
- `vault_env` (function): `VAULT_ADDR`/`VAULT_TOKEN` for subprocess and CLI tests (the autouse
  `clean_environ` fixture removes VAULT_* from os.environ, so hand these over explicitly). The
  mount is `vault_mount`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import hvac
import hvac.exceptions
import pytest

from envmatrix.adapters.vault import VaultAdapter
from envmatrix.demo.openbao import OpenBaoDevServer

_MOUNT_READY_TIMEOUT = 10.0


@pytest.fixture(scope="session")
def openbao_server() -> Iterator[OpenBaoDevServer]:
    """One OpenBao dev server for the whole test session."""
    with OpenBaoDevServer() as server:
        yield server


@pytest.fixture(scope="session")
def openbao_tls_server() -> Iterator[OpenBaoDevServer]:
    """One OpenBao `-dev-tls` server (HTTPS, its CA in `.ca_cert`) for the whole session."""
    with OpenBaoDevServer(tls=True) as server:
        yield server


@pytest.fixture
def vault_admin(openbao_server: OpenBaoDevServer) -> Iterator[hvac.Client]:
    """A root-token hvac client on the shared server, for test setup."""
    client = hvac.Client(url=openbao_server.addr, token=openbao_server.token, timeout=10)
    yield client
    client.adapter.close()


@pytest.fixture
def vault_mount(vault_admin: hvac.Client) -> Iterator[str]:
    """A KV v2 mount of its own for this test, so tests never see each other's data."""
    mount = f"kv-{uuid.uuid4().hex[:12]}"
    vault_admin.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    _wait_for_kv_mount(vault_admin, mount)
    yield mount
    vault_admin.sys.disable_secrets_engine(path=mount)


def _wait_for_kv_mount(client: hvac.Client, mount: str) -> None:
    """A new KV v2 mount answers 400 "Upgrading…" until its setup finishes; wait for a 404."""
    deadline = time.monotonic() + _MOUNT_READY_TIMEOUT
    while True:
        try:
            client.secrets.kv.v2.read_secret_version(
                path="mount-ready-probe", mount_point=mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            return
        except hvac.exceptions.InvalidRequest:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        else:
            return


@pytest.fixture
def vault(openbao_server: OpenBaoDevServer, vault_mount: str) -> Iterator[VaultAdapter]:
    """A `VaultAdapter` with the root token on this test's own KV v2 mount."""
    adapter = VaultAdapter(openbao_server.addr, openbao_server.token, mount=vault_mount)
    yield adapter
    adapter.close()


@pytest.fixture
def vault_env(openbao_server: OpenBaoDevServer, vault_mount: str) -> dict[str, str]:
    """Environment variables a subprocess needs to reach the test Vault (mount: `vault_mount`)."""
    return {"VAULT_ADDR": openbao_server.addr, "VAULT_TOKEN": openbao_server.token}
