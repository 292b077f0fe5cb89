"""`OpenBaoDevServer` starts, seals, stops and restarts a real OpenBao dev server."""

from __future__ import annotations

import json
import socket
import stat
import sys
import urllib.request
from pathlib import Path

import pytest

from envmatrix.demo import openbao
from envmatrix.demo.openbao import OpenBaoDevServer, find_bao_binary, pick_port_pair
from envmatrix.errors import OpenBaoError


def whoami(server: OpenBaoDevServer) -> dict[str, object]:
    request = urllib.request.Request(
        f"{server.addr}/v1/auth/token/lookup-self", headers={"X-Vault-Token": server.token}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        data: dict[str, object] = json.load(response)["data"]
    return data


def test_started_server_answers_with_its_root_token(capfd: pytest.CaptureFixture[str]) -> None:
    with OpenBaoDevServer() as server:
        assert server.addr.startswith("http://127.0.0.1:")
        assert server.health_status() == 200
        assert whoami(server)["policies"] == ["root"]
        assert "OpenBao server started" in server.log_path.read_text()
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")  # everything went to the log file


def test_two_servers_get_different_ports_and_tokens() -> None:
    with OpenBaoDevServer() as first, OpenBaoDevServer() as second:
        assert first.addr != second.addr
        assert first.token != second.token
        assert first.health_status() == second.health_status() == 200


def test_seal_and_unseal() -> None:
    with OpenBaoDevServer() as server:
        server.seal()
        assert server.health_status() == 503
        server.unseal()
        assert server.health_status() == 200
        assert whoami(server)["policies"] == ["root"]


def test_stop_then_start_keeps_address_and_token() -> None:
    with OpenBaoDevServer() as server:
        addr, token = server.addr, server.token
        server.stop()
        assert not server.running
        assert server.health_status() is None

        server.start()

        assert (server.addr, server.token) == (addr, token)
        assert server.health_status() == 200


def test_close_stops_the_process_and_removes_the_log() -> None:
    server = OpenBaoDevServer().start()
    log_dir = server.log_path.parent
    server.close()
    assert not server.running
    assert not log_dir.exists()


def test_starting_twice_is_refused() -> None:
    with OpenBaoDevServer() as server, pytest.raises(OpenBaoError, match="already running"):
        server.start()


def test_port_pair_is_free_at_p_and_p_plus_one() -> None:
    port = pick_port_pair()
    for candidate in (port, port + 1):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", candidate))


def test_finds_bao_next_to_the_interpreter() -> None:
    assert find_bao_binary() == Path(sys.executable).parent / "bao"


def test_missing_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openbao.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OpenBaoError, match="'bao' is neither in .* nor on PATH; install"):
        OpenBaoDevServer().start()


def test_a_server_that_dies_at_startup_reports_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bao"
    fake.write_text("#!/bin/sh\necho 'Error initializing core: disk on fire' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(openbao, "find_bao_binary", lambda: fake)

    with pytest.raises(OpenBaoError, match="exited during startup") as raised:
        OpenBaoDevServer().start()

    assert "disk on fire" in str(raised.value)


def test_a_server_that_never_answers_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bao"
    fake.write_text("#!/bin/sh\necho 'waiting for nothing'\nexec sleep 30\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(openbao, "find_bao_binary", lambda: fake)
    server = OpenBaoDevServer(startup_timeout=0.5)

    with pytest.raises(OpenBaoError, match=r"not become ready within 0.5 s") as raised:
        server.start()

    assert "waiting for nothing" in str(raised.value)
    assert not server.running
