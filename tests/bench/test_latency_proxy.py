"""bench/latency_proxy.py in front of a real server (the GitHub sandbox): answers pass through
unchanged, every round trip is counted, and concurrent clients are held in the delay together."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest

from envmatrix.sandbox import GitHubSandbox
from tests.envmatrix.sandbox import OTHER_REPO, REPO, call

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("latency_proxy", ROOT / "bench/latency_proxy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["latency_proxy"] = module  # dataclass-free, but keep the import machinery happy
    spec.loader.exec_module(module)
    return module


latency_proxy = _load()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/repos/{REPO}", None),
        ("GET", f"/repos/{REPO}/environments/nowhere", None),  # a 404 passes through
        ("PUT", f"/repos/{OTHER_REPO}/environments/staging", {"wait_timer": 3}),
        ("GET", "/repos/occ-labs/does-not-exist", None),
    ],
)
def test_answers_pass_through_unchanged_and_each_round_trip_is_counted_once(
    sandbox: GitHubSandbox, method: str, path: str, body: object
) -> None:
    with latency_proxy.LatencyProxy(sandbox.url, delay=0.001) as proxy:
        via_proxy = call(proxy.url, method, path, body)
        direct = call(sandbox.url, method, path, body)
        assert (via_proxy.status, via_proxy.json()) == (direct.status, direct.json())
        if direct.headers["ETag"]:
            assert via_proxy.headers["ETag"] == direct.headers["ETag"]
        assert proxy.stats()["round_trips"] == 1
        sandbox.reset_counts()
        for _ in range(3):
            call(proxy.url, method, path, body)
        assert proxy.stats()["round_trips"] == 4
        assert sum(sandbox.request_counts().values()) == 3
    if method == "PUT":
        assert sandbox.environment_protection(OTHER_REPO, "staging")["wait_timer"] == 3


@pytest.mark.parametrize("clients", [4, 9])
def test_concurrent_clients_are_delayed_together_not_one_after_another(
    sandbox: GitHubSandbox, clients: int
) -> None:
    gate = threading.Barrier(clients)

    def one(_: int) -> int:
        gate.wait()
        return call(proxy.url, "GET", f"/repos/{REPO}").status

    with latency_proxy.LatencyProxy(sandbox.url, delay=0.5) as proxy:
        with ThreadPoolExecutor(clients) as pool:
            assert list(pool.map(one, range(clients))) == [200] * clients
        assert proxy.stats() == {"round_trips": clients, "max_in_flight": clients}
        proxy.reset()
        assert proxy.stats() == {"round_trips": 0, "max_in_flight": 0}


def test_keep_alive_clients_and_the_stats_endpoint_of_the_proxy_process(
    sandbox: GitHubSandbox,
) -> None:
    import requests

    script = str(ROOT / "bench/latency_proxy.py")
    process = subprocess.Popen(
        [sys.executable, script, "--upstream", sandbox.url, "--delay", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().rsplit(" ", 1)[-1]
        session = requests.Session()  # one kept-alive connection for every request
        headers = {"Authorization": "token sandbox-token"}
        names = [
            session.get(f"{url}/repos/{r}", headers=headers).json()["name"]
            for r in (REPO, OTHER_REPO) * 3
        ]
        assert names == ["operator-console", "storefront-sync"] * 3
        stats = json.loads(session.get(f"{url}/_proxy/stats").content)
        assert stats["round_trips"] == 6
        session.delete(f"{url}/_proxy/stats").raise_for_status()
        assert session.get(f"{url}/_proxy/stats").json()["round_trips"] == 0
        assert session.get(f"{url}/_proxy/elsewhere").status_code == 404
        assert sum(sandbox.request_counts().values()) == 6  # /_proxy/ is never forwarded
        session.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize("upstream", ["https://127.0.0.1:8200", "127.0.0.1:8200", "http://"])
def test_an_upstream_that_is_not_plain_http_is_refused(upstream: str) -> None:
    with pytest.raises(ValueError, match="upstream must be"):
        latency_proxy.LatencyProxy(upstream, delay=0)
