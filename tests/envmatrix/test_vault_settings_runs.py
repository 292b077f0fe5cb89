"""The CLI with Vault settings as the Vault CLI reads them: a namespace, TLS, the token file."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from envmatrix.adapters.vault import VaultAdapter
from envmatrix.demo.openbao import OpenBaoDevServer
from envmatrix.demo.run import github_value, seed_vault
from envmatrix.pipeline.desired import desired_state
from tests.fixtures_vault import _wait_for_kv_mount
from tests.world import World


@pytest.fixture
def namespaced(world: World, vault_admin: hvac.Client) -> Iterator[VaultAdapter]:
    """A namespace holding a KV v2 mount named as the world's, seeded with values of its own."""
    name = f"ns-{uuid.uuid4().hex[:8]}"
    vault_admin.adapter.post(f"/v1/sys/namespaces/{name}")
    inside = hvac.Client(url=vault_admin.url, token=vault_admin.token, namespace=name)
    inside.sys.enable_secrets_engine("kv", path=world.vault.mount, options={"version": "2"})
    _wait_for_kv_mount(inside, world.vault.mount)
    adapter = VaultAdapter(
        world.vault.addr, vault_admin.token, mount=world.vault.mount, namespace=name
    )
    world.seed()  # the root's mount: other values, which must not reach GitHub
    seed_vault(world.policy, adapter)
    yield adapter
    adapter.close()
    inside.sys.disable_secrets_engine(path=world.vault.mount)
    inside.adapter.close()
    vault_admin.adapter.delete(f"/v1/sys/namespaces/{name}")


def test_apply_reads_and_records_inside_vault_namespace(
    world: World, namespaced: VaultAdapter
) -> None:
    assert namespaced.namespace is not None
    world.env["VAULT_NAMESPACE"] = namespaced.namespace
    result = world.run("apply", "--yes")
    assert result.code == 0, result.err
    checked = 0
    for cell in desired_state(world.policy).secrets:
        path = world.policy.secrets[cell.name].vault_path(cell.target.logical_environment)
        key = world.policy.secrets[cell.name].vault_key(cell.name)
        expected = namespaced.read_values(path)[key].reveal()
        assert github_value(world.sandbox, cell.target, cell.name) == expected
        assert (
            world.vault_value(cell.name, cell.target.logical_environment) != expected
        )  # not the root's
        checked += 1
    assert checked
    # the sync state went to the namespace's mount, not the root's
    assert namespaced.read_entry("envmatrix/state/occ-labs/operator-console/production").version
    assert (
        world.vault.read_entry("envmatrix/state/occ-labs/operator-console/production").version
        is None
    )
    assert world.run("plan", "--detailed-exitcode").code == 0


def test_a_tls_failure_is_one_line_naming_the_variable_and_exit_1(
    world: World, openbao_tls_server: OpenBaoDevServer
) -> None:
    world.env.update(VAULT_ADDR=openbao_tls_server.addr, VAULT_TOKEN=openbao_tls_server.token)
    result = world.run("plan")
    assert result.code == 1
    [line] = [text for text in result.err.splitlines() if text.strip()]
    assert line.startswith("error: ") and "VAULT_CACERT" in line
    assert "connection reset" not in line


def test_plan_over_tls_with_the_token_file(
    world: World, openbao_tls_server: OpenBaoDevServer, tmp_path: Path
) -> None:
    ca = str(openbao_tls_server.ca_cert)
    admin = hvac.Client(url=openbao_tls_server.addr, token=openbao_tls_server.token, verify=ca)
    admin.sys.enable_secrets_engine("kv", path=world.vault.mount, options={"version": "2"})
    _wait_for_kv_mount(admin, world.vault.mount)
    try:
        home = tmp_path / "home"
        home.mkdir()
        (home / ".vault-token").write_text(openbao_tls_server.token + "\n")
        del world.env["VAULT_TOKEN"]
        world.env.update(VAULT_ADDR=openbao_tls_server.addr, VAULT_CACERT=ca, HOME=str(home))
        result = world.run("plan")
        assert result.code == 0, result.err
        assert "blocked" in result.out  # an empty Vault: every secret is missing, the plan says so
    finally:
        admin.sys.disable_secrets_engine(path=world.vault.mount)
        admin.adapter.close()
