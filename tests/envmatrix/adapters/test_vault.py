"""`VaultAdapter` against a real OpenBao dev server (see tests/fixtures_vault.py)."""

from __future__ import annotations

import socket
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator

import hvac
import pytest

from envmatrix.adapters.vault import VaultAdapter
from envmatrix.demo.openbao import OpenBaoDevServer
from envmatrix.errors import (
    UsageError,
    VaultCasMismatch,
    VaultError,
    VaultNotFound,
    VaultPermissionDenied,
    VaultUnavailable,
)
from envmatrix.ports import VaultEntry
from envmatrix.secret import SecretValue

TokenFactory = Callable[[str], str]


def secrets_of(**values: str) -> dict[str, SecretValue]:
    return {key: SecretValue(value) for key, value in values.items()}


def revealed(values: dict[str, SecretValue]) -> dict[str, str]:
    return {key: value.reveal() for key, value in values.items()}


@pytest.fixture
def token_with_policy(vault_admin: hvac.Client) -> TokenFactory:
    """Mint a token whose only policy (besides `default`) is the given HCL."""

    def mint(hcl: str) -> str:
        name = f"test-{uuid.uuid4().hex[:8]}"
        vault_admin.sys.create_or_update_policy(name=name, policy=hcl)
        created = vault_admin.auth.token.create(policies=[name], ttl="10m", display_name=name)
        return str(created["auth"]["client_token"])

    return mint


@pytest.fixture
def adapter_for(
    openbao_server: OpenBaoDevServer, vault_mount: str
) -> Iterator[Callable[[str], VaultAdapter]]:
    """Build adapters with other tokens on this test's mount."""
    made: list[VaultAdapter] = []

    def build(token: str) -> VaultAdapter:
        made.append(VaultAdapter(openbao_server.addr, token, mount=vault_mount, retries=1))
        return made[-1]

    yield build
    for adapter in made:
        adapter.close()


@pytest.fixture
def private_server() -> Iterator[OpenBaoDevServer]:
    """A dev server of this test's own, to seal or stop without disturbing the shared one."""
    with OpenBaoDevServer() as server:
        yield server


class SleepRecorder:
    """Stands in for time.sleep so retry tests are fast and can count the retries."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def recording_sleeps(adapter: VaultAdapter) -> SleepRecorder:
    recorder = SleepRecorder()
    adapter._sleep = recorder
    return recorder


# -- read_entry -----------------------------------------------------------------------------------


def test_read_entry_gives_version_time_and_keys(vault: VaultAdapter) -> None:
    vault.write_values("apps/prod", secrets_of(API_KEY="a", DB_URL="b"))
    vault.write_values("apps/prod", secrets_of(API_KEY="a2", DB_URL="b2", EXTRA="c"))

    entry = vault.read_entry("apps/prod")

    assert entry.path == "apps/prod"
    assert entry.version == 2
    assert entry.keys == {"API_KEY", "DB_URL", "EXTRA"}
    assert entry.created_time is not None and entry.created_time.tzinfo is not None


def test_read_entry_does_not_read_values(
    vault: VaultAdapter,
    vault_mount: str,
    token_with_policy: TokenFactory,
    adapter_for: Callable[[str], VaultAdapter],
) -> None:
    """A token that may read subkeys but not data can still read entries: no data/ request."""
    vault.write_values("apps/prod", secrets_of(API_KEY="a"))
    token = token_with_policy(f'path "{vault_mount}/subkeys/*" {{ capabilities = ["read"] }}')
    metadata_only = adapter_for(token)

    entry = metadata_only.read_entry("apps/prod")

    assert (entry.version, entry.keys) == (1, {"API_KEY"})
    with pytest.raises(VaultPermissionDenied):  # proves the policy really denies data/
        metadata_only.read_values("apps/prod")


def test_read_entry_of_missing_path_has_no_version(vault: VaultAdapter) -> None:
    assert vault.read_entry("nowhere") == VaultEntry("nowhere", None)


def test_read_entry_of_deleted_current_version_has_no_version(
    vault: VaultAdapter, vault_admin: hvac.Client, vault_mount: str
) -> None:
    vault.write_values("apps/prod", secrets_of(K="1"))
    vault.write_values("apps/prod", secrets_of(K="2"))
    vault_admin.secrets.kv.v2.delete_latest_version_of_secret("apps/prod", mount_point=vault_mount)

    assert vault.read_entry("apps/prod") == VaultEntry("apps/prod", None)
    with pytest.raises(VaultNotFound):
        vault.read_values("apps/prod")
    assert revealed(vault.read_values("apps/prod", version=1)) == {"K": "1"}


def test_read_entry_of_destroyed_current_version_has_no_version(
    vault: VaultAdapter, vault_admin: hvac.Client, vault_mount: str
) -> None:
    vault.write_values("apps/prod", secrets_of(K="1"))
    vault_admin.secrets.kv.v2.destroy_secret_versions("apps/prod", [1], mount_point=vault_mount)

    assert vault.read_entry("apps/prod").version is None


def test_unknown_mount_is_an_error_not_an_empty_entry(
    openbao_server: OpenBaoDevServer,
) -> None:
    adapter = VaultAdapter(openbao_server.addr, openbao_server.token, mount="no-such-mount")
    with pytest.raises(VaultError, match="no secrets engine at no-such-mount/"):
        adapter.read_entry("apps/prod")


# -- values ---------------------------------------------------------------------------------------


def test_write_returns_versions_and_reads_any_version(vault: VaultAdapter) -> None:
    assert vault.write_values("apps/prod", secrets_of(TOKEN="one")) == 1
    assert vault.write_values("apps/prod", secrets_of(TOKEN="two", NEW="x")) == 2

    assert revealed(vault.read_values("apps/prod")) == {"TOKEN": "two", "NEW": "x"}
    assert revealed(vault.read_values("apps/prod", version=1)) == {"TOKEN": "one"}


def test_read_values_of_missing_path_or_version_is_not_found(vault: VaultAdapter) -> None:
    with pytest.raises(VaultNotFound, match=r"/data/nowhere not found"):
        vault.read_values("nowhere")
    vault.write_values("apps/prod", secrets_of(TOKEN="one"))
    with pytest.raises(VaultNotFound):
        vault.read_values("apps/prod", version=7)


def test_non_string_values_arrive_as_json_text(
    vault: VaultAdapter, vault_admin: hvac.Client, vault_mount: str
) -> None:
    planted = {"PORT": 5432, "FLAGS": {"b": True, "a": [1, 2]}, "NAME": "x", "NOTHING": None}
    vault_admin.secrets.kv.v2.create_or_update_secret("typed", planted, mount_point=vault_mount)

    assert revealed(vault.read_values("typed")) == {
        "PORT": "5432",
        "FLAGS": '{"a": [1, 2], "b": true}',
        "NAME": "x",
        "NOTHING": "null",
    }


def test_values_stay_masked(vault: VaultAdapter) -> None:
    vault.write_values("apps/prod", secrets_of(TOKEN="hunter2"))
    values = vault.read_values("apps/prod")
    assert "hunter2" not in repr(values) and "hunter2" not in str(values)


def test_cas_zero_creates_only(vault: VaultAdapter) -> None:
    assert vault.write_values("apps/prod", secrets_of(K="1"), cas=0) == 1
    with pytest.raises(VaultCasMismatch, match="apps/prod"):
        vault.write_values("apps/prod", secrets_of(K="2"), cas=0)
    assert revealed(vault.read_values("apps/prod")) == {"K": "1"}


def test_cas_against_a_stale_version_is_rejected(vault: VaultAdapter) -> None:
    vault.write_values("apps/prod", secrets_of(K="1"))
    assert vault.write_values("apps/prod", secrets_of(K="2"), cas=1) == 2
    with pytest.raises(VaultCasMismatch):
        vault.write_values("apps/prod", secrets_of(K="3"), cas=1)
    assert vault.read_entry("apps/prod").version == 2


def test_too_many_pairs_is_a_vault_error_naming_the_endpoint(vault: VaultAdapter) -> None:
    """OpenBao refuses bodies with more than 1,000 JSON strings."""
    many = {f"K{i}": SecretValue("v") for i in range(600)}
    with pytest.raises(VaultError, match=r"answered 400 to POST /v1/.*/data/big"):
        vault.write_values("big", many)


# -- documents ------------------------------------------------------------------------------------


def test_document_round_trip_with_versions(vault: VaultAdapter) -> None:
    assert vault.read_document("state/sync") is None

    assert vault.write_document("state/sync", {"runs": 1, "last": {"env": "prod"}}) == 1
    document = vault.read_document("state/sync")

    assert document is not None
    assert (document.path, document.version) == ("state/sync", 1)
    assert document.data == {"runs": 1, "last": {"env": "prod"}}


def test_document_check_and_set(vault: VaultAdapter) -> None:
    assert vault.write_document("locks/prod", {"holder": "a"}, cas=0) == 1
    with pytest.raises(VaultCasMismatch):
        vault.write_document("locks/prod", {"holder": "b"}, cas=0)
    assert vault.write_document("locks/prod", {"holder": "a", "renewed": True}, cas=1) == 2
    with pytest.raises(VaultCasMismatch):
        vault.write_document("locks/prod", {"holder": "c"}, cas=1)


def test_delete_document_removes_all_versions(vault: VaultAdapter) -> None:
    vault.write_document("journal/r1", {"step": 1})
    vault.write_document("journal/r1", {"step": 2})

    vault.delete_document("journal/r1")

    assert vault.read_document("journal/r1") is None
    assert vault.write_document("journal/r1", {"step": 1}, cas=0) == 1  # metadata is gone too
    vault.delete_document("never/existed")  # absent is fine


# -- identity and configuration -------------------------------------------------------------------


def test_identity_names_display_name_and_accessor(
    vault_admin: hvac.Client, openbao_server: OpenBaoDevServer, vault_mount: str
) -> None:
    created = vault_admin.auth.token.create(display_name="ci-sync", ttl="10m")["auth"]
    adapter = VaultAdapter(openbao_server.addr, created["client_token"], mount=vault_mount)

    # a prefix of the accessor: the whole one lets its holder look the token up or revoke it
    assert adapter.identity() == f"token:token-ci-sync accessor:{created['accessor'][:8]}…"
    assert created["accessor"] not in adapter.identity()
    vault_admin.auth.token.revoke(created["client_token"])
    assert adapter.identity().startswith("token:token-ci-sync")  # cached: no second lookup


def test_from_environment_reads_vault_addr_and_token(
    vault_env: dict[str, str], vault_mount: str
) -> None:
    adapter = VaultAdapter.from_environment(vault_mount, environ=vault_env)
    assert adapter.write_values("apps/prod", secrets_of(K="1")) == 1
    assert adapter.mount == vault_mount


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"VAULT_TOKEN": "t"}, "VAULT_ADDR is not set"),
        ({"VAULT_ADDR": "http://127.0.0.1:8200"}, "VAULT_TOKEN is not set"),
        ({"VAULT_ADDR": "vault.example.com:8200", "VAULT_TOKEN": "t"}, "VAULT_ADDR"),
        ({"VAULT_ADDR": "127.0.0.1:8200", "VAULT_TOKEN": "t"}, "http"),
    ],
)
def test_from_environment_rejects_incomplete_configuration(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=message) as raised:
        VaultAdapter.from_environment("secret", environ=environ)
    assert "\n" not in str(raised.value)


def test_from_environment_defaults_to_os_environ(
    vault_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UsageError):  # clean_environ removed VAULT_*
        VaultAdapter.from_environment("secret")
    for name, value in vault_env.items():
        monkeypatch.setenv(name, value)
    assert VaultAdapter.from_environment("secret").addr == vault_env["VAULT_ADDR"]


# -- permission denied ----------------------------------------------------------------------------


def test_forbidden_operations_name_path_and_capability(
    vault: VaultAdapter,
    vault_mount: str,
    token_with_policy: TokenFactory,
    adapter_for: Callable[[str], VaultAdapter],
) -> None:
    vault.write_values("apps/prod", secrets_of(K="1"))
    nothing = adapter_for(token_with_policy('path "other/*" { capabilities = ["read"] }'))
    attempts: list[tuple[Callable[[], object], str, str]] = [
        (lambda: nothing.read_entry("apps/prod"), "subkeys", "read"),
        (lambda: nothing.read_values("apps/prod"), "data", "read"),
        (lambda: nothing.write_values("apps/prod", secrets_of(K="2")), "data", "create/update"),
        (lambda: nothing.read_document("apps/prod"), "data", "read"),
        (lambda: nothing.write_document("apps/prod", {"a": 1}, cas=1), "data", "create/update"),
        (lambda: nothing.delete_document("apps/prod"), "metadata", "delete"),
    ]
    for attempt, kind, capability in attempts:
        with pytest.raises(VaultPermissionDenied) as denied:
            attempt()
        assert (denied.value.path, denied.value.capability) == (
            f"{vault_mount}/{kind}/apps/prod",
            capability,
        )
        assert f"denied {capability} on {vault_mount}/{kind}/apps/prod" in str(denied.value)


# -- sealed, down, unknown outcomes ---------------------------------------------------------------


def test_sealed_vault_is_unavailable_and_recovers(private_server: OpenBaoDevServer) -> None:
    adapter = VaultAdapter(private_server.addr, private_server.token)
    adapter.write_values("apps/prod", secrets_of(K="1"))
    sleeps = recording_sleeps(adapter)

    private_server.seal()
    with pytest.raises(VaultUnavailable, match=f"^Vault at {private_server.addr} is sealed$"):
        adapter.read_entry("apps/prod")
    with pytest.raises(VaultUnavailable, match="is sealed"):
        adapter.write_values("apps/prod", secrets_of(K="2"))
    assert len(sleeps.delays) == 2  # the read was retried, the plain write was not

    private_server.unseal()
    assert adapter.read_entry("apps/prod").version == 1


def test_stopped_vault_is_unreachable_and_every_call_retries(
    private_server: OpenBaoDevServer,
) -> None:
    adapter = VaultAdapter(private_server.addr, private_server.token, retries=3)
    private_server.stop()
    sleeps = recording_sleeps(adapter)

    with pytest.raises(VaultUnavailable, match="is unreachable: connection refused"):
        adapter.read_entry("apps/prod")
    with pytest.raises(VaultUnavailable, match="unreachable"):
        adapter.write_values("apps/prod", secrets_of(K="1"))  # never sent, so safe to retry
    assert len(sleeps.delays) == 4
    assert all(0.05 <= delay <= 1.0 for delay in sleeps.delays)

    private_server.start()  # same address and token, empty state
    assert adapter.write_values("apps/prod", secrets_of(K="1")) == 1


class HangUpServer:
    """Accepts connections, reads the request, hangs up without answering; counts connections.

    A request sent here may or may not have been applied, as far as the client can tell.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.addr = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with connection:
                connection.recv(65536)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def hang_up_server() -> Iterator[HangUpServer]:
    server = HangUpServer()
    yield server
    server.close()


def test_write_with_unknown_outcome_is_not_retried(hang_up_server: HangUpServer) -> None:
    adapter = VaultAdapter(hang_up_server.addr, "t", retries=3)
    recording_sleeps(adapter)

    with pytest.raises(VaultUnavailable, match="connection reset or closed"):
        adapter.write_values("apps/prod", secrets_of(K="1"))

    assert hang_up_server.connections == 1


def test_cas_write_and_read_with_unknown_outcome_are_retried(hang_up_server: HangUpServer) -> None:
    adapter = VaultAdapter(hang_up_server.addr, "t", retries=3)
    recording_sleeps(adapter)

    with pytest.raises(VaultUnavailable):
        adapter.write_document("locks/prod", {"holder": "a"}, cas=0)
    with pytest.raises(VaultUnavailable):
        adapter.read_values("apps/prod")

    assert hang_up_server.connections == 6


def test_unanswered_request_times_out() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog) but never answers
    try:
        addr = f"http://127.0.0.1:{silent.getsockname()[1]}"
        adapter = VaultAdapter(addr, "t", timeout=0.3, retries=1)
        with pytest.raises(VaultUnavailable, match=r"no answer within 0.3 s"):
            adapter.read_entry("apps/prod")
    finally:
        silent.close()


# -- no secret in any error -----------------------------------------------------------------------


def test_no_error_message_carries_a_secret_value(
    vault: VaultAdapter,
    vault_mount: str,
    token_with_policy: TokenFactory,
    adapter_for: Callable[[str], VaultAdapter],
    private_server: OpenBaoDevServer,
    hang_up_server: HangUpServer,
) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    planted = secrets_of(TOKEN=canary)
    vault.write_values("apps/prod", planted)
    vault.write_document("state/sync", {"note": canary})
    nothing = adapter_for(token_with_policy('path "other/*" { capabilities = ["read"] }'))
    sealed = VaultAdapter(private_server.addr, private_server.token, retries=1)
    sealed.write_values("apps/prod", planted)
    private_server.seal()
    hung = VaultAdapter(hang_up_server.addr, "t", retries=1)
    triggers: list[Callable[[], object]] = [
        lambda: vault.write_values("apps/prod", planted, cas=0),  # CAS mismatch
        lambda: vault.write_document("state/sync", {"note": canary}, cas=0),
        lambda: vault.write_values("big", {f"K{i}": SecretValue(canary) for i in range(600)}),
        lambda: vault.read_values("apps/prod", version=9),  # not found
        lambda: nothing.read_values("apps/prod"),  # 403
        lambda: nothing.write_values("apps/prod", planted),
        lambda: nothing.read_entry("apps/prod"),
        lambda: sealed.read_values("apps/prod"),  # 503 sealed
        lambda: sealed.write_values("apps/prod", planted),
        lambda: hung.write_values("apps/prod", planted),  # connection closed
    ]
    errors = [_raised_by(trigger) for trigger in triggers]

    assert len({type(error) for error in errors}) >= 4
    for error in errors:
        text = "".join(traceback.format_exception(error)) + repr(error) + repr(vars(error))
        assert canary not in text, f"{type(error).__name__} leaks the canary"
        assert error.__context__ is None and error.__cause__ is None


def _raised_by(trigger: Callable[[], object]) -> VaultError:
    with pytest.raises(VaultError) as raised:
        trigger()
    return raised.value
